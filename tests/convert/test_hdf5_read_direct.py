"""Chunked deflated HDF5 sources read by the conversion itself (read_direct_chunk, inflated on threads).

The oracle is h5py reading the same dataset; sources are written by h5py (partially written
datasets with a fill value, shuffle or not) and by arraystore (Fortran order)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore

from .conftest import write_source

h5py = pytest.importorskip("h5py", reason="the hdf5 extra is not installed")

DECODED_HERE = "source chunks fetched and decoded here"


@settings(max_examples=30, deadline=None)
@given(
    dtype=st.sampled_from(["|u1", "<i2", ">i4", "<f4", ">f8", "<c8", "|b1"]),
    shape=st.lists(st.integers(1, 19), min_size=1, max_size=3).map(tuple),
    seed=st.integers(0, 10_000),
    shuffle=st.booleans(),
    level=st.integers(0, 9),
    partial=st.booleans(),
    dst=st.sampled_from(["npy", "zarr"]),
)
def test_h5py_written_source_reads_as_h5py_does(tmp_path_factory: pytest.TempPathFactory, dtype: str,
                                                shape: tuple[int, ...], seed: int, shuffle: bool, level: int,
                                                partial: bool, dst: str) -> None:
    tmp = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(seed)
    data = rng.integers(-60, 60, size=shape).astype(dtype)
    chunks = tuple(int(rng.integers(1, n + 1)) for n in shape)
    path = tmp / "s.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("d", shape=shape, dtype=dtype, chunks=chunks, compression="gzip",
                              compression_opts=level, shuffle=shuffle)
        if partial:  # chunks never written read as the fill value
            ds[tuple(slice(0, max(1, n // 2)) for n in shape)] = data[tuple(slice(0, max(1, n // 2)) for n in shape)]
        else:
            ds[...] = data
    with h5py.File(path) as f:
        expect = f["d"][...]
    out = tmp / f"o.{dst}"
    report = arraystore.convert(f"{path}::/d", str(out), max_memory=65536, verify=True)
    assert any(DECODED_HERE in n for n in report.plan["notes"]), report.plan["notes"]
    got = arraystore.open(str(out))[...]
    assert got.dtype == expect.dtype and got.tobytes() == expect.tobytes()


@pytest.mark.parametrize("order", ["C", "F"])
def test_arraystore_written_fortran_source(tmp_path: Path, order: str) -> None:
    data = np.asfortranarray(np.arange(23 * 31, dtype="<f8").reshape(23, 31)) if order == "F" else \
        np.arange(23 * 31, dtype="<f8").reshape(23, 31)
    src = write_source(tmp_path / "a.h5", data, order=order, chunks=(5, 7), compression="gzip:1")
    report = arraystore.convert(src, str(tmp_path / "b.npy"), max_memory=8192, verify=True)
    assert any(DECODED_HERE in n for n in report.plan["notes"])
    back = np.load(tmp_path / "b.npy")
    with arraystore.open(src) as s:
        stored = s.order  # HDF5 keeps order-F arrays in C layout unless asked for the transposed one
    assert np.array_equal(back, data) and back.flags.f_contiguous == (stored == "F" and back.ndim > 1)


def test_other_filters_keep_h5py(tmp_path: Path) -> None:
    data = np.arange(100, dtype="<i4")
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("d", data=data, chunks=(10,), compression="lzf")
    report = arraystore.convert(f"{tmp_path / 's.h5'}::/d", str(tmp_path / "o.npy"))
    assert not any(DECODED_HERE in n for n in report.plan["notes"])
    assert np.array_equal(np.load(tmp_path / "o.npy"), data)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "too-long"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_a_damaged_deflated_chunk_is_a_typed_error_and_nothing_is_published(tmp_path: Path, damage: str,
                                                                             shuffle: bool) -> None:
    """A chunk whose zlib stream does not inflate to exactly its chunk's bytes (garbage, cut short, or one of a
    larger chunk put in its place) is a MetadataError naming the chunk, never zlib's own error or a wrong array."""
    import zlib

    from arraystore.errors import MetadataError

    data = np.random.default_rng(4).normal(size=(200, 48)).astype("<f4")
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("d", data=data, chunks=(20, 48), compression="gzip", compression_opts=1,
                              shuffle=shuffle)
        mask, raw = ds.id.read_direct_chunk((40, 0))
        bad = {"garbage": raw[:10] + b"\xff" * 64 + raw[74:], "truncated": raw[: len(raw) // 2],
               "too-long": zlib.compress(np.zeros(20 * 48 + 16, "<f4").tobytes(), 1)}[damage]
        ds.id.write_direct_chunk((40, 0), bad, mask)
    out = tmp_path / "o.npy"
    with pytest.raises(MetadataError, match=r"chunk at \(40, 0\)"):
        arraystore.convert(f"{path}::/d", str(out), max_memory=65536)
    assert not out.exists()
