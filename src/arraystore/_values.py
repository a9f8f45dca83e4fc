"""What ``store[sel] = value`` accepts: numpy 2's rules, minus its silent losses.

* Python scalars, and lists or tuples of them, are *weak* (NEP 50): a Python ``int``
  is written into any integer or floating dtype if its value fits, a ``float`` into any
  floating or complex dtype, a ``complex`` into a complex dtype, a ``bool`` into any
  number, a ``str`` into ``U`` and ``bytes`` into ``S``. A value that does not fit raises
  :class:`~arraystore.errors.ValueOutOfRangeError` (an ``OverflowError``, as numpy
  raises for integers) where numpy would wrap, overflow to infinity or truncate text.
* numpy integer scalars written into integer arrays are checked by value like Python
  ints (numpy 2 raises ``OverflowError`` for them too).
* numpy arrays and other scalars (and anything with ``__array__``) are *strong*: they are
  cast with numpy's ``same_kind`` rule, exactly as ``np.copyto(..., casting="same_kind")``
  does (so an ``int64`` array wraps into ``int8`` like ``astype`` does).
* Writing another kind (floats into integers, numbers into text or back) raises
  :class:`~arraystore.errors.UnsupportedDtypeError` where numpy would cast unsafely.
* The value is broadcast to the selection as numpy assigns (leading length-1 axes
  dropped); an integer-only key takes a single element, not a sequence.
"""

from __future__ import annotations

import datetime
import warnings
from typing import Any

import numpy as np

from .errors import BroadcastError, UnsupportedDtypeError, ValueOutOfRangeError

__all__ = ["coerce_value"]

_NUMBERS = "biufcmM"
_PY_SCALARS = (bool, int, float, complex, str, bytes)


def _kind_ok(src: np.dtype[Any], dst: np.dtype[Any], weak: bool) -> bool:
    if (src.kind in _NUMBERS) != (dst.kind in _NUMBERS):
        return False  # numbers and text/bytes/records never convert into each other silently
    if {src.kind, dst.kind} == {"S", "U"}:
        return False  # bytes and str stay apart, as in Python 3 (decoding could fail or guess)
    if weak and src.kind in "iu" and dst.kind in "iu":
        return True  # a Python int goes into any integer dtype it fits (checked by the conversion)
    return bool(np.can_cast(src, dst, "same_kind"))


def _refuse(src: Any, dst: np.dtype[Any], where: str) -> UnsupportedDtypeError:
    return UnsupportedDtypeError(
        f"{where}: cannot write {src} values into an array of {dst} without changing their kind "
        f"(numpy's 'same_kind' rule); convert them explicitly, e.g. np.asarray(value).astype({str(dst)!r})"
    )


_WEAK_KINDS = {bool: "b", int: "i", float: "f", complex: "c", str: "U", bytes: "S"}
_WEAK_DTYPES = {"b": "?", "i": "i8", "f": "f8", "c": "c16", "U": "U1", "S": "S1"}


def _weak_kind(items: np.ndarray[Any, Any]) -> str:
    """The kind of a set of Python values, as NEP 50 sees them: the widest of bool < int < float < complex."""
    kinds: set[str] = set()
    for v in items.flat:
        if isinstance(v, np.generic):
            kinds.add(v.dtype.kind)
        elif isinstance(v, (datetime.date, datetime.timedelta)):
            kinds.add("m" if isinstance(v, datetime.timedelta) else "M")
        else:
            kinds.add(next((k for t, k in _WEAK_KINDS.items() if type(v) is t), "O"))
    numeric = [k for k in "cfiub" if k in kinds]
    if numeric and kinds <= set("biufc"):
        return "i" if numeric[0] == "u" else numeric[0]
    return kinds.pop() if len(kinds) == 1 else "O"


def _weak(value: Any, dtype: np.dtype[Any], where: str) -> np.ndarray[Any, Any]:
    """Python scalars and (nested) lists of them, converted into ``dtype`` only when they fit."""
    try:
        items = np.asarray(value, dtype=object)
    except ValueError as exc:
        raise BroadcastError(f"{where}: cannot make an array of the value written: {exc}") from None
    if items.size == 0:
        return np.empty(items.shape, dtype)  # an empty list holds no value of any kind
    kind = _weak_kind(items)
    if kind in "Mm" and dtype.kind in "Mm":
        return _strong(np.asarray(value, dtype=kind + "8"), dtype, where)
    if kind not in _WEAK_DTYPES or not _kind_ok(np.dtype(_WEAK_DTYPES[kind]), dtype, weak=True):
        names = {v: t.__name__ for t, v in _WEAK_KINDS.items()}
        raise _refuse(f"Python {names.get(kind, 'mixed or object')}", dtype, where)
    out = _convert(value, dtype, where)
    if dtype.kind in "fc":
        try:
            wide = np.asarray(value, dtype=np.complex128 if kind == "c" else np.float64)
        except OverflowError:
            raise ValueOutOfRangeError(f"{where}: a Python int is too large for any float; it does not fit {dtype}") from None
        _check_finite(out, wide, where)
    elif kind in "SU":
        longest = max(len(v.rstrip(b"\0") if isinstance(v, bytes) else v) for v in items.flat)
        if longest > dtype.itemsize // (4 if dtype.kind == "U" else 1):
            raise ValueOutOfRangeError(
                f"{where}: a text value of {longest} characters is longer than the array's {dtype} holds "
                "(numpy would cut it); shorten it or store it in an array with a longer string dtype"
            )
    return out


def _convert(value: Any, dtype: np.dtype[Any], where: str) -> np.ndarray[Any, Any]:
    try:
        with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.array(value, dtype=dtype)
    except OverflowError as exc:
        raise ValueOutOfRangeError(
            f"{where}: {exc}; the value does not fit the array's {dtype}. Write a value in range, or "
            "wrap it on purpose with np.asarray(value).astype(...)"
        ) from None
    except (TypeError, ValueError) as exc:
        raise UnsupportedDtypeError(f"{where}: cannot convert the value written into {dtype}: {exc}") from None


def _check_finite(out: np.ndarray[Any, Any], probe: np.ndarray[Any, Any], where: str) -> None:
    if np.isfinite(out).all():
        return
    if (np.isfinite(probe) & ~np.isfinite(out)).any():
        raise ValueOutOfRangeError(
            f"{where}: a finite value overflows the array's {out.dtype} to infinity; write a value in "
            f"range (largest {np.finfo(out.dtype).max}) or store into a wider dtype"
        )


def _strong(arr: np.ndarray[Any, Any], dtype: np.dtype[Any], where: str) -> np.ndarray[Any, Any]:
    if arr.dtype != dtype and not _kind_ok(arr.dtype, dtype, weak=False):
        raise _refuse(arr.dtype, dtype, where)
    return arr


def coerce_value(
    value: Any, dtype: np.dtype[Any], shape: tuple[int, ...], *, scalar: bool = False, where: str = ""
) -> np.ndarray[Any, Any]:
    """``value`` as an array of ``dtype`` and ``shape``, following the rules in this module's docstring.

    ``scalar`` says that the key picks one element with integers only; numpy then
    wants a scalar (or 0-d array), not a sequence of one.

    Raises
    ------
    UnsupportedDtypeError
        Values of another kind.
    ValueOutOfRangeError
        Python numbers or text that do not fit ``dtype``.
    BroadcastError
        A value that cannot be broadcast to ``shape``.
    """
    if isinstance(value, np.integer) and value.dtype.kind in "iu" and dtype.kind in "iu":
        value = int(value)  # numpy 2 range-checks integer scalars too: they must fit, not wrap
    weak = isinstance(value, (list, tuple) + _PY_SCALARS) and not isinstance(value, np.generic)
    if weak and (dtype.names is not None or dtype.kind == "V"):
        arr = _convert(value, dtype, where)  # tuples are records, converted field by field by numpy
    elif weak:
        arr = _weak(value, dtype, where)
    else:
        try:
            arr = np.asarray(value)
            if arr.dtype == object and dtype.kind in "Mm":  # datetime.datetime / timedelta objects
                arr = np.asarray(value, dtype=dtype.kind + "8")
            arr = _strong(arr, dtype, where)
        except ValueError as exc:
            raise BroadcastError(f"{where}: cannot make an array of the value written: {exc}") from None
    if scalar and arr.ndim:
        raise BroadcastError(
            f"{where}: an integer index picks one element, but the value has shape {arr.shape}; "
            "write a scalar, or index with slices to write a block"
        )
    if arr.dtype == dtype and arr.shape == shape:
        return arr
    out = np.empty(shape, dtype)
    try:
        np.copyto(out, arr, casting="same_kind")
    except ValueError as exc:
        raise BroadcastError(
            f"{where}: cannot write a value of shape {arr.shape} into a selection of shape {shape}: {exc}"
        ) from None
    except TypeError:
        raise _refuse(arr.dtype, dtype, where) from None
    return out
