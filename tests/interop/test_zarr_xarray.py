"""Zarr that xarray opens: dimension names recorded, kept through conversion, groups consolidated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.errors import MetadataError

from .readers import run_reader

OPEN_GROUP = """
import numpy as np, xarray as xr
ds = xr.open_zarr(path)
result = {name: {"dims": list(v.dims), "values": np.asarray(v.values).tolist(), "attrs": {k: a for k, a in v.attrs.items() if isinstance(a, (str, int, float))}}
          for name, v in ds.data_vars.items()}
"""

ZARR_NAMES = """
import zarr
a = zarr.open_array(path, mode="r")
result = list(a.metadata.dimension_names)
"""


def test_names_given_at_create_are_zarr_dimension_names(tmp_path: Path) -> None:
    p = str(tmp_path / "a.zarr")
    with arraystore.create(p, (2, 3), "f4", dimension_names=("y", "x")) as s:
        s[...] = 1
    assert arraystore.open(p).dimension_names == ("y", "x")
    assert run_reader(ZARR_NAMES, path=p) == ["y", "x"]


def test_unnamed_arrays_carry_xarray_default_names(tmp_path: Path) -> None:
    p = str(tmp_path / "a.zarr")
    with arraystore.create(p, (2, 3, 4), "i2") as s:
        s[...] = 1
    assert run_reader(ZARR_NAMES, path=p) == ["dim_0", "dim_1", "dim_2"]
    assert arraystore.open(p).dimension_names is None  # defaults are not names the user gave


def test_partly_named_arrays_keep_their_unnamed_axes(tmp_path: Path) -> None:
    p = str(tmp_path / "a.zarr")
    with arraystore.create(p, (2, 3), "u1", dimension_names=("time", None)) as s:
        s[...] = 1
    assert arraystore.open(p).dimension_names == ("time", None)
    assert run_reader(ZARR_NAMES, path=p) == ["time", "dim_1"]


def test_bad_names_are_refused_before_writing(tmp_path: Path) -> None:
    p = tmp_path / "a.zarr"
    with pytest.raises(MetadataError):
        arraystore.create(str(p), (2,), "u1", dimension_names="x")
    assert not p.exists()


def test_names_from_zarr_python_v3_and_v2(tmp_path: Path) -> None:
    v3 = tmp_path / "v3.zarr"
    zarr.create_array(str(v3), shape=(2, 3), dtype="f8", dimension_names=("lat", "lon"), zarr_format=3)
    v2 = tmp_path / "v2.zarr"
    a = zarr.create_array(str(v2), shape=(2, 3), dtype="f8", zarr_format=2)
    a.attrs["_ARRAY_DIMENSIONS"] = ["row", "col"]
    assert arraystore.open(str(v3)).dimension_names == ("lat", "lon")
    assert arraystore.open(str(v2)).dimension_names == ("row", "col")


@pytest.mark.parametrize("order", ["C", "F"])
def test_conversion_keeps_names_and_xarray_sees_them(tmp_path: Path, order: str) -> None:
    src = tmp_path / "src.zarr"
    data = np.arange(24, dtype="f8").reshape(2, 3, 4)
    zarr.create_array(str(src), shape=data.shape, dtype=data.dtype, dimension_names=("t", "y", "x"))[...] = data
    arraystore.convert(str(src), str(tmp_path / "g.zarr::temperature"), order=order)
    arraystore.convert(str(src), str(tmp_path / "copy.zarr"), order=order)
    assert arraystore.open(str(tmp_path / "copy.zarr")).dimension_names == ("t", "y", "x")
    got = run_reader(OPEN_GROUP, path=str(tmp_path / "g.zarr"))
    assert got["temperature"]["dims"] == ["t", "y", "x"]
    assert got["temperature"]["values"] == data.tolist()


def test_conversion_takes_names_from_dims_attributes(tmp_path: Path) -> None:
    src = str(tmp_path / "a.npy")
    np.save(src, np.zeros((2, 3)))
    raw = str(tmp_path / "a.dat")
    with arraystore.create(raw, (2, 3), "f8", attrs={"dims": ["y", "x"]}) as s:
        s[...] = 2
    arraystore.convert(raw, str(tmp_path / "b.zarr"))
    assert arraystore.open(str(tmp_path / "b.zarr")).dimension_names == ("y", "x")


DIALECT_FILES = ["scene.img", "dem.bil", "ct.raw"]  # ENVI, ESRI EHdr, MetaImage: each names its axes
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "legacy" / "dialects"


@pytest.mark.parametrize("name", DIALECT_FILES)
@pytest.mark.parametrize("dst", ["b.zarr", "b.h5"])
def test_a_header_dialects_axis_names_are_dimension_names(tmp_path: Path, name: str, dst: str) -> None:
    """The axes a header names (ENVI band, line, sample) are carried as dimension names and shown by xarray."""
    src = arraystore.open(str(EXAMPLES / name))
    axes = tuple(src.attrs["axes"])
    assert len(axes) == src.ndim
    with xr.open_dataarray(str(EXAMPLES / name), engine="arraystore") as da:
        assert da.dims == axes
    arraystore.convert(src, str(tmp_path / dst))
    assert arraystore.open(str(tmp_path / dst)).dimension_names == axes


def test_a_header_dialects_axis_names_are_not_group_names(tmp_path: Path) -> None:
    """Into one group, generic dialect axes (shared by every ENVI file, other lengths) give way to per-array names."""
    arraystore.migrate(str(EXAMPLES), str(tmp_path / "out"), into="archive.zarr", workers=1)
    names = arraystore.open(str(tmp_path / "out" / "archive.zarr") + "::scene").dimension_names
    assert names is not None and all(n.startswith("scene_dim_") for n in names if n is not None)


def test_xarray_opens_a_group_arraystore_converted_into(tmp_path: Path) -> None:
    temps = np.linspace(0, 1, 12, dtype="f4").reshape(3, 4)
    counts = np.arange(3, dtype="i8")  # unnamed axes are dim_0, ...: lengths must agree across the group
    np.save(tmp_path / "t.npy", temps)
    np.save(tmp_path / "c.npy", counts)
    arraystore.convert(str(tmp_path / "t.npy"), str(tmp_path / "g.zarr::temperature"))
    arraystore.convert(str(tmp_path / "c.npy"), str(tmp_path / "g.zarr::counts"))
    got = run_reader(OPEN_GROUP, path=str(tmp_path / "g.zarr"))
    assert set(got) == {"temperature", "counts"}
    assert np.array_equal(np.asarray(got["temperature"]["values"], dtype="f4"), temps)
    assert got["counts"] == {"dims": ["dim_0"], "values": counts.tolist(), "attrs": got["counts"]["attrs"]}
    assert got["temperature"]["dims"] == ["dim_0", "dim_1"]


def test_consolidated_metadata_follows_attribute_changes(tmp_path: Path) -> None:
    p = str(tmp_path / "g.zarr::v")
    with arraystore.create(p, (3,), "i4", dimension_names=("x",)) as s:
        s[...] = [1, 2, 3]
    with arraystore.open(p, "r+") as s:
        s.attrs["units"] = "K"
        s[0] = 7
    got = run_reader(OPEN_GROUP, path=str(tmp_path / "g.zarr"))
    assert got["v"]["attrs"]["units"] == "K"
    assert got["v"]["values"] == [7, 2, 3]
    # xarray's default (consolidated=None) reads the consolidated metadata; it must list the array
    root = zarr.open_group(str(tmp_path / "g.zarr"), mode="r", use_consolidated=True)
    assert root.metadata.consolidated_metadata is not None
    assert "v" in root.metadata.consolidated_metadata.metadata


def test_xarray_engine_uses_zarr_names(tmp_path: Path) -> None:
    p = str(tmp_path / "a.zarr")
    with arraystore.create(p, (2, 3), "f8", dimension_names=("y", "x")) as s:
        s[...] = 0
    da = xr.open_dataarray(p, engine="arraystore")
    assert da.dims == ("y", "x")


@settings(max_examples=15, deadline=None)
@given(
    ndim=st.integers(1, 3),
    named=st.lists(st.booleans(), min_size=3, max_size=3),
    order=st.sampled_from(["C", "F"]),
)
def test_names_round_trip_through_create_and_convert(tmp_path_factory: pytest.TempPathFactory, ndim: int,
                                                     named: list[bool], order: str) -> None:
    d = tmp_path_factory.mktemp("n")
    names = tuple(f"ax{i}" if named[i] else None for i in range(ndim))
    given_names = None if not any(named[:ndim]) else names
    shape = tuple(range(2, 2 + ndim))
    with arraystore.create(str(d / "a.zarr"), shape, "i2", order=order, dimension_names=given_names) as s:
        s[...] = np.arange(np.prod(shape), dtype="i2").reshape(shape)
    arraystore.convert(str(d / "a.zarr"), str(d / "b.zarr"))
    for p in ("a.zarr", "b.zarr"):
        assert arraystore.open(str(d / p)).dimension_names == given_names
        meta = zarr.open_array(str(d / p), mode="r").metadata
        assert meta.dimension_names == tuple(n or f"dim_{i}" for i, n in enumerate(names))


OPEN_GROUP_MASKED = """
import numpy as np, xarray as xr
ds = xr.open_zarr(path)
result = {name: {"dims": list(v.dims), "values": np.where(np.isnan(v.values), None, v.values).tolist(),
                 "units": v.attrs.get("units")} for name, v in ds.data_vars.items()}
"""


@pytest.mark.parametrize("engine", ["netcdf4", "h5netcdf"])
def test_netcdf_variables_converted_into_a_group_open_in_xarray(tmp_path: Path, engine: str) -> None:
    """A netCDF variable's _FillValue (a one-element array) reaches Zarr in xarray's form: xr.open_zarr masks as xr.open_dataset."""
    pytest.importorskip("netCDF4" if engine == "netcdf4" else "h5netcdf", reason="netCDF writers are in the test extras")
    nc = tmp_path / "t.nc"
    temps = np.linspace(0, 1, 12, dtype="f4").reshape(3, 4)
    temps[0, 0] = -1.0
    counts = np.array([1, -999, 3], dtype="i4")
    ds = xr.Dataset({"temperature": (("time", "x"), temps, {"units": "K"}), "counts": (("time",), counts)})
    ds.to_netcdf(nc, engine=engine, encoding={"temperature": {"_FillValue": -1.0}, "counts": {"_FillValue": -999}})
    for name in ("temperature", "counts"):
        with arraystore.open(f"{nc}::{name}") as s:
            fill = s.attrs["_FillValue"]
        arraystore.convert(f"{nc}::{name}", str(tmp_path / f"g.zarr::{name}"), verify=True)
        with arraystore.open(str(tmp_path / f"g.zarr::{name}")) as s:  # arraystore reads back what it read
            assert type(s.attrs["_FillValue"]) is type(fill) and str(s.attrs["_FillValue"]) == str(fill)
    got = run_reader(OPEN_GROUP_MASKED, path=str(tmp_path / "g.zarr"))
    with xr.open_dataset(nc, engine=engine) as want:
        for name in ("temperature", "counts"):
            expected = np.where(np.isnan(want[name].values), None, want[name].values).tolist()
            assert got[name]["values"] == expected, name
            assert got[name]["dims"] == list(want[name].dims)
    assert got["temperature"]["values"][0][0] is None and got["counts"]["values"][1] is None
    assert got["temperature"]["units"] == "K"


def _zarr_group_with(tmp_path: Path, names: tuple[str | None, ...] | None) -> tuple[Path, np.ndarray]:
    data = np.arange(24, dtype="<f8").reshape(4, 6) / 7
    np.save(tmp_path / "a.npy", data)
    group = tmp_path / "g.zarr"
    zarr.open_group(str(group), mode="w")
    arraystore.convert(str(tmp_path / "a.npy"), f"{group}::temp", dimension_names=names)
    return group, data


@pytest.mark.parametrize("names", [("y", "x"), None, ("y", None)], ids=["named", "unnamed", "partly"])
def test_xarray_writes_a_dataset_opened_from_our_zarr_to_netcdf(tmp_path: Path,
                                                                names: tuple[str | None, ...] | None) -> None:
    """Every attribute of an array arraystore writes is one netCDF can hold: xarray's ``to_netcdf`` of the dataset
    it opened (it copies every attribute) works, and the netCDF file holds the same values."""
    pytest.importorskip("netCDF4", reason="the netCDF4 reader is not installed")
    group, data = _zarr_group_with(tmp_path, names)
    with xr.open_zarr(group, consolidated=False) as ds:
        ds.to_netcdf(tmp_path / "out.nc")
    with xr.open_dataset(tmp_path / "out.nc") as back:
        np.testing.assert_array_equal(back["temp"].values, data)


def test_a_changed_copy_written_by_xarray_opens_as_what_it_holds(tmp_path: Path) -> None:
    """xarray keeps arraystore's attribute through ``isel``, ``astype`` and renames: the copy it writes is read as
    its own Zarr metadata says (shape, dtype, dimension names), without the original's checksum."""
    group, data = _zarr_group_with(tmp_path, None)
    with xr.open_zarr(group, consolidated=False) as ds:
        sub = ds.isel(dim_0=slice(1, 3)).astype("float32").rename({"dim_0": "time"})
        sub.to_zarr(tmp_path / "sub.zarr", zarr_format=3, consolidated=False)
        renamed = ds.rename({"dim_0": "time", "dim_1": "x"})
        renamed.to_zarr(tmp_path / "renamed.zarr", zarr_format=3, consolidated=False)
    with arraystore.open(f"{tmp_path / 'sub.zarr'}::temp") as s:
        assert (s.shape, s.dtype) == ((2, 6), np.dtype("float32"))
        np.testing.assert_array_equal(s[...], data[1:3].astype("float32"))
        assert s.recorded_checksum is None
        assert s.dimension_names == ("time", "dim_1")
    with arraystore.open(f"{tmp_path / 'renamed.zarr'}::temp") as s:
        np.testing.assert_array_equal(s[...], data)
        assert s.dimension_names == ("time", "x")


_TIMES = np.array(["2020-01-01", "2020-01-03", "1969-12-31T23:59:59", "NaT"], dtype="M8[s]")


@pytest.mark.parametrize("target", ["hdf5", "zarr-portable"])
@pytest.mark.parametrize("units", [None, "days since 2000-01-01", "seconds since 1970-01-01", "hours since 1970-01-01"])
def test_times_xarray_wrote_again_in_other_units_are_never_misread(tmp_path: Path, target: str,
                                                                     units: str | None) -> None:
    """xarray copies arraystore's record of a time dtype onto counts it may write in units of its own choosing
    (``days since 2000-01-01``): the copy reads as the same instants, or as the stored counts with their CF
    attributes when the units are not the record's, never as counts in the wrong unit."""
    src = tmp_path / "t.npy"
    np.save(src, _TIMES if units is None or "days" not in units else _TIMES[[0, 1, 3]])
    values = np.load(src)
    if target == "hdf5":
        pytest.importorskip("h5netcdf", reason="xarray's h5netcdf engine is not installed")
        ours, copy = f"{tmp_path / 'a.h5'}::t", tmp_path / "copy.nc"
        arraystore.convert(str(src), ours, dimension_names=("n",))
        ds = xr.open_dataset(tmp_path / "a.h5", engine="h5netcdf")
    else:
        zarr.open_group(str(tmp_path / "a.zarr"), mode="w")
        ours, copy = f"{tmp_path / 'a.zarr'}::t", tmp_path / "copy.zarr"
        arraystore.convert(str(src), ours, dimension_names=("n",), portable=True)
        ds = xr.open_zarr(tmp_path / "a.zarr", consolidated=False).load()  # not chunked: any units may be set
    with ds:
        np.testing.assert_array_equal(ds["t"].values.astype("M8[s]"), values)
        if units is not None:
            ds["t"].encoding["units"] = units
        ds["t"].encoding.pop("dtype", None)
        if target == "hdf5":
            ds.to_netcdf(copy, engine="h5netcdf")
        else:
            ds.to_zarr(copy, zarr_format=3, consolidated=False)
    with arraystore.open(f"{copy}::t") as s:
        if s.dtype.kind == "M":
            np.testing.assert_array_equal(s[...].astype("M8[s]"), values)
        else:  # the stored counts, with the units that say what they count
            assert s.dtype.kind in "if" and units is not None and s.attrs["units"] == units
            decoded = xr.decode_cf(xr.Dataset({"t": ("n", s[...], dict(s.attrs))}))["t"].values
            np.testing.assert_array_equal(decoded.astype("M8[s]"), values)
        assert units is None or units.startswith("seconds since") or s.dtype.kind != "M"


def test_a_changed_netcdf_copy_of_our_hdf5_opens_as_what_it_holds(tmp_path: Path) -> None:
    """The HDF5 side of the same workflow: xarray keeps the ``_arraystore_*`` attributes on a netCDF copy it
    changed; its dimension names are the copy's and the original's checksum is not claimed for it."""
    pytest.importorskip("h5netcdf", reason="xarray's h5netcdf engine is not installed")
    data = np.arange(24, dtype="<f8").reshape(4, 6) / 7
    np.save(tmp_path / "a.npy", data)
    arraystore.convert(str(tmp_path / "a.npy"), f"{tmp_path / 'a.h5'}::temp", dimension_names=("y", "x"))
    with xr.open_dataset(tmp_path / "a.h5", engine="h5netcdf") as ds:
        ds.isel(y=slice(1, 3)).astype("float32").to_netcdf(tmp_path / "sub.nc", engine="h5netcdf")
        ds.rename({"x": "lon"}).to_netcdf(tmp_path / "renamed.nc", engine="h5netcdf")
    with arraystore.open(f"{tmp_path / 'sub.nc'}::temp") as s:
        np.testing.assert_array_equal(s[...], data[1:3].astype("float32"))
        assert s.recorded_checksum is None and s.dimension_names == ("y", "x")
    with arraystore.open(f"{tmp_path / 'renamed.nc'}::temp") as s:
        np.testing.assert_array_equal(s[...], data)
        assert s.dimension_names == ("y", "lon") and s.recorded_checksum is not None
    report = arraystore.convert(f"{tmp_path / 'renamed.nc'}::temp", str(tmp_path / "back.zarr"), verify=True)
    assert report.verified


@pytest.mark.parametrize(("dtype", "fill"), [("<f4", -1.0), ("<f8", 1e20), ("<i2", -32768)])
def test_xarrays_zarr_fill_value_reaches_other_formats_as_a_number(tmp_path: Path, dtype: str, fill: float) -> None:
    """A Zarr v3 array xarray wrote (a float's _FillValue as base64 text) converts to HDF5 that netCDF readers mask."""
    values = np.array([[fill, 0, 7]], dtype)
    xr.Dataset({"sst": (("y", "x"), values)}).to_zarr(
        tmp_path / "x.zarr", zarr_format=3, consolidated=False, encoding={"sst": {"_FillValue": fill}})
    want = xr.open_zarr(tmp_path / "x.zarr", consolidated=False)["sst"].values
    assert arraystore.open(f"{tmp_path}/x.zarr::sst").attrs["_FillValue"] == fill  # the number, not its base64
    arraystore.convert(f"{tmp_path}/x.zarr::sst", tmp_path / "x.h5")
    arraystore.convert(f"{tmp_path}/x.zarr::sst", f"{tmp_path}/y.zarr::sst")
    for engine in ("h5netcdf", "netcdf4"):
        with xr.open_dataset(tmp_path / "x.h5", engine=engine) as ds:
            np.testing.assert_array_equal(ds["data"].values, want)
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "y.zarr", consolidated=False)["sst"].values, want)
