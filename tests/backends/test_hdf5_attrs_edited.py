"""Attributes another tool (h5py, HDFView) edits natively after arraystore wrote them are what arraystore reads."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import arraystore

h5py = pytest.importorskip("h5py", reason="needs h5py to edit the attributes as another tool would")


def _written(tmp_path: Path, **create: object) -> Path:
    p = tmp_path / "run.h5"
    attrs = {"units": "K", "scale": 0.5, "n": 3, "ok": True, "nan": math.nan, "lst": [1, 2],
             "gain": np.float32(2.0)}
    with arraystore.create(f"{p}::data", (3, 4), "<f4", attrs=attrs, **create):  # type: ignore[arg-type]
        pass
    return p


@pytest.mark.parametrize("create", [{}, {"dimension_names": ("t", "y")}])
def test_unedited_attrs_round_trip_exactly(tmp_path: Path, create: dict[str, object]) -> None:
    p = _written(tmp_path, **create)
    attrs = dict(arraystore.open(f"{p}::data").attrs)
    assert set(attrs) == {"units", "scale", "n", "ok", "nan", "lst", "gain"}  # no dimension-scale bookkeeping
    assert type(attrs["gain"]) is np.float32 and math.isnan(attrs["nan"]) and attrs["ok"] is True


def test_native_edits_added_and_changed_are_seen(tmp_path: Path) -> None:
    p = _written(tmp_path)
    with h5py.File(p, "r+") as f:
        f["data"].attrs["units"] = "degC"
        f["data"].attrs["n"] = 4
        f["data"].attrs["by_h5py"] = np.arange(3)
    with arraystore.open(f"{p}::data", mode="r+") as s:
        assert s.attrs["units"] == "degC" and s.attrs["n"] == 4 and s.attrs["by_h5py"] == [0, 1, 2]
        assert s.attrs["lst"] == [1, 2] and type(s.attrs["gain"]) is np.float32  # JSON-only values kept
        s.attrs["scale"] = 0.25
    attrs = dict(arraystore.open(f"{p}::data").attrs)
    assert (attrs["units"], attrs["scale"], attrs["by_h5py"]) == ("degC", 0.25, [0, 1, 2])
    with h5py.File(p, "r") as f:
        assert f["data"].attrs["units"] == "degC" and f["data"].attrs["scale"] == 0.25


_FOREIGN = {
    "ints": np.arange(3, dtype=">i4"),
    "floats": np.array([0.5, 1.5], dtype="<f4"),
    "names": np.array([b"I", b"II"]),
    "texts": np.array(["a", "bc"], dtype=h5py.string_dtype()),
    "matrix": np.eye(2),
    "single": np.float32(500.0),
    "short": np.int16(3),
    "flag": np.bool_(True),
    "fixed": np.bytes_(b"abc"),
    "units": "mV",
}


@pytest.mark.parametrize("written_by", ["h5py", "arraystore"])
def test_native_array_attrs_survive_a_write_of_other_attrs(tmp_path: Path, written_by: str) -> None:
    """Writing one attr through arraystore leaves the other native attrs as h5py sees them, dtype and all."""
    p = tmp_path / "run.h5"
    if written_by == "h5py":
        with h5py.File(p, "w") as f:
            f["data"] = np.zeros(3)
    else:
        with arraystore.create(f"{p}::data", (3,), "<f8", attrs={"kept": [1, 2]}):
            pass
    with h5py.File(p, "r+") as f:
        for name, value in _FOREIGN.items():
            f["data"].attrs[name] = value
    with arraystore.open(f"{p}::data", "r+") as s:
        s.attrs["added"] = 1
        s.attrs["units"] = "V"
    with h5py.File(p, "r") as f:
        native = dict(f["data"].attrs)
    for name, value in _FOREIGN.items():
        if name == "units":
            continue
        assert name in native, f"{name} was deleted"
        assert type(native[name]) is type(value), name
        np.testing.assert_array_equal(native[name], value)
        assert np.asarray(native[name]).dtype == value.dtype or value.dtype.kind == "O", name
    assert native["units"] == "V" and native["added"] == 1
    attrs = dict(arraystore.open(f"{p}::data").attrs)
    assert attrs["ints"] == [0, 1, 2] and attrs["names"] == ["I", "II"] and attrs["matrix"] == [[1.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize(("key", "written", "edited"), [
    ("lst", [1, 2], np.array([5, 6, 7])),
    ("_FillValue", [-999.0], np.array([-1.0], "<f4")),  # mirrored in the dataset's type (float32)
    ("valid_range", [0, 100], np.array([0.0, 50.5], "<f4")),
])
def test_a_mirrored_list_edited_natively_is_seen(tmp_path: Path, key: str, written: list[float],
                                                  edited: np.ndarray) -> None:  # type: ignore[type-arg]
    """Lists of numbers are mirrored like scalars, so a native edit of one is what arraystore reads, as for scalars."""
    p = tmp_path / "run.h5"
    with arraystore.create(f"{p}::data", (3,), "<f4", attrs={key: written}):
        pass
    assert arraystore.open(f"{p}::data").attrs[key] == written  # unedited: the exact JSON copy
    with h5py.File(p, "r+") as f:
        f["data"].attrs[key] = edited
    assert arraystore.open(f"{p}::data").attrs[key] == edited.tolist()


def test_native_array_attrs_changed_or_removed_through_arraystore(tmp_path: Path) -> None:
    p = tmp_path / "run.h5"
    with h5py.File(p, "w") as f:
        f["data"] = np.zeros(3)
        f["data"].attrs["ints"] = np.arange(3)
        f["data"].attrs["gone"] = np.arange(2)
    with arraystore.open(f"{p}::data", "r+") as s:
        s.attrs["ints"] = [7, 8]
        del s.attrs["gone"]
    with h5py.File(p, "r") as f:
        assert "gone" not in f["data"].attrs
        assert f["data"].attrs["ints"].tolist() == [7, 8]  # a list of numbers is mirrored natively (netCDF reads it)
    attrs = dict(arraystore.open(f"{p}::data").attrs)
    assert attrs["ints"] == [7, 8] and "gone" not in attrs


def test_a_netcdf_variable_keeps_its_fill_value_and_dimensions_when_attrs_are_written(tmp_path: Path) -> None:
    netCDF4 = pytest.importorskip("netCDF4", reason="netCDF4 is in the test extras")
    p = tmp_path / "t.nc"
    with netCDF4.Dataset(p, "w") as nc:
        nc.createDimension("time", 2)
        nc.createDimension("x", 3)
        v = nc.createVariable("temperature", "f4", ("time", "x"), fill_value=-1.0)
        v.units = "K"
        v[0, :] = [1.0, 2.0, 3.0]  # row 1 never written: the fill value
    with arraystore.open(f"{p}::temperature", "r+") as s:
        s.attrs["long_name"] = "air temperature"
    with netCDF4.Dataset(p) as nc:
        v = nc["temperature"]
        assert v.dimensions == ("time", "x") and v._FillValue == -1.0 and v.units == "K"
        assert v.long_name == "air temperature"
        assert v[1, :].mask.all()  # still masked as missing


@pytest.mark.parametrize("edited", [False, True])
def test_attrs_whose_text_is_not_utf8_are_read_as_latin1_not_refused(tmp_path: Path, edited: bool) -> None:
    """Variable-length strings whose bytes are not UTF-8 (latin-1 text of older tools), which h5py returns with
    surrogate escapes, scalar or in arrays, on a foreign dataset or on one arraystore wrote: they are read as
    latin-1, as fixed-length bytes already were. They made the whole dataset unopenable (MetadataError: not valid
    Unicode, 'fix the text'), its data and every conversion of it with it."""
    p = tmp_path / "legacy.h5"
    latin = "\xe9t\xe9 \xb0C"
    with h5py.File(p, "w") as f:
        d = f.create_dataset("x", data=np.arange(6, dtype="<i2"))
        d.attrs["bytes_scalar"] = latin.encode("latin-1")  # a variable-length string
        d.attrs.create("vlen_array", [latin.encode("latin-1"), b"ok"], dtype=h5py.string_dtype("ascii"))
        d.attrs["fixed"] = np.bytes_(latin.encode("latin-1"))
        d.attrs["utf8"] = "d\xe9j\xe0"
    if edited:
        with arraystore.open(f"{p}::x", "r+") as s:
            s.attrs["added"] = 1
        with h5py.File(p, "r+") as f:
            f["x"].attrs["later"] = b"\xff\xfe"  # another tool, after arraystore wrote its JSON copy
    with arraystore.open(f"{p}::x") as s:
        attrs = dict(s.attrs)
        assert s[...].tolist() == list(range(6))
    assert attrs["bytes_scalar"] == latin and attrs["vlen_array"] == [latin, "ok"] and attrs["fixed"] == latin
    assert attrs["utf8"] == "d\xe9j\xe0"
    if edited:
        assert attrs["later"] == "\xff\xfe" and attrs["added"] == 1
    out = tmp_path / "out.zarr"
    arraystore.convert(f"{p}::x", out, verify=True)
    assert arraystore.open(out).attrs["bytes_scalar"] == latin
