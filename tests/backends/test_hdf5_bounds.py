"""Bounded resources and typed errors on HDF5 files written by h5py: attribute sizes, chunk cache,
a concurrent writer in the same file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

import arraystore
from arraystore.backends._hdf5_attrs import MAX_ATTR_BYTES
from arraystore.errors import ArrayStoreError, MetadataError

BIG = MAX_ATTR_BYTES + 1024


def _dataset(path: Path, libver: str = "earliest") -> None:
    with h5py.File(path, "w", libver=(libver, "latest")) as f:
        f["data"] = np.arange(4, dtype="<i4")


def test_oversized_reserved_attribute_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.h5"
    _dataset(path)
    text = json.dumps({"k": "x" * BIG})
    with h5py.File(path, "a") as f:  # a variable-length string, as arraystore writes it
        f["data"].attrs["_arraystore_attrs"] = text
    with pytest.raises(MetadataError, match="_arraystore_attrs"):
        arraystore.open(path)


@pytest.mark.parametrize("name", ["_arraystore_attrs", "user_attr"])
def test_oversized_fixed_size_attribute_is_refused_before_it_is_read(tmp_path: Path, name: str) -> None:
    path = tmp_path / "b.h5"
    _dataset(path, libver="latest")  # dense attribute storage: attributes over 64 KiB
    with h5py.File(path, "a") as f:
        f["data"].attrs[name] = np.zeros(BIG // 8, dtype="<f8") if name == "user_attr" else np.bytes_(b"{" * BIG)
    tracemalloc.start()
    try:
        with pytest.raises(MetadataError, match=f"{name}.*more than"):
            arraystore.open(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < BIG // 4  # refused from its stored size, not after reading it


def test_attributes_under_the_cap_still_read(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    _dataset(path, libver="latest")
    with h5py.File(path, "a") as f:
        f["data"].attrs["units"] = "m"
        f["data"].attrs["table"] = np.arange(1000.0)
    with arraystore.open(path) as s:
        assert s.attrs["units"] == "m" and s.attrs["table"] == list(np.arange(1000.0))


def test_chunk_cache_holds_a_large_chunk(tmp_path: Path) -> None:
    path = tmp_path / "big-chunk.h5"
    with h5py.File(path, "w") as f:  # one 32 MiB gzip chunk: HDF5's default 1 MiB cache cannot keep it
        f.create_dataset("d", shape=(4096, 1024), chunks=(4096, 1024), dtype="<f8", compression="gzip",
                         data=np.broadcast_to(np.arange(1024.0), (4096, 1024)))
    with arraystore.open(path) as s:
        nbytes = s.dataset.id.get_access_plist().get_chunk_cache()[1]
        assert nbytes >= 4096 * 1024 * 8
        for i in range(3):
            assert s[i * 100, :3].tolist() == [0.0, 1.0, 2.0]


WRITER = textwrap.dedent("""
    import sys, numpy as np, h5py
    path, n = sys.argv[1], int(sys.argv[2])
    with h5py.File(path, "a", locking=False) as f:
        for i in range(n):
            name = f"w{i % 5}"
            if name in f:
                del f[name]
            f.create_dataset(name, data=np.full((256, 256), i, dtype="<f8"), chunks=(64, 64), compression="gzip")
            if "data" in f and i % 7 == 0:
                del f["data"]
                f["data"] = np.full((64, 64), -i, dtype="<i4")
            f.flush()
""")


def test_concurrent_writer_in_the_same_file_gives_typed_errors(tmp_path: Path) -> None:
    path = tmp_path / "busy.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(64 * 64, dtype="<f8").reshape(64, 64)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "400"], env=env)
    outcomes: dict[str, int] = {}
    try:
        while proc.poll() is None:
            try:
                with arraystore.open(f"{path}::/data") as s:
                    for sel in (np.s_[...], np.s_[3], np.s_[10:20, 5]):
                        got = s[sel]
                        assert got.dtype in (np.dtype("<f8"), np.dtype("<i4"))
                outcomes["read"] = outcomes.get("read", 0) + 1
            except ArrayStoreError as exc:  # typed, whatever HDF5 saw half-written
                outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
    finally:
        proc.wait()
    assert proc.returncode == 0
    assert sum(outcomes.values()) > 0


def test_native_attributes_share_one_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "many.h5"
    _dataset(path, libver="latest")
    with h5py.File(path, "a") as f:  # each under the cap, all together over it
        for i in range(18):
            f["data"].attrs[f"part{i}"] = np.zeros(MAX_ATTR_BYTES // 16, dtype="<u1")
    with pytest.raises(MetadataError, match="more than"):
        arraystore.open(path)
    from arraystore.backends import _hdf5_attrs

    monkeypatch.setattr(_hdf5_attrs, "MAX_ATTR_COUNT", 10)
    path2 = tmp_path / "count.h5"
    _dataset(path2)
    with h5py.File(path2, "a") as f:
        for i in range(11):
            f["data"].attrs[f"a{i}"] = i
    with pytest.raises(MetadataError, match="11 attributes"):
        arraystore.open(path2)
