"""HDF5 datasets other readers understand: the array's shape, netCDF-4 dimensions, CF times; and the contract around them."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.errors import BackendError, DimensionError, MetadataError

FIXTURE = Path(__file__).parent.parent / "fixtures" / "hdf5"


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=4).map(tuple),
    order=st.sampled_from(["C", "F"]),
    chunked=st.booleans(),
)
def test_h5py_sees_the_arrays_shape_and_values(tmp_path_factory: pytest.TempPathFactory, shape: tuple[int, ...],
                                                order: str, chunked: bool) -> None:
    data = np.arange(int(np.prod(shape)), dtype="<i4").reshape(shape) * 3 - 7
    path = str(tmp_path_factory.mktemp("h") / "a.h5")
    chunks = tuple(max(1, n // 2) for n in shape) if chunked else None
    with arraystore.create(path, shape, data.dtype, order=order, chunks=chunks) as s:  # type: ignore[arg-type]
        s[...] = np.asfortranarray(data) if order == "F" else data
        assert s.order == "C"
    with h5py.File(path, "r") as f:
        assert f["data"].shape == shape and np.array_equal(f["data"][...], data)
        assert "_arraystore_order" not in f["data"].attrs
    with arraystore.open(path) as s:
        assert s.shape == shape and np.array_equal(s[...], data)


def test_transposed_layout_is_an_explicit_opt_in_for_memory_maps(tmp_path: Path) -> None:
    data = np.asfortranarray(np.arange(24, dtype="<f8").reshape(2, 3, 4))
    path = str(tmp_path / "t.h5")
    with arraystore.create(path, data.shape, data.dtype, order="F", hdf5_layout="transposed") as s:
        s[...] = data
    with h5py.File(path, "r") as f:
        assert f["data"].shape == (4, 3, 2)  # what other readers see of it
    with arraystore.open(path) as s:
        assert s.order == "F" and s.shape == (2, 3, 4)
        m = s.as_memmap()
        assert m.flags.f_contiguous and np.array_equal(m, data)
    with pytest.raises(BackendError, match="hdf5_layout"):
        arraystore.create(str(tmp_path / "u.h5"), (2,), "<f4", hdf5_layout="fortran")
    assert not (tmp_path / "u.h5").exists()


def test_golden_transposed_files_keep_opening() -> None:
    for path in sorted(FIXTURE.glob("*.h5")):
        with h5py.File(path, "r") as f:
            names = [n for n in f if isinstance(f[n], h5py.Dataset) and f[n].attrs.get("_arraystore_order") == "F"]
        for name in names:
            with arraystore.open(f"{path}::{name}") as s, h5py.File(path, "r") as f:
                assert s.shape == f[name].shape[::-1] and s.order == "F"


def test_dimension_names_round_trip_and_name_the_scales(tmp_path: Path) -> None:
    path = str(tmp_path / "d.h5")
    with arraystore.create(path, (2, 3), "<f4", dimension_names=("y", None)) as s:
        s[...] = 1
    with arraystore.open(path) as s:
        assert s.dimension_names == ("y", None)
    with h5py.File(path, "r") as f:
        assert [d[0].name for d in f["data"].dims] == ["/y", "/dim_1"]
        assert f["y"].attrs["NAME"].startswith(b"This is a netCDF dimension but not a netCDF variable")
        assert list(f["data"].attrs["_Netcdf4Coordinates"]) == [int(f["y"].attrs["_Netcdf4Dimid"]),
                                                                int(f["dim_1"].attrs["_Netcdf4Dimid"])]
    with arraystore.create(str(tmp_path / "n.h5"), (2,), "<f4") as s:
        assert s.dimension_names is None  # none given: dim_0 is xarray's default, not the array's name
    with arraystore.open(str(tmp_path / "n.h5")) as s:
        assert s.dimension_names is None


def test_a_dimension_shared_by_two_datasets_and_a_conflicting_one(tmp_path: Path) -> None:
    path = tmp_path / "g.h5"
    with arraystore.create(f"{path}::/a", (4, 2), "<i2", dimension_names=("time", "x")) as s:
        s[...] = 1
    with arraystore.create(f"{path}::/b", (4,), "<i2", dimension_names=("time",)) as s:
        s[...] = 2
    with arraystore.create(f"{path}::/c", (5,), "<i2", dimension_names=("time",)) as s:  # time has length 4
        s[...] = 3
        assert any("phony" in n for n in s.encoding_notes)
    with h5py.File(path, "r") as f:
        assert f["a"].dims[0][0] == f["b"].dims[0][0] == f["time"]
        assert "DIMENSION_LIST" not in f["c"].attrs
    for key, value in (("a", 1), ("b", 2), ("c", 3)):
        with arraystore.open(f"{path}::/{key}") as s:
            assert (s[...] == value).all()
    with arraystore.open(f"{path}::/c") as s:
        assert s.dimension_names == ("time",)  # recorded exactly, though no scale could be attached


def test_foreign_dimension_scales_give_names(tmp_path: Path) -> None:
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f["v"] = np.zeros((2, 3))
        f["lat"] = np.arange(2.0)
        f["lat"].make_scale("lat")
        f["v"].dims[0].attach_scale(f["lat"])
    with arraystore.open(f"{path}::v") as s:
        assert s.dimension_names == ("lat", None)


@pytest.mark.parametrize("bad", ["xy", ("a",), ("a", 3), ("a/b", "c"), ("", "c")])
def test_bad_dimension_names_are_refused_before_writing(tmp_path: Path, bad: object) -> None:
    with pytest.raises((DimensionError, MetadataError)):
        arraystore.create(str(tmp_path / "b.h5"), (2, 3), "<f4", dimension_names=bad)
    assert list(tmp_path.iterdir()) == []


def test_backends_without_names_refuse_them(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="dimension_names"):
        arraystore.create(str(tmp_path / "b.npy"), (2,), "<f4", dimension_names=("x",))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("dtype", "units"), [("M8[ns]", "nanoseconds since 1970-01-01T00:00:00"),
                                              ("M8[s]", "seconds since 1970-01-01T00:00:00"),
                                              ("M8[D]", "days since 1970-01-01T00:00:00"), ("m8[ms]", "milliseconds")])
def test_times_carry_cf_units(tmp_path: Path, dtype: str, units: str) -> None:
    path = str(tmp_path / "t.h5")
    data = np.array([0, 1, 10_000, -5], "i8").astype(dtype)
    data[1] = np.datetime64("NaT") if data.dtype.kind == "M" else np.timedelta64("NaT")
    with arraystore.create(path, data.shape, data.dtype) as s:
        s[...] = data
    with h5py.File(path, "r") as f:
        attrs = f["data"].attrs
        assert attrs["units"] == units and attrs["_FillValue"] == np.iinfo(np.int64).min
        assert ("calendar" in attrs) == (data.dtype.kind == "M")
    with arraystore.open(path) as s:
        assert s.dtype == data.dtype and s[...].view("i8").tolist() == data.view("i8").tolist() and not s.attrs


def test_a_users_units_are_never_overwritten(tmp_path: Path) -> None:
    path = str(tmp_path / "u.h5")
    with arraystore.create(path, (2,), "M8[s]", attrs={"units": "my own"}) as s:
        s[...] = np.array(["2020-01-01", "NaT"], "M8[s]")
    with h5py.File(path, "r") as f:
        assert f["data"].attrs["units"] == "my own" and "calendar" not in f["data"].attrs
    with arraystore.open(path) as s:
        assert s.attrs == {"units": "my own"} and any("units" in n for n in s.encoding_notes)


def test_conversion_carries_dimension_names_from_dims_attrs(tmp_path: Path) -> None:
    raw = str(tmp_path / "s.dat")
    with arraystore.create(raw, (2, 3), "<f4", attrs={"dims": ["lat", "lon"]}) as s:
        s[...] = 1
    arraystore.convert(raw, str(tmp_path / "o.h5"))
    with arraystore.open(str(tmp_path / "o.h5")) as s:
        assert s.dimension_names == ("lat", "lon")
    arraystore.convert(str(tmp_path / "o.h5"), str(tmp_path / "p.h5"))
    with arraystore.open(str(tmp_path / "p.h5")) as s:
        assert s.dimension_names == ("lat", "lon")
