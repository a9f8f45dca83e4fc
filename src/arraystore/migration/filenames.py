"""Layout facts written into file names: ``frames_uint16_be_512x512.raw`` and the like.

The name's stem (the name without its last suffix) is split into tokens at ``_``,
``-`` and ``.``; each token is matched whole, case-insensitively, against:

================  ===========================================  ======================
kind              tokens                                       fact
================  ===========================================  ======================
dtype (name)      ``bool int8 ... int64 uint8 ... uint64``     dtype
                  ``float16 float32 float64``
                  ``complex64 complex128``
dtype (code)      ``i1 i2 i4 u1 u2 u4 f4 f8 c8 c16``           dtype
dtype (typestr)   ``<f4 >u2 |u1 <i8 >c16`` ... (any size)      dtype and byte order
byte order        ``le little littleendian``                   little-endian
                  ``be big bigendian`` (also ``little-endian``)  big-endian
order             ``fortran forder colmajor`` / ``corder       ``F`` / ``C``
                  rowmajor``
shape             ``1000x64``, ``512x512x3`` (2 or more         shape, rows first
                  dimensions, each > 0, no leading zero)
================  ===========================================  ======================

Bare ``i8``, ``u8``, ``f2`` and ``b1`` are *not* dtype tokens: they are read as 8-bit
types (or as "frame 2", "band 1") as often as numpy's int64/uint64/float16/bool;
write ``int64``, ``<u8`` or ``uint8`` instead. A single number (``run_2024``) is never
a shape. A name that states two different values of one fact
(``a_int16_to_float32.dat``) is refused with ``MetadataError`` rather than guessed.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal

import numpy as np

from ..errors import MetadataError
from .evidence import ByteOrder, dtype_label

__all__ = ["FilenameFacts", "parse_filename"]

_NAMES = (
    ["bool"]
    + [f"{s}int{b}" for s in ("", "u") for b in (8, 16, 32, 64)]
    + [f"float{b}" for b in (16, 32, 64)]
    + ["complex64", "complex128"]
)
_DTYPE_TOKENS: dict[str, str] = {n: n for n in _NAMES}
_DTYPE_TOKENS.update({c: c for c in ("i1", "i2", "i4", "u1", "u2", "u4", "f4", "f8", "c8", "c16")})
_TYPESTR = re.compile(r"([<>|])(b1|i1|i2|i4|i8|u1|u2|u4|u8|f2|f4|f8|c8|c16)")
_BYTEORDER_TOKENS: dict[str, ByteOrder] = {
    "le": "<", "little": "<", "littleendian": "<", "be": ">", "big": ">", "bigendian": ">",
}
_ORDER_TOKENS: dict[str, Literal["C", "F"]] = {
    "fortran": "F", "forder": "F", "colmajor": "F", "corder": "C", "rowmajor": "C",
}
_SHAPE = re.compile(r"[1-9]\d{0,11}(?:x[1-9]\d{0,11})+")
_ENDIAN_WORDS = re.compile(r"(little|big)[-_.]endian", re.IGNORECASE)
_SPLIT = re.compile(r"[-_.\s]+")


@dataclass(frozen=True)
class FilenameFacts:
    """What a file name states about its data.

    Attributes
    ----------
    dtype
        The dtype named, little-endian unless ``byteorder`` is ``">"``; ``None`` if none.
    byteorder
        ``"<"`` / ``">"`` when the name states one (``be``, ``>u2``), else ``None``.
    shape
        The shape named (``512x512`` -> ``(512, 512)``), else ``None``.
    order
        ``"C"`` / ``"F"`` when the name states one, else ``None``.
    tokens
        The tokens that were recognised, in the order they appear.
    """

    dtype: np.dtype[Any] | None
    byteorder: ByteOrder | None
    shape: tuple[int, ...] | None
    order: Literal["C", "F"] | None
    tokens: tuple[str, ...]

    def describe(self) -> str:
        """A short sentence of the facts, e.g. ``"dtype >u2, shape 512x512"``."""
        parts = []
        if self.dtype is not None:
            parts.append(f"dtype {dtype_label(self.dtype)}")
        if self.byteorder is not None and self.dtype is None:
            parts.append("big-endian" if self.byteorder == ">" else "little-endian")
        if self.shape is not None:
            parts.append("shape " + "x".join(map(str, self.shape)))
        if self.order is not None:
            parts.append(f"order {self.order}")
        return ", ".join(parts)


def _set(found: dict[str, tuple[Any, str]], fact: str, value: Any, token: str, name: str) -> None:
    if fact in found and found[fact][0] != value:
        raise MetadataError(
            f"file name {name!r} states two different {fact}s ({found[fact][1]!r} and {token!r}); "
            "it is not used as evidence: state the layout in a rules file"
        )
    found[fact] = (value, token)


def _stem(name: str) -> str:
    """``PurePath(name).stem``; a bare file name (the usual case) without pathlib."""
    if "/" in name or "\\" in name or name in ("", "."):
        return PurePath(name).stem
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


@functools.lru_cache(maxsize=256)
def _little(spec: str) -> np.dtype[Any]:
    """``np.dtype(spec).newbyteorder("<")``, made once per spelling (names repeat their dtype)."""
    little: np.dtype[Any] = np.dtype(spec).newbyteorder("<")
    return little


def parse_filename(name: str) -> FilenameFacts | None:
    """The layout facts in a file name, or ``None`` when it states none.

    Parameters
    ----------
    name
        A file name or path; only its last component's stem is read.

    Returns
    -------
    FilenameFacts or None

    Raises
    ------
    MetadataError
        When the name states two different values of one fact.

    Examples
    --------
    >>> parse_filename("frames_uint16_be_512x512.raw").describe()
    'dtype >u2, shape 512x512'
    >>> parse_filename("frames_v2.dat") is None
    True
    """
    stem = _stem(name)
    text = _ENDIAN_WORDS.sub(lambda m: m.group(1).lower() + "endian", stem)
    found: dict[str, tuple[Any, str]] = {}
    tokens: list[str] = []
    for token in _SPLIT.split(text):
        low = token.lower()
        if low in _DTYPE_TOKENS:
            _set(found, "dtype", _little(_DTYPE_TOKENS[low]), token, name)
        elif (m := _TYPESTR.fullmatch(low)) is not None:
            _set(found, "dtype", _little(m.group(2)), token, name)
            if m.group(1) in "<>":
                _set(found, "byte order", m.group(1), token, name)
        elif low in _BYTEORDER_TOKENS:
            _set(found, "byte order", _BYTEORDER_TOKENS[low], token, name)
        elif low in _ORDER_TOKENS:
            _set(found, "order", _ORDER_TOKENS[low], token, name)
        elif _SHAPE.fullmatch(low):
            _set(found, "shape", tuple(int(n) for n in low.split("x")), token, name)
        else:
            continue
        tokens.append(token)
    if not found:
        return None
    dtype = found["dtype"][0] if "dtype" in found else None
    byteorder: ByteOrder | None = found["byte order"][0] if "byte order" in found else None
    if dtype is not None and byteorder is not None:
        dtype = dtype.newbyteorder(byteorder)
    return FilenameFacts(
        dtype=dtype,
        byteorder=byteorder,
        shape=found["shape"][0] if "shape" in found else None,
        order=found["order"][0] if "order" in found else None,
        tokens=tuple(tokens),
    )
