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

import re
from typing import Any, Literal

import numpy as np

__all__ = ["DTYPE_EXAMPLES", "parse_dtype_text", "to_dtype"]

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
    (native for multi-byte numbers).

    Raises
    ------
    DtypeSyntaxError
        Not a string of the grammar, or not a dtype numpy knows.
    """
    text = value.strip()
    sub = _SUBARRAY.match(text)
    if sub and sub.end() < len(text):  # numpy's sub-array prefix, e.g. "(2,3)<i2"
        base, stated = parse_dtype_text(text[sub.end() :])
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
