"""Portable Zarr: only the Zarr v3 core data types, so every Zarr implementation reads the array.

``create(..., portable=True)`` (``convert(..., portable=True)``, ``--portable``) refuses
what zarr-python would write as its own extension data types
(``null_terminated_bytes``, ``fixed_length_utf32``, ``numpy.datetime64``, structured):

* bool, integers, floats and complex numbers are core types (big-endian ones through
  the ``bytes`` codec's ``endian: "big"``, also core);
* ``datetime64`` / ``timedelta64`` become ``int64`` counts with CF ``units``
  (``"seconds since 1970-01-01T00:00:00"``, ``"seconds"``) and ``calendar``
  attributes (timedeltas also xarray's ``dtype``, e.g. ``"timedelta64[s]"``) and NaT as the int64-minimum fill value, the convention xarray uses
  for Zarr as well: xarray decodes the times, TensorStore reads the integers, and
  arraystore reads the original dtype back (encoding ``cf``);
* bytes, unicode, raw (``V``) and structured arrays, ``longdouble``, and times
  in units CF has no name for (weeks, months, years, below nanoseconds, generic)
  have no core type and are refused with :class:`~arraystore.errors.UnsupportedDtypeError`
  before anything is written.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import MetadataError, UnsupportedDtypeError
from ._cf import CF_UNITS

__all__ = ["CF_KEYS", "CF_SCALARS", "CF_UNITS", "FILL_ATTR", "NAT", "cf_attrs", "from_xarray_fill_value",
           "portable_storage", "xarray_fill_value"]

#: NaT as stored: numpy's own bit pattern for it, the int64 minimum.
NAT = int(np.iinfo(np.int64).min)
EPOCH = "1970-01-01T00:00:00"
CF_KEYS = ("units", "calendar", "dtype")
#: netCDF's missing-value attribute, which xarray reads from a Zarr v3 array in an encoded form of its own.
FILL_ATTR = "_FillValue"
#: CF attributes xarray applies as scalars (packing, valid bounds): netCDF-4 stores them as one-element arrays,
#: which arraystore's attrs hold as one-item lists; xarray decodes with a one-item list from Zarr attributes
#: to an object array.
CF_SCALARS = ("scale_factor", "add_offset", "missing_value", "valid_min", "valid_max")


def _refuse(where: str, dtype: np.dtype[Any], reason: str) -> UnsupportedDtypeError:
    return UnsupportedDtypeError(
        f"{where}: expected a dtype with a Zarr v3 core data type for portable=True, found {dtype}: {reason}; "
        "convert without portable (zarr-python then writes its own extension type), or to HDF5"
    )


def cf_attrs(dtype: np.dtype[Any]) -> dict[str, str]:
    """The CF attributes that describe the int64 counts of a datetime64/timedelta64 ``dtype``."""
    unit = CF_UNITS[np.datetime_data(dtype)[0]]
    if dtype.kind == "M":
        return {"units": f"{unit} since {EPOCH}", "calendar": "proleptic_gregorian"}
    # xarray (2025+) decodes timedeltas when its own "dtype" attribute says so; it writes one too
    return {"units": unit, "dtype": f"timedelta64[{np.datetime_data(dtype)[0]}]"}


def portable_storage(dtype: np.dtype[Any], attrs: Mapping[str, Any], where: str) -> dict[str, str] | None:
    """Check ``dtype`` for portable storage; the CF attributes when it is stored as ``cf`` (times), else None.

    Raises
    ------
    UnsupportedDtypeError
        No core type holds ``dtype`` (the message names the array and the reason).
    MetadataError
        A time array whose own ``units``/``calendar`` attribute the CF ones would overwrite.
    """
    if dtype.names is not None:
        raise _refuse(where, dtype, "structured arrays have no core type (each field could be its own array)")
    if dtype.subdtype is not None:
        raise _refuse(where, dtype, "sub-array dtypes have no core type")
    if dtype.kind in "SUV":
        what = {"S": "byte strings", "U": "unicode strings", "V": "raw bytes"}[dtype.kind]
        raise _refuse(where, dtype, f"{what} have no core type in Zarr v3")
    if dtype.kind in "fc" and dtype.itemsize > {"f": 8, "c": 16}[dtype.kind]:
        raise _refuse(where, dtype, "extended precision has no core type (float64/complex128 are the widest)")
    if dtype.kind in "Mm":
        unit, count = np.datetime_data(dtype)
        if unit not in CF_UNITS or count != 1:
            raise _refuse(where, dtype, f"time unit {count}{unit} has no CF name (use ns, us, ms, s, m, h or D)")
        clash = [k for k in CF_KEYS if k in attrs]
        if clash:
            raise MetadataError(
                f"{where}: portable time arrays record their unit in the CF attributes {list(CF_KEYS)}, but the "
                f"array already has {clash}; rename those attributes or convert without portable"
            )
        return cf_attrs(dtype)
    if dtype.kind not in "biufc":
        raise _refuse(where, dtype, "no core type")
    return None


def xarray_fill_value(value: Any, dtype: np.dtype[Any]) -> Any:
    """``value`` of a ``_FillValue`` attribute as xarray writes it for Zarr v3, or None when it has no such form.

    netCDF-4 stores ``_FillValue`` as a one-element array (a one-item list in arraystore's
    attrs); xarray reads it from a Zarr v3 array as a plain integer or boolean, and a float as
    the base64 text of its little-endian float64 bytes (``FillValueCoder``), and refuses any
    other form. Values of other dtypes (complex, strings, times) are left as they are.
    """
    if isinstance(value, (list, np.ndarray)) and len(value) == 1 and np.ndim(value) == 1:
        value = value[0]
    if isinstance(value, (bool, np.bool_)):
        return bool(value) if dtype.kind == "b" else None
    if dtype.kind == "f" and isinstance(value, (int, float, np.integer, np.floating)):
        try:
            return base64.standard_b64encode(struct.pack("<d", float(value))).decode()
        except OverflowError:  # an integer beyond float64: kept as given
            return None
    if dtype.kind in "iu" and isinstance(value, (int, np.integer)):
        return int(value)
    return None


def from_xarray_fill_value(value: Any, dtype: np.dtype[Any]) -> float | None:
    """The number behind xarray's Zarr v3 form of a float array's ``_FillValue`` (base64 of float64 bytes), or None.

    The inverse of :func:`xarray_fill_value` for floats: a Zarr array xarray wrote (or any array
    whose ``_FillValue`` is that text) shows the number, which other formats (HDF5, netCDF) store.
    """
    if dtype.kind != "f" or not isinstance(value, str) or len(value) != 12:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return float(struct.unpack("<d", raw)[0]) if len(raw) == 8 else None
