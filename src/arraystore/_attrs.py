"""User attributes: what they may hold, and their one JSON encoding shared by every backend.

Attributes round-trip exactly, type and value, or are refused with
:class:`~arraystore.errors.MetadataError` before anything is written:

* JSON's own types: ``None``, ``bool``, ``int`` (any size), ``float`` (NaN, ±inf and
  -0.0 included), ``str``, ``list`` and ``dict`` with ``str`` keys, nested;
* numpy scalars and arrays of every dtype arraystore stores (not objects), encoded as
  ``{"$numpy": {"dtype": <numpy descr>, "shape": [..] or null for a scalar,
  "data": <base64 of the C-order bytes>}}``.

Refused: non-string keys (``{1: "a"}`` would become ``{"1": "a"}``), tuples and sets
(JSON has only lists: pass a list), ``bytes`` (pass ``np.frombuffer(b, "u1")`` or a
str), other objects, strings that are not valid Unicode (lone surrogates), nesting
deeper than :data:`MAX_DEPTH`, and attributes whose JSON exceeds :data:`MAX_BYTES`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._dtypes import dtype_from_json, dtype_to_json
from .errors import MetadataError, UnsupportedDtypeError

__all__ = ["MARKER", "MAX_BYTES", "MAX_DEPTH", "attrs_equal", "check_attrs", "copy_plain", "decode_attrs", "encode_attrs"]

#: The key of the one-key object that encodes a numpy scalar or array.
MARKER = "$numpy"
#: Deepest nesting of lists and objects in attributes.
MAX_DEPTH = 32
#: Largest attributes, as encoded JSON text (sidecars and headers are read with a 16 MiB cap).
MAX_BYTES = 4 * 1024 * 1024


def check_attrs(attrs: Any) -> dict[str, Any]:
    """Validate ``attrs`` and return a deep copy that will read back equal to it.

    Raises
    ------
    MetadataError
        Saying which attribute (by its path) cannot round-trip and what to pass instead.
    """
    if not isinstance(attrs, Mapping):
        raise MetadataError(f"expected attrs as a dict with str keys, found {type(attrs).__name__}")
    if not attrs:
        return {}
    encoded = encode_attrs(attrs)
    try:
        text = json.dumps(encoded, allow_nan=True, ensure_ascii=False)
    except (ValueError, RecursionError) as exc:  # e.g. ints over Python's digit limit
        raise MetadataError(f"attrs cannot be written as JSON: {exc}") from None
    if len(text.encode()) > MAX_BYTES:
        raise MetadataError(
            f"expected attrs of at most {MAX_BYTES:,} bytes of JSON, found {len(text.encode()):,}; store large "
            "values as arrays of their own, not as attributes"
        )
    if f'"{MARKER}"' not in text:
        # No numpy value: reading the JSON back gives ``encoded`` again (JSON types only, fresh lists and dicts).
        return encoded
    return decode_attrs(json.loads(text))


def encode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-ready form of ``attrs`` (numpy values encoded); raises ``MetadataError``."""
    try:  # most attrs are plain JSON types: copied without the per-value checks and error paths
        out = _copy_plain(dict(attrs), 0)
    except (_NotPlain, UnicodeEncodeError):
        out = _encode(dict(attrs), "attrs", 0)  # what to encode, or the error saying where and why
    assert isinstance(out, dict)
    return out


def copy_plain(value: Any) -> Any:
    """A deep copy of ``value`` when it is made of exactly str, int, float, bool, None, lists and
    str-keyed dicts (what a JSON round trip returns unchanged); ``ValueError`` for anything else."""
    try:
        return _copy_plain(value, 0)
    except (_NotPlain, UnicodeEncodeError):
        raise ValueError("not plain JSON values") from None


class _NotPlain(Exception):
    """A value :func:`_copy_plain` leaves to :func:`_encode`."""


def _copy_plain(value: Any, depth: int) -> Any:
    """A copy of ``value`` made of exactly str, int, float, bool, None, lists and str-keyed dicts, which
    :func:`_encode` would return unchanged; anything else raises :class:`_NotPlain`."""
    if depth > MAX_DEPTH:
        raise _NotPlain
    t = type(value)
    if t is str:
        if not value.isascii():
            value.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError
        return value
    if t is int or t is float or t is bool or value is None:
        return value
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str or k == MARKER:
                raise _NotPlain
            if not k.isascii():
                k.encode("utf-8")
            out[k] = _copy_plain(v, depth + 1)
        return out
    if t is list:
        return [_copy_plain(v, depth + 1) for v in value]
    raise _NotPlain


def decode_attrs(obj: Any, where: str = "attrs") -> dict[str, Any]:
    """Inverse of :func:`encode_attrs`, from parsed JSON; raises ``MetadataError`` for a bad encoding."""
    if not isinstance(obj, dict):
        raise MetadataError(f"{where}: expected a JSON object of attributes, found {type(obj).__name__}")
    out = _decode(obj, where, 0)
    assert isinstance(out, dict)
    return out


def attrs_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equality of two attribute dicts as stored: types, values, NaN equal to NaN, array bytes."""
    try:
        return _canonical(encode_attrs(a)) == _canonical(encode_attrs(b))
    except MetadataError:
        return False


def _canonical(obj: Any) -> str:
    return json.dumps(obj, allow_nan=True, sort_keys=True)


def _encode(value: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise MetadataError(f"{path}: attrs nested deeper than {MAX_DEPTH} levels; flatten them")
    if isinstance(value, (np.generic, np.ndarray)):  # before str/float: np.str_ and np.float64 subclass them
        return {MARKER: _encode_numpy(value, path)}
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if type(value) is not int:  # an int subclass (IntEnum...) would come back as a plain int
            raise MetadataError(f"{path}: {type(value).__name__} would come back as int; pass int({value!r})")
        return value
    if isinstance(value, float):
        if type(value) is not float:
            raise MetadataError(f"{path}: {type(value).__name__} would come back as float; pass float(...)")
        return value
    if isinstance(value, str):
        if type(value) is not str:
            raise MetadataError(f"{path}: {type(value).__name__} would come back as str; pass str(...)")
        _check_text(value, path)
        return value
    if isinstance(value, list):
        return [_encode(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str) or type(k) is not str:
                raise MetadataError(
                    f"{path}: expected str attribute names, found {k!r} ({type(k).__name__}); JSON would turn "
                    f"it into the string {str(k)!r} (and {{1: 'a', '1': 'b'}} would lose a value): use str keys"
                )
            _check_text(k, path)
            if k == MARKER:
                raise MetadataError(f"{path}: the key {MARKER!r} is reserved for arraystore's numpy encoding")
            out[k] = _encode(v, f"{path}[{k!r}]", depth + 1)
        return out
    hints: dict[type, str] = {
        tuple: "pass a list (JSON has no tuples)",
        set: "pass a sorted list",
        frozenset: "pass a sorted list",
        bytes: "pass a str, or np.frombuffer(value, 'u1')",
        bytearray: "pass a str, or np.frombuffer(value, 'u1')",
    }
    hint = hints.get(type(value), "pass JSON types (None, bool, int, float, str, list, dict) or numpy scalars/arrays")
    raise MetadataError(f"{path}: {type(value).__name__} values cannot be stored as attributes exactly; {hint}")


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MetadataError(f"{path}: {text!r} is not valid Unicode (a lone surrogate); fix the text") from None


def _encode_numpy(value: np.generic | np.ndarray[Any, Any], path: str) -> dict[str, Any]:

    arr = np.asarray(value)
    try:
        descr = dtype_to_json(arr.dtype)
    except UnsupportedDtypeError as exc:
        raise MetadataError(f"{path}: a numpy value of dtype {arr.dtype} cannot be stored as an attribute: {exc}") from None
    data = np.ascontiguousarray(arr).tobytes()
    shape = None if isinstance(value, np.generic) else list(arr.shape)
    return {"dtype": descr, "shape": shape, "data": base64.b64encode(data).decode("ascii")}


def _decode(value: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH + 1:
        raise MetadataError(f"{path}: attributes nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list):
        return [_decode(v, path, depth + 1) for v in value]
    if isinstance(value, dict):
        if MARKER in value:
            if len(value) != 1:
                raise MetadataError(f"{path}: a {MARKER!r} object must have that one key, found {sorted(value)}")
            return _decode_numpy(value[MARKER], path)
        return {k: _decode(v, path, depth + 1) for k, v in value.items()}
    return value


def _decode_numpy(enc: Any, path: str) -> np.generic | np.ndarray[Any, Any]:

    if not isinstance(enc, dict) or set(enc) != {"dtype", "shape", "data"} or not isinstance(enc["data"], str):
        raise MetadataError(f"{path}: expected {MARKER!r} to hold {{dtype, shape, data}}, found {enc!r}")
    dtype = dtype_from_json(enc["dtype"])
    shape = enc["shape"]
    if shape is not None and not (
        isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise MetadataError(f"{path}: invalid shape {shape!r} in a {MARKER!r} value")
    try:
        raw = base64.b64decode(enc["data"], validate=True)
    except (binascii.Error, ValueError):
        raise MetadataError(f"{path}: the data of a {MARKER!r} value is not base64") from None
    count = math.prod(shape) if shape is not None else 1
    if len(raw) != count * dtype.itemsize:
        raise MetadataError(
            f"{path}: a {MARKER!r} value of shape {shape} and dtype {dtype} needs {count * dtype.itemsize} bytes, "
            f"found {len(raw)}"
        )
    arr = np.frombuffer(raw, dtype=dtype).copy()
    if shape is None:
        scalar: np.generic = arr[0]
        return scalar
    out: np.ndarray[Any, Any] = arr.reshape(shape)
    return out
