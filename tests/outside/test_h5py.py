"""HDF5 datasets written by h5py, read back by arraystore (dtype in the stored byte order)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

h5py = pytest.importorskip("h5py", reason="h5py is the writer under test")
hdf5plugin = pytest.importorskip("hdf5plugin", reason="hdf5plugin is an arraystore[hdf5] dependency")

from arraystore.errors import MetadataError, UnsupportedDtypeError  # noqa: E402

from .oracle import check_read, check_refused, same_bytes  # noqa: E402
from .values import STRUCT, sample  # noqa: E402

NUMERIC = ["bool", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]
BIG = [">i2", ">i4", ">i8", ">u2", ">u4", ">u8", ">f2", ">f4", ">f8", ">c8", ">c16"]

LAYOUTS: dict[str, dict[str, Any]] = {
    "contiguous": {},
    "chunked": {"chunks": (2, 3)},
    "gzip": {"chunks": (3, 3), "compression": "gzip", "compression_opts": 4},
    "lzf-shuffle-fletcher32": {"chunks": (4, 2), "compression": "lzf", "shuffle": True, "fletcher32": True},
    "compact": "compact",
}


def _write(path: Path, name: str, data: np.ndarray, layout: Any = None, **kwargs: Any) -> np.ndarray:
    with h5py.File(path, "w") as f:
        if layout == "compact":
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_layout(h5py.h5d.COMPACT)
            space = h5py.h5s.create_simple(data.shape)
            tid = h5py.h5t.py_create(data.dtype, logical=True)
            dsid = h5py.h5d.create(f.id, name.encode(), tid, space, dcpl=dcpl)
            dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(data))
        else:
            f.create_dataset(name, data=data, **(layout or {}), **kwargs)
    with h5py.File(path, "r") as f:
        return np.asarray(f[name][()])


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype", NUMERIC + BIG)
def test_numeric_layouts(tmp_path, dtype, layout):
    data = sample((6, 5), dtype, seed=41)
    path = tmp_path / "a.h5"
    same_bytes(_write(path, "x", data, LAYOUTS[layout]), data, "h5py's own read")
    check_read(f"{path}::/x", data, tmp_path, convert=("raw", "zarr") if layout != "contiguous" else ("npy", "hdf5"))


@pytest.mark.parametrize(
    ("dtype", "fill"),
    [("f8", np.nan), ("f4", -0.0), (">f8", np.inf), ("i2", -5), ("u8", 2**64 - 1), ("c8", 1 - 2j), ("S3", b"ab")],
)
def test_fillvalue_unallocated_chunks(tmp_path, dtype, fill):
    path = tmp_path / "a.h5"
    part = sample((2, 3), dtype, seed=42)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("x", shape=(6, 6), dtype=dtype, chunks=(2, 3), fillvalue=fill)
        ds[:2, :3] = part
    want = np.full((6, 6), fill, dtype)
    want[:2, :3] = part
    with h5py.File(path, "r") as f:
        same_bytes(f["x"][()], want, "h5py's own read")
    check_read(f"{path}::/x", want, tmp_path)


def test_fillvalue_contiguous_never_written(tmp_path):
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", shape=(4, 3), dtype="<f4", fillvalue=np.float32(-2.5))
    check_read(f"{path}::/x", np.full((4, 3), -2.5, "<f4"), tmp_path)


@pytest.mark.parametrize("layout", ["contiguous", "chunked"])
@pytest.mark.parametrize(
    "dtype",
    [
        STRUCT,
        np.dtype([("a", ">i2"), ("b", "<f4")]),
        np.dtype([("p", [("x", "<f4"), ("y", "<f4")]), ("n", "u1")]),
    ],
    ids=["packed", "mixed-order", "nested"],
)
def test_compound(tmp_path, dtype, layout):
    data = sample((4, 3), dtype, seed=43)
    path = tmp_path / "a.h5"
    same_bytes(_write(path, "c", data, LAYOUTS[layout]), data, "h5py's own read")
    check_read(f"{path}::/c", data, tmp_path)


def _string_dataset(path: Path, values: list[bytes], size: int, cset: int, pad: int, chunked: bool) -> None:
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(size)
    tid.set_cset(cset)
    tid.set_strpad(pad)
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        if chunked:
            dcpl.set_chunk((2,))
        space = h5py.h5s.create_simple((len(values),))
        ds = h5py.h5d.create(f.id, b"s", tid, space, dcpl=dcpl)
        padded = b"".join(v.ljust(size, b" " if pad == h5py.h5t.STR_SPACEPAD else b"\0") for v in values)
        ds.write(h5py.h5s.ALL, h5py.h5s.ALL, np.frombuffer(padded, f"S{size}"), mtype=tid)


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("cset", ["ascii", "utf8"])
@pytest.mark.parametrize("pad", ["nullterm", "nullpad"])
def test_fixed_strings(tmp_path, pad, cset, chunked):
    values = ["ab", "", "xyz12", "é"] if cset == "utf8" else ["ab", "", "xyz12", "q"]
    raw = [v.encode() for v in values]
    path = tmp_path / "a.h5"
    pads = {"nullterm": h5py.h5t.STR_NULLTERM, "nullpad": h5py.h5t.STR_NULLPAD}
    csets = {"ascii": h5py.h5t.CSET_ASCII, "utf8": h5py.h5t.CSET_UTF8}
    _string_dataset(path, raw, 6, csets[cset], pads[pad], chunked)
    with h5py.File(path, "r") as f:
        ref = f["s"][()]
    same_bytes(ref, np.array(raw, "S6"), "h5py's own read")
    check_read(f"{path}::/s", np.array(raw, "S6"), tmp_path)


HDF5_HELPER = "fixed by the hdf5 helper (backends/hdf5*.py: map or byte-copy only byte-identical file types)"


@pytest.mark.parametrize(
    "chunked",
    [
        pytest.param(
            False,
            marks=pytest.mark.xfail(
                strict=True,
                reason="contiguous space-padded strings: store[...] gives b'ab' but as_memmap (and the byte-copy "
                "conversions) give the raw b'ab    '; " + HDF5_HELPER,
            ),
        ),
        True,
    ],
)
def test_space_padded_strings(tmp_path, chunked):
    # HDF5 converts space-padded strings to numpy's null-padded ones on read; so must arraystore
    path = tmp_path / "a.h5"
    _string_dataset(path, [b"ab", b"", b"xyz"], 6, h5py.h5t.CSET_ASCII, h5py.h5t.STR_SPACEPAD, chunked)
    with h5py.File(path, "r") as f:
        ref = f["s"][()]
    want = np.array([b"ab", b"", b"xyz"], "S6")
    same_bytes(ref, want, "h5py's own read")
    check_read(f"{path}::/s", want, tmp_path)


@pytest.mark.parametrize(
    "chunked",
    [
        pytest.param(
            False,
            marks=pytest.mark.xfail(
                strict=True,
                reason="contiguous 12-bit integers at bit offset 4 (H5Tset_precision/H5Tset_offset): store[...] "
                "gives [1, -1, 100] but as_memmap gives the raw [16, -16, 1600]; " + HDF5_HELPER,
            ),
        ),
        True,
    ],
)
def test_custom_precision_offset_integers(tmp_path, chunked):
    tid = h5py.h5t.STD_I16LE.copy()
    tid.set_precision(12)
    tid.set_offset(4)
    want = np.array([1, -1, 100, -2048, 2047], "<i2")
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        if chunked:
            dcpl.set_chunk((2,))
        ds = h5py.h5d.create(f.id, b"p", tid, h5py.h5s.create_simple(want.shape), dcpl=dcpl)
        ds.write(h5py.h5s.ALL, h5py.h5s.ALL, want, mtype=h5py.h5t.NATIVE_INT16)
    with h5py.File(path, "r") as f:
        same_bytes(f["p"][()], want, "h5py's own read")
    check_read(f"{path}::/p", want, tmp_path)


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_variable_length_strings_refused(tmp_path, encoding):
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("v", data=["a", "bc"], dtype=h5py.string_dtype(encoding))
    check_refused(f"{path}::/v", UnsupportedDtypeError)


def test_vlen_sequence_refused(tmp_path):
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("v", shape=(2,), dtype=h5py.vlen_dtype("i4"))
        ds[0] = [1, 2]
        ds[1] = [3]
    check_refused(f"{path}::/v", UnsupportedDtypeError)


@pytest.mark.parametrize("base", ["u1", "i2", ">i4", "u8"])
def test_enum(tmp_path, base):
    dt = h5py.enum_dtype({"RED": 0, "GREEN": 1, "BLUE": 42}, basetype=base)
    data = np.array([[0, 1], [42, 0]], np.dtype(base))
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("e", data=data, dtype=dt)
    # an enum reads as its base integer type, as h5py gives it
    check_read(f"{path}::/e", data, tmp_path)


@pytest.mark.parametrize("dtype", ["f8", ">i4", "bool", "c8", "S4"])
def test_scalar_dataset(tmp_path, dtype):
    data = sample((), dtype, seed=44)
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("s", data=data)
    check_read(f"{path}::/s", data, tmp_path)


def test_null_dataspace_refused(tmp_path):
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("e", data=h5py.Empty("f4"))
    check_refused(f"{path}::/e", MetadataError)


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0, 4)])
def test_zero_size(tmp_path, shape, chunked):
    path = tmp_path / "a.h5"
    kw: dict[str, Any] = {"chunks": tuple(max(1, s) for s in shape), "maxshape": (None,) * len(shape)} if chunked else {}
    with h5py.File(path, "w") as f:
        f.create_dataset("z", shape=shape, dtype=">f4", **kw)
    check_read(f"{path}::/z", np.zeros(shape, ">f4"), tmp_path)


def test_resizable_grown_dataset(tmp_path):
    path = tmp_path / "a.h5"
    data = sample((7, 3), "i4", seed=45)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("g", shape=(2, 3), maxshape=(None, 3), dtype="i4", chunks=(2, 3))
        ds[:] = data[:2]
        ds.resize((7, 3))
        ds[2:] = data[2:]
    check_read(f"{path}::/g", data, tmp_path)


def test_datasets_in_groups(tmp_path):
    path = tmp_path / "a.h5"
    a, b = sample((3, 4), "<u2", seed=46), sample((5,), ">f8", seed=47)
    with h5py.File(path, "w") as f:
        f.create_dataset("top", data=a)
        f.create_group("g1/g2").create_dataset("deep", data=b, chunks=(2,), compression="gzip")
        f["g1"].attrs["note"] = "group attr"
        f["g1/g2/deep"].attrs["units"] = "m"
    check_read(f"{path}::/g1/g2/deep", b, tmp_path, attrs={"units": "m"})
    check_read(f"{path}::top", a, tmp_path)
    check_refused(f"{path}::/g1", MetadataError)


@pytest.mark.parametrize("unit", ["ns", "s", "D"])
def test_datetime_as_opaque(tmp_path, unit):
    data = sample((5,), f"M8[{unit}]", seed=48)
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("t", data=data.astype(h5py.opaque_dtype(data.dtype)))
    with h5py.File(path, "r") as f:
        ref = f["t"][()]
    same_bytes(ref, data, "h5py's own read")
    check_read(f"{path}::/t", ref, tmp_path)


@pytest.mark.xfail(
    strict=True,
    reason="an HDF5 array-type dataset (dtype ('<f4', (3,)), shape (5,)) opens with shape (5, 3) and then "
    "store[...] raises a bare ValueError ('2 indexing arguments for 1 dimensions'); fixed by the hdf5 helper",
)
def test_array_type_member(tmp_path):
    path = tmp_path / "a.h5"
    data = sample((5, 3), "<f4", seed=49)
    with h5py.File(path, "w") as f:
        f.create_dataset("a", shape=(5,), dtype=np.dtype(("<f4", (3,))))[...] = data
    with h5py.File(path, "r") as f:
        ref = f["a"][()]
    assert ref.shape == (5, 3)  # h5py reads an array type as a trailing axis
    check_read(f"{path}::/a", data, tmp_path)


def test_long_double(tmp_path):
    path = tmp_path / "a.h5"
    data = np.array([1.0, -2.5, 1e300], np.longdouble) / np.longdouble(3)
    with h5py.File(path, "w") as f:
        f.create_dataset("l", data=data)
    with h5py.File(path, "r") as f:
        ref = f["l"][()]
    same_bytes(ref, data, "h5py's own read")
    check_read(f"{path}::/l", ref, tmp_path)


@pytest.mark.xfail(
    strict=True,
    reason="a 3-byte integer dataset raises h5py's bare TypeError (\"data type '<i3' not understood\") at open "
    "instead of UnsupportedDtypeError; fixed by the hdf5 helper",
)
def test_three_byte_integers_refused(tmp_path):
    path = tmp_path / "a.h5"
    tid = h5py.h5t.STD_I32LE.copy()
    tid.set_size(3)
    with h5py.File(path, "w") as f:
        h5py.h5d.create(f.id, b"i3", tid, h5py.h5s.create_simple((4,)))
    check_refused(f"{path}::/i3", UnsupportedDtypeError)


def test_object_references_refused(tmp_path):
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("target", data=[1, 2])
        f.create_dataset("refs", shape=(1,), dtype=h5py.ref_dtype)[0] = f["target"].ref
    check_refused(f"{path}::/refs", UnsupportedDtypeError)


@pytest.mark.parametrize(("dtype", "scaleoffset"), [("i4", 0), ("f8", 3)])
def test_scaleoffset_filter(tmp_path, dtype, scaleoffset):
    path = tmp_path / "a.h5"
    data = (np.arange(60).reshape(6, 10) * 7 - 100).astype(dtype) / (3 if dtype == "f8" else 1)
    with h5py.File(path, "w") as f:
        f.create_dataset("s", data=data.astype(dtype), chunks=(3, 5), scaleoffset=scaleoffset)
    with h5py.File(path, "r") as f:
        ref = f["s"][()]
    check_read(f"{path}::/s", ref, tmp_path, convert=("npy",))


@pytest.mark.parametrize("plugin", ["Blosc", "Zstd", "LZ4"])
def test_hdf5plugin_filters(tmp_path, plugin):
    path = tmp_path / "a.h5"
    data = sample((8, 6), ">f8", seed=50)
    with h5py.File(path, "w") as f:
        f.create_dataset("p", data=data, chunks=(4, 3), **getattr(hdf5plugin, plugin)())
    check_read(f"{path}::/p", data, tmp_path, convert=("zarr",))


def test_user_block(tmp_path):
    path = tmp_path / "ub.h5"
    data = sample((3, 3), "<i8", seed=51)
    with h5py.File(path, "w", userblock_size=1024) as f:
        f.create_dataset("d", data=data)
    with open(path, "r+b") as fh:
        fh.write(b"not hdf5 at the start")
    check_read(f"{path}::/d", data, tmp_path)


def test_padded_compound(tmp_path):
    dt = np.dtype({"names": ["a", "b"], "formats": ["u1", ">f8"], "offsets": [0, 8], "itemsize": 16})
    data = sample((5,), dt, seed=52)
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("c", data=data)
    with h5py.File(path, "r") as f:
        ref = f["c"][()]
    same_bytes(ref, data, "h5py's own read")
    check_read(f"{path}::/c", ref, tmp_path)


def test_external_storage(tmp_path):
    """Raw data in a file beside the .h5 (h5py external=): read exactly, or refused as unsafe."""
    from arraystore.errors import UnsafeInputError

    data = sample((4, 3), "<i4", seed=53)
    path = tmp_path / "ext.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("e", data=data, external=[(str(tmp_path / "ext.bin"), 0, data.nbytes)])
    try:
        check_read(f"{path}::/e", data, tmp_path, convert=("npy",))
    except UnsafeInputError:
        check_refused(f"{path}::/e", UnsafeInputError)
