"""Layouts of self-describing files that can be referenced in place: ``.npy`` and contiguous HDF5 datasets.

Each returns the ``(ArrayMeta, offset)`` of a file whose bytes are one contiguous run, or
refuses with the reason (what a virtual store cannot express is converted by copying).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MetadataError, UnsupportedDtypeError
from ..meta import ArrayMeta

__all__ = ["hdf5_layout", "npy_layout"]


def npy_layout(path: str | os.PathLike[str]) -> tuple[ArrayMeta, int]:
    """Shape, dtype, order and data offset of a ``.npy`` file, from ``numpy.lib.format``'s header reader."""
    from numpy.lib import format as npformat

    with open(path, "rb") as f:
        try:
            version = npformat.read_magic(f)
            read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
            shape, fortran, dtype = read(f, max_header_size=1 << 20)
        except ValueError as exc:
            raise MetadataError(f"{path}: expected a .npy header, found {exc}") from None
        offset = f.tell()
    if dtype.hasobject:
        raise UnsupportedDtypeError(f"{path}: holds Python objects (pickles); it cannot be referenced, nor read safely")
    return ArrayMeta(tuple(shape), dtype, "F" if fortran and len(shape) > 1 else "C"), offset


def hdf5_layout(path: str | os.PathLike[str], dataset: str) -> tuple[ArrayMeta, int]:
    """Layout of an HDF5 dataset stored contiguously, uncompressed, allocated, in numpy's own byte format.

    Raises
    ------
    UnsupportedDtypeError
        Its file type is not byte for byte numpy's (HDF5 would convert it on reading).
    MetadataError
        Chunked, compressed, external or not yet allocated storage: no single byte range holds it.
    """
    import h5py

    from ..backends._hdf5_types import file_type_is_numpy_bytes

    with h5py.File(Path(path), "r") as f:
        ds = f.get(dataset)
        if not isinstance(ds, h5py.Dataset):
            raise MetadataError(f"{path}::{dataset}: expected a dataset, found {type(ds).__name__}")
        if ds.chunks is not None or ds.compression is not None or ds.external:
            raise MetadataError(
                f"{path}::{dataset}: stored in chunks, compressed or externally; only contiguous datasets can be "
                "referenced in place (convert it instead)"
            )
        if not file_type_is_numpy_bytes(ds):
            raise UnsupportedDtypeError(
                f"{path}::{dataset}: its HDF5 type is not numpy's {ds.dtype} byte for byte; convert it instead"
            )
        offset = ds.id.get_offset()
        nbytes = int(np.prod(ds.shape)) * ds.dtype.itemsize if ds.shape else ds.dtype.itemsize
        if offset is None and nbytes:
            raise MetadataError(f"{path}::{dataset}: its storage is not allocated (never written); nothing to reference")
        dtype = ds.id.get_type().dtype
        return ArrayMeta(tuple(ds.shape), np.dtype(dtype), "C"), int(offset or 0)
