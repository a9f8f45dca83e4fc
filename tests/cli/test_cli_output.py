"""What the CLI prints for a user's own files: sharded Zarr layouts, rules that match nothing, a closed pipe."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import arraystore

from .conftest import SCRIPT, run_cli

zarr = pytest.importorskip("zarr", reason="needs zarr-python for a sharded array written by zarr itself")


def test_info_shows_inner_chunks_and_shards_as_convert_takes_them(tmp_path: Path) -> None:
    p = tmp_path / "sh.zarr"
    z = zarr.create_array(str(p), shape=(40, 128, 96), chunks=(10, 32, 32), shards=(20, 64, 96), dtype="i2")
    z[:] = np.arange(40 * 128 * 96, dtype="i2").reshape(40, 128, 96)
    facts = json.loads(run_cli("info", str(p), "--json").stdout)
    assert facts["chunks"] == [10, 32, 32]
    assert facts["shards"] == [20, 64, 96]
    out = tmp_path / "copy.zarr"
    assert run_cli("convert", str(p), str(out), "--chunks", "10,32,32", "--shards", "20,64,96", "-q").returncode == 0
    again = json.loads(run_cli("info", str(out), "--json").stdout)
    assert (again["chunks"], again["shards"]) == (facts["chunks"], facts["shards"])


def test_info_unsharded_has_no_shards(good: Path) -> None:
    facts = json.loads(run_cli("info", str(good), "--json").stdout)
    assert facts["shards"] is None and facts["chunks"] is None
    text = run_cli("info", str(good)).stdout
    assert "none (contiguous)" in text and "None" not in text  # words, not Python's repr


def test_inspect_says_when_no_rule_matched_and_why(tmp_path: Path) -> None:
    (tmp_path / "run1").mkdir()
    f = tmp_path / "run1" / "a.dat"
    np.zeros((4, 8), "<f4").tofile(f)
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nglob = "run1/*.dat"\ndtype = "float32"\nshape = [4, 8]\n')
    miss = run_cli("inspect", str(f), "--rules", str(rules))
    assert miss.returncode == 3
    assert "no rule of" in miss.stdout and "--root" in miss.stdout, miss.stdout
    hit = run_cli("inspect", str(f), "--rules", str(rules), "--root", str(tmp_path))
    assert hit.returncode == 0 and "no rule of" not in hit.stdout


@pytest.mark.parametrize(("name", "data", "override"), [
    ("ramp_f4_le.dat", np.linspace(0, 1, 4096).astype(">f4"), True),  # the data contradict the name
    ("grid_10x10_float32.dat", np.arange(200, dtype="<f4"), True),  # the name's shape does not fit the size
    ("mystery.bin", np.arange(300, dtype="<f4"), False),  # nothing stated: no source to override
])
def test_inspect_advice_migrates_the_file_once_filled_in(tmp_path: Path, name: str, data: np.ndarray,
                                                        override: bool) -> None:
    """The rule inspect prints, filled in with the true layout, resolves the file: override = true where needed."""
    f = tmp_path / name
    data.tofile(f)
    proc = run_cli("inspect", str(f))
    assert proc.returncode in (3, 4)
    assert "no source states the dtype" not in proc.stdout or not override, proc.stdout
    rule = proc.stdout[proc.stdout.index("[[rule]]"):]
    assert ("override = true" in rule) == override, proc.stdout
    filled = rule.replace('dtype = "..."', f'dtype = "{data.dtype.str}"').replace("shape = [...]", f"shape = {list(data.shape)}")
    rules = tmp_path / "rules.toml"
    rules.write_text("\n".join(line.strip() for line in filled.splitlines()) + "\n")
    hit = run_cli("inspect", str(f), "--rules", str(rules))
    assert hit.returncode == 0, hit.stdout


def test_output_into_a_closed_pipe_is_not_an_error(good: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written, as after `| head -1`
    try:
        done = subprocess.run([str(SCRIPT), "info", str(good)], stdout=write_end, stderr=subprocess.PIPE,
                              timeout=120, check=False)
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert done.stderr == b"", done.stderr


def test_object_store_retry_hint_is_the_command_lines() -> None:
    from arraystore.cli._errors import cli_message

    out = cli_message("check that the endpoint is reachable and retry: an interrupted conversion resumes with "
                      "resume=True", "convert")
    assert "resume=" not in out and out.endswith("resumes when the same command is run again")


@pytest.mark.parametrize("command", ["info", "verify"])
def test_src_order_is_accepted_where_order_means_the_raw_layout(tmp_path: Path, command: str) -> None:
    f = tmp_path / "fo.dat"
    data = np.arange(12, dtype="<i2").reshape(3, 4)
    data.ravel(order="F").tofile(f)
    assert run_cli("info", str(f), "--dtype", "<i2", "--shape", "3,4", "--src-order", "F",
                   "--write-sidecar").returncode == 0
    done = run_cli(command, str(f), "--dtype", "<i2", "--shape", "3,4", "--src-order", "F", "--json",
                   *(["--against", str(f)] if command == "verify" else []))
    assert done.returncode == 0, done.stderr
    if command == "info":
        assert json.loads(done.stdout)["order"] == "F"


def test_info_prints_a_structured_dtype_as_numpy_does_and_a_small_ratio_as_nonzero(tmp_path: Path) -> None:
    dtype = np.dtype([("t", "<f8"), ("v", ">i2"), ("flag", "u1")])
    np.save(tmp_path / "rec.npy", np.zeros(2, dtype))
    text = run_cli("info", str(tmp_path / "rec.npy")).stdout
    assert f"dtype            {dtype}\n" in text, text  # [('t', '<f8'), ('v', '>i2'), ('flag', 'u1')]
    facts = json.loads(run_cli("info", str(tmp_path / "rec.npy"), "--json").stdout)
    assert facts["dtype"] == [["t", "<f8"], ["v", ">i2"], ["flag", "|u1"]]  # JSON keeps the sidecar's form
    with arraystore.create(str(tmp_path / "one.zarr"), (1,), "u1") as s:
        s[...] = 1
    facts = json.loads(run_cli("info", str(tmp_path / "one.zarr"), "--json").stdout)
    assert 0 < facts["ratio"] < 0.005, facts  # 1 byte of data beside hundreds of metadata: not rounded to 0
