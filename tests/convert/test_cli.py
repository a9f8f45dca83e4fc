"""``arraystore convert`` and ``arraystore verify`` through their own parsers (run -> exit code)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arraystore.cli import convert as cli_convert
from arraystore.cli import verify as cli_verify
from arraystore.errors import VerificationError

from .conftest import BACKENDS, SUFFIX, bytes_equal, read_back, write_source


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="arraystore")
    sub = parser.add_subparsers(dest="command")
    cli_convert.register(sub)
    cli_verify.register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_convert_json_then_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = np.arange(5000, dtype=">i8").reshape(50, 100)
    src = write_source(tmp_path / "src.dat", data, attrs={"k": "v"})
    dst_backend = "zarr" if "zarr" in BACKENDS else "raw"
    dst = str(tmp_path / f"out{SUFFIX[dst_backend]}")
    extra: list[str] = ["--chunks", "10,100", "--compression", "zstd:1"] if dst_backend == "zarr" else []
    assert run(["convert", src, dst, "--max-memory", "64KiB", "--verify", "--json", *extra]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert report["verified"] and report["dst_backend"] == dst_backend and report["blocks_total"] >= 1
    assert bytes_equal(read_back(dst)[0], data)
    assert run(["verify", dst]) == 0
    assert "OK" in capsys.readouterr().out
    assert run(["verify", dst, "--against", src, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["match"] is True


def test_convert_summary_and_format_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_source(tmp_path / "src.npy", np.ones((10, 10)))
    assert run(["convert", src, str(tmp_path / "out.bin2"), "--to", "raw", "--no-resume", "--durable"]) == 0
    assert "GB/s" in capsys.readouterr().out
    with pytest.raises(VerificationError):
        run(["verify", src])
    with pytest.raises(SystemExit):
        run(["convert", src, "x.dat", "--chunks", "a,b"])
