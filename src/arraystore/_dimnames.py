"""Dimension names: checking the names given to ``create`` and finding a source's names.

A store records a name per axis where its format can (HDF5 dimension scales, Zarr v3
``dimension_names``): :attr:`~arraystore.store.ArrayStore.dimension_names`. Arrays from
xarray's world carry them as attributes instead (``"dims"``, ``"_ARRAY_DIMENSIONS"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import BackendError, DimensionError, MetadataError

if TYPE_CHECKING:
    from .store import ArrayStore

__all__ = ["DIMS_KEYS", "DimensionNames", "check_dimension_names", "dialect_dimension_names", "named_axes",
           "names_to_record", "source_dimension_names", "xarray_names"]

#: One name (or None) per axis.
DimensionNames = tuple[str | None, ...]

#: Attribute keys that name the dimensions, in the order they are looked up.
DIMS_KEYS: tuple[str, ...] = ("dims", "_ARRAY_DIMENSIONS")


def named_axes(names: Any) -> DimensionNames | None:
    """``names`` as a tuple, or None when no axis is named (how two creations' names compare)."""
    return None if names is None or all(n is None for n in names) else tuple(names)


def names_to_record(cls: type[ArrayStore], where: object, names: Any, ndim: int, writers: str) -> DimensionNames | None:
    """:func:`check_dimension_names` of the names given to create an array of backend ``cls`` at ``where``.

    Raises
    ------
    BackendError
        Names given to a backend with nowhere to record them (``writers``: the backends that have a place).
    """
    checked = check_dimension_names(names, ndim)
    if checked is not None and not cls.supports_dimension_names:
        raise BackendError(
            f"{where}: the {cls.backend} backend has nowhere to record dimension_names {checked!r}; "
            f"use {writers}, or keep the names in attrs (e.g. attrs={{'dims': [...]}})"
        )
    return checked


def check_dimension_names(names: Any, ndim: int) -> DimensionNames | None:
    """``names`` as a tuple of one ``str`` or ``None`` per axis (``None`` stays ``None``).

    Raises
    ------
    DimensionError
        A count other than ``ndim``.
    MetadataError
        A single string, or an entry that is neither a non-empty string nor None.
    """
    if names is None:
        return None
    if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
        raise MetadataError(
            f"expected dimension_names as a sequence of one name (str or None) per axis, found {names!r}; "
            "e.g. dimension_names=('time', 'y', 'x')"
        )
    out = tuple(names)
    if len(out) != ndim:
        raise DimensionError(
            f"expected dimension_names with one name per axis of the {ndim}-d array, found {len(out)}: {out!r}"
        )
    for n in out:
        if n is not None and (not isinstance(n, str) or not n or "/" in n or "\x00" in n):
            raise MetadataError(
                f"expected each dimension name to be a non-empty string without '/' or NUL, or None; found {n!r} "
                f"in {out!r}"
            )
    return out


def source_dimension_names(store: ArrayStore, *, dialect_axes: bool = True) -> DimensionNames | None:
    """The names a conversion carries from ``store``: its recorded names, else a ``dims`` attribute,
    else (``dialect_axes``) the axis names a header dialect gives (ENVI ``band, line, sample``, ...).

    Attributes that do not name every axis with a string are ignored (they stay
    attributes, copied like any other).
    """
    names = store.dimension_names
    if names is not None:
        return tuple(names)
    found = _from_attrs(store.meta.attrs, store.ndim)
    if found is None and dialect_axes:
        found = dialect_dimension_names(store.meta.attrs, store.ndim)
    return found


def dialect_dimension_names(attrs: Mapping[str, Any], ndim: int) -> DimensionNames | None:
    """The ``axes`` a header dialect recorded (with its ``dialect`` attribute), when they name every axis."""
    if not attrs.get("dialect"):
        return None
    return _from_attrs({"axes": attrs.get("axes")}, ndim, keys=("axes",))


def _from_attrs(attrs: Mapping[str, Any], ndim: int, keys: tuple[str, ...] = DIMS_KEYS) -> DimensionNames | None:
    for key in keys:
        value = attrs.get(key)
        if isinstance(value, (list, tuple)) and len(value) == ndim and all(isinstance(n, str) and n for n in value):
            try:
                return check_dimension_names(value, ndim)
            except MetadataError:
                return None
    return None


def xarray_names(names: DimensionNames | None, ndim: int) -> tuple[str, ...]:
    """Every axis named: the given names, ``dim_<i>`` (xarray's default) where missing."""
    given = names or (None,) * ndim
    return tuple(n if n is not None else f"dim_{i}" for i, n in enumerate(given))
