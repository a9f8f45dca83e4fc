"""A chunked source (Zarr, sharded Zarr, chunked HDF5) rewritten in place by its own library while a conversion
reads it: a typed error and nothing published, never an array of old and new values reported as converted.
A destination written next to the source (another array of the same Zarr group) is not a change."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.errors import ConversionError

from .conftest import BACKENDS

zarr = pytest.importorskip("zarr", reason="the zarr extra is not installed")
h5py = pytest.importorskip("h5py", reason="the hdf5 extra is not installed")

DATA = np.random.default_rng(11).normal(size=(400, 64)).astype("<f8")


def _zarr_source(path: Path, sharded: bool) -> str:
    z = zarr.create_array(str(path), shape=DATA.shape, dtype=DATA.dtype, chunks=(10, 64),
                          shards=(40, 64) if sharded else None, compressors=zarr.codecs.ZstdCodec(level=1))
    z[...] = DATA
    return str(path)


def _hdf5_source(path: Path) -> str:
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=DATA, chunks=(10, 64), compression="gzip")
    return f"{path}::/x"


def _rewrite_last_rows(kind: str, path: Path, put_back: bool) -> None:
    """The source's own library writes new values into its last rows (every block before them was read)."""
    before = {p: p.stat() for p in ([path] if path.is_file() else list(path.rglob("*")))}
    time.sleep(0.02)  # a later status-change time on any file system clock (no assertion on time)
    if kind == "hdf5":  # from another process: this one's HDF5 library has the file open read-only
        code = f"import h5py\nwith h5py.File({str(path)!r}, 'r+', locking=False) as f:\n    f['x'][-10:] = 7.0\n"
        subprocess.run([sys.executable, "-c", code], check=True)
    else:
        z = zarr.open_array(str(path), mode="r+")
        z[-10:] = 7.0
    if put_back:
        for p, st in before.items():
            if p.exists():
                os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("put_back", [False, True], ids=["mtime-moved", "mtime-put-back"])
@pytest.mark.parametrize(("kind", "dst_name"), [
    ("zarr", "dst.npy"), ("zarr", "dst.h5"), ("zarr-sharded", "dst.npy"), ("zarr-sharded", "dst.zarr"),
    ("hdf5", "dst.npy"), ("hdf5", "dst.zarr"),
])
def test_chunked_source_rewritten_mid_conversion_is_a_typed_error(tmp_path: Path, kind: str, dst_name: str,
                                                                   put_back: bool) -> None:
    if "zarr" in dst_name and "zarr" not in BACKENDS:
        pytest.skip("the zarr backend is not available")
    path = tmp_path / ("src.h5" if kind == "hdf5" else "src.zarr")
    src = _hdf5_source(path) if kind == "hdf5" else _zarr_source(path, sharded=kind == "zarr-sharded")
    calls = [0]

    def rewrite(done: int, total: int) -> None:
        calls[0] += 1
        if calls[0] == 2:
            _rewrite_last_rows("hdf5" if kind == "hdf5" else "zarr", path, put_back)

    out = tmp_path / dst_name
    opts: dict[str, Any] = {"max_memory": 160 * 1024}
    with pytest.raises(ConversionError, match="was modified while being converted") as info:
        arraystore.convert(src, str(out), progress=rewrite, **opts)
    assert "files were written to" in str(info.value)
    assert calls[0] >= 2
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith((".partial", ".jsonl"))]
    # Converted again once nobody writes it: the new values, whole.
    arraystore.convert(src, str(out))
    expected = DATA.copy()
    expected[-10:] = 7.0
    with arraystore.open(str(out)) as back:
        np.testing.assert_array_equal(back[...], expected)


def test_destination_beside_the_source_is_not_a_change(tmp_path: Path) -> None:
    """Another array of the source's Zarr group: its chunk files are not the source changing."""
    group = tmp_path / "g.zarr"
    zarr.open_group(str(group), mode="w")
    src = _zarr_source(group / "a", sharded=False)
    dst = f"{group}::b"
    report = arraystore.convert(f"{group}::a", dst, max_memory=160 * 1024, chunks=(10, 64), compression="zstd:1")
    assert report.blocks_total > 1
    with arraystore.open(dst) as back:
        np.testing.assert_array_equal(back[...], DATA)
    with arraystore.open(src) as back:
        np.testing.assert_array_equal(back[...], DATA)
