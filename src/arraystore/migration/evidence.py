"""Evidence about a raw file's layout, and the parsing of the facts it states.

An :class:`Evidence` is one source's statement about a raw data file: its dtype,
shape, memory order, header offset and byte order, each of which may be missing.
The helpers ``parse_*`` turn the loosely typed values found in legacy JSON files,
folder manifests and rules files into those facts, raising ``MetadataError`` with
a message that says what was expected and what was found.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .._dtypes import DtypeSyntaxError, parse_dtype_text
from ..errors import MetadataConflictError, MetadataError, UnsupportedDtypeError
from ..meta import ArrayMeta, dtype_from_json, dtype_to_json

__all__ = [
    "ByteOrder",
    "Evidence",
    "MetadataConflictError",
    "dtype_label",
    "parse_byteorder",
    "parse_dtype",
    "parse_offset",
    "parse_order",
    "parse_shape",
]

ByteOrder = Literal["<", ">"]




def parse_dtype(value: Any) -> tuple[np.dtype[Any], ByteOrder | None]:
    """A dtype and the byte order it states explicitly (``None`` when it states none).

    Accepts numpy names with explicit sizes (``"float32"``, ``"uint16"``), typestrs
    (``"<f4"``, ``">u2"``, ``"f8"``, ``"S16"``), the C aliases with a fixed size
    (``"double"``, ``"short"``, ...) and numpy's structured descr as a JSON list.
    Platform-dependent names (``"int"``, ``"float"``, ``"long"``) are refused. A
    dtype without an explicit byte order is returned little-endian.

    Raises
    ------
    MetadataError
        If ``value`` is not such a description.
    """
    if isinstance(value, list):
        # numpy's structured descr: every field carries its own explicit byte order.
        return dtype_from_json(value), None
    if not isinstance(value, str):
        raise MetadataError(f"expected a dtype as a string such as 'float32' or '<f4', found {value!r}")
    try:
        dt, stated = parse_dtype_text(value)  # arraystore's one dtype grammar
    except DtypeSyntaxError as exc:
        raise MetadataError(str(exc)) from None
    try:
        dtype_to_json(dt)
    except UnsupportedDtypeError as exc:
        raise MetadataError(f"unusable dtype {value!r}: {exc}") from None
    if dt.kind in "fc" and dt.itemsize > (8 if dt.kind == "f" else 16):
        raise MetadataError(
            f"dtype {value!r} is numpy's extended precision, whose layout depends on the platform; "
            "convert such data with the tool that wrote it"
        )
    if stated is None:
        dt = dt.newbyteorder("<")
    return dt, stated


_BYTEORDERS: dict[str, ByteOrder] = {
    "<": "<", "little": "<", "le": "<", "l": "<", "little-endian": "<", "little_endian": "<",
    "littleendian": "<", "lsb": "<", "ieee-le": "<",
    ">": ">", "big": ">", "be": ">", "b": ">", "big-endian": ">", "big_endian": ">",
    "bigendian": ">", "msb": ">", "ieee-be": ">", "network": ">",
}


def parse_byteorder(value: Any) -> ByteOrder:
    """``"<"`` or ``">"`` from ``"little"``, ``"big"``, ``"le"``, ``"be"``, ``"<"``, ``">"`` and the like."""
    if isinstance(value, str) and value.strip().lower() in _BYTEORDERS:
        return _BYTEORDERS[value.strip().lower()]
    raise MetadataError(f"expected a byte order 'little' or 'big' ('<' or '>'), found {value!r}")


_ORDERS = {"c": "C", "f": "F", "row-major": "C", "row_major": "C", "column-major": "F", "column_major": "F",
           "fortran": "F"}


def parse_order(value: Any) -> Literal["C", "F"]:
    """``"C"`` or ``"F"`` from ``"C"``, ``"F"``, ``"row-major"``, ``"column-major"``, ``"fortran"``."""
    if isinstance(value, str) and value.strip().lower() in _ORDERS:
        return "C" if _ORDERS[value.strip().lower()] == "C" else "F"
    raise MetadataError(f"expected an order 'C' (row-major) or 'F' (column-major), found {value!r}")


def parse_offset(value: Any) -> int:
    """A non-negative integer byte offset."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MetadataError(f"expected a non-negative integer byte offset, found {value!r}")
    return value


def parse_shape(value: Any, *, allow_infer: bool = True) -> tuple[int, ...]:
    """A shape as a tuple of non-negative ints; one ``-1`` (inferred from the size) is allowed."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in value):
        raise MetadataError(f"expected a shape as a list of integers such as [1000, 64], found {value!r}")
    if len(value) > 64:
        raise MetadataError(f"expected at most 64 dimensions, found {len(value)}")
    unknown = sum(1 for n in value if n == -1)
    if any(n < -1 for n in value) or unknown > (1 if allow_infer else 0):
        allowed = "one -1 (inferred from the file size) and " if allow_infer else ""
        raise MetadataError(f"expected {allowed}non-negative dimensions in shape, found {value!r}")
    return tuple(value)


def dtype_label(dtype: np.dtype[Any]) -> str:
    """A short readable label: ``'<f4'`` for simple dtypes, the descr for structured ones."""
    d = dtype_to_json(dtype)
    return d if isinstance(d, str) else str(d)


def infer_shape(shape: tuple[int, ...], itemsize: int, data_bytes: int) -> tuple[int, ...] | None:
    """Replace a ``-1`` in ``shape`` so that it spans ``data_bytes``; ``None`` if it cannot."""
    if -1 not in shape:
        return shape
    known = math.prod(n for n in shape if n != -1) * itemsize
    if known == 0 or data_bytes < 0 or data_bytes % known:
        return None
    return tuple(data_bytes // known if n == -1 else n for n in shape)


@dataclass(frozen=True)
class Evidence:
    """One source's statement about a raw file's layout.

    Attributes
    ----------
    source
        ``"sidecar"``, ``"dialect:<name>"``, ``"legacy-json:<file>"``, ``"folder-json:<file>"``,
        ``"rules:<glob>"``, ``"filename"``, or ``"inference"`` / ``"default"`` for a fact
        derived by a documented rule rather than stated by a file.
    detail
        A sentence saying what was found where.
    meta
        The full metadata when this source alone determines dtype and shape (a ``-1`` in
        the stated shape inferred from the file size), else ``None``.
    dtype, shape, order, offset, byteorder
        The facts stated, each ``None`` when not stated. ``shape`` is as stated and may
        hold one ``-1``. ``dtype`` is little-endian unless ``byteorder`` says otherwise.
    extra
        Fields of the source that are not layout (kept in the destination's attrs).
    attrs
        User attributes the source carries (arraystore's own sidecar, a dialect's meta).
    """

    source: str
    detail: str
    meta: ArrayMeta | None = None
    dtype: np.dtype[Any] | None = None
    shape: tuple[int, ...] | None = None
    order: Literal["C", "F"] | None = None
    offset: int | None = None
    byteorder: ByteOrder | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        source: str,
        detail: str,
        *,
        data_bytes: int | None = None,
        dtype: np.dtype[Any] | None = None,
        shape: tuple[int, ...] | None = None,
        order: Literal["C", "F"] | None = None,
        offset: int | None = None,
        byteorder: ByteOrder | None = None,
        extra: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> Evidence:
        """Evidence with ``meta`` filled in when dtype and shape are determined.

        ``data_bytes`` is the file size minus this source's offset (or 0), used to
        infer a ``-1`` dimension; the result's ``meta`` is ``None`` when that fails.
        """
        if dtype is not None and byteorder is not None and dtype.fields is None:
            dtype = dtype.newbyteorder(byteorder)
        meta = None
        if dtype is not None and shape is not None and data_bytes is not None:
            full = infer_shape(shape, dtype.itemsize, data_bytes)
            if full is not None:
                meta = ArrayMeta(full, dtype, order or "C")
        elif dtype is not None and shape is not None and -1 not in shape:
            meta = ArrayMeta(shape, dtype, order or "C")
        return cls(source, detail, meta, dtype, shape, order, offset, byteorder,
                   dict(extra or {}), dict(attrs or {}))

    def stated(self) -> dict[str, Any]:
        """The facts this source states, by name (``dtype`` in its byte-order-free form)."""
        out: dict[str, Any] = {}
        for name in ("dtype", "shape", "order", "offset", "byteorder"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for manifests and attrs."""
        d: dict[str, Any] = {"source": self.source, "detail": self.detail}
        if self.dtype is not None:
            d["dtype"] = dtype_to_json(self.dtype)
        if self.shape is not None:
            d["shape"] = list(self.shape)
        for name in ("order", "offset", "byteorder"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        if self.extra:
            d["extra"] = dict(self.extra)
        return d
