"""What other HDF5 readers need to see an arraystore dataset as netCDF-4 / CF does.

Dimensions
    Every axis of a dataset arraystore creates gets a netCDF-4 dimension: an HDF5
    dimension scale named after the axis, in the dataset's group, attached with
    ``H5DSattach_scale``. A dimension that is not also a variable is a ``>f4`` dataset
    of the axis' length with no storage, whose ``NAME`` is netCDF-C's marker ("This is
    a netCDF dimension but not a netCDF variable." and the length), with an
    ``_Netcdf4Dimid`` unique in the file; a 1-d dataset named after its own axis is
    its own scale (a coordinate variable). Variables carry ``_Netcdf4Coordinates``
    (their dimension ids). So ``netCDF4.Dataset`` and
    ``xarray.open_dataset(engine="h5netcdf")`` list named dimensions without
    ``phony_dims``. Names are the array's ``dimension_names`` (recorded exactly in
    the reserved attribute ``_arraystore_dimension_names``), else ``dim_0``,
    ``dim_1``, ... (xarray's names). An existing scale of the same name and length is
    shared, as netCDF dimensions are; when a name is taken by something else (a
    dataset that is not a scale, a dimension of another length), an unnamed axis
    takes ``<dataset>_dim_<i>`` instead, and a named one leaves the dataset without
    scales (other readers then see phony dimensions; ``info`` says why).

Times
    ``datetime64`` / ``timedelta64`` of the units CF knows (ns, us, ms, s, m, h, D)
    are int64 with ``units`` (``"<unit>s since 1970-01-01T00:00:00"`` / ``"<unit>s"``),
    ``calendar = "proleptic_gregorian"`` (datetimes) and ``_FillValue`` = the int64
    minimum (NaT), as xarray writes them; timedeltas also carry xarray's
    ``dtype = "timedelta64[<unit>]"`` marker. A user's own ``units``, ``calendar`` or
    ``_FillValue`` attribute is never overwritten: the dataset then keeps bare int64
    and ``info`` says why. arraystore itself reads the dtype from
    ``_arraystore_dtype`` either way.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np

from .._dimnames import DimensionNames, check_dimension_names, xarray_names
from ..errors import MetadataError
from . import _hdf5_attrs as A
from ._cf import CF_UNITS

__all__ = [
    "DIMNAMES",
    "NOTES",
    "cf_time_attrs",
    "detach_scales",
    "read_dimension_names",
    "read_notes",
    "remove_unused_scales",
    "write_conventions",
]

DIMNAMES = A.PREFIX + "dimension_names"
#: Why the dataset is not what other readers expect (a JSON list of sentences).
NOTES = A.PREFIX + "notes"
NOT_A_VARIABLE = b"This is a netCDF dimension but not a netCDF variable."
_CF_KEYS = ("units", "calendar", "_FillValue")
_NAT = np.iinfo(np.int64).min


def cf_time_attrs(dtype: np.dtype[Any], attrs: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """(CF attributes for a time dtype, why none) — both empty/None for other dtypes."""
    if dtype.kind not in "Mm":
        return {}, None
    unit, count = np.datetime_data(dtype)
    if unit not in CF_UNITS or count != 1:
        return {}, (
            f"{dtype} is stored as bare int64: CF has no unit for '{count}{unit}' (xarray and netCDF tools "
            "see integers)"
        )
    taken = [k for k in (*_CF_KEYS, "dtype") if k in attrs]
    if taken:
        return {}, (
            f"{dtype} is stored as bare int64 without CF units: the array's own attribute(s) {taken} are kept "
            "as given, so xarray and netCDF tools do not decode times"
        )
    name = CF_UNITS[unit]
    out: dict[str, Any] = {"_FillValue": np.int64(_NAT)}
    if dtype.kind == "M":
        out["units"] = f"{name} since 1970-01-01T00:00:00"
        out["calendar"] = "proleptic_gregorian"
    else:
        out["units"] = name
        out["dtype"] = f"timedelta64[{unit}]"  # how xarray marks integers it should decode as timedeltas
    return out, None


def write_conventions(
    ds: h5py.Dataset,
    dtype: np.dtype[Any],
    attrs: Mapping[str, Any],
    names: DimensionNames | None,
    final_name: str,
    notes_before: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """Write the CF time attributes and dimension scales.

    Returns the notes recorded for ``info`` (``notes_before`` first) and the paths of the
    dimension datasets created (removed again by :func:`remove_unused_scales` when the
    dataset is discarded).
    """
    notes: list[str] = list(notes_before)
    created: list[str] = []
    cf, why = cf_time_attrs(dtype, attrs)
    for key, value in cf.items():
        ds.attrs[key] = value
    if why:
        notes.append(why)
    # null when none were given: the scales' default names (dim_0, ...) are not the array's names
    ds.attrs[DIMNAMES] = json.dumps(list(names) if names is not None else None)
    why = _attach_dimensions(ds, xarray_names(names, ds.ndim) if names is not None else None, final_name, created)
    if why:
        notes.append(why)
    if notes:
        ds.attrs[NOTES] = json.dumps(notes)
    return notes, created


def _next_dimid(f: h5py.File) -> int:
    ids = [-1]

    def visit(_: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and "_Netcdf4Dimid" in obj.attrs:
            ids.append(int(np.asarray(obj.attrs["_Netcdf4Dimid"]).reshape(-1)[0]))

    f.visititems(visit)
    return max(ids) + 1


def _usable(group: h5py.Group, name: str, length: int) -> bool:
    """True when ``name`` is free in ``group`` or an existing 1-d dimension scale of ``length``."""
    if name not in group:
        return True
    obj = group.get(name, getclass=True)
    if obj is not h5py.Dataset:
        return False
    ds = group[name]
    return bool(h5py.h5ds.is_scale(ds.id)) and ds.shape == (length,)


def _attach_dimensions(
    ds: h5py.Dataset, given: Sequence[str] | None, final_name: str, created: list[str]
) -> str | None:
    if ds.ndim == 0:
        return None
    group = ds.parent
    base = posixpath.basename(final_name)
    chosen: list[str] = []
    for i, n in enumerate(ds.shape):
        if given is not None:
            name = given[i]
            if name == base and ds.ndim == 1:
                chosen.append(name)
                continue
            if name == base or not _usable(group, name, n):
                return (
                    f"dimension {name!r} (axis {i}, length {n}) is already something else in {group.name} "
                    "(a dataset, or a dimension of another length): no dimension scales attached, other readers "
                    "see phony dimensions"
                )
            chosen.append(name)
            continue
        for name in (f"dim_{i}", f"{base}_dim_{i}"):
            if name != base and _usable(group, name, n):
                chosen.append(name)
                break
        else:
            return (
                f"no free name for dimension {i} (length {n}) in {group.name}: no dimension scales attached, "
                "other readers see phony dimensions"
            )
    if len(set(chosen)) != len(chosen) and any(ds.shape[chosen.index(c)] != ds.shape[j] for j, c in enumerate(chosen)):
        return f"dimension names {chosen} repeat with different lengths: no dimension scales attached"
    dimid = _next_dimid(ds.file)
    ids: list[int] = []
    for i, name in enumerate(chosen):
        if name == base and ds.ndim == 1:
            ds.make_scale(name)
            ds.attrs["_Netcdf4Dimid"] = np.int32(dimid)
            ids.append(dimid)
            dimid += 1
            continue
        if name not in group:
            scale = group.create_dataset(name, shape=(ds.shape[i],), dtype=">f4")
            scale.make_scale(NOT_A_VARIABLE + f"{ds.shape[i]:10}".encode())
            scale.attrs["_Netcdf4Dimid"] = np.int32(dimid)
            created.append(scale.name)
            dimid += 1
        scale = group[name]
        ids.append(int(np.asarray(scale.attrs.get("_Netcdf4Dimid", -1)).reshape(-1)[0]))
        ds.dims[i].attach_scale(scale)
    ds.attrs["_Netcdf4Coordinates"] = np.array(ids, dtype=np.int32)  # as netCDF-C and h5netcdf write it
    return None


def detach_scales(ds: h5py.Dataset) -> None:
    """Detach every scale from ``ds`` (before it is deleted: scales keep no reference to a dead dataset)."""
    if "DIMENSION_LIST" not in ds.attrs:
        return
    for i in range(ds.ndim):
        for scale in list(ds.dims[i].values()):
            if scale.id != ds.id:
                ds.dims[i].detach_scale(scale)


def remove_unused_scales(f: h5py.File, paths: Sequence[str]) -> None:
    """Delete the dimension datasets at ``paths`` that no dataset is attached to any more."""
    for path in paths:
        if path in f and "REFERENCE_LIST" not in f[path].attrs:
            del f[path]


def read_dimension_names(ds: h5py.Dataset, where: str, transposed: bool) -> DimensionNames | None:
    """The names arraystore recorded, else those of attached dimension scales (other tools' files).

    The record gives way to the scales when they no longer carry its names: another tool (xarray renaming a
    dimension) wrote the dataset again and kept the ``_arraystore_`` attributes.
    """
    recorded = A.read_json(ds, DIMNAMES, where)
    if recorded is not None:
        try:
            recorded = check_dimension_names(recorded, ds.ndim)
        except MetadataError as exc:
            raise MetadataError(f"{where}: the reserved attribute {DIMNAMES} is wrong: {exc}") from None
    scales = _scale_names(ds, transposed)
    if DIMNAMES not in ds.attrs:
        return scales
    if scales is None or _agrees(recorded, scales, posixpath.basename(ds.name or "")):
        return recorded  # type: ignore[no-any-return]
    return scales


def _agrees(recorded: DimensionNames | None, scales: DimensionNames, base: str) -> bool:
    """Whether the scales carry the recorded names (an unnamed axis: a default name, or none)."""
    given = recorded or (None,) * len(scales)
    return all(s is None or s == r or (r is None and s in (f"dim_{i}", f"{base}_dim_{i}"))
               for i, (r, s) in enumerate(zip(given, scales)))


def _scale_names(ds: h5py.Dataset, transposed: bool) -> DimensionNames | None:
    """The names of the dimension scales attached to each axis, or None without any."""
    if "DIMENSION_LIST" not in ds.attrs and not h5py.h5ds.is_scale(ds.id):
        return None
    names: list[str | None] = []
    try:
        for i in range(ds.ndim):
            scales = ds.dims[i].values()
            if scales:
                names.append(posixpath.basename(scales[-1].name))
            elif h5py.h5ds.is_scale(ds.id) and ds.ndim == 1:
                names.append(posixpath.basename(ds.name))
            else:
                names.append(None)
    except (OSError, RuntimeError, KeyError, ValueError):  # dangling references: no names
        return None
    if all(n is None for n in names):
        return None
    return tuple(names[::-1] if transposed else names)


def read_notes(ds: h5py.Dataset, where: str) -> tuple[str, ...]:
    """The sentences :func:`write_conventions` recorded."""
    notes = A.read_json(ds, NOTES, where)
    return tuple(str(n) for n in notes) if isinstance(notes, list) else ()
