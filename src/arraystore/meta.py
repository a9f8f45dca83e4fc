"""``ArrayMeta``: the one description of an array that every backend shares."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.lib.format import descr_to_dtype, dtype_to_descr

from ._attrs import attrs_equal, check_attrs, decode_attrs, encode_attrs
from ._dtypes import DtypeSyntaxError, parse_dtype_text, to_dtype
from .errors import MetadataError, UnsupportedDtypeError

__all__ = ["MAX_NBYTES", "MAX_NDIM", "ArrayMeta", "Order", "dtype_from_json", "dtype_to_json"]

Order = Literal["C", "F"]

#: numpy's own limit on the number of dimensions (NPY_MAXDIMS in numpy 2).
MAX_NDIM = 64
#: The largest array a 64-bit file offset (and numpy's intp) can address.
MAX_NBYTES = 2**63 - 1


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
