from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.cli import main


def _make(path: Path) -> None:
    with arraystore.create(path, (3, 4), ">f8", attrs={"units": "K"}) as s:
        s[...] = np.arange(12).reshape(3, 4)


def test_info_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _make(tmp_path / "a.dat")
    assert main(["info", str(tmp_path / "a.dat")]) == 0
    out = capsys.readouterr().out
    assert "raw" in out and ">f8" in out and "(3, 4)" not in out and "[3, 4]" in out and "96 bytes" in out


def test_info_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _make(tmp_path / "a.dat")
    assert main(["info", "--json", str(tmp_path / "a.dat")]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["dtype"] == ">f8" and facts["shape"] == [3, 4] and facts["attrs"] == {"units": "K"}
    assert facts["complete"] is True and facts["format"] == "raw" and facts["chunks"] is None


def test_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bare.dat").write_bytes(b"\0" * 16)
    assert main(["info", str(tmp_path / "bare.dat")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MetadataError" in err and "Traceback" not in err


def test_console_script_and_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "arraystore.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"arraystore {arraystore.__version__}"


@pytest.mark.parametrize("module", ["arraystore", "arraystore.migration.run", "arraystore.conversion", "arraystore.cli"])
def test_import_is_light(module: str) -> None:
    """No format library is imported until an array of its format is: a migration to .npy, or the command line,
    pays nothing for zarr, h5py or dask (the pool's server imports the destination's backend itself)."""
    code = f"import {module}, sys; print(sorted({{'h5py','zarr','numcodecs','dask','xarray'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
