"""The array an HDF5 dataset holds: shape, dtype, order and attrs from the dataset and its reserved attributes.

Order
    A dataset carrying ``_arraystore_order = "F"`` (the transposed layout: arraystore
    before C-layout HDF5, or ``create(..., order="F", hdf5_layout="transposed")``) holds
    the Fortran-order bytes of an array whose shape is the dataset's reversed; every
    other dataset is read in C order with the dataset's own shape.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from ..errors import MetadataError, UnsupportedDtypeError
from ..meta import ArrayMeta, dtype_from_json
from . import _hdf5_attrs as A
from ._cf import counts_of
from ._hdf5_dtypes import storage_dtype
from ._hdf5_strings import utf8_width
from ._hdf5_types import dataset_dtype, without_metadata

__all__ = ["logical_meta"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def logical_meta(ds: h5py.Dataset, where: str) -> tuple[ArrayMeta, np.dtype[Any], int]:
    """The array an HDF5 dataset holds, the storage dtype h5py reads it as, and its trailing array axes.

    A dataset of an HDF5 array type (``H5T_ARRAY``, e.g. ``("<f4", (3,))`` written
    by h5py or netCDF tools) reads as h5py reads it: the array type's dimensions
    become trailing axes of the array (shape ``(5,)`` + ``(3,)`` -> ``(5, 3)``).
    """
    if ds.shape is None:
        raise MetadataError(f"{where}: the dataset has a null dataspace (no shape, no data); nothing to open")
    stored = dataset_dtype(ds, where)
    if stored.hasobject:
        raise UnsupportedDtypeError(
            f"{where}: the dataset holds variable-length data or references (h5py dtype {stored}), which "
            "arraystore does not read; copy it to a fixed-width dtype with h5py"
        )
    if stored.metadata and stored.names is None:  # an HDF5 enum: keep its base integer type
        stored = np.dtype(stored.str)
    described = A.read_json(ds, A.DTYPE, where)
    if described is not None and not _describes_times(ds, dtype_from_json(described), where):
        described = None  # counts another tool rewrote in its own units, with the record kept: int64 as stored
    dtype = without_metadata(stored) if described is None else dtype_from_json(described)
    text = described is not None and utf8_width(ds, dtype, where) is not None  # U as UTF-8: any byte width
    if described is not None and not text and storage_dtype(dtype).itemsize != stored.itemsize:
        raise MetadataError(
            f"{where}: {A.DTYPE} says {dtype} ({dtype.itemsize} bytes) but the dataset holds {stored} "
            f"({stored.itemsize} bytes); the attribute or the data is wrong"
        )
    order = _text(A.read_attr(ds, A.ORDER, where)) if A.ORDER in ds.attrs else "C"
    if order not in ("C", "F"):
        raise MetadataError(f"{where}: expected {A.ORDER} to be 'C' or 'F', found {order!r}")
    trailing = len(stored.shape) if described is None and stored.subdtype is not None else 0
    if trailing and order == "F":
        raise MetadataError(
            f"{where}: {A.ORDER} = 'F' on a dataset of HDF5 array type {stored}, which arraystore never "
            "writes; the attribute is wrong"
        )
    shape = tuple(ds.shape)[::-1] if order == "F" else tuple(ds.shape)
    meta = ArrayMeta(shape, dtype, order, A.read_attrs(ds, where, encoded=described is not None))  # type: ignore[arg-type]
    return meta, stored, trailing


def _describes_times(ds: h5py.Dataset, dtype: np.dtype[Any], where: str) -> bool:
    """False for a recorded time dtype whose CF ``units``/``calendar`` do not say the counts are its values."""
    if dtype.kind not in "Mm":
        return True
    units, calendar = (_text(A.read_attr(ds, k, where)) if k in ds.attrs else None for k in ("units", "calendar"))
    if units is None:  # bare counts: CF has no name for the unit
        return True
    own = A.read_json(ds, A.ATTRS, where)
    if isinstance(own, dict) and own.get("units") == units:  # the array's own attribute: bare counts, no CF
        return True
    return counts_of(dtype, units, calendar if dtype.kind == "M" else None)
