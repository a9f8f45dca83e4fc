"""The one dtype grammar arraystore accepts from users, sidecars, rules files and the command line.

A dtype is numpy's own: a ``numpy.dtype`` or numpy scalar type, or a string that
numpy understands *and* states its size — numpy names with a size (``"float32"``,
``"uint16"``, ``"datetime64[ns]"``), typestrs (``"<f4"``, ``">u2"``, ``"|b1"``,
``"S16"``, ``"<M8[ns]"``) and the C aliases of fixed size (``"double"``,
``"short"``). Names whose size depends on the platform or on who reads them
(``"int"``, ``"float"``, ``"long"``, ``"f"``, ``"i"``) and Python's ``int``,
``float`` and ``complex`` types are refused: a file labelled ``float`` is as often
4-byte as 8-byte. Structured dtypes are written as numpy's descr (a JSON list).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

import numpy as np
from numpy.lib.format import descr_to_dtype, dtype_to_descr

from .errors import MetadataError, UnsupportedDtypeError

__all__ = ["DTYPE_EXAMPLES", "check_dtype", "dtype_from_json", "dtype_to_json", "parse_dtype_text", "to_dtype"]

ByteOrder = Literal["<", ">"]

#: Shown in messages that refuse a dtype.
DTYPE_EXAMPLES = "'float32', 'uint16', '<f4', '>i2', 'S16', 'datetime64[ns]'"

_AMBIGUOUS = {
    "int", "uint", "float", "complex", "long", "ulong", "longlong", "ulonglong", "intc", "uintc",
    "intp", "uintp", "longdouble", "longfloat", "clongdouble", "clongfloat", "int_", "uint_",
    "float_", "complex_", "l", "L", "q", "Q", "p", "P", "g", "G", "i", "I", "h", "H", "b", "B",
    "d", "f", "e", "D", "F", "object", "O", "str", "bytes", "unicode", "void", "V", "S", "U",
    "a", "c", "M", "m", "bool8",
}  # fmt: skip
_C_ALIASES = {
    "double": "f8", "single": "f4", "half": "f2", "byte": "i1", "ubyte": "u1",
    "short": "i2", "ushort": "u2", "bool_": "b1", "?": "b1", "cdouble": "c16", "csingle": "c8",
}  # fmt: skip
_NAMED = re.compile(
    r"(bool|u?int(8|16|32|64)|float(16|32|64|96|128)|complex(64|128|192|256)|(datetime|timedelta)64(\[\w+\])?)"
)
_TYPESTR = re.compile(r"([<>|=]?)([biufc]\d{1,2}|[SUV]\d{1,9}|[mM]8(\[\w+\])?)")
_SUBARRAY = re.compile(r"\(\s*(\d+(?:\s*,\s*\d+)*\s*,?)\s*\)")
_PY_TYPES = {int: "int64", float: "float64", complex: "complex128"}


class DtypeSyntaxError(ValueError):
    """A dtype text outside the grammar (callers re-raise it as their typed error)."""


def parse_dtype_text(value: str) -> tuple[np.dtype[Any], ByteOrder | None]:
    """Parse a dtype string of the grammar; returns the dtype and the byte order it states.

    A string without ``<`` or ``>`` states no byte order; its dtype is numpy's
    (native for multi-byte numbers). Short strings (every dtype of an archive's thousands of
    sidecars) are parsed once and remembered.

    Raises
    ------
    DtypeSyntaxError
        Not a string of the grammar, or not a dtype numpy knows.
    """
    return _parse_remembered(value) if len(value) <= 64 else _parse_dtype_text(value)


@functools.lru_cache(maxsize=512)
def _parse_remembered(value: str) -> tuple[np.dtype[Any], ByteOrder | None]:
    return _parse_dtype_text(value)


def _parse_dtype_text(value: str) -> tuple[np.dtype[Any], ByteOrder | None]:
    """:func:`parse_dtype_text`, every time."""
    text = value.strip()
    sub = _SUBARRAY.match(text)
    if sub and sub.end() < len(text):  # numpy's sub-array prefix, e.g. "(2,3)<i2"
        base, stated = _parse_dtype_text(text[sub.end() :])
        shape = tuple(int(n) for n in sub.group(1).replace(" ", "").split(",") if n)
        return np.dtype((base, shape)), stated
    if text in _AMBIGUOUS:
        raise DtypeSyntaxError(
            f"dtype {value!r} is ambiguous (its size depends on the platform or the reader, or it is not a "
            f"fixed-size type); write it with an explicit size, e.g. {DTYPE_EXAMPLES}"
        )
    text = _C_ALIASES.get(text, text)
    typestr = _TYPESTR.fullmatch(text)
    if not (_NAMED.fullmatch(text) or typestr):
        raise DtypeSyntaxError(f"expected a numpy dtype with an explicit size such as {DTYPE_EXAMPLES}, found {value!r}")
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError) as exc:
        raise DtypeSyntaxError(f"invalid dtype {value!r}: {exc}") from None
    mark = typestr.group(1) if typestr else ""
    return dtype, ("<" if mark == "<" else ">" if mark == ">" else None)


def to_dtype(value: Any) -> np.dtype[Any]:
    """A ``numpy.dtype`` from a dtype, a numpy scalar type, or a string of the grammar.

    Raises
    ------
    DtypeSyntaxError
        For strings outside the grammar, Python's ``int``/``float``/``complex`` and
        anything numpy does not take as a dtype.
    """
    if isinstance(value, np.dtype):
        return value
    if isinstance(value, str):
        return parse_dtype_text(value)[0]
    if isinstance(value, type) and value in _PY_TYPES:
        raise DtypeSyntaxError(
            f"dtype {value.__name__} (a Python type) does not say its size; pass {_PY_TYPES[value]!r} "
            f"or np.{_PY_TYPES[value]}"
        )
    if (isinstance(value, type) and issubclass(value, np.generic)) or value is bool:
        try:
            dtype = np.dtype(value)
        except (TypeError, ValueError) as exc:
            raise DtypeSyntaxError(f"invalid dtype {value!r}: {exc}") from None
        if dtype.kind in "SUV" and dtype.itemsize == 0:
            raise DtypeSyntaxError(f"dtype {value.__name__} does not say its size; pass e.g. {DTYPE_EXAMPLES}")
        return dtype
    if isinstance(value, (list, tuple, dict)):  # numpy's structured and sub-array specifications
        try:
            return np.dtype(_leaves_checked(value, 0))  # type: ignore[no-any-return]
        except (TypeError, ValueError, KeyError, IndexError, RecursionError) as exc:
            raise DtypeSyntaxError(f"invalid structured dtype {value!r}: {exc}") from None
    raise DtypeSyntaxError(f"expected a numpy dtype such as {DTYPE_EXAMPLES}, found {value!r}")


def _leaves_checked(spec: Any, depth: int) -> Any:
    """A structured/sub-array specification with every field's format put through :func:`to_dtype`."""
    if depth > 32:
        raise DtypeSyntaxError("structured dtype nested deeper than 32 levels")
    if isinstance(spec, tuple) and len(spec) == 2 and not isinstance(spec[0], (list, tuple)):
        return (_field_format(spec[0], depth), spec[1])  # (base, shape): a sub-array
    if isinstance(spec, list):
        out = []
        for item in spec:
            if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
                raise DtypeSyntaxError(f"expected a structured field as (name, dtype[, shape]), found {item!r}")
            out.append((item[0], _field_format(item[1], depth), *item[2:]))
        return out
    if isinstance(spec, dict):
        spec = dict(spec)
        if "formats" in spec:
            spec["formats"] = [_field_format(f, depth) for f in spec["formats"]]
        return spec
    return spec


def _field_format(fmt: Any, depth: int) -> Any:
    if isinstance(fmt, (list, tuple, dict)):
        return _leaves_checked(fmt, depth + 1)
    return to_dtype(fmt)


def dtype_to_json(dtype: np.dtype[Any]) -> Any:
    """Serialise a dtype with numpy's ``dtype_to_descr``, byte order explicit.

    Simple dtypes become strings such as ``"<f4"`` or ``"|b1"``; structured dtypes
    become lists of ``[name, descr]`` or ``[name, descr, shape]`` (numpy's descr
    with tuples written as JSON lists). A sub-array dtype at the top level is
    refused: numpy folds it into the shape (``np.zeros(3, "(2,)i4")`` has shape
    ``(3, 2)``), so the caller must do the same.
    """
    dtype = np.dtype(dtype)
    check_dtype(dtype)
    descr = dtype_to_descr(dtype)
    if isinstance(descr, tuple):
        raise UnsupportedDtypeError(
            f"expected a dtype without a top-level sub-array, found {dtype}; "
            f"fold its shape {dtype.shape} into the array's shape with base dtype {dtype.base}"
        )
    return _lists(descr)


def _lists(obj: Any) -> Any:
    if isinstance(obj, (list, tuple)):
        return [_lists(x) for x in obj]
    return obj


def _tuples(obj: Any, depth: int = 0) -> Any:
    """JSON lists back into numpy's descr: a list of fields, each field a tuple."""
    if depth > 32:
        raise MetadataError("dtype description nested deeper than 32 levels")
    if isinstance(obj, str):
        try:
            parse_dtype_text(obj)  # the one dtype grammar, also inside a structured descr
        except DtypeSyntaxError as exc:
            raise MetadataError(str(exc)) from None
        return obj.strip()
    if isinstance(obj, list):
        fields: list[tuple[Any, ...]] = []
        for f in obj:
            if not isinstance(f, list) or len(f) not in (2, 3) or not _is_field_name(f[0]):
                raise MetadataError(
                    f"expected a structured dtype field as [name, descr] or [name, descr, shape], found {f!r}"
                )
            name = f[0] if isinstance(f[0], str) else tuple(f[0])  # [title, name] for titled fields
            sub = _tuples(f[1], depth + 1)
            if len(f) == 3:
                shape = f[2]
                if not isinstance(shape, list) or not all(
                    isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**31 for n in shape
                ):
                    raise MetadataError(f"invalid sub-array shape {shape!r} in field {name!r}")
                fields.append((name, sub, tuple(shape)))
            else:
                fields.append((name, sub))
        return fields
    raise MetadataError(f"expected a dtype description (string or list), found {obj!r}")


def _is_field_name(obj: Any) -> bool:
    return isinstance(obj, str) or (isinstance(obj, list) and len(obj) == 2 and all(isinstance(x, str) for x in obj))


def dtype_from_json(obj: Any) -> np.dtype[Any]:
    """Inverse of :func:`dtype_to_json`, through numpy's ``descr_to_dtype``.

    Raises
    ------
    MetadataError
        If ``obj`` is not a valid description.
    UnsupportedDtypeError
        If it describes an object dtype or one with zero-sized items.
    """
    descr = _tuples(obj)
    try:
        dtype = descr_to_dtype(descr)
    except (TypeError, ValueError, KeyError, IndexError, RecursionError) as exc:
        raise MetadataError(f"invalid dtype description {obj!r}: {exc}") from None
    check_dtype(dtype)
    return dtype


def check_dtype(dtype: np.dtype[Any]) -> None:
    """Refuse dtypes no arraystore backend can hold: objects and empty items."""
    if dtype.hasobject:
        raise UnsupportedDtypeError(
            f"expected a dtype of fixed-size values, found {dtype} which holds Python "
            "objects; store fixed-width strings ('S'/'U') or numbers instead"
        )
    if dtype.itemsize == 0:
        raise UnsupportedDtypeError(
            f"expected a dtype with a non-zero item size, found {dtype!r}; give strings a length, e.g. 'S8' or 'U8'"
        )
