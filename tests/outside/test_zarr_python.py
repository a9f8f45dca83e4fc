"""Zarr arrays written by zarr-python 3 (formats 2 and 3), read back by arraystore.

arraystore reports a Zarr array's dtype in its stored byte order: little-endian for v3's
default ``bytes`` codec, big-endian for ``bytes`` with ``endian: "big"`` and for v2
``>`` data types.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

zarr = pytest.importorskip("zarr", reason="zarr-python is the writer under test")

import arraystore  # noqa: E402
from arraystore.errors import UnsupportedDtypeError  # noqa: E402

from .oracle import check_read, check_refused, same_bytes  # noqa: E402
from .values import STRUCT, sample  # noqa: E402

NUMERIC = ["bool", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]
TIMES = ["M8[ns]", "M8[D]", "m8[s]", "m8[ms]"]
STRINGS = ["S1", "S7", "U1", "U5"]
ALL = NUMERIC + TIMES + STRINGS + ["struct"]


def _dtype(name: str, big: bool = False) -> np.dtype:
    dt = STRUCT if name == "struct" else np.dtype(name)
    return dt.newbyteorder(">") if big and dt.itemsize > 1 and dt.kind not in "bSV" else dt


def _write(path: Path, data: np.ndarray, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's UnstableSpecificationWarning for S/U/struct/time types
        arr = zarr.create_array(zarr.storage.LocalStore(path), shape=data.shape, dtype=data.dtype, **kwargs)
        arr[...] = data
        return arr


def _zarr_read(path: Path, key: str | None = None) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(zarr.open_array(zarr.storage.LocalStore(path, read_only=True), path=key or "", mode="r")[...])


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("name", ALL)
def test_dtype_families(tmp_path, fmt, name):
    dt = _dtype(name)
    data = sample((6, 5), dt, seed=len(name))
    path = tmp_path / "a.zarr"
    _write(path, data, chunks=(4, 3), zarr_format=fmt)
    same_bytes(_zarr_read(path), data, "zarr-python's own read")
    check_read(path, data, tmp_path)


@pytest.mark.parametrize("name", [n for n in ALL if _dtype(n, True) != _dtype(n)])
def test_v2_big_endian(tmp_path, name):
    dt = _dtype(name, big=True)
    data = sample((5, 4), dt, seed=3)
    path = tmp_path / "a.zarr"
    _write(path, data, chunks=(2, 4), zarr_format=2)
    check_read(path, data, tmp_path)


@pytest.mark.parametrize("name", [n for n in NUMERIC + TIMES + ["U5"] if _dtype(n, True) != _dtype(n)])
def test_v3_bytes_codec_big_endian(tmp_path, name):
    data = sample((5, 4), _dtype(name), seed=4)
    path = tmp_path / "a.zarr"
    _write(path, data, chunks=(2, 3), zarr_format=3, serializer=zarr.codecs.BytesCodec(endian="big"))
    # the chunks hold big-endian bytes, so arraystore reports the stored (big-endian) dtype
    check_read(path, data.astype(_dtype(name, big=True)), tmp_path)


@pytest.mark.parametrize("name", ["i2", "f8", "c8", "U3", "struct"])
def test_v2_fortran_order(tmp_path, name):
    data = sample((4, 3, 5), _dtype(name), seed=5)
    path = tmp_path / "a.zarr"
    _write(path, data, chunks=(3, 2, 5), zarr_format=2, order="F")
    with arraystore.open(path) as s:
        assert s.order == "F"
    check_read(path, data, tmp_path)


@pytest.mark.parametrize("perm", [(1, 0), (0, 1)])
@pytest.mark.parametrize("name", ["u2", "f4"])
def test_v3_transpose_2d(tmp_path, perm, name):
    data = sample((6, 4), _dtype(name), seed=6)
    path = tmp_path / "a.zarr"
    _write(path, data, chunks=(4, 3), zarr_format=3, filters=[zarr.codecs.TransposeCodec(order=perm)])
    check_read(path, data, tmp_path)


@pytest.mark.parametrize("perm", [(2, 0, 1), (1, 2, 0), (2, 1, 0)])
def test_v3_transpose_3d(tmp_path, perm):
    data = sample((3, 4, 5), "i4", seed=7)
    path = tmp_path / "a.zarr"
    _write(path, data, chunks=(2, 3, 5), zarr_format=3, filters=[zarr.codecs.TransposeCodec(order=perm)])
    check_read(path, data, tmp_path)


COMPRESSORS: dict[str, Any] = {
    "zstd": lambda fmt: zarr.codecs.ZstdCodec(level=3) if fmt == 3 else __import__("numcodecs").Zstd(level=3),
    "blosc": lambda fmt: zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")
    if fmt == 3
    else __import__("numcodecs").Blosc(cname="lz4", clevel=5, shuffle=2),
    "gzip": lambda fmt: zarr.codecs.GzipCodec(level=6) if fmt == 3 else __import__("numcodecs").GZip(level=6),
}


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("codec", sorted(COMPRESSORS))
@pytest.mark.parametrize("name", ["u1", "f8", "c16", "S7", "struct"])
def test_compressors(tmp_path, fmt, codec, name):
    data = sample((7, 9), _dtype(name), seed=8)
    path = tmp_path / "a.zarr"
    _write(path, data, chunks=(3, 4), zarr_format=fmt, compressors=[COMPRESSORS[codec](fmt)])
    check_read(path, data, tmp_path, convert=("npy", "zarr"))


@pytest.mark.parametrize("index_location", ["start", "end"])
@pytest.mark.parametrize("name", ["i8", "f4", "bool"])
def test_sharded(tmp_path, index_location, name):
    data = sample((8, 12), _dtype(name), seed=9)
    path = tmp_path / "a.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = zarr.create_array(
            zarr.storage.LocalStore(path),
            shape=data.shape,
            dtype=data.dtype,
            shards=(4, 6),
            chunks=(2, 3),
            compressors=[zarr.codecs.ZstdCodec()],
        )
    if index_location == "start":  # zarr-python writes index at end; rewrite via explicit codec
        arr = zarr.create_array(
            zarr.storage.LocalStore(path),
            shape=data.shape,
            dtype=data.dtype,
            chunks=(4, 6),
            serializer=zarr.codecs.ShardingCodec(chunk_shape=(2, 3), index_location="start"),
            compressors=None,
            overwrite=True,
        )
    arr[...] = data
    with arraystore.open(path) as s:
        assert s.chunks == (4, 6)
    check_read(path, data, tmp_path, convert=("npy", "zarr"))


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize(
    ("name", "fill"),
    [
        ("f8", float("nan")),
        ("f4", -0.0),
        ("f2", float("inf")),
        ("i2", -7),
        ("u8", 2**64 - 1),
        ("c8", complex(float("nan"), 1.0)),
        ("bool", True),
        ("S4", b"zz"),
        ("M8[s]", np.datetime64("NaT", "s")),
    ],
)
def test_fill_value_and_missing_chunks(tmp_path, fmt, name, fill):
    dt = np.dtype(name)
    path = tmp_path / "a.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = zarr.create_array(
            zarr.storage.LocalStore(path), shape=(6, 6), dtype=dt, chunks=(3, 3), fill_value=fill, zarr_format=fmt
        )
        part = sample((3, 3), dt, seed=10)
        arr[:3, :3] = part  # three of four chunks never written
    want = np.full((6, 6), fill, dt)
    want[:3, :3] = part
    same_bytes(_zarr_read(path), want, "zarr-python's own read")
    check_read(path, want, tmp_path)


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("name", ["f8", "i2", "U3", "struct", "bool"])
def test_zero_d(tmp_path, fmt, name):
    data = sample((), _dtype(name), seed=11)
    path = tmp_path / "a.zarr"
    _write(path, data, zarr_format=fmt)
    check_read(path, data, tmp_path)


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("shape", [(0,), (0, 4), (3, 0, 2)])
def test_zero_size(tmp_path, fmt, shape):
    data = np.zeros(shape, ">f8" if fmt == 2 else "<f8")
    path = tmp_path / "a.zarr"
    _write(path, data, zarr_format=fmt, chunks=tuple(max(1, s) for s in shape))
    check_read(path, data, tmp_path)


@pytest.mark.parametrize("fmt", [2, 3])
def test_dimension_names_and_attrs(tmp_path, fmt):
    data = sample((3, 4), "f4", seed=12)
    path = tmp_path / "a.zarr"
    attrs = {"units": "K", "scale": [1, 2], "nested": {"a": None, "b": [True, 1.5]}}
    names = {"dimension_names": ("y", "x")} if fmt == 3 else {}
    _write(path, data, attributes=attrs, zarr_format=fmt, **names)
    check_read(path, data, tmp_path, attrs=attrs)


@pytest.mark.parametrize("fmt", [2, 3])
def test_groups_with_nested_arrays(tmp_path, fmt):
    path = tmp_path / "h.zarr"
    root = zarr.open_group(zarr.storage.LocalStore(path), mode="w", zarr_format=fmt)
    a = sample((4, 3), "i4", seed=13)
    b = sample((5,), "f8", seed=14)
    root.create_array("top", shape=a.shape, dtype=a.dtype, chunks=(2, 3))[...] = a
    root.create_group("g1").create_group("g2").create_array("deep", shape=b.shape, dtype=b.dtype, chunks=(2,))[...] = b
    check_read(f"{path}::g1/g2/deep", b, tmp_path)
    check_read(f"{path}::/top", a, tmp_path)
    check_refused(f"{path}::g1", arraystore.errors.MetadataError)


@pytest.mark.parametrize("fmt", [2, 3])
def test_variable_length_strings_refused(tmp_path, fmt):
    path = tmp_path / "a.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = zarr.create_array(zarr.storage.LocalStore(path), shape=(3,), dtype=str, zarr_format=fmt)
        arr[...] = np.array(["a", "bcd", ""], dtype=object)
    check_refused(path, UnsupportedDtypeError)


def _numcodecs() -> Any:
    return pytest.importorskip("numcodecs", reason="zarr v2 filters come from numcodecs")


V2_FILTERS: dict[str, Any] = {
    "delta": ("i4", lambda nc: [nc.Delta(dtype="i4")]),
    "fixedscaleoffset": ("f8", lambda nc: [nc.FixedScaleOffset(offset=1000, scale=10, dtype="f8", astype="i4")]),
    "quantize": ("f8", lambda nc: [nc.Quantize(digits=3, dtype="f8")]),
    "astype": ("f8", lambda nc: [nc.AsType(encode_dtype="f4", decode_dtype="f8")]),
    "packbits": ("bool", lambda nc: [nc.PackBits()]),
    "shuffle": ("u8", lambda nc: [nc.Shuffle(elementsize=8)]),
    "bitround": ("f4", lambda nc: [nc.BitRound(keepbits=6)]),
}


@pytest.mark.parametrize("name", sorted(V2_FILTERS))
def test_v2_filters(tmp_path, name):
    """Filters transform the stored values: arraystore must give what zarr-python decodes."""
    nc = _numcodecs()
    dtype, filters = V2_FILTERS[name]
    data = sample((6, 5), dtype, seed=15)
    if dtype.startswith("f"):
        data = np.nan_to_num(data, nan=1.5, posinf=2.5, neginf=-2.5) % 500  # the lossy filters need finite values
    path = tmp_path / "a.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _write(path, data, chunks=(3, 5), zarr_format=2, filters=filters(nc))
    want = _zarr_read(path)
    check_read(path, want, tmp_path, convert=("npy", "zarr"))


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("separator", ["/", "."])
def test_chunk_key_separators(tmp_path, fmt, separator):
    data = sample((5, 6, 4), "i2", seed=16)
    path = tmp_path / "a.zarr"
    encoding = {"name": "v2" if fmt == 2 else "default", "separator": separator}
    _write(path, data, chunks=(2, 3, 4), zarr_format=fmt, chunk_key_encoding=encoding)
    nested = any(p.is_dir() for p in path.iterdir())
    assert nested == (separator == "/")
    check_read(path, data, tmp_path)


def test_v3_default_encoding_with_v2_keys(tmp_path):
    data = sample((4, 4), "f4", seed=17)
    path = tmp_path / "a.zarr"
    _write(path, data, chunks=(2, 2), zarr_format=3, chunk_key_encoding={"name": "v2", "separator": "."})
    check_read(path, data, tmp_path)


@pytest.mark.parametrize("fmt", [2, 3])
def test_missing_chunks_without_fill_value(tmp_path, fmt):
    path = tmp_path / "a.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = zarr.create_array(
            zarr.storage.LocalStore(path), shape=(4, 4), dtype="<i4", chunks=(2, 2), fill_value=None, zarr_format=fmt
        )
        arr[2:, 2:] = 7
    check_read(path, _zarr_read(path), tmp_path)


def test_sharded_with_missing_inner_chunks_and_transpose(tmp_path):
    path = tmp_path / "a.zarr"
    arr = zarr.create_array(
        zarr.storage.LocalStore(path),
        shape=(8, 6),
        dtype="<f8",
        shards=(4, 6),
        chunks=(2, 3),
        fill_value=float("nan"),
        filters=[zarr.codecs.TransposeCodec(order=(1, 0))],
    )
    arr[0:2, 0:3] = sample((2, 3), "f8", seed=18)
    arr[6:8, 3:6] = sample((2, 3), "f8", seed=19)
    check_read(path, _zarr_read(path), tmp_path, convert=("raw", "zarr"))


@pytest.mark.parametrize("name", ["V3", "V8"])
@pytest.mark.parametrize("fmt", [2, 3])
def test_raw_bytes(tmp_path, fmt, name):
    data = sample((3, 4), name, seed=20)
    path = tmp_path / "a.zarr"
    _write(path, data, chunks=(2, 2), zarr_format=fmt)
    check_read(path, data, tmp_path)


def test_zip_store(tmp_path):
    data = sample((5, 4), "<c8", seed=21)
    path = tmp_path / "a.zarr.zip"
    store = zarr.storage.ZipStore(path, mode="w")
    arr = zarr.create_array(store, shape=data.shape, dtype=data.dtype, chunks=(2, 2), compressors=None)
    arr[...] = data
    store.close()
    check_read(path, data, tmp_path)


@pytest.mark.parametrize("fmt", [2, 3])
def test_consolidated_group(tmp_path, fmt):
    path = tmp_path / "h.zarr"
    root = zarr.open_group(zarr.storage.LocalStore(path), mode="w", zarr_format=fmt)
    a = sample((4, 3), ">u2" if fmt == 2 else "<u2", seed=22)
    root.create_group("g").create_array("a", shape=a.shape, dtype=a.dtype, chunks=(2, 3))[...] = a
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(zarr.storage.LocalStore(path))
    check_read(f"{path}::g/a", a, tmp_path)


def test_v2_structured_big_endian_fortran(tmp_path):
    dt = np.dtype([("a", ">i4"), ("b", "<f8"), ("c", "S2")])
    data = sample((3, 4), dt, seed=23)
    path = tmp_path / "a.zarr"
    _write(path, data, chunks=(2, 3), zarr_format=2, order="F")
    check_read(path, data, tmp_path)


@pytest.mark.parametrize(
    ("fmt", "name"),
    [(f, n) for f in (2, 3) for n in ("U3", "S2", "struct", "V4")] + [(2, ">f8"), (2, ">M8[ms]")],
)  # zarr v3 has no big-endian data types: big-endian v3 is the bytes codec, tested above
def test_nonzero_fill_missing_chunks_other_types(tmp_path, fmt, name):
    dt = _dtype(name)
    fill = sample((7,), dt, seed=24)[3]
    path = tmp_path / "a.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = zarr.create_array(
            zarr.storage.LocalStore(path), shape=(4, 6), dtype=dt, chunks=(2, 3), fill_value=fill, zarr_format=fmt
        )
        arr[2:, :3] = sample((2, 3), dt, seed=25)
    want = _zarr_read(path)
    same_bytes(want[0, :1], np.array([fill], dt), "zarr-python's fill value")
    check_read(path, want, tmp_path, convert=("raw", "hdf5"))


@pytest.mark.parametrize("name", ["i2", "f8", "c8", "M8[us]"])
def test_v2_big_endian_fortran_compressed(tmp_path, name):
    dt = _dtype(name, big=True)
    data = sample((3, 5, 4), dt, seed=26)
    path = tmp_path / "a.zarr"
    _write(path, data, chunks=(2, 3, 3), zarr_format=2, order="F", compressors=[COMPRESSORS["zstd"](2)])
    check_read(path, data, tmp_path)
