"""``ArrayMeta``: the one description of an array that every backend shares."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ._attrs import attrs_equal, check_attrs, decode_attrs, encode_attrs
from ._dtypes import DtypeSyntaxError, check_dtype, dtype_from_json, dtype_to_json, to_dtype
from .errors import MetadataError, UnsupportedDtypeError

__all__ = ["MAX_NBYTES", "MAX_NDIM", "ArrayMeta", "Order", "dtype_from_json", "dtype_to_json"]

Order = Literal["C", "F"]

#: numpy's own limit on the number of dimensions (NPY_MAXDIMS in numpy 2).
MAX_NDIM = 64
#: The largest array a 64-bit file offset (and numpy's intp) can address.
MAX_NBYTES = 2**63 - 1


def _check_shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, Sequence) or isinstance(shape, (str, bytes)):
        raise MetadataError(f"expected a shape as a sequence of integers, found {shape!r}")
    out = []
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise MetadataError(f"expected integer dimensions, found {n!r} in shape {shape!r}")
        if n < 0:
            raise MetadataError(f"expected non-negative dimensions, found {n} in shape {shape!r}")
        out.append(int(n))
    if len(out) > MAX_NDIM:
        raise MetadataError(f"expected at most {MAX_NDIM} dimensions, found {len(out)}")
    return tuple(out)


@dataclass(frozen=True)
class ArrayMeta:
    """Shape, dtype, memory order and attributes of a stored array.

    Parameters
    ----------
    shape
        Non-negative integer dimensions; ``()`` for a 0-d array.
    dtype
        A ``numpy.dtype``, a numpy scalar type, or a string stating its size
        (``"float32"``, ``"<f4"``, ``">u2"``, ``"S16"``, ``"datetime64[ns]"``):
        arraystore's one dtype grammar, shared by sidecars, rules files and the
        command line. Platform-dependent names (``"float"``, ``"int"``, ``"long"``),
        Python's ``int``/``float`` and object dtypes are refused.
    order
        ``"C"`` (row-major) or ``"F"`` (column-major) layout of the stored bytes.
    attrs
        User attributes: JSON types and numpy scalars/arrays, kept exactly (type
        and value) or refused with ``MetadataError``; see :mod:`arraystore._attrs`.

    Examples
    --------
    >>> m = ArrayMeta((1000, 64), "float32")
    >>> m.to_dict()["dtype"]
    '<f4'
    >>> ArrayMeta.from_dict(m.to_dict()) == m
    True
    """

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    order: Order = "C"
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _check_shape(self.shape))
        try:
            dtype = to_dtype(self.dtype)
        except DtypeSyntaxError as exc:
            raise UnsupportedDtypeError(str(exc)) from None
        check_dtype(dtype)
        if dtype.subdtype is not None:
            base, sub = dtype.subdtype
            dtype = base
            object.__setattr__(self, "shape", _check_shape(self.shape + sub))
        object.__setattr__(self, "dtype", dtype)
        if self.order not in ("C", "F"):
            raise MetadataError(f"expected order 'C' or 'F', found {self.order!r}")
        object.__setattr__(self, "attrs", check_attrs(self.attrs))
        if self.nbytes > MAX_NBYTES:
            raise MetadataError(
                f"expected an array of at most {MAX_NBYTES:,} bytes (what a 64-bit file offset can address), "
                f"found shape {list(self.shape)} of {dtype.itemsize}-byte items = {self.nbytes:,} bytes; "
                "the metadata is damaged or hostile"
            )

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements (a Python int: no overflow)."""
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes of data (a Python int: no overflow)."""
        return self.size * self.dtype.itemsize

    def replace(self, **changes: Any) -> ArrayMeta:
        """A copy with some fields changed."""
        fields: dict[str, Any] = {"shape": self.shape, "dtype": self.dtype, "order": self.order, "attrs": self.attrs}
        fields.update(changes)
        return ArrayMeta(**fields)

    def _with_attrs(self, attrs: Mapping[str, Any]) -> ArrayMeta:
        """``replace(attrs=attrs)``: only the attrs are checked (shape, dtype and order were when this was made)."""
        new = object.__new__(ArrayMeta)
        object.__setattr__(new, "shape", self.shape)
        object.__setattr__(new, "dtype", self.dtype)
        object.__setattr__(new, "order", self.order)
        object.__setattr__(new, "attrs", check_attrs(attrs))
        return new

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``shape``, ``dtype`` (numpy descr), ``order``, ``attrs`` (numpy values encoded)."""
        return {
            "shape": list(self.shape),
            "dtype": dtype_to_json(self.dtype),
            "order": self.order,
            "attrs": encode_attrs(self.attrs),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArrayMeta:
        """Inverse of :meth:`to_dict`; raises ``MetadataError`` on invalid input."""
        if not isinstance(d, Mapping):
            raise MetadataError(f"expected a JSON object of array metadata, found {type(d).__name__}")
        missing = [k for k in ("shape", "dtype") if k not in d]
        if missing:
            raise MetadataError(f"array metadata lacks the key(s) {', '.join(missing)}; found {sorted(d)}")
        shape = d["shape"]
        if not isinstance(shape, list):
            raise MetadataError(f"expected 'shape' as a list of integers, found {shape!r}")
        attrs = d.get("attrs", {})
        if not isinstance(attrs, dict):
            raise MetadataError(f"expected 'attrs' as a JSON object, found {type(attrs).__name__}")
        return cls(tuple(shape), dtype_from_json(d["dtype"]), d.get("order", "C"), decode_attrs(attrs))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArrayMeta):
            return NotImplemented
        return (self.shape, self.dtype, self.order) == (other.shape, other.dtype, other.order) and attrs_equal(
            self.attrs, other.attrs
        )

    __hash__ = None  # type: ignore[assignment]  # attrs are mutable values
