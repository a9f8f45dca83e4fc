"""Hypothesis strategies for checking a store against numpy: keys, written values, expected refusals.

numpy is the oracle: a key drawn by :func:`keys` is applied to the store and to a plain
ndarray holding the same data, and the results must agree in values, dtype (byte order
included) and shape. :func:`write_values` draws what ``store[key] = value`` may be given
(Python scalars and lists, numpy scalars and arrays of the same or another dtype,
broadcastable shapes); :func:`write_refusal` says, from the documented rules alone, which
typed error a store must raise instead of doing what numpy does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ..errors import BroadcastError, UnsupportedDtypeError, ValueOutOfRangeError
from .dtypes import sample_data

__all__ = ["bad_keys", "keys", "numpy_result", "write_refusal", "write_values"]


def _basic_entry(draw: st.DrawFn, n: int) -> Any:
    if n and draw(st.booleans()):
        return draw(st.integers(-n, n - 1))
    start = draw(st.none() | st.integers(-n - 2, n + 2))
    stop = draw(st.none() | st.integers(-n - 2, n + 2))
    step = draw(st.none() | st.sampled_from([1, 2, 3, -1, -2, -3]))
    return slice(start, stop, step)


@st.composite
def keys(draw: st.DrawFn, shape: tuple[int, ...], advanced: bool = True) -> Any:
    """A key numpy and arraystore both take: basic entries, ``...``, and at most one array or mask."""
    if advanced and shape and draw(st.integers(0, 5)) == 0:
        return draw(st.lists(st.booleans(), min_size=math.prod(shape), max_size=math.prod(shape)).map(
            lambda bits: np.array(bits, dtype=bool).reshape(shape)
        ))
    entries: list[Any] = [_basic_entry(draw, n) for n in shape]
    if advanced and shape and draw(st.booleans()):
        axis = draw(st.integers(0, len(shape) - 1))
        n = shape[axis]
        kind = draw(st.sampled_from(["list", "array", "2d", "mask"]))
        if kind == "mask":
            entries[axis] = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
        else:
            idx = draw(st.lists(st.integers(-n, n - 1), max_size=5)) if n else []
            if kind == "list":
                entries[axis] = idx
            elif kind == "array":
                itype = draw(st.sampled_from([np.intp, np.int32, np.uint16]))
                entries[axis] = np.array(idx, dtype=np.intp if idx and min(idx) < 0 else itype)
            else:
                entries[axis] = np.array(idx[: len(idx) // 2 * 2], dtype=np.intp).reshape(-1, 2)
    if draw(st.booleans()) and entries:  # drop trailing entries or stand some in with ...
        i = draw(st.integers(0, len(entries)))
        j = draw(st.integers(i, len(entries)))
        if draw(st.booleans()):
            if not any(isinstance(e, (list, np.ndarray)) for e in entries[i:j]):
                entries = [*entries[:i], Ellipsis, *entries[j:]]
        elif not any(isinstance(e, (list, np.ndarray)) for e in entries[i:]):
            entries = entries[:i]  # trailing axes left out are taken whole
    if len(entries) == 1 and draw(st.booleans()):
        return entries[0]
    return tuple(entries)


@st.composite
def bad_keys(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[Any, bool]:
    """A key arraystore refuses (with ``SelectionError``), and whether numpy refuses it too."""
    kind = draw(st.sampled_from(["oob", "oob_array", "too_many", "two_arrays", "newaxis", "mask_len", "zero_step"]))
    ndim = len(shape)
    if kind == "too_many" or not ndim:
        return tuple([0] * (ndim + 1)), True
    axis = draw(st.integers(0, ndim - 1))
    n = shape[axis]
    entries: list[Any] = [slice(None)] * ndim
    if kind == "oob":
        entries[axis] = draw(st.sampled_from([n, -n - 1, n + 7]))
    elif kind == "oob_array":
        entries[axis] = [0, draw(st.sampled_from([n, -n - 1]))]
    elif kind == "mask_len":
        entries[axis] = np.ones(n + 1, dtype=bool)
    elif kind == "zero_step":  # numpy refuses it with a ValueError
        entries[axis] = slice(draw(st.sampled_from([None, 0, -1])), None, 0)
        other = (axis + 1) % ndim
        if other != axis and shape[other] and draw(st.booleans()):  # beside an integer array
            entries[other] = [0]
    elif kind == "newaxis":
        entries.insert(draw(st.integers(0, ndim)), None)
        return tuple(entries), False
    else:
        other = (axis + 1) % ndim
        if other == axis:
            return ([0], [0]), True  # a 1-d array: too many indices
        entries[axis], entries[other] = [0], [0]
        return tuple(entries), not (n and shape[other])
    return tuple(entries), True


def numpy_result(model: np.ndarray[Any, Any], key: Any) -> np.ndarray[Any, Any]:
    """``model[key]`` as arraystore returns it: a 0-d array of the model's dtype where numpy gives a scalar."""
    out = model[key]
    return out if isinstance(out, np.ndarray) else np.asarray(out, dtype=model.dtype).reshape(())


def _python_values(dtype: np.dtype[Any], n: int, draw: st.DrawFn) -> list[Any]:
    kind = dtype.kind
    if kind == "b":
        return draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if kind in "iu":
        info = np.iinfo(dtype)
        wide = st.integers(int(info.min) - 300, int(info.max) + 300) | st.sampled_from([2**63, -(2**63) - 1, 2**64])
        return draw(st.lists(st.integers(int(info.min), int(info.max)) | wide, min_size=n, max_size=n))
    if kind == "f":
        return draw(st.lists(st.floats(width=64) | st.integers(-(2**70), 2**70), min_size=n, max_size=n))
    if kind == "c":
        return draw(st.lists(st.complex_numbers(max_magnitude=1e300) | st.floats(), min_size=n, max_size=n))
    if kind == "U":
        size = dtype.itemsize // 4
        return draw(st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=size + 2), min_size=n, max_size=n))
    if kind == "S":
        return draw(st.lists(st.binary(max_size=dtype.itemsize + 2).map(lambda b: b.rstrip(b"\x00")), min_size=n, max_size=n))
    if kind == "m":
        return draw(st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n))
    raise ValueError(kind)


_OTHER_DTYPES = ["?", "i1", ">i2", "<i8", "u1", ">u4", "<u8", "<f2", ">f4", "<f8", ">c8", "<c16", "S3", "<U2", "<M8[s]", "<m8[ms]"]


@st.composite
def write_values(draw: st.DrawFn, dtype: np.dtype[Any], target: tuple[int, ...]) -> Any:
    """Something to assign to a selection of shape ``target`` in an array of ``dtype``."""
    shape = list(target)
    if draw(st.booleans()) and shape:  # broadcastable: drop leading axes, set some to 1
        shape = shape[draw(st.integers(0, len(shape))) :]
        shape = [1 if draw(st.booleans()) else k for k in shape]
    shape_t = tuple(shape)
    numeric = dtype.kind in "biufcSUm" and dtype.names is None
    kind = draw(st.sampled_from(["same", "swapped", "python", "list", "other"] if numeric else ["same", "swapped"]))
    seed = draw(st.integers(0, 2**16))
    if kind == "same":
        return sample_data(dtype, shape_t, seed)
    if kind == "swapped":
        return sample_data(dtype, shape_t, seed).astype(dtype.newbyteorder())
    if kind == "python":
        return _python_values(dtype, 1, draw)[0]
    if kind == "list":
        n = math.prod(shape_t)
        return np.array(_python_values(dtype, n, draw), dtype=object).reshape(shape_t).tolist() if n else []
    other = np.dtype(draw(st.sampled_from(_OTHER_DTYPES)))
    if draw(st.booleans()):
        return sample_data(other, (), seed)[()]  # a numpy scalar
    return sample_data(other, shape_t, seed)


def _flat(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [x for v in value for x in _flat(v)]
    return [value]


def write_refusal(value: Any, dtype: np.dtype[Any], *, scalar: bool, target: tuple[int, ...]) -> type[BaseException] | None:
    """The typed error the documented write rules call for, or None when the store must do what numpy does."""
    if isinstance(value, np.integer) and value.dtype.kind in "iu" and dtype.kind in "iu":
        value = int(value)  # documented: checked by value, as numpy 2 does
    strong = isinstance(value, (np.ndarray, np.generic))
    if strong:
        src = np.asarray(value).dtype
        if src != dtype:
            numbers = "biufcmM"
            if (
                (src.kind in numbers) != (dtype.kind in numbers)
                or {src.kind, dtype.kind} == {"S", "U"}
                or not np.can_cast(src, dtype, "same_kind")
            ):
                return UnsupportedDtypeError
        vshape = np.shape(value)
    else:
        items = _flat(value)
        vshape = np.shape(np.asarray(value, dtype=object)) if isinstance(value, list) else ()
        for v in items:
            refusal = _python_refusal(v, dtype)
            if refusal is not None:
                return refusal
    if scalar and vshape:
        return BroadcastError
    extra = len(vshape) - len(target)
    if extra > 0 and any(k != 1 for k in vshape[:extra]):
        return BroadcastError  # numpy drops leading length-1 axes of the value, no others
    inner = vshape[extra:] if extra > 0 else vshape
    try:
        if np.broadcast_shapes(inner, target) != target:
            return BroadcastError
    except ValueError:
        return BroadcastError
    return None


def _python_refusal(v: Any, dtype: np.dtype[Any]) -> type[BaseException] | None:
    kind = dtype.kind
    if isinstance(v, bool):
        return None if kind in "biufc" or (kind == "m") else UnsupportedDtypeError
    if isinstance(v, int):
        if kind in "iu":
            info = np.iinfo(dtype)
            return None if info.min <= v <= info.max else ValueOutOfRangeError
        if kind in "fc":
            return _overflows(v, dtype)
        return None if kind == "m" else UnsupportedDtypeError
    if isinstance(v, float):
        return _overflows(v, dtype) if kind in "fc" else UnsupportedDtypeError
    if isinstance(v, complex):
        return _overflows(v, dtype) if kind == "c" else UnsupportedDtypeError
    if isinstance(v, str):
        if kind != "U":
            return UnsupportedDtypeError
        return ValueOutOfRangeError if len(v) > dtype.itemsize // 4 else None
    if isinstance(v, bytes):
        if kind != "S":
            return UnsupportedDtypeError
        return ValueOutOfRangeError if len(v) > dtype.itemsize else None
    return UnsupportedDtypeError


def _overflows(v: complex, dtype: np.dtype[Any]) -> type[BaseException] | None:
    """ValueOutOfRangeError when a finite Python number becomes infinite in ``dtype`` (numpy's rounding)."""
    try:
        wide = complex(v)
    except OverflowError:
        return ValueOutOfRangeError
    if not (math.isfinite(wide.real) and math.isfinite(wide.imag)):
        return None
    with np.errstate(over="ignore"):
        got = np.array(wide if dtype.kind == "c" else wide.real, dtype=dtype)
    return None if np.isfinite(got) else ValueOutOfRangeError
