"""Attributes of HDF5 datasets: arraystore's reserved ones and the user's.

Mapping (documented in :mod:`arraystore.backends.hdf5`):

* ``_arraystore_attrs`` — the user attrs dict as JSON text; the exact, authoritative
  copy for datasets arraystore wrote.
* Scalars among the user attrs (str, bool, int within int64, float) are mirrored as
  native HDF5 attributes of the same name, so that other tools (h5dump, HDFView,
  h5py) see them. A native attribute another tool added, or a mirrored scalar it
  changed, since arraystore wrote the JSON copy is read as the native one says.
* Flat lists of numbers are mirrored too, as 1-D arrays (int64, or float64 when any is a
  float): netCDF-4 keeps ``_FillValue``, ``scale_factor``, ``valid_range`` that way, and
  netCDF4, xarray and GDAL decode with them. The attributes CF wants in the variable's
  type (:data:`CF_SAME_TYPE`, e.g. ``_FillValue``, which netCDF-C requires of that type)
  are stored in the dataset's numeric type when their values fit it exactly. As for
  scalars, a mirrored list another tool changed is read as the native one says.
* A dataset without ``_arraystore_attrs`` (written by another tool) exposes its native
  attributes but the dimension-scale and netCDF-4 bookkeeping (:data:`STRUCTURAL`; ``CLASS``
  and ``NAME`` only on a dimension scale), converted to JSON values: numbers and booleans as such, strings and
  bytes as text, numeric or string arrays as lists. Attributes with no JSON form
  (references, compounds, complex numbers) are left out and left alone; arrays are
  left as they are when arraystore writes the attrs, unless their value was changed
  or removed through arraystore.
* Every attribute's stored size is checked before it is read: over
  :data:`MAX_ATTR_BYTES` (the sidecar cap, 16 MiB; the native attributes of a dataset
  share that budget, and there may be at most :data:`MAX_ATTR_COUNT`) it is refused
  with :class:`~arraystore.errors.MetadataError`. Variable-length strings keep their
  characters in HDF5's global heap, whose size HDF5 does not tell before reading;
  they are read (at most the file's size) and checked before any JSON is parsed.
* Other reserved attributes (names starting ``_arraystore_``) never appear in attrs:
  ``_arraystore_version``, ``_arraystore_dtype``, ``_arraystore_order``,
  ``_arraystore_incomplete``, ``_arraystore_checksum``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import h5py
import numpy as np

from .._attrs import decode_attrs, encode_attrs
from ..errors import MetadataError
from ..sidecar import MAX_SIDECAR_BYTES

__all__ = [
    "ATTRS",
    "CHECKSUM",
    "DTYPE",
    "INCOMPLETE",
    "MAX_ATTR_BYTES",
    "MAX_ATTR_COUNT",
    "ORDER",
    "PREFIX",
    "VERSION",
    "read_attr",
    "read_attrs",
    "write_attrs",
]

PREFIX = "_arraystore_"
ATTRS = PREFIX + "attrs"
DTYPE = PREFIX + "dtype"
ORDER = PREFIX + "order"
INCOMPLETE = PREFIX + "incomplete"
CHECKSUM = PREFIX + "checksum"
VERSION = PREFIX + "version"

#: Largest attribute read (stored bytes, or characters of variable-length strings): the sidecar cap.
#: The native attributes of a foreign dataset share this budget.
MAX_ATTR_BYTES = MAX_SIDECAR_BYTES
#: Most attributes one dataset may carry for arraystore to read them.
MAX_ATTR_COUNT = 65536

#: Attributes HDF5 dimension scales and netCDF-4 keep on a dataset (arraystore writes them too): not user attrs.
STRUCTURAL = frozenset({"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "_Netcdf4Coordinates",
                        "_Netcdf4Dimid", "_NCProperties", "_nc3_strict"})
#: Attributes arraystore writes natively for a time dtype stored as int64 (CF, as xarray writes them).
CF_ENCODING = frozenset({"units", "calendar", "_FillValue", "dtype"})

#: Attributes CF wants in the variable's own type (netCDF-C refuses a ``_FillValue`` of another type).
CF_SAME_TYPE = frozenset({"_FillValue", "missing_value", "valid_min", "valid_max", "valid_range"})

_SKIP = object()
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _text(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def _to_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # h5py's surrogate escapes of a variable-length string's bytes that are not UTF-8
            return _text(value.encode("utf-8", "surrogateescape"))
        return value
    if isinstance(value, bytes):
        return _text(value)
    if isinstance(value, h5py.Empty):
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            return value.tolist()
        if value.dtype.kind in "SO":
            items = [_to_json(v) for v in value.ravel()]
            if all(isinstance(v, str) for v in items):
                return np.array(items, dtype=object).reshape(value.shape).tolist()
    return _SKIP


def _too_big(name: str, where: str, size: int, limit: int) -> MetadataError:
    return MetadataError(
        f"{where}: attribute {name!r} holds {size:,} bytes, more than the {limit:,} arraystore reads as "
        "metadata (the cap of a sidecar); the file is damaged or hostile: store large data in a dataset"
    )


def read_attr(obj: h5py.Dataset | h5py.Group, name: str, where: str, limit: int = MAX_ATTR_BYTES) -> Any:
    """One attribute's value, its stored size checked against ``limit`` before it is read.

    Raises
    ------
    MetadataError
        Over ``limit`` bytes (stored, or characters of variable-length strings).
    KeyError
        No such attribute.
    """
    try:
        aid = h5py.h5a.open(obj.id, name.encode("utf-8"))
    except (KeyError, OSError):
        raise KeyError(name) from None
    size = aid.get_storage_size()
    tid = aid.get_type()
    if size > limit:
        raise _too_big(name, where, size, limit)
    npoints = aid.get_space().get_simple_extent_npoints()
    variable = tid.get_class() == h5py.h5t.VLEN or (
        tid.get_class() == h5py.h5t.STRING and tid.is_variable_str()
    )
    if variable and npoints > limit // 16:
        raise _too_big(name, where, npoints * 16, limit)
    value = obj.attrs[name]
    if variable:
        items = value.ravel().tolist() if isinstance(value, np.ndarray) else [value]
        total = sum(len(v) if isinstance(v, (str, bytes)) else getattr(v, "nbytes", 0) for v in items)
        if total > limit:
            raise _too_big(name, where, total, limit)
    return value


def _native(obj: h5py.Dataset | h5py.Group) -> dict[str, Any]:
    where = obj.name or ""
    count = h5py.h5o.get_info(obj.id).num_attrs
    if count > MAX_ATTR_COUNT:
        raise MetadataError(
            f"{where}: the dataset has {count:,} attributes, more than the {MAX_ATTR_COUNT:,} arraystore reads "
            "as metadata; the file is damaged or hostile: store large data in a dataset"
        )
    out: dict[str, Any] = {}
    budget = MAX_ATTR_BYTES
    for name in obj.attrs:
        if name.startswith(PREFIX):
            continue
        try:
            raw = read_attr(obj, name, where, limit=budget)
            budget -= _size(raw)
            value = _to_json(raw)
        except MetadataError:
            raise
        except (OSError, TypeError, ValueError, KeyError, RuntimeError):  # types h5py cannot read
            continue
        if value is not _SKIP:
            out[name] = value
    return out


def _size(value: Any) -> int:
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        return sum(_size(v) for v in value.ravel())
    return int(getattr(value, "nbytes", 8))


def read_json(obj: h5py.Dataset, name: str, where: str) -> Any:
    """A reserved attribute holding JSON text, or None when absent."""
    if name not in obj.attrs:
        return None
    raw = read_attr(obj, name, where)
    text = _text(raw) if isinstance(raw, bytes) else str(raw)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MetadataError(
            f"{where}: the reserved attribute {name} is not valid JSON ({exc}); the file is damaged"
        ) from None


def read_attrs(obj: h5py.Dataset, where: str, encoded: bool | None = None) -> dict[str, Any]:
    """The user attrs of a dataset: arraystore's JSON copy, else its native attributes.

    ``encoded``: whether the values are read as the time dtype recorded in ``_arraystore_dtype`` (whose CF
    attributes are then not the user's); by default, whether that attribute is there.
    """
    stored = read_json(obj, ATTRS, where)
    if stored is None:
        native = _native(obj)
        scale = native.get("CLASS") == "DIMENSION_SCALE"  # else CLASS and NAME are the user's (PyTables writes them)
        return {k: v for k, v in native.items() if k not in STRUCTURAL or (k in ("CLASS", "NAME") and not scale)}
    if not isinstance(stored, dict):
        raise MetadataError(f"{where}: expected {ATTRS} to hold a JSON object, found {type(stored).__name__}")
    attrs = decode_attrs(stored, where)
    if encoded is None:
        encoded = DTYPE in obj.attrs  # a time dtype stored as int64 carries CF attributes arraystore wrote
    for name, value in _native(obj).items():
        if name in STRUCTURAL or (encoded and name in CF_ENCODING and name not in attrs):
            continue
        if name not in attrs or (
            (_mirrorable(attrs[name]) or _numbers(attrs[name])) and not _same(attrs[name], value)
        ):
            attrs[name] = value  # added or changed by another tool (h5py, HDFView) since arraystore wrote them
    return attrs


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):  # a mirrored list of numbers (maybe cast to the dataset's type)
        return len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b))
    return type(a) is type(b) and (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))


def _mirrorable(value: Any) -> bool:
    if isinstance(value, (bool, str, float)):
        return True
    return isinstance(value, int) and _INT64[0] <= value <= _INT64[1]


def _numbers(value: Any) -> bool:
    """A non-empty flat list of numbers (no bools), the integers within int64: mirrored as a 1-D array."""
    return (
        isinstance(value, list) and bool(value)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and all(_INT64[0] <= v <= _INT64[1] for v in value if isinstance(v, int))
    )


def _native_value(key: str, value: Any, dtype: np.dtype[Any]) -> Any:
    """How a mirrored attribute is stored natively (a list in ``dtype`` for :data:`CF_SAME_TYPE` keys)."""
    if isinstance(value, bool):
        return np.bool_(value)
    if not isinstance(value, list) and not (key in CF_SAME_TYPE and isinstance(value, (int, float))):
        return value
    numbers = value if isinstance(value, list) else [value]
    out = np.array(numbers, dtype=np.float64 if any(isinstance(v, float) for v in numbers) else np.int64)
    if not isinstance(value, list):
        out = out.reshape(())  # a scalar stays a scalar (cast below like a list)
    # A scalar is cast only within its kind: read back, an int16 -999 for a float -999.0 would look edited.
    same_kind = isinstance(value, list) or (isinstance(value, float) == (dtype.kind == "f"))
    if key in CF_SAME_TYPE and dtype.kind in "iuf" and dtype.names is None and same_kind:
        native = dtype.newbyteorder("=")
        with np.errstate(all="ignore"):
            typed = out.astype(native)
        if np.array_equal(typed.astype(out.dtype), out, equal_nan=True):
            return typed if isinstance(value, list) else typed[()]
    return out if isinstance(value, list) else value


def write_attrs(obj: h5py.Dataset, attrs: dict[str, Any], old: dict[str, Any]) -> None:
    """Store ``attrs`` as JSON and mirror its scalars and flat lists of numbers as native attributes.

    A native attribute whose value in ``attrs`` is unchanged from ``old`` is left as it
    is: a scalar keeps its HDF5 type (a float32 is not rewritten as float64, fixed-length
    bytes as a variable-length string), an array another tool wrote (read as a list) stays
    for h5py and HDFView to see. A changed scalar or list of numbers is rewritten; another
    changed or removed array is deleted, the JSON copy holding the new value.
    """
    obj.attrs[ATTRS] = json.dumps(encode_attrs(attrs), ensure_ascii=False, allow_nan=True)
    mirrored = set()
    for key, value in attrs.items():
        if not key or key.startswith(PREFIX) or not (_mirrorable(value) or _numbers(value)):
            continue
        if key in old and _unchanged(old[key], value) and key in obj.attrs:
            mirrored.add(key)  # as read: rewriting it would change its HDF5 type (float32 -> float64, bytes -> str)
            continue
        try:
            obj.attrs[key] = _native_value(key, value, obj.dtype)
            mirrored.add(key)
        except (OSError, TypeError, ValueError, KeyError, RuntimeError):  # a name HDF5 refuses: JSON holds it
            continue
    for name in list(obj.attrs):
        if name.startswith(PREFIX) or name in mirrored or (name not in old and name not in attrs):
            continue
        if name in old and name in attrs and _unchanged(old[name], attrs[name]):
            continue
        del obj.attrs[name]


def _unchanged(before: Any, after: Any) -> bool:
    """Whether an attribute's value is the one read (JSON values: lists, dicts, numbers, strings)."""
    if type(before) is not type(after) or isinstance(after, np.ndarray):
        return False
    try:
        return bool(before == after)
    except (TypeError, ValueError):
        return False
