"""HDF5 dtype mapping: what HDF5 holds natively, and the lossless encodings for the rest.

HDF5 (through h5py) holds bool (an enum of int8), every integer and float width
including float16 and the 80-bit x86 ``longdouble`` (in 16 bytes), complex numbers
(as ``{r, i}`` compounds), fixed-length bytes ``S`` (null-padded strings), void ``V``
(opaque) and structured dtypes (compounds, offsets and padding kept), in either
byte order. Three things it does not hold natively; arraystore stores them as a
*storage dtype* with exactly the same bytes, and records the numpy dtype in the
reserved attribute ``_arraystore_dtype`` (numpy's descr, as JSON):

* ``datetime64[unit]`` / ``timedelta64[unit]`` -> ``int64`` of the same byte order
  (NaT is ``INT64_MIN``);
* ``U<n>`` -> fixed-length UTF-8 strings, what every HDF5 reader reads as text (see
  :mod:`arraystore.backends._hdf5_strings`; not the same bytes); where UTF-8 strings
  cannot hold a value (an embedded NUL), and in structured fields, an HDF5 array of
  ``n`` ``uint32`` UTF-32 code units, same byte order;
* big-endian ``clongdouble`` (h5py reads it back little-endian) -> an HDF5 array of
  two big-endian ``longdouble``.

The other encodings also apply to fields of structured dtypes, offsets unchanged, so
the stored bytes are the array's bytes: reading is ``raw.view(dtype)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._corder import c_contiguous
from ..errors import UnsupportedDtypeError
from ..fidelity import FAMILIES, Fidelity, StructuredLimits, Support

__all__ = ["HDF5_FIDELITY", "contiguous", "decode", "encode", "storage_dtype"]

_ENC_TIME = (
    "stored as int64 of the same byte order with CF units, calendar and _FillValue (NaT), as xarray writes "
    "them, + reserved attribute _arraystore_dtype (unit included)"
)
_ENC_UNICODE = (
    "stored as fixed-length UTF-8 strings (h5py string_dtype('utf-8', bytes)), which h5py, netCDF and xarray read "
    "as text, + reserved attribute _arraystore_dtype; arrays with a value UTF-8 strings cannot hold (an embedded "
    "NUL, a lone surrogate) and structured fields: an HDF5 array of uint32 UTF-32 code units"
)
_ENC_CLD_BIG = "stored as an HDF5 array of two big-endian longdouble + reserved attribute _arraystore_dtype"


def _table() -> dict[tuple[str, str], tuple[Support, str]]:
    table: dict[tuple[str, str], tuple[Support, str]] = {}
    for family in FAMILIES:
        table[(family, "*")] = (Support.EXACT, "native HDF5 type")
    table[("bool", "*")] = (Support.EXACT, "HDF5 enum {FALSE: 0, TRUE: 1} of int8 (h5py's convention)")
    table[("longdouble", "*")] = (Support.EXACT, "native long double (x86-64: 80-bit extended in 16 bytes)")
    table[("complex64", "*")] = table[("complex128", "*")] = (Support.EXACT, "HDF5 compound {r, i}")
    table[("clongdouble", "*")] = (Support.EXACT, "HDF5 compound {r, i} of long double")
    table[("clongdouble", "big")] = (Support.ENCODED, _ENC_CLD_BIG)
    table[("datetime64", "*")] = table[("timedelta64", "*")] = (Support.ENCODED, _ENC_TIME)
    table[("unicode", "*")] = (Support.ENCODED, _ENC_UNICODE)
    table[("bytes", "*")] = (Support.EXACT, "HDF5 fixed-length null-padded string, bytes kept")
    table[("void", "*")] = (Support.EXACT, "HDF5 opaque type")
    table[("structured", "*")] = (
        Support.EXACT,
        "HDF5 compound, offsets, item size and padding bytes kept; overlapping fields and names with NUL refused",
    )
    return table


#: The HDF5 backend's fidelity declaration.
#: HDF5 compound members have sizes > 0 and C-string names.
HDF5_FIDELITY = Fidelity(_table(), StructuredLimits(zero_size_fields=False, nul_in_names=False))


def _leaf(dtype: np.dtype[Any]) -> np.dtype[Any]:
    bo = ">" if dtype.byteorder == ">" or (dtype.byteorder == "=" and not np.little_endian) else "<"
    if dtype.kind in "Mm":
        return np.dtype(f"{bo}i8")
    if dtype.kind == "U":
        return np.dtype((np.dtype(f"{bo}u4"), (dtype.itemsize // 4,)))
    if dtype.kind == "c" and dtype.itemsize > 16 and bo == ">":
        return np.dtype((np.dtype(f">f{dtype.itemsize // 2}"), (2,)))
    return dtype


def _map(dtype: np.dtype[Any]) -> np.dtype[Any]:
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return np.dtype((_map(base), shape))
    if dtype.names is not None:
        fields = dtype.fields
        assert fields is not None
        return np.dtype(
            {
                "names": list(dtype.names),
                "formats": [_map(fields[n][0]) for n in dtype.names],
                "offsets": [fields[n][1] for n in dtype.names],
                "itemsize": dtype.itemsize,
            }
        )
    return _leaf(dtype)


def storage_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype handed to h5py for ``dtype`` (``dtype`` itself when HDF5 holds it natively).

    Raises
    ------
    UnsupportedDtypeError
        For object dtypes and structured dtypes without fields (HDF5 has no empty compound).
    """
    if dtype.hasobject:
        raise UnsupportedDtypeError(
            f"HDF5 cannot store Python objects (dtype {dtype}); store fixed-width values"
        )
    if dtype.names is not None and not dtype.names:
        raise UnsupportedDtypeError(
            f"HDF5 has no compound type without members, found {dtype}; store it as void 'V{dtype.itemsize}'"
        )
    out = _map(dtype)
    if out.itemsize != dtype.itemsize:  # pragma: no cover - the mapping keeps sizes by construction
        raise AssertionError(f"storage dtype {out} does not keep the item size of {dtype}")
    return out


def contiguous(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A C-contiguous copy (if needed) that keeps every byte, padding of structured items included.

    numpy copies structured items field by field, dropping the bytes between fields;
    copying them as opaque ``V`` items keeps all of them.
    """
    if a.flags.c_contiguous:
        return a
    if a.dtype.names is None:
        return c_contiguous(a)
    out: np.ndarray[Any, Any] = np.ascontiguousarray(a.view(np.dtype((np.void, a.dtype.itemsize)))).view(
        a.dtype
    )
    return out


def encode(value: np.ndarray[Any, Any], storage: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """``value``, C-contiguous, viewed as the storage dtype (array storage types add a trailing axis)."""
    value = contiguous(value)
    if value.dtype == storage:
        return value
    flat = value.reshape(-1)
    out: np.ndarray[Any, Any] = flat.view(storage).reshape(value.shape + storage.shape)
    return out


def decode(raw: np.ndarray[Any, Any], dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """Bytes read as the storage dtype, viewed back as ``dtype`` with the selection's ``shape``."""
    raw = np.asarray(raw)
    if raw.dtype == dtype and raw.shape == shape:
        return raw
    return contiguous(raw).view(dtype).reshape(shape)
