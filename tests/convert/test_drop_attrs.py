"""``convert(..., attrs="drop")`` / ``arraystore convert --drop-attrs``: a plain .npy from an array with attrs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.conversion import convert
from arraystore.errors import ConversionError

REPO = Path(__file__).resolve().parents[2]


def _source(tmp_path: Path, backend: str) -> tuple[str, np.ndarray]:
    data = np.arange(600, dtype="<f4").reshape(20, 30)
    path = str(tmp_path / ("src.dat" if backend == "raw" else "src.h5" if backend == "hdf5" else "src.zarr"))
    with arraystore.create(path, data.shape, data.dtype, backend=backend, attrs={"units": "K", "gain": 2}) as s:
        s[...] = data
    return path, data


@pytest.mark.parametrize("backend", ["raw", "hdf5", "zarr"])
def test_drop_attrs_writes_a_plain_npy(tmp_path: Path, backend: str) -> None:
    src, data = _source(tmp_path, backend)
    dst = tmp_path / "out.npy"
    with pytest.raises(ConversionError) as info:
        convert(src, dst)
    assert "attrs='drop'" in str(info.value) and "--drop-attrs" in str(info.value)
    assert not dst.exists()
    report = convert(src, dst, attrs="drop")
    assert any("attrs not copied" in n for n in report.plan["notes"]), report.plan
    np.testing.assert_array_equal(np.load(dst), data)  # numpy reads it as a plain .npy
    with arraystore.open(src, "r") as s:
        assert dict(s.attrs) == {"units": "K", "gain": 2}  # the source keeps them


def test_drop_attrs_on_a_kept_backend_drops_them(tmp_path: Path) -> None:
    src, data = _source(tmp_path, "raw")
    convert(src, tmp_path / "out.dat", attrs="drop")
    with arraystore.open(tmp_path / "out.dat", "r") as s:
        assert dict(s.attrs) == {}
        np.testing.assert_array_equal(s[...], data)


def test_attrs_value_is_checked(tmp_path: Path) -> None:
    src, _ = _source(tmp_path, "raw")
    with pytest.raises(ConversionError, match="attrs='keep' or attrs='drop'"):
        convert(src, tmp_path / "out.npy", attrs="sidecar")  # type: ignore[arg-type]


def test_cli_drop_attrs(tmp_path: Path) -> None:
    exe = shutil.which("arraystore", path=os.path.dirname(sys.executable))
    assert exe is not None, "the arraystore command is not installed next to this Python"
    src, data = _source(tmp_path, "raw")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    refused = subprocess.run([exe, "convert", src, str(tmp_path / "a.npy")], capture_output=True, text=True, env=env)
    assert refused.returncode != 0 and "--drop-attrs" in refused.stderr
    done = subprocess.run([exe, "convert", src, str(tmp_path / "a.npy"), "--drop-attrs"], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), data)
