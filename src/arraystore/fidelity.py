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

from ._dtypes import dtype_from_json, dtype_to_json
from .errors import UnsupportedDtypeError

if TYPE_CHECKING:
    from .store import ArrayStore

__all__ = [
    "FAMILIES",
    "Fidelity",
    "StructuredLimits",
    "Support",
    "byte_order",
    "check_fidelity",
    "check_structured",
    "dtype_family",
]

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
class StructuredLimits:
    """What a backend's structured (compound) type can hold beyond the shared rules.

    The shared rules (every backend) are in :func:`check_structured`: fields in offset
    order without overlap, at most 32 levels of nesting, names that are non-empty
    strings. A backend declares here what else it refuses.
    """

    #: Fields of zero bytes (``"V0"``, sub-arrays with a 0 in their shape).
    zero_size_fields: bool = True
    #: Field names containing NUL (C-string names truncate them).
    nul_in_names: bool = True
    #: Field titles (numpy's ``(title, name)`` pairs).
    titles: bool = True


@dataclass(frozen=True)
class Fidelity:
    """A backend's declaration: ``(family, byte order or "*") -> (Support, note)``.

    Unlisted cells are :attr:`Support.NO`. For structured dtypes the answer is the
    worst of the ``structured`` cell and the cells of every leaf field, and the dtype
    must pass :func:`check_structured` with the backend's :class:`StructuredLimits`.
    """

    table: Mapping[tuple[str, str], tuple[Support, str]]
    structured: StructuredLimits = StructuredLimits()

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


#: What :func:`check_fidelity` accepted, by (backend class, dtype without fields): a migration writes thousands of
#: arrays of a few dtypes. A structured dtype is checked in full every time.
_ACCEPTED: dict[tuple[type[ArrayStore], np.dtype[Any]], Support] = {}


def check_fidelity(cls: type[ArrayStore], dtype: np.dtype[Any]) -> Support:
    """Refuse a dtype the backend cannot store exactly or losslessly.

    Raises
    ------
    UnsupportedDtypeError
        Naming the built-in backends that can store the dtype.
    """
    if dtype.names is None and (known := _ACCEPTED.get((cls, dtype))) is not None:
        return known
    support, note = cls.fidelity.support(dtype)
    if support is not Support.NO and dtype.names is not None:
        check_structured(dtype, cls.fidelity.structured, cls.backend)
    if support is Support.NO:
        raise UnsupportedDtypeError(
            f"the {cls.backend} backend cannot store {dtype} ({dtype_family(dtype)}, {byte_order(dtype)} byte order)"
            f"{': ' + note if note else ''}; backends that can: {', '.join(backends_supporting(dtype)) or 'none'}"
        )
    if dtype.names is None and len(_ACCEPTED) < 1024:
        _ACCEPTED[(cls, dtype)] = support
    return support


#: Deepest nesting of structured fields that sidecars and attributes read back.
MAX_NESTING = 32


def check_structured(dtype: np.dtype[Any], limits: StructuredLimits = StructuredLimits(), backend: str = "") -> None:
    """Refuse a structured dtype that would not come back exactly (values, offsets, itemsize, names).

    Raises
    ------
    UnsupportedDtypeError
        Saying which field breaks which rule, and what to do.
    """
    where = f"the {backend} backend" if backend else "arraystore"
    _check_fields(dtype, limits, where, (), 0)

    if dtype_from_json(dtype_to_json(dtype)) != dtype:  # the descr is what every backend records
        raise UnsupportedDtypeError(
            f"{where} cannot store {dtype}: numpy's description of it does not read back as the same dtype"
        )


def _check_fields(
    dtype: np.dtype[Any], limits: StructuredLimits, where: str, path: tuple[str, ...], depth: int
) -> None:
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        if 0 in shape and not limits.zero_size_fields:
            raise UnsupportedDtypeError(
                f"{where} cannot store field {'.'.join(path)!r} of {dtype}: a sub-array with a zero in its shape "
                f"{shape} holds no bytes; drop the field, or use the raw, npy or zarr backend"
            )
        _check_fields(base, limits, where, path, depth)
        return
    if dtype.names is None:
        if dtype.itemsize == 0 and path and not limits.zero_size_fields:
            raise UnsupportedDtypeError(
                f"{where} cannot store field {'.'.join(path)!r}: its dtype {dtype} has zero bytes; drop the "
                "field, or use the raw, npy or zarr backend"
            )
        return
    if depth >= MAX_NESTING:
        raise UnsupportedDtypeError(
            f"{where} cannot store {dtype}: structured fields nested deeper than {MAX_NESTING} levels"
        )
    fields = [(name, *dtype.fields[name][:2]) for name in dtype.names]  # type: ignore[index]
    end = 0
    for name, sub, offset in sorted(fields, key=lambda f: f[2]):
        label = ".".join((*path, name))
        if offset < end:
            order = [f[0] for f in sorted(fields, key=lambda f: f[2])]
            raise UnsupportedDtypeError(
                f"{where} cannot store {dtype}: field {label!r} at byte {offset} overlaps the field before it "
                f"(which ends at byte {end}); overlapping fields have no portable description. Give every field "
                f"its own bytes (offsets in field order: {order})"
            )
        end = offset + sub.itemsize
    if list(dtype.names) != [f[0] for f in sorted(fields, key=lambda f: f[2])]:
        raise UnsupportedDtypeError(
            f"{where} cannot store {dtype}: its fields are not in offset order (names {list(dtype.names)}, "
            f"offsets {[f[2] for f in fields]}); numpy cannot describe such a dtype portably. List the fields "
            "in the order of their offsets, e.g. np.dtype({'names': ..., 'formats': ..., 'offsets': sorted(...)})"
        )
    for name, sub, _offset in fields:
        label = ".".join((*path, name))
        if not name:
            raise UnsupportedDtypeError(f"{where} cannot store {dtype}: a field has an empty name; name it")
        if "\x00" in name and not limits.nul_in_names:
            raise UnsupportedDtypeError(
                f"{where} cannot store field {label!r}: its name contains a NUL character, which the format's "
                "C-string names would cut short; rename the field, or use the raw, npy or zarr backend"
            )
        entry: tuple[Any, ...] = dtype.fields[name]  # type: ignore[index]
        if len(entry) > 2 and not limits.titles:
            raise UnsupportedDtypeError(
                f"{where} cannot store field {label!r} with title {entry[2]!r}: the format keeps no field "
                "titles; drop the titles, or use the raw, npy or zarr backend"
            )
        _check_fields(sub, limits, where, (*path, name), depth + 1)


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
        if cls.fidelity.support(dtype)[0] is Support.NO:
            continue
        if dtype.names is not None:
            try:
                check_structured(dtype, cls.fidelity.structured)
            except UnsupportedDtypeError:
                continue
        out.append(name)
    return out
