"""HDF5 file types that are not numpy's bytes, compounds, array types and types numpy cannot hold.

Files are written by h5py itself (its low-level ``h5t``/``h5d`` API where the type
needs it), by netCDF4 and by h5netcdf; h5py's own read (HDF5's conversion) is the
oracle for values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.checksums import checksum
from arraystore.errors import NotMemoryMappableError, UnsupportedDtypeError

BACKENDS = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}


def _write_low_level(path: Path, name: str, tid: Any, values: np.ndarray[Any, Any]) -> None:
    """A contiguous dataset of file type ``tid``, written from ``values`` through HDF5's conversion."""
    with h5py.File(path, "a") as f:
        space = h5py.h5s.create_simple(values.shape)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.CONTIGUOUS)
        ds = h5py.h5d.create(f.id, name.encode(), tid, space, dcpl=dcpl)
        ds.write(h5py.h5s.ALL, h5py.h5s.ALL, values, mtype=h5py.h5t.py_create(values.dtype))


def _oracle(path: Path, name: str) -> np.ndarray[Any, Any]:
    with h5py.File(path, "r") as f:
        return np.asarray(f[name][...])


def _spacepad(size: int) -> Any:
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(size)
    tid.set_strpad(h5py.h5t.STR_SPACEPAD)
    return tid


def _nullterm(size: int) -> Any:
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(size)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    return tid


def _int(size: int, precision: int, offset: int, signed: bool, big: bool) -> Any:
    base = {(1, True): h5py.h5t.STD_I8LE, (2, True): h5py.h5t.STD_I16LE, (4, True): h5py.h5t.STD_I32LE,
            (8, True): h5py.h5t.STD_I64LE, (1, False): h5py.h5t.STD_U8LE, (2, False): h5py.h5t.STD_U16LE,
            (4, False): h5py.h5t.STD_U32LE, (8, False): h5py.h5t.STD_U64LE}[(size, signed)]
    tid = base.copy()
    tid.set_precision(precision)
    tid.set_offset(offset)
    if big:
        tid.set_order(h5py.h5t.ORDER_BE)
    return tid


def _check_everywhere(path: Path, name: str, tmp: Path) -> None:
    """store[...] equals h5py's read; no memory map; every conversion (verified) holds h5py's values."""
    want = _oracle(path, name)
    with arraystore.open(f"{path}::{name}") as s:
        got = s[...]
        assert got.dtype == want.dtype and got.tolist() == want.tolist()
        with pytest.raises(NotMemoryMappableError, match="byte for byte"):
            s.as_memmap()
    for backend, suffix in BACKENDS.items():
        dst = tmp / f"out-{name}{suffix}"
        arraystore.convert(f"{path}::{name}", dst, verify=True)
        with arraystore.open(dst) as d:
            assert d[...].tolist() == want.tolist(), backend
        assert checksum(dst) == checksum(f"{path}::{name}")


def test_space_padded_strings(tmp_path: Path) -> None:
    path = tmp_path / "fortran.h5"
    _write_low_level(path, "s", _spacepad(8), np.array([b"ab", b"cdefgh", b""], "S8"))
    assert _oracle(path, "s").tolist() == [b"ab", b"cdefgh", b""]
    with open(path, "rb") as f:  # the file really holds the spaces
        assert b"ab      " in f.read()
    _check_everywhere(path, "s", tmp_path)


def test_null_terminated_strings(tmp_path: Path) -> None:
    path = tmp_path / "nullterm.h5"
    _write_low_level(path, "s", _nullterm(5), np.array([b"ab", b"abcd"], "S5"))
    _check_everywhere(path, "s", tmp_path)


@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(1, 12),
    pad=st.sampled_from(["SPACEPAD", "NULLTERM", "NULLPAD"]),
    utf8=st.booleans(),
    words=st.lists(st.binary(max_size=12).map(lambda b: bytes(c % 94 + 33 for c in b)), min_size=1, max_size=6),
)
def test_fixed_strings_of_any_padding(
    tmp_path_factory: pytest.TempPathFactory, size: int, pad: str, utf8: bool, words: list[bytes]
) -> None:
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(size)
    tid.set_strpad(getattr(h5py.h5t, f"STR_{pad}"))
    if utf8:
        tid.set_cset(h5py.h5t.CSET_UTF8)
    values = np.array([w[:size] for w in words], h5py.string_dtype("utf-8" if utf8 else "ascii", size))
    tmp = tmp_path_factory.mktemp("str")
    path = tmp / "s.h5"
    _write_low_level(path, "s", tid, values)
    want = _oracle(path, "s")  # HDF5's conversion: NULLTERM keeps at most size - 1 characters
    with arraystore.open(f"{path}::s") as s:
        assert s[...].tolist() == want.tolist()
        if pad != "NULLPAD":
            with pytest.raises(NotMemoryMappableError):
                s.as_memmap()
    arraystore.convert(f"{path}::s", tmp / "s.npy", verify=True)
    assert np.load(tmp / "s.npy").tolist() == want.tolist()


def test_custom_precision_and_offset_integers(tmp_path: Path) -> None:
    path = tmp_path / "prec.h5"
    _write_low_level(path, "i", _int(2, 12, 4, True, False), np.array([1, -1, 100], "<i2"))
    assert _oracle(path, "i").tolist() == [1, -1, 100]
    _check_everywhere(path, "i", tmp_path)


@settings(max_examples=25, deadline=None)
@given(
    data=st.data(),
    size=st.sampled_from([1, 2, 4, 8]),
    signed=st.booleans(),
    big=st.booleans(),
)
def test_integers_of_any_precision_and_offset(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, size: int, signed: bool, big: bool
) -> None:
    bits = 8 * size
    # HDF5 2.0 refuses "unusual" types, those with 8 or more unused bits, unless relaxed
    precision = data.draw(st.integers(max(2, bits - 7), bits), label="precision")
    offset = data.draw(st.integers(0, bits - precision), label="offset")
    lo, hi = (-(1 << (precision - 1)), (1 << (precision - 1)) - 1) if signed else (0, (1 << precision) - 1)
    values = np.array(data.draw(st.lists(st.integers(lo, hi), min_size=1, max_size=8)),
                      dtype=f"<{'i' if signed else 'u'}{size}")
    tmp = tmp_path_factory.mktemp("prec")
    path = tmp / "p.h5"
    _write_low_level(path, "i", _int(size, precision, offset, signed, big), values)
    native = precision == bits and offset == 0
    with arraystore.open(f"{path}::i") as s:
        assert s[...].tolist() == values.tolist()
        if not native:
            with pytest.raises(NotMemoryMappableError):
                s.as_memmap()
    dst = tmp / "p.npy"
    arraystore.convert(f"{path}::i", dst, verify=True)
    assert np.load(dst).tolist() == values.tolist()


def test_compound_with_a_custom_precision_member(tmp_path: Path) -> None:
    path = tmp_path / "cmp.h5"
    tid = h5py.h5t.create(h5py.h5t.COMPOUND, 8)
    tid.insert(b"a", 0, _int(4, 20, 3, True, False))
    tid.insert(b"b", 4, h5py.h5t.IEEE_F32LE)
    values = np.array([(5, 1.5), (-7, 2.5)], dtype=[("a", "<i4"), ("b", "<f4")])
    _write_low_level(path, "c", tid, values)
    _check_everywhere(path, "c", tmp_path)


def test_native_types_are_still_mapped(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    dt = np.dtype({"names": ["a", "b"], "formats": ["<i2", ">f8"], "offsets": [10, 0], "itemsize": 24})
    values = np.zeros(4, dt)
    values["a"], values["b"] = [1, 2, 3, 4], [0.5, 1.5, 2.5, 3.5]
    with h5py.File(path, "w") as f:
        f.create_dataset("c", data=values)
        f.create_dataset("s", data=np.array([b"x", b"yz"], "S3"))
        f.create_dataset("u", data=np.array([b"x"], h5py.string_dtype("utf-8", 4)))
        f.create_dataset("b", data=np.arange(5, dtype=">u4"))
    for name in ("c", "s", "u", "b"):
        want = _oracle(path, name)
        with arraystore.open(f"{path}::{name}") as s:
            m = s.as_memmap()
            assert m.tobytes() == want.tobytes()
    with arraystore.open(f"{path}::c") as s:  # h5py's out-of-order offsets and padding, read exactly
        assert s.dtype == dt and s[...].tobytes() == values.tobytes()


# -- compounds arraystore creates --------------------------------------------------


@pytest.mark.parametrize(
    "dtype",
    [
        np.dtype({"names": ["a", "b"], "formats": ["<i4", "<i2"], "offsets": [0, 2], "itemsize": 4}),
        np.dtype([("a\x00b", "<i4")]),
        np.dtype({"names": ["x", "y"], "formats": ["<i2", "<i2"], "offsets": [0, 0], "itemsize": 2}),
    ],
    ids=["overlap", "nul-name", "same-offset"],
)
def test_compounds_hdf5_cannot_hold_are_refused_at_create(tmp_path: Path, dtype: np.dtype[Any]) -> None:
    path = tmp_path / "c.h5"
    with pytest.raises(UnsupportedDtypeError):
        arraystore.create(path, (3,), dtype)
    assert not path.exists() and not list(tmp_path.iterdir())
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["keep"] = np.arange(3)
    with pytest.raises(UnsupportedDtypeError):  # nor inside an existing file
        arraystore.create(f"{tmp_path / 'other.h5'}::/c", (3,), dtype)
    with h5py.File(tmp_path / "other.h5", "r") as f:
        assert list(f) == ["keep"]


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 4),
)
def test_compounds_round_trip_exactly(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, n: int) -> None:
    formats = data.draw(st.lists(st.sampled_from(["<i2", ">i4", "<f8", "u1", "S3", ">c8", "<u8"]),
                                 min_size=n, max_size=n), label="formats")
    sizes = [np.dtype(f).itemsize for f in formats]
    gaps = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n), label="gaps")
    order = data.draw(st.permutations(range(n)), label="order")
    offsets, pos = [0] * n, 0
    for i in order:  # fields laid out in a random order, with padding between them
        pos += gaps[i]
        offsets[i] = pos
        pos += sizes[i]
    tail = data.draw(st.integers(0, 5), label="tail")
    dt = np.dtype({"names": [f"f{i}" for i in range(n)], "formats": formats, "offsets": offsets,
                   "itemsize": pos + tail})
    raw = np.frombuffer(data.draw(st.binary(min_size=dt.itemsize * 3, max_size=dt.itemsize * 3)), np.uint8)
    values = raw.view(dt)
    path = tmp_path_factory.mktemp("cmp") / "c.h5"
    try:
        store = arraystore.create(path, (3,), dt)
    except UnsupportedDtypeError:  # refused at create (the other outcome allowed): nothing on disk
        assert not list(path.parent.iterdir())
        return
    with store as s:
        s[...] = values
    with arraystore.open(path) as s:
        assert s.dtype == dt and s.dtype.itemsize == dt.itemsize
        assert s.dtype.fields == dt.fields
        got = s[...]
    for name in dt.names or ():  # values (bytes: NaN payloads compared exactly)
        assert got[name].tobytes() == values[name].tobytes()
    assert got.tobytes() == values.tobytes()  # padding bytes too
    with h5py.File(path, "r") as f:  # and h5py reads the same compound
        assert f["data"].dtype == dt


# -- array types -------------------------------------------------------------------------


def _array_type_file(path: Path, base: str = "<f4", dims: tuple[int, ...] = (3,), n: int = 5) -> np.ndarray[Any, Any]:
    values = np.arange(n * int(np.prod(dims)), dtype=base).reshape((n, *dims))
    tid = h5py.h5t.array_create(h5py.h5t.py_create(np.dtype(base)), dims)
    with h5py.File(path, "w") as f:
        space = h5py.h5s.create_simple((n,))
        ds = h5py.h5d.create(f.id, b"a", tid, space)
        ds.write(h5py.h5s.ALL, h5py.h5s.ALL, values, mtype=tid)
    return values


@pytest.mark.parametrize("base", ["<f4", ">i2", "<c8"])
def test_array_type_reads_like_h5py(tmp_path: Path, base: str) -> None:
    path = tmp_path / "arr.h5"
    values = _array_type_file(path, base, (3, 2))
    with h5py.File(path, "r") as f:
        assert f["a"].shape == (5,) and f["a"][...].shape == (5, 3, 2)
        oracle = f["a"][...]
    with arraystore.open(path) as s:
        assert s.shape == (5, 3, 2) and s.dtype == np.dtype(base)
        assert s[...].tolist() == oracle.tolist() == values.tolist()
        for sel in [(1,), (slice(1, 4), 2), (4, 1, 0), (Ellipsis, 1), (slice(None, None, -2), slice(None), 1)]:
            assert s[sel].tolist() == values[sel].tolist(), sel
            assert s[sel].dtype == np.dtype(base)
        assert s.as_memmap().tolist() == values.tolist()
    with arraystore.open(path, mode="r+") as s:
        s[2, 1] = [7, 8]
        s[0] = 0
    values[2, 1], values[0] = [7, 8], 0
    assert _oracle(path, "a").tolist() == values.tolist()
    arraystore.convert(path, tmp_path / "arr.npy", verify=True)
    assert np.load(tmp_path / "arr.npy").tolist() == values.tolist()


def test_chunked_array_type_reads_in_blocks(tmp_path: Path) -> None:
    path = tmp_path / "arr-chunked.h5"
    tid = h5py.h5t.array_create(h5py.h5t.IEEE_F64LE, (4,))
    values = np.arange(40 * 4, dtype="<f8").reshape(40, 4)
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((8,))
        dcpl.set_deflate(4)
        ds = h5py.h5d.create(f.id, b"a", tid, h5py.h5s.create_simple((40,)), dcpl=dcpl)
        ds.write(h5py.h5s.ALL, h5py.h5s.ALL, values, mtype=tid)
    with arraystore.open(path) as s:
        assert s.shape == (40, 4) and s.chunks == (8, 4)
        got = np.empty_like(values)
        for sel, block in s.iter_blocks(max_bytes=300):
            got[sel] = block
        assert got.tolist() == values.tolist()
    arraystore.convert(path, tmp_path / "arr.zarr", verify=True)
    with arraystore.open(tmp_path / "arr.zarr") as z:
        assert z[...].tolist() == values.tolist()


# -- types numpy cannot hold -------------------------------------------------------------


def _quad() -> Any:
    tid = h5py.h5t.IEEE_F64LE.copy()
    tid.set_size(16)
    tid.set_precision(128)
    tid.set_fields(127, 112, 15, 0, 112)
    tid.set_ebias(16383)
    return tid


def _int3() -> Any:
    tid = h5py.h5t.STD_I32LE.copy()
    tid.set_size(3)
    return tid


def _opaque() -> Any:
    tid = h5py.h5t.create(h5py.h5t.OPAQUE, 4)
    tid.set_tag(b"some tag")
    return tid


@pytest.mark.parametrize(
    "make", [_quad, _int3, lambda: h5py.h5t.UNIX_D32LE.copy(), _opaque], ids=["binary128", "int24", "time", "opaque"]
)
def test_types_numpy_cannot_hold_are_refused_at_open(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as f:
        h5py.h5d.create(f.id, b"x", make(), h5py.h5s.create_simple((3,)))
    with pytest.raises(UnsupportedDtypeError, match=r"odd\.h5"):
        arraystore.open(path)
    with pytest.raises(UnsupportedDtypeError):
        arraystore.convert(path, tmp_path / "odd.npy")
    assert not (tmp_path / "odd.npy").exists()


# -- files written by netCDF4 and h5netcdf ---------------------------------------------


def test_netcdf4_and_h5netcdf_files(tmp_path: Path) -> None:
    netCDF4 = pytest.importorskip("netCDF4", reason="netCDF4 is in the test extras")
    h5netcdf = pytest.importorskip("h5netcdf", reason="h5netcdf is in the test extras")
    values = np.arange(12, dtype="<f4").reshape(3, 4)
    chars = np.array([list(b"ab  "), list(b"cdef"), list(b"g\0\0\0")], dtype="S1")
    a = tmp_path / "a.nc"
    with netCDF4.Dataset(a, "w") as nc:
        nc.createDimension("x", 3)
        nc.createDimension("y", 4)
        nc.createVariable("v", "f4", ("x", "y"))[:] = values
        nc.createVariable("c", "S1", ("x", "y"))[:] = chars
        nc.createVariable("i", "i2", ("x",), zlib=True)[:] = [1, -2, 3]
    b = tmp_path / "b.nc"
    with h5netcdf.File(b, "w") as nc:
        nc.dimensions = {"x": 3, "y": 4}
        nc.create_variable("v", ("x", "y"), "<f4", data=values)
    for path, name in [(a, "/v"), (a, "/c"), (a, "/i"), (b, "/v")]:
        want = _oracle(path, name)
        with arraystore.open(f"{path}::{name}") as s:
            assert s.shape == want.shape and s.dtype == want.dtype
            assert s[...].tobytes() == want.tobytes()
        dst = tmp_path / f"{path.stem}-{name.strip('/')}.dat"
        arraystore.convert(f"{path}::{name}", dst, verify=True)
        with arraystore.open(dst) as d:
            assert d[...].tobytes() == want.tobytes()


@pytest.mark.parametrize("writer", ["netCDF4", "h5netcdf"])
def test_netcdf_bookkeeping_is_not_user_attrs(tmp_path: Path, writer: str) -> None:
    """netCDF-4's dimension ids and coordinate lists are not the variable's attrs; a user's CLASS and NAME are."""
    path = tmp_path / "a.nc"
    if writer == "netCDF4":
        netCDF4 = pytest.importorskip("netCDF4", reason="netCDF4 is in the test extras")
        with netCDF4.Dataset(path, "w") as nc:
            nc.createDimension("x", 3)
            nc.createDimension("y", 4)
            v = nc.createVariable("v", "f4", ("x", "y"))
            v[:] = np.zeros((3, 4))
            v.units = "K"
            nc.createVariable("x", "f8", ("x",))[:] = [1, 2, 3]
    else:
        h5netcdf = pytest.importorskip("h5netcdf", reason="h5netcdf is in the test extras")
        with h5netcdf.File(path, "w") as nc:
            nc.dimensions = {"x": 3, "y": 4}
            nc.create_variable("v", ("x", "y"), "<f4", data=np.zeros((3, 4))).attrs["units"] = "K"
            nc.create_variable("x", ("x",), "<f8", data=[1.0, 2.0, 3.0])
    with h5py.File(path, "a") as f:
        f["plain"] = np.zeros(2)
        f["plain"].attrs["CLASS"] = "ARRAY"  # PyTables' own
        f["plain"].attrs["NAME"] = "mine"
    for name in ("v", "x"):
        with arraystore.open(f"{path}::{name}") as s:
            bookkeeping = sorted(k for k in s.attrs if k.startswith("_Netcdf4") or k in
                                 ("CLASS", "NAME", "DIMENSION_LIST", "REFERENCE_LIST", "_NCProperties"))
            assert bookkeeping == [], (name, dict(s.attrs))
    with arraystore.open(f"{path}::v") as s:
        assert s.attrs["units"] == "K" and s.dimension_names == ("x", "y")
    with arraystore.open(f"{path}::plain") as s:
        assert dict(s.attrs) == {"CLASS": "ARRAY", "NAME": "mine"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_h5py_dtype_metadata_is_not_the_arrays(tmp_path: Path, backend: str) -> None:
    """h5py tags string fields and enums with dtype metadata; the store's dtype is the plain numpy one."""
    import warnings

    path = tmp_path / "c.h5"
    dtype = np.dtype([("name", h5py.string_dtype("utf-8", 8)), ("v", "<f4"), ("e", h5py.enum_dtype({"a": 0}, "u1"))])
    data = np.zeros(3, dtype)
    data["name"] = [b"x", "\u00e9".encode(), b""]
    data["v"] = [1.5, -2.0, 3.25]
    with h5py.File(path, "w") as f:
        f["c"] = data
    with arraystore.open(f"{path}::/c") as s:
        assert s.dtype.metadata is None
        assert all(s.dtype.fields[n][0].metadata is None for n in s.dtype.names)  # type: ignore[index]
        assert s.dtype == np.dtype([("name", "S8"), ("v", "<f4"), ("e", "u1")])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns when dtype metadata meets a .npy header
            arraystore.convert(s, tmp_path / f"out{BACKENDS[backend]}", verify=True)
    with arraystore.open(tmp_path / f"out{BACKENDS[backend]}") as out:
        got = out[...]
    assert got.tobytes() == data.astype(got.dtype).tobytes()
