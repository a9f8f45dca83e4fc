"""HDF5-specific behaviour: paths inside files, in-place creation, layout, attrs, memmap, golden files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

import arraystore
from arraystore.errors import (
    ArrayNotFoundError,
    BackendError,
    DimensionError,
    IncompleteArrayError,
    LockedError,
    MetadataError,
    NotMemoryMappableError,
    UnsupportedDtypeError,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hdf5"


def test_several_datasets_need_a_key(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        f["a"] = np.zeros(2)
        f["g/b"] = np.ones(3)
    with pytest.raises(MetadataError, match=r"found 2: /a, /g/b"):
        arraystore.open(path)
    with arraystore.open(f"{path}::/g/b") as s:
        assert s[...].tolist() == [1, 1, 1]
    with pytest.raises(ArrayNotFoundError):
        arraystore.open(f"{path}::/g/missing")
    with pytest.raises(MetadataError, match="group"):
        arraystore.open(f"{path}::/g")


@pytest.mark.parametrize("key", ["/sensors", "sensors", "/sensors/", "/sensors/ecg"])
def test_a_group_named_lists_its_datasets_by_the_paths_that_open_them(tmp_path: Path, key: str) -> None:
    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        f["sensors/ecg/signal"] = np.zeros(2)
        f["sensors/ecg/rate"] = np.ones(1)
        f["other"] = np.ones(3)
    with pytest.raises(MetadataError, match="found a group") as info:
        arraystore.open(f"{path}::{key}")
    listed = re.findall(r"(/sensors/\S+?)[,;]", str(info.value))
    assert sorted(listed) == ["/sensors/ecg/rate", "/sensors/ecg/signal"], str(info.value)
    for name in listed:  # each path named opens
        with arraystore.open(f"{path}::{name}") as s:
            assert s.shape in ((1,), (2,))
    assert f"e.g. '{path}::/sensors/ecg/" in str(info.value)


def test_not_an_hdf5_file(tmp_path: Path) -> None:
    path = tmp_path / "fake.h5"
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(MetadataError, match="expected an HDF5 file"):
        arraystore.open(path)


_WHILE_HELD: dict[str, Callable[[Path], object]] = {
    "write": lambda path: arraystore.open(f"{path}::a", "r+"),
    "create": lambda path: arraystore.create(f"{path}::b", (2,), "f8"),
    "convert into": lambda path: arraystore.convert(path.parent / "src.npy", f"{path}::c"),
}


@pytest.mark.parametrize("h5py_mode", ["r", "a"])
@pytest.mark.parametrize("action", sorted(_WHILE_HELD))
def test_writing_a_file_open_in_h5py_with_locking_is_a_lock_error(tmp_path: Path, h5py_mode: str, action: str) -> None:
    """A file this process holds open through h5py (locking on, its default) is named as such, not 'another
    writer'; reading it works (see test_a_file_open_in_h5py_with_its_locking_is_read)."""
    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        f["a"] = np.arange(4.0)
    np.save(tmp_path / "src.npy", np.arange(3.0))
    with h5py.File(path, h5py_mode) as held:
        with pytest.raises(LockedError, match=r"through h5py.*locking=False") as info:
            _WHILE_HELD[action](path)
        assert "another writer" not in str(info.value)
        assert held["a"][1] == 1.0
    with h5py.File(path, "a", locking=False):  # the advice (HDF5 opens no file for writing while it is open read-only)
        _WHILE_HELD[action](path)


def test_new_dataset_in_existing_file_is_built_in_place(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        f["keep"] = np.arange(3)
    s = arraystore.create(f"{path}::/new/deep/ds", (4,), "<f4")
    assert not (tmp_path / "run.h5.partial").exists()
    s[...] = 2
    s.flush()
    with h5py.File(path, "r", locking=False) as f:
        assert "_arraystore_incomplete" in f["new/deep/ds"].attrs
    s.close()
    with h5py.File(path, "r") as f:
        assert "_arraystore_incomplete" not in f["new/deep/ds"].attrs
        assert f["keep"][...].tolist() == [0, 1, 2]
    with arraystore.open(f"{path}::/new/deep/ds") as r:
        assert r[...].tolist() == [2, 2, 2, 2]


def test_discard_and_exception_delete_the_in_place_dataset(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        f["keep"] = np.arange(3)
    arraystore.create(f"{path}::/tmp1", (4,), "<f4").discard()

    def fail() -> None:
        with arraystore.create(f"{path}::/tmp2", (4,), "<f4") as s:
            s[...] = 1
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["keep"]


def test_crash_leaves_dataset_flagged_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        f["keep"] = np.arange(3)
    code = (
        "import os, arraystore\n"
        f"s = arraystore.create({str(path)!r} + '::/half', (8,), '<i2')\n"
        "s[:4] = 7\n"
        "s.flush()\n"
        "os._exit(0)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    with pytest.raises(IncompleteArrayError):
        arraystore.open(f"{path}::/half")
    with arraystore.open(f"{path}::/half", allow_incomplete=True) as s:
        assert not s.complete
        assert s[:4].tolist() == [7] * 4


def test_r_plus_write_flags_until_close_or_durable_flush(tmp_path: Path) -> None:
    path = str(tmp_path / "a.h5")
    with arraystore.create(path, (3,), "<f8") as s:
        s[...] = 0
    s = arraystore.open(path, "r+")
    assert s.complete
    s[0] = 1
    assert not s.complete
    with h5py.File(path, "r", locking=False) as f:
        assert "_arraystore_incomplete" in f["data"].attrs
    s.flush(durable=True)
    assert s.complete
    s[1] = 2
    s.close()
    with h5py.File(path, "r") as f:
        assert "_arraystore_incomplete" not in f["data"].attrs
        assert f["data"][...].tolist() == [1, 2, 0]


def test_overwrite_dataset_in_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    with arraystore.create(f"{path}::/x", (2,), "<i4") as s:
        s[...] = 1
    with pytest.raises(arraystore.errors.AlreadyExistsError):
        arraystore.create(f"{path}::/x", (2,), "<i4")
    with arraystore.create(f"{path}::/x", (3,), "<i8", overwrite=True) as s:
        s[...] = 5
    with h5py.File(path, "r") as f:
        assert f["x"][...].tolist() == [5, 5, 5]


@pytest.mark.parametrize(
    ("compression", "h5name"),
    [("gzip", "gzip"), ("gzip:9", "gzip"), ("lzf", "lzf"), ("zstd:5", None), ("blosc:zstd:3", None)],
)
def test_compression(tmp_path: Path, compression: str, h5name: str | None) -> None:
    """Every codec writes, reads back, and is named by ``store.compression`` (``arraystore info``) as it was asked for."""
    path = str(tmp_path / "c.h5")
    data = np.arange(1000, dtype="<f8").reshape(40, 25)
    with arraystore.create(path, data.shape, data.dtype, compression=compression, shuffle=True) as s:
        assert s.chunks is not None
        s[...] = data
    with arraystore.open(path) as s:
        assert s[...].tobytes() == data.tobytes()
        assert s.compression == compression.split(":")[0]  # h5py says "unknown" for plugin filters
        with pytest.raises(NotMemoryMappableError, match="chunked and compressed"):
            s.as_memmap()
    with h5py.File(path, "r") as f:
        if h5name is not None:
            assert f["data"].compression == h5name
        else:
            assert f["data"].id.get_create_plist().get_nfilters() >= 1


@pytest.mark.parametrize("bad", ["snappy", "gzip:11", "lzf:3", "blosc:nope", 5])
def test_unknown_compression_is_refused(tmp_path: Path, bad: object) -> None:
    with pytest.raises(BackendError):
        arraystore.create(str(tmp_path / "c.h5"), (4,), "<f4", compression=bad)  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


def test_chunks_are_in_array_axis_order(tmp_path: Path) -> None:
    path = str(tmp_path / "f.h5")
    data = np.arange(60, dtype="<i2").reshape(3, 4, 5)
    with arraystore.create(path, data.shape, data.dtype, order="F", chunks=(1, 2, 5)) as s:  # C layout
        assert s.chunks == (1, 2, 5) and s.order == "C"
        s[...] = data
    with h5py.File(path, "r") as f:
        assert f["data"].shape == (3, 4, 5) and f["data"].chunks == (1, 2, 5)
        assert np.array_equal(f["data"][...], data)
    kw = {"hdf5_layout": "transposed"}
    with arraystore.create(path, data.shape, data.dtype, order="F", chunks=(1, 2, 5), overwrite=True, **kw) as s:
        assert s.chunks == (1, 2, 5) and s.order == "F"
        s[...] = data
    with h5py.File(path, "r") as f:
        assert f["data"].shape == (5, 4, 3)
        assert f["data"].chunks == (5, 2, 1)
        assert np.array_equal(f["data"][...].T, data)
    with arraystore.create(path, (3,), "<i2", chunks=(9,), overwrite=True) as s:
        assert s.chunks == (3,)  # clipped to the shape
    with pytest.raises(DimensionError):  # one chunk length per axis, checked before any backend runs
        arraystore.create(str(tmp_path / "g.h5"), (3, 3), "<i2", chunks=(2,))


def test_memmap_fortran_writes_reach_file(tmp_path: Path) -> None:
    path = str(tmp_path / "m.h5")
    data = np.arange(12, dtype=">f4").reshape(3, 4)
    with arraystore.create(path, data.shape, data.dtype, order="F", hdf5_layout="transposed") as s:
        s[...] = data
    with arraystore.open(path, "r+") as s:
        m = s.as_memmap()
        assert m.flags.f_contiguous and m.dtype == np.dtype(">f4")
        m[2, 1] = -1
        assert s[2, 1] == -1  # reads go through the map once it exists
        del m
    with h5py.File(path, "r") as f:
        assert f["data"][1, 2] == -1  # stored transposed


def test_memmap_of_never_written_foreign_dataset(tmp_path: Path) -> None:
    path = tmp_path / "late.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(10,), dtype="<f4")
    with arraystore.open(path) as s, pytest.raises(NotMemoryMappableError, match="no storage allocated"):
        s.as_memmap()


def test_attrs_mirror_and_foreign_attrs(tmp_path: Path) -> None:
    path = tmp_path / "a.h5"
    attrs = {"units": "K", "n": 3, "ok": True, "scale": 0.5, "list": [1, 2], "big": 1 << 70}
    with arraystore.create(path, (2,), "<f4", attrs=attrs) as s:
        s[...] = 0
    with h5py.File(path, "r") as f:
        native = f["data"].attrs
        assert json.loads(native["_arraystore_attrs"]) == attrs
        assert native["units"] == "K" and native["n"] == 3 and bool(native["ok"]) and native["scale"] == 0.5
        assert native["list"].tolist() == [1, 2]  # lists of numbers as 1-D arrays, as netCDF-4 keeps them
        assert "big" not in native  # kept in the JSON copy only
    with arraystore.open(path, "r+") as s:
        del s.attrs["units"]
    with h5py.File(path, "r") as f:
        assert "units" not in f["data"].attrs

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        ds = f.create_dataset("x", data=np.arange(3))
        ds.attrs["title"] = "hello"
        ds.attrs["raw"] = np.bytes_(b"bytes")
        ds.attrs["vec"] = np.array([1.5, 2.5])
        ds.attrs["i"] = np.int16(4)
        ds.attrs["ref"] = f.ref  # no JSON form: left out
    with arraystore.open(foreign) as s:
        assert dict(s.attrs) == {"title": "hello", "raw": "bytes", "vec": [1.5, 2.5], "i": 4}


def test_checksum_is_reserved(tmp_path: Path) -> None:
    path = str(tmp_path / "k.h5")
    with arraystore.create(path, (2,), "<f4", attrs={"a": 1}) as s:
        s.set_checksum({"algorithm": "xxh3_128", "value": "ab"})
    with arraystore.open(path) as s:
        assert s.recorded_checksum == {"algorithm": "xxh3_128", "value": "ab"}
        assert dict(s.attrs) == {"a": 1}


def test_encoded_dtypes_are_plain_hdf5_for_other_tools(tmp_path: Path) -> None:
    path = tmp_path / "e.h5"
    with arraystore.create(f"{path}::/t", (2,), ">M8[us]") as s:
        s[...] = np.array(["2001-02-03", "NaT"], ">M8[us]")
    with arraystore.create(f"{path}::/u", (2,), "<U2") as s:
        s[...] = ["ab", "é"]
    with h5py.File(path, "r") as f:
        assert f["t"].dtype == np.dtype(">i8")
        assert f["t"][1] == np.iinfo(np.int64).min
        assert h5py.check_string_dtype(f["u"].dtype).encoding == "utf-8"
        assert f["u"].asstr()[...].tolist() == ["ab", "é"]


def test_variable_length_strings_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        f["s"] = np.array(["a", "bc"], dtype=h5py.string_dtype())
    with pytest.raises(UnsupportedDtypeError, match="variable-length"):
        arraystore.open(path)


def test_too_many_dimensions(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="32 dimensions"):
        arraystore.create(str(tmp_path / "d.h5"), (1,) * 33, "<f4")
    assert os.listdir(tmp_path) == []


def test_golden_v1() -> None:
    path = FIXTURES / "golden_v1.h5"
    with arraystore.open(f"{path}::/plain/ints") as s:
        assert s.dtype == np.dtype(">i4")
        assert s[...].tolist() == [[0, 1, 2], [3, 4, 5]]
        assert dict(s.attrs) == {"units": "m", "nested": {"a": [1, 2.5, None]}}
    with arraystore.open(f"{path}::/encoded/text_f") as s:
        assert s.order == "F" and s.dtype == np.dtype("<U3")
        assert s[...].tolist() == [["a", "bé"], ["ccc", ""]]
    with arraystore.open(f"{path}::/encoded/times") as s:
        assert s.chunks == (2,) and s.dtype == np.dtype("<M8[ms]")
        expected = np.array(["2020-01-01T00:00:00.001", "NaT", "1969-12-31"], "<M8[ms]")
        assert s[...].tobytes() == expected.tobytes()
        assert s.recorded_checksum == {"algorithm": "test", "value": "42"}


@pytest.mark.parametrize("locking", [True, "best-effort", None, False])
@pytest.mark.parametrize("h5py_mode", ["r", "r+", "a"])
def test_a_file_open_in_h5py_with_its_locking_is_read(tmp_path: Path, h5py_mode: str, locking: object) -> None:
    """A file the caller has open through h5py (HDF5's file locking on by default) opens for reading with the
    same values, not a MetadataError saying it is not an HDF5 file; opening it for writing is refused with
    LockedError while h5py holds HDF5's lock (reading and writing are both fine with h5py's locking=False)."""
    path = tmp_path / "held.h5"
    data = np.arange(24, dtype=">i4").reshape(4, 6)
    with h5py.File(path, "w") as f:
        f["a"] = data
    off = locking is False or (locking is None and os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE")
    with h5py.File(path, h5py_mode, locking=locking) as held:
        with arraystore.open(f"{path}::/a") as s:
            np.testing.assert_array_equal(s[::-1, 1::2], data[::-1, 1::2])
            assert s.dtype == data.dtype
        if off and h5py_mode != "r":
            with arraystore.open(f"{path}::/a", "r+") as s:
                s[0, 0] = 99
            assert held["a"][0, 0] == 99
        elif not off:
            with pytest.raises(LockedError):
                arraystore.open(f"{path}::/a", "r+")


_NETCDF4_FIRST = """
import sys
import netCDF4  # noqa: F401  # points HDF5_PLUGIN_PATH at its own filter plugins
import numpy as np
import h5py
import arraystore

data = np.arange(1000, dtype="<f8").reshape(40, 25)
for i, codec in enumerate(["blosc:zstd:3", "zstd:5", "blosc:lz4"]):
    path = f"{sys.argv[1]}/c{i}.h5"
    with arraystore.create(path, data.shape, data.dtype, compression=codec) as s:
        s[...] = data
    with h5py.File(path, "r") as f:
        assert f["data"][...].tobytes() == data.tobytes(), codec
print("ok")
"""


def test_hdf5plugin_codecs_after_netcdf4_was_imported(tmp_path: Path) -> None:
    """netCDF4 imported first (its HDF5_PLUGIN_PATH) made creating a blosc or zstd dataset a bare ValueError
    ('error during user callback'); a fresh process, as the order of imports is the process's."""
    pytest.importorskip("netCDF4", reason="netCDF4 is in the test extras")
    pytest.importorskip("hdf5plugin", reason="hdf5plugin is in the test extras")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path(arraystore.__file__).parents[1]),
                                                                     os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-c", _NETCDF4_FIRST, str(tmp_path)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
