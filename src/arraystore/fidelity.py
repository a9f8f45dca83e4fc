"""The dtype-fidelity contract: what each backend stores exactly, through an encoding, or not at all.

Each backend declares a :class:`Fidelity` as data in its module. ``create`` (and
``convert``) consult it before a byte is written; ``docs/fidelity.md`` is generated
from it by ``tools/make_fidelity_table.py``; property tests check every cell.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UnsupportedDtypeError

if TYPE_CHECKING:
    from .store import ArrayStore

__all__ = ["FAMILIES", "Fidelity", "Support", "byte_order", "check_fidelity", "dtype_family"]

#: Dtype families, in the order the published matrix lists them.
FAMILIES: tuple[str, ...] = (
    "bool",
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "longdouble",
    "complex64", "complex128", "clongdouble",
    "datetime64", "timedelta64",
    "bytes", "unicode", "void", "structured",
)  # fmt: skip


class Support(enum.Enum):
    """How a backend holds a dtype family."""

    EXACT = "exact"
    ENCODED = "encoded"  # through a documented lossless encoding
    NO = "no"

    def __lt__(self, other: Support) -> bool:  # worse is smaller
        order = [Support.NO, Support.ENCODED, Support.EXACT]
        return order.index(self) < order.index(other)


def dtype_family(dtype: np.dtype[Any]) -> str:
    """The family of a dtype, e.g. ``"float32"``, ``"datetime64"``, ``"structured"``."""
    if dtype.names is not None:
        return "structured"
    kind = dtype.kind
    if kind == "b":
        return "bool"
    if kind in "iu":
        return f"{'u' if kind == 'u' else ''}int{dtype.itemsize * 8}"
    if kind == "f":
        return f"float{dtype.itemsize * 8}" if dtype.itemsize <= 8 else "longdouble"
    if kind == "c":
        return f"complex{dtype.itemsize * 8}" if dtype.itemsize <= 16 else "clongdouble"
    return {"M": "datetime64", "m": "timedelta64", "S": "bytes", "U": "unicode", "V": "void"}.get(kind, kind)


def _leaves(dtype: np.dtype[Any]) -> Iterator[np.dtype[Any]]:
    if dtype.subdtype is not None:
        yield from _leaves(dtype.subdtype[0])
    elif dtype.names is not None:
        for name in dtype.names:
            yield from _leaves(dtype.fields[name][0])  # type: ignore[index]
    else:
        yield dtype


def byte_order(dtype: np.dtype[Any]) -> str:
    """``"little"``, ``"big"``, ``"n/a"`` (one-byte items, bytes, void) or ``"mixed"`` (structured)."""
    orders = {
        {"<": "little", ">": "big", "=": "little" if np.little_endian else "big"}.get(d.byteorder, "n/a")
        for d in _leaves(dtype)
    }
    orders.discard("n/a")
    if not orders:
        return "n/a"
    return orders.pop() if len(orders) == 1 else "mixed"


@dataclass(frozen=True)
class Fidelity:
    """A backend's declaration: ``(family, byte order or "*") -> (Support, note)``.

    Unlisted cells are :attr:`Support.NO`. For structured dtypes the answer is the
    worst of the ``structured`` cell and the cells of every leaf field.
    """

    table: Mapping[tuple[str, str], tuple[Support, str]]

    def cell(self, family: str, order: str) -> tuple[Support, str]:
        """The declared support for one family and byte order."""
        for key in ((family, order), (family, "*")):
            if key in self.table:
                return self.table[key]
        return (Support.NO, "")

    def support(self, dtype: np.dtype[Any]) -> tuple[Support, str]:
        """How this backend holds ``dtype``, with the note for the limiting cell."""
        dtype = np.dtype(dtype)
        worst = self.cell(dtype_family(dtype), byte_order(dtype))
        if dtype.names is not None:
            for leaf in _leaves(dtype):
                cell = self.cell(dtype_family(leaf), byte_order(leaf))
                if cell[0] < worst[0]:
                    worst = cell
        return worst

    @classmethod
    def everything_exact(cls, note: str = "") -> Fidelity:
        """All families, both byte orders, stored byte for byte."""
        return cls({(f, "*"): (Support.EXACT, note) for f in FAMILIES})


def check_fidelity(cls: type[ArrayStore], dtype: np.dtype[Any]) -> Support:
    """Refuse a dtype the backend cannot store exactly or losslessly.

    Raises
    ------
    UnsupportedDtypeError
        Naming the built-in backends that can store the dtype.
    """
    support, note = cls.fidelity.support(dtype)
    if support is Support.NO:
        raise UnsupportedDtypeError(
            f"the {cls.backend} backend cannot store {dtype} ({dtype_family(dtype)}, {byte_order(dtype)} byte order)"
            f"{': ' + note if note else ''}; backends that can: {', '.join(backends_supporting(dtype)) or 'none'}"
        )
    return support


def backends_supporting(dtype: np.dtype[Any]) -> list[str]:
    """Names of the installed built-in backends that store ``dtype`` exactly or losslessly."""
    from .errors import MissingDependencyError
    from .registry import BACKENDS, backend_class

    out = []
    for name in BACKENDS:
        try:
            cls = backend_class(name)
        except MissingDependencyError:
            continue
        if cls.fidelity.support(dtype)[0] is not Support.NO:
            out.append(name)
    return out
