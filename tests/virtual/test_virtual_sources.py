"""``.npy`` files (numpy's own writer) and contiguous HDF5 datasets (h5py's) referenced in place."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arraystore.errors import MetadataError, UnsupportedDtypeError
from arraystore.virtual import VirtualArray
from arraystore.virtual.kerchunk import open_kerchunk, write_kerchunk
from arraystore.virtual.sources import hdf5_layout, npy_layout

from .test_virtual_roundtrip import bits

DTYPES = ["<i2", ">i2", "<u8", ">f4", "<f8", ">c16", "|b1", "<M8[ms]", ">m8[s]", "<f2"]


def _read(tmp, meta, offset, name):
    va = VirtualArray.from_meta("a", name, meta, offset, size=0, mtime_ns=0, chunk_bytes=24)
    write_kerchunk(tmp / "v.json", [va], tmp)
    return open_kerchunk(tmp / "v.json")["a"][...]


@settings(deadline=None, max_examples=20)
@given(dtype=st.sampled_from(DTYPES), shape=st.lists(st.integers(1, 6), max_size=3).map(tuple), fortran=st.booleans())
def test_npy_written_by_numpy(tmp_path_factory, dtype, shape, fortran):
    tmp = tmp_path_factory.mktemp("npy")
    arr = np.arange(int(np.prod(shape)), dtype="u1").astype(dtype).reshape(shape)
    np.save(tmp / "x.npy", np.asfortranarray(arr) if fortran else arr)
    meta, offset = npy_layout(tmp / "x.npy")
    assert meta.dtype == np.dtype(dtype) and offset % 64 == 0
    np.testing.assert_array_equal(bits(_read(tmp, meta, offset, "x.npy")), bits(np.load(tmp / "x.npy")))


@pytest.mark.parametrize("dtype", DTYPES[:7])
def test_contiguous_hdf5_dataset_written_by_h5py(tmp_path, dtype):
    h5py = pytest.importorskip("h5py", reason="h5py is in arraystore[hdf5]")
    arr = np.arange(60, dtype="u1").astype(dtype).reshape(3, 4, 5)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("g/d", data=arr)
    meta, offset = hdf5_layout(tmp_path / "f.h5", "g/d")
    np.testing.assert_array_equal(bits(_read(tmp_path, meta, offset, "f.h5")), bits(arr))


def test_chunked_or_compressed_hdf5_is_refused(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py is in arraystore[hdf5]")
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("c", data=np.arange(10), chunks=(5,))
        f.create_dataset("z", data=np.arange(10), compression="gzip")
        f.create_dataset("e", shape=(10,), dtype="f4")  # never written: no storage
    for name in ("c", "z"):
        with pytest.raises(MetadataError, match="contiguous"):
            hdf5_layout(tmp_path / "f.h5", name)
    with pytest.raises(MetadataError, match="not allocated"):
        hdf5_layout(tmp_path / "f.h5", "e")


def test_object_npy_is_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UnsupportedDtypeError, match="objects"):
        npy_layout(tmp_path / "o.npy")
