"""What xarray needs of the Zarr arraystore writes: dimension names and consolidated group metadata.

xarray's Zarr engine names a v3 array's axes from its ``dimension_names`` metadata
(a v2 array's from the ``_ARRAY_DIMENSIONS`` attribute) and, with ``consolidated=None``,
reads a group's members from the ``consolidated_metadata`` of the root ``zarr.json``
when it is there. A group whose consolidated metadata misses an array hides that
array from xarray, so every change arraystore makes to a group re-consolidates it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import zarr

from .. import _fsutil
from .._dimnames import DimensionNames, check_dimension_names, xarray_names
from ..errors import MetadataError

__all__ = ["consolidate_root", "read_dimension_names"]

#: zarr-python's key for a v2 array's dimension names (xarray's convention).
V2_DIMS_ATTR = "_ARRAY_DIMENSIONS"


def read_dimension_names(arr: Any, reserved: dict[str, Any], where: str) -> DimensionNames | None:
    """The names an array records, as given at creation.

    ``reserved`` is arraystore's attribute: names defaulted for xarray (``dim_0``, ...)
    are not reported, and a partly named array keeps its ``None`` entries there, as long as
    the names written are still those (another tool, e.g. xarray renaming a dimension, may
    have rewritten them and kept the attribute: then the names written are the array's).
    """
    try:
        written = tuple(arr.metadata.dimension_names or ()) if arr.metadata.zarr_format == 3 else None
        if reserved.get("default_dimension_names") and written in (None, (), xarray_names(None, arr.ndim)):
            return None
        if "dimension_names" in reserved:
            recorded = check_dimension_names(reserved["dimension_names"], arr.ndim)
            if written in (None, xarray_names(recorded, arr.ndim)):
                return recorded
        if arr.metadata.zarr_format == 3:
            names = written
            if not names or all(n is None for n in names):
                return None
            return check_dimension_names(tuple(names), arr.ndim)
        value = arr.attrs.get(V2_DIMS_ATTR)
        if value is None:
            return None
        return check_dimension_names(value, arr.ndim)
    except MetadataError as exc:
        raise MetadataError(f"{where}: its recorded dimension names are not usable: {exc}") from None


def consolidate_root(root: Path) -> None:
    """Rewrite the consolidated metadata of the v3 group at ``root`` (a directory store).

    Does nothing when ``root`` is not a v3 group (a bare array, a v2 hierarchy).
    """
    meta = root / "zarr.json"
    try:
        doc = _fsutil.loads_json(meta.read_bytes(), str(meta), "Zarr metadata")
    except (OSError, ValueError):
        return
    if not isinstance(doc, dict) or doc.get("node_type") != "group" or doc.get("zarr_format") != 3:
        return
    with warnings.catch_warnings():
        # zarr-python warns that v3 consolidated metadata is not in the spec yet; xarray reads it all the same.
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(zarr.storage.LocalStore(root), zarr_format=3)

