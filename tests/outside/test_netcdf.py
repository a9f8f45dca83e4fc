"""netCDF-4 variables written by the netCDF4 package and by h5netcdf, read back by arraystore.

arraystore reads a netCDF-4 file as the HDF5 file it is: a variable's **raw stored values**,
in the stored byte order, with no CF decoding. ``_FillValue`` is not turned into a mask and
``scale_factor``/``add_offset`` are not applied (they are kept in ``attrs``); the oracle is
therefore netCDF4's read with ``set_auto_maskandscale(False)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

netCDF4 = pytest.importorskip("netCDF4", reason="netCDF4 is a writer under test")
h5netcdf = pytest.importorskip("h5netcdf", reason="h5netcdf is a writer under test")

from arraystore.errors import BackendError, UnsupportedDtypeError  # noqa: E402

from .oracle import check_read, check_refused, same_bytes  # noqa: E402
from .values import sample  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:You are writing invalid netcdf features:UserWarning", "ignore:endian-ness of dtype:UserWarning"
)

NC_TYPES = ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"]


def _nc_raw(path: Path, name: str) -> np.ndarray:
    with netCDF4.Dataset(path) as ds:
        var = ds[name]
        var.set_auto_maskandscale(False)
        return np.asarray(var[...])


@pytest.mark.parametrize("endian", ["native", "big"])
@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("dtype", NC_TYPES)
def test_netcdf4_variables(tmp_path, dtype, chunked, endian):
    data = sample((4, 5), dtype, seed=51)
    path = tmp_path / "a.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("y", 4)
        ds.createDimension("x", 5)
        var = ds.createVariable(
            "v", dtype, ("y", "x"), contiguous=not chunked, chunksizes=(2, 3) if chunked else None,
            zlib=chunked, endian=endian,
        )  # fmt: skip
        var.units = "K"
        var.set_auto_maskandscale(False)
        var[...] = data
    same_bytes(_nc_raw(path, "v"), data, "netCDF4's own read")
    want = data.astype(data.dtype.newbyteorder(">")) if endian == "big" else data
    check_read(f"{path}::/v", want, tmp_path, attrs={"units": "K"}, convert=("npy", "zarr"))


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF4_CLASSIC"])
def test_netcdf4_unlimited_dimension(tmp_path, fmt):
    data = sample((7, 3), "f4", seed=52)
    path = tmp_path / "a.nc"
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("time", None)
        ds.createDimension("x", 3)
        var = ds.createVariable("v", "f4", ("time", "x"))
        var.set_auto_maskandscale(False)
        var[0:2] = data[:2]
        var[2:7] = data[2:]
    check_read(f"{path}::/v", data, tmp_path)


@pytest.mark.parametrize(("dtype", "fill"), [("f8", -9999.0), ("f4", np.nan), ("i2", -32767), ("u1", 255)])
def test_netcdf4_fill_value_raw(tmp_path, dtype, fill):
    path = tmp_path / "a.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        var = ds.createVariable("v", dtype, ("time",), fill_value=fill)
        var[2:4] = np.array([1, 2], dtype)  # 0 and 1 are never written: they read as _FillValue
    want = _nc_raw(path, "v")
    assert want.shape == (4,)
    same_bytes(want[:2], np.full(2, fill, dtype), "netCDF4's raw read")
    check_read(f"{path}::/v", want, tmp_path)


def test_netcdf4_scale_offset_gives_raw_values(tmp_path):
    packed = np.array([[0, 100, -32767], [5, 6, 7]], "i2")
    path = tmp_path / "a.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("y", 2)
        ds.createDimension("x", 3)
        var = ds.createVariable("t", "i2", ("y", "x"), fill_value=np.int16(-32767))
        var.scale_factor = 0.01
        var.add_offset = 273.15
        var.set_auto_maskandscale(False)
        var[...] = packed
    with netCDF4.Dataset(path) as ds:
        decoded = ds["t"][...]
    assert decoded.dtype.kind == "f"  # netCDF4 applies the CF packing by default ...
    # ... arraystore gives the stored integers and keeps the packing attributes, as the one-element
    # arrays netCDF-4 stores (h5py reads them as arrays of shape (1,); arraystore as lists)
    check_read(f"{path}::/t", packed, tmp_path, attrs={"scale_factor": [0.01], "add_offset": [273.15]})


def test_netcdf4_char_array(tmp_path):
    path = tmp_path / "a.nc"
    chars = netCDF4.stringtochar(np.array([b"ab", b"xyz", b""], "S4"))
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("n", 3)
        ds.createDimension("len", 4)
        var = ds.createVariable("c", "S1", ("n", "len"))
        var.set_auto_chartostring(False)
        var[...] = chars
    same_bytes(_nc_raw(path, "c"), chars, "netCDF4's own read")
    check_read(f"{path}::/c", chars, tmp_path)


def test_netcdf4_compound(tmp_path):
    dt = np.dtype([("id", "<i4"), ("x", "<f8")])
    data = sample((3,), dt, seed=53)
    path = tmp_path / "a.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ct = ds.createCompoundType(dt, "rec")
        ds.createDimension("n", 3)
        ds.createVariable("r", ct, ("n",))[...] = data
    ref = _nc_raw(path, "r")
    assert ref.dtype.itemsize == 16  # netCDF-C aligns compound members: "x" at offset 8, not 4
    same_bytes(ref, data, "netCDF4's own read")
    check_read(f"{path}::/r", ref, tmp_path)


def test_netcdf4_string_refused(tmp_path):
    path = tmp_path / "a.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("n", 2)
        ds.createVariable("s", str, ("n",))[...] = np.array(["a", "bcd"], object)
    check_refused(f"{path}::/s", UnsupportedDtypeError)


def test_netcdf4_vlen_refused(tmp_path):
    path = tmp_path / "a.nc"
    with netCDF4.Dataset(path, "w") as ds:
        vt = ds.createVLType(np.int32, "ragged")
        ds.createDimension("n", 2)
        var = ds.createVariable("r", vt, ("n",))
        var[0] = np.array([1, 2], "i4")
        var[1] = np.array([3], "i4")
    check_refused(f"{path}::/r", UnsupportedDtypeError)


def test_netcdf4_nested_group(tmp_path):
    data = sample((2, 3), "u2", seed=54)
    path = tmp_path / "a.nc"
    with netCDF4.Dataset(path, "w") as ds:
        g = ds.createGroup("obs").createGroup("site1")
        g.createDimension("a", 2)
        g.createDimension("b", 3)
        g.createVariable("v", "u2", ("a", "b"))[...] = data
    check_read(f"{path}::/obs/site1/v", data, tmp_path)


def test_netcdf3_classic_refused(tmp_path):
    path = tmp_path / "a.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("x", 3)
        ds.createVariable("v", "f4", ("x",))[...] = [1, 2, 3]
    check_refused(f"{path}::/v", BackendError)


@pytest.mark.parametrize("dtype", ["i1", "u2", "i4", "u8", "f4", ">f8", ">i2", "c8", "bool"])
def test_h5netcdf_variables(tmp_path, dtype):
    data = sample((3, 4), dtype, seed=55)
    path = tmp_path / "a.nc"
    with h5netcdf.File(path, "w", invalid_netcdf=np.dtype(dtype).kind in "bc") as f:
        f.dimensions = {"y": 3, "x": None}
        var = f.create_variable("v", ("y", "x"), dtype=dtype, chunks=(2, 2), compression="gzip")
        var.attrs["long_name"] = "value"
        var.resize_dimension("x", 4) if hasattr(var, "resize_dimension") else f.resize_dimension("x", 4)
        var[...] = data
    with h5netcdf.File(path, "r") as f:
        same_bytes(np.asarray(f["v"][...]), data, "h5netcdf's own read")
    check_read(f"{path}::/v", data, tmp_path, attrs={"long_name": "value"}, convert=("npy", "zarr"))


def test_h5netcdf_fill_value_and_group(tmp_path):
    path = tmp_path / "a.nc"
    with h5netcdf.File(path, "w") as f:
        g = f.create_group("grp")
        g.dimensions = {"t": 5}
        var = g.create_variable("v", ("t",), dtype="f8", fillvalue=-1.5)
        var[1:3] = [7.0, 8.0]
    check_read(f"{path}::/grp/v", np.array([-1.5, 7.0, 8.0, -1.5, -1.5]), tmp_path)


@pytest.mark.parametrize("offset", [False, True])
def test_cf_packing_from_netcdf_decodes_in_xarray_as_xarrays_own_zarr_copy(tmp_path, offset):
    """A netCDF-4 ``scale_factor`` (a one-element array, a one-item list in arraystore's attrs) was written into
    Zarr as ``[0.5]``, which xarray decoded to an object array; it is written as the number, as xarray writes it,
    and arraystore still reads back the list it was given."""
    xr = pytest.importorskip("xarray", reason="xarray decodes CF packing, the oracle here")
    zarr = pytest.importorskip("zarr", reason="zarr-python shows what other readers see")
    import arraystore

    path = tmp_path / "a.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("y", 4)
        var = ds.createVariable("w", "i2", ("y",), fill_value=np.int16(7))
        var.scale_factor = np.float32(0.5)
        if offset:
            var.add_offset = np.float32(10)
        var.set_auto_maskandscale(False)
        var[0:2] = [1, 2]  # 2 and 3 never written: the fill value
    original = xr.open_dataset(path)
    original.to_zarr(tmp_path / "xr.zarr", zarr_format=3, consolidated=False)  # xarray's own copy: the oracle
    want = xr.open_zarr(tmp_path / "xr.zarr", consolidated=False)["w"]
    arraystore.convert(f"{path}::/w", f"{tmp_path / 'g.zarr'}::w", verify=True)
    got = xr.open_zarr(tmp_path / "g.zarr", consolidated=False)["w"]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.values, want.values)
    with arraystore.open(f"{tmp_path / 'g.zarr'}::w") as s:
        assert s.attrs["scale_factor"] == [0.5] and s.attrs.get("add_offset", [10.0]) == [10.0]
    assert zarr.open_array(tmp_path / "g.zarr", path="w", mode="r").attrs["scale_factor"] == 0.5
