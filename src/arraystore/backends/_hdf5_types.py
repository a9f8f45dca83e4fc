"""HDF5 file types against numpy dtypes: what h5py can read, and when the stored bytes are numpy's.

HDF5 describes every stored type in full (size, byte order, precision and bit
offset of integers, the bit fields of floats, padding and character set of
strings, member names and offsets of compounds), and converts between the file's
type and the memory type on every read. h5py hands out the numpy dtype it reads a
dataset *into* (``Dataset.dtype``), which is not the file type: a 12-bit integer
at bit offset 4 and a space-padded string read into ``int16`` and ``S8`` through
HDF5's conversion. Anything that bypasses that conversion (a memory map, a byte
copy of the file, direct chunk I/O) is only correct when the file type is
*byte for byte* the type h5py would create for that dtype:
:func:`file_type_is_numpy_bytes` is the one test for it.
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any

import h5py
import numpy as np

from ..errors import UnsupportedDtypeError

__all__ = [
    "check_storable",
    "dataset_dtype",
    "file_type_is_numpy_bytes",
    "not_mappable_reason",
    "without_metadata",
]


def dataset_dtype(ds: h5py.Dataset, where: str) -> np.dtype[Any]:
    """The numpy dtype h5py reads ``ds`` into, refusing types numpy cannot hold or h5py cannot convert.

    Raises
    ------
    UnsupportedDtypeError
        IEEE binary128 and other floats wider than numpy's, integers of odd sizes,
        ``H5T_TIME``, and types HDF5 has no conversion path for (tagged opaque, ...).
    """
    tid = ds.id.get_type()
    try:
        dtype: np.dtype[Any] = np.dtype(ds.dtype)
    except (TypeError, ValueError) as exc:
        raise UnsupportedDtypeError(
            f"{where}: the dataset's HDF5 type ({_describe(tid)}, {tid.get_size()} bytes) has no numpy "
            f"equivalent ({exc}); convert it with h5py or h5repack to a standard type"
        ) from None
    if dtype.hasobject:
        return dtype  # references and variable-length data: refused by the caller with its own message
    try:
        mem = h5py.h5t.py_create(dtype)
        path = h5py.h5t.find(tid, mem)
    except (TypeError, ValueError):  # pragma: no cover - h5py made the dtype from this type
        path = None
    if path is None:
        raise UnsupportedDtypeError(
            f"{where}: HDF5 has no conversion from the dataset's type ({_describe(tid)}) to numpy {dtype}; "
            "h5py cannot read it either: convert it with the tool that wrote it"
        )
    return dtype


def without_metadata(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """``dtype`` without h5py's dtype metadata (``h5py_encoding``, enum maps), at every level.

    h5py tags string fields and enums with metadata that numpy refuses to keep in a
    ``.npy`` header and that no other backend stores; the array's dtype is the plain one.
    """
    if dtype.names is not None:
        fields = dtype.fields
        assert fields is not None
        return np.dtype(
            {
                "names": list(dtype.names),
                "formats": [without_metadata(fields[n][0]) for n in dtype.names],
                "offsets": [fields[n][1] for n in dtype.names],
                "itemsize": dtype.itemsize,
            }
        )
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return np.dtype((without_metadata(base), shape))
    return np.dtype(dtype.str) if dtype.metadata else dtype


def _describe(tid: Any) -> str:
    names = {
        h5py.h5t.INTEGER: "integer",
        h5py.h5t.FLOAT: "float",
        h5py.h5t.TIME: "H5T_TIME",
        h5py.h5t.STRING: "string",
        h5py.h5t.BITFIELD: "bitfield",
        h5py.h5t.OPAQUE: "opaque",
        h5py.h5t.COMPOUND: "compound",
        h5py.h5t.REFERENCE: "reference",
        h5py.h5t.ENUM: "enum",
        h5py.h5t.VLEN: "variable-length",
        h5py.h5t.ARRAY: "array",
    }
    return names.get(tid.get_class(), f"class {tid.get_class()}")


def file_type_is_numpy_bytes(ds: h5py.Dataset) -> bool:
    """True when the dataset's file type is exactly the type h5py creates for its numpy dtype.

    Then the stored bytes are numpy's bytes for ``ds.dtype`` (size, byte order,
    precision, bit offset, padding, string padding and character set, compound
    member names, offsets and item size, array dimensions: ``H5Tequal``), and a
    memory map or a byte copy of the file reads what h5py reads. Otherwise only
    HDF5's conversion (``ds[...]``) gives the right values.
    """
    tid = ds.id.get_type()
    try:
        dtype = np.dtype(ds.dtype)
        if dtype.hasobject:
            return False
        return bool(tid == h5py.h5t.py_create(dtype))
    except (TypeError, ValueError):
        return False


def check_storable(storage: np.dtype[Any], dtype: np.dtype[Any]) -> None:
    """Refuse a storage dtype whose HDF5 type would not read back as exactly the same dtype.

    HDF5 compounds cannot overlap and their member names end at the first NUL: h5py
    builds such types anyway and they come back with other offsets, another item
    size or shortened names. Every dtype is checked by building its HDF5 type and
    asking for the numpy dtype back.

    Raises
    ------
    UnsupportedDtypeError
        When the dtype would not round-trip exactly (values, offsets, item size, names).
    """
    try:
        back: np.dtype[Any] = np.dtype(h5py.h5t.py_create(storage, logical=True).dtype)
    except (TypeError, ValueError) as exc:
        raise UnsupportedDtypeError(
            f"HDF5 cannot store dtype {dtype}: h5py has no HDF5 type for it ({exc}); use another backend "
            "or a dtype without zero-size fields"
        ) from None
    if back != storage or back.itemsize != storage.itemsize:
        why = _compound_problem(storage)
        raise UnsupportedDtypeError(
            f"HDF5 cannot store dtype {dtype} exactly: it would read back as {back}"
            + (f" ({why})" if why else "")
            + "; rename or rearrange the fields, or use another backend"
        )


def _compound_problem(dtype: np.dtype[Any]) -> str:
    if dtype.names is None or dtype.fields is None:
        return ""
    spans = sorted((off, off + fmt.itemsize, name) for name, (fmt, off, *_) in dtype.fields.items())
    for (_, end, a), (start, _, b) in itertools.pairwise(spans):
        if start < end:
            return f"fields {a!r} and {b!r} overlap, which an HDF5 compound cannot hold"
    for name in dtype.names:
        if "\x00" in name:
            return f"field name {name!r} contains NUL, where HDF5 ends member names"
    return ""


def not_mappable_reason(ds: h5py.Dataset, path: str, nbytes: int) -> str | None:
    """Why ``ds`` cannot be memory-mapped as numpy's bytes of ``nbytes``, or None when it can."""
    dcpl = ds.id.get_create_plist()
    if dcpl.get_layout() != h5py.h5d.CONTIGUOUS or ds.chunks is not None:
        filters = " and compressed" if dcpl.get_nfilters() else ""
        return f"the dataset is chunked{filters}, not one contiguous byte range"
    if ds.external:
        return "the dataset keeps its bytes in external files"
    if nbytes == 0:
        return "an empty array has no bytes to map"
    if not file_type_is_numpy_bytes(ds):
        return (
            "the dataset's HDF5 type is not byte for byte numpy's (custom precision or bit offset, "
            "space-padded or null-terminated strings, another compound layout...): only HDF5's "
            "conversion reads its values"
        )
    if ds.dtype.itemsize * math.prod(ds.shape) != nbytes:  # pragma: no cover - sizes agree by construction
        return "the stored type differs from the array's in-memory layout"
    offset = ds.id.get_offset()
    if offset is None:
        return "the dataset has no storage allocated yet (never written); write it first"
    if os.path.getsize(path) < offset + nbytes:
        return "the file is shorter than the dataset's byte range (still being written?)"
    return None

