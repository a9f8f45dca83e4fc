"""Migrating into one group (``into="archive.zarr"``): every array at its relative path, for xarray.

A migration to Zarr writes one bare array per file (``run1/temperature.zarr``), which
``xr.open_zarr`` cannot open (a bare array is not a Dataset). With ``into``, every file
becomes an array of one Zarr group instead, at its relative path without the suffix
(``run1/temperature.dat`` -> ``DST/archive.zarr::run1/temperature``); each array carries
dimension names that cannot clash inside its group (the source's, else
``temperature_dim_0``, ...), and the group's consolidated metadata is rewritten once all
files are done, so ``xr.open_zarr("DST/archive.zarr", group="run1")`` lists every array.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .._dimnames import DimensionNames, source_dimension_names
from ..errors import BackendError
from ..registry import parse_location
from ..store import ArrayStore
from ._discover import destination_names, overlapping_outputs

__all__ = ["check_into", "consolidate_group", "group_destinations", "group_dimension_names"]


def check_into(into: str, cls: type[ArrayStore]) -> None:
    """Refuse a group the target format cannot build from several worker processes at once.

    Raises
    ------
    BackendError
        A backend without dimension names or whose arrays of a hierarchy are not staged apart
        (a file format such as HDF5, one file per writer), a name with a folder or ``::``,
        or a name without the format's suffix.
    """
    if not (cls.supports_dimension_names and cls._staging_is_dir):
        raise BackendError(
            f"into={into!r} puts every array in one group; the {cls.backend} format cannot take arrays from several "
            "writers into one file: migrate to zarr for a group, or drop into (--into)"
        )
    suffix = cls.suffixes[0]
    if "/" in into or "::" in into or into in ("", ".", "..") or not into.endswith(suffix) or into == suffix:
        raise BackendError(
            f"expected into= a group name ending in {suffix!r} inside the destination folder (e.g. 'archive{suffix}'), "
            f"found {into!r}"
        )


def group_destinations(
    names: Sequence[str], into: str, suffix: str, previous: dict[str, str], src: Path, dst: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """Each source's destination ``"<into>::<key>"``, and the sources refused (name -> why).

    Keys are :func:`destination_names` without the suffix (``run1/temperature``); an array
    that would contain another one (``a`` and ``a/b``) is refused like nested outputs.
    """
    prefix = f"{into}::"
    plain_previous = {n: d[len(prefix):] + suffix for n, d in previous.items() if d.startswith(prefix)}
    plain = destination_names(names, suffix, plain_previous)
    keys = {n: d[: -len(suffix)] for n, d in plain.items()}
    refused = overlapping_outputs({n: f"{into}/{k}" for n, k in keys.items()}, src, dst)
    return {n: prefix + k for n, k in keys.items()}, refused


def group_dimension_names(src: ArrayStore, dst_path: str) -> DimensionNames:
    """The source's dimension names, else ``<array>_dim_<i>``: arrays of one group never clash in xarray.

    A header dialect's generic axis names (ENVI ``band, line, sample``) are not used: every
    ENVI file of a folder would share them, with other lengths.
    """
    names = source_dimension_names(src, dialect_axes=False)
    if names is not None and all(n is not None for n in names):
        return names
    leaf = (parse_location(dst_path).key or "data").rsplit("/", 1)[-1]
    given = names or (None,) * src.ndim
    return tuple(n if n is not None else f"{leaf}_dim_{i}" for i, n in enumerate(given))


def consolidate_group(group: Path) -> None:
    """Rewrite the consolidated metadata of ``group`` (and so of its subgroups) once every writer is done.

    Each array's publish consolidates the group too, but writers in several processes may
    each miss the others' arrays; this last pass sees them all.
    """
    from ..backends._zarr_names import consolidate_root

    consolidate_root(group)
