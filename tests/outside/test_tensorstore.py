"""Zarr arrays written by TensorStore's ``zarr3`` and ``zarr`` (v2) drivers, read back by arraystore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

ts = pytest.importorskip("tensorstore", reason="TensorStore is the writer under test")

from arraystore.errors import UnsupportedDtypeError  # noqa: E402

from .oracle import check_read, check_refused, same_bytes  # noqa: E402
from .values import sample  # noqa: E402

ZARR3_DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "float16", "float32", "float64", "complex64", "complex128"]  # fmt: skip


def _ts_write(spec: dict[str, Any], data: np.ndarray | None, where: Any = ...) -> np.ndarray:
    store = ts.open(spec, create=True, delete_existing=True).result()
    if data is not None:
        store[where].write(data).result()
    return np.asarray(store.read().result())


def _zarr3(path: Path, shape: tuple[int, ...], dtype: str, *, chunks: tuple[int, ...], codecs: Any = None,
           fill: Any = None, dims: Any = None) -> dict[str, Any]:  # fmt: skip
    md: dict[str, Any] = {
        "shape": list(shape),
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
    }
    if codecs is not None:
        md["codecs"] = codecs
    if fill is not None:
        md["fill_value"] = fill
    if dims is not None:
        md["dimension_names"] = dims
    return {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}, "metadata": md}


def _zarr2(path: Path, shape: tuple[int, ...], dtype: Any, *, chunks: tuple[int, ...], order: str = "C",
           compressor: Any = None, fill: Any = None) -> dict[str, Any]:  # fmt: skip
    md: dict[str, Any] = {
        "shape": list(shape),
        "chunks": list(chunks),
        "dtype": dtype,
        "order": order,
        "compressor": compressor,
        "fill_value": fill,
    }
    return {"driver": "zarr", "kvstore": {"driver": "file", "path": str(path)}, "metadata": md}


@pytest.mark.parametrize("endian", ["little", "big"])
@pytest.mark.parametrize("dtype", ZARR3_DTYPES)
def test_zarr3_dtypes(tmp_path, dtype, endian):
    data = sample((5, 6), dtype, seed=len(dtype))
    codecs = [{"name": "bytes", "configuration": {"endian": endian}}] if np.dtype(dtype).itemsize > 1 else None
    path = tmp_path / "a.zarr"
    got = _ts_write(_zarr3(path, data.shape, dtype, chunks=(2, 4), codecs=codecs), data)
    same_bytes(got, data, "TensorStore's own read")
    want = data.astype(data.dtype.newbyteorder(">")) if endian == "big" and data.dtype.itemsize > 1 else data
    check_read(path, want, tmp_path)


def test_zarr3_bfloat16_refused(tmp_path):
    path = tmp_path / "a.zarr"
    _ts_write(_zarr3(path, (4,), "bfloat16", chunks=(2,)), None)
    check_refused(path, UnsupportedDtypeError)


@pytest.mark.parametrize(
    "inner",
    [
        [{"name": "bytes", "configuration": {"endian": "little"}}],
        [{"name": "bytes", "configuration": {"endian": "big"}}, {"name": "zstd", "configuration": {"level": 1}}],
        [{"name": "transpose", "configuration": {"order": [1, 0]}}, {"name": "bytes"}, {"name": "gzip"}],
    ],
    ids=["plain", "big-zstd", "transpose-gzip"],
)
@pytest.mark.parametrize("index_location", ["start", "end"])
def test_zarr3_sharding(tmp_path, inner, index_location):
    data = sample((8, 12), "float32", seed=21)
    codecs = [
        {
            "name": "sharding_indexed",
            "configuration": {
                "chunk_shape": [2, 3],
                "codecs": inner,
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
                "index_location": index_location,
            },
        }
    ]
    path = tmp_path / "a.zarr"
    _ts_write(_zarr3(path, data.shape, "float32", chunks=(4, 6), codecs=codecs), data)
    big = inner[0].get("configuration", {}).get("endian") == "big"
    check_read(path, data.astype(">f4") if big else data, tmp_path, convert=("npy", "zarr"))


@pytest.mark.parametrize(
    "codecs",
    [
        [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "blosc", "configuration": {
            "cname": "zstd", "clevel": 3, "shuffle": "shuffle", "typesize": 8, "blocksize": 0}}],
        [{"name": "transpose", "configuration": {"order": [2, 0, 1]}}, {"name": "bytes"}, {"name": "crc32c"}],
    ],
    ids=["blosc", "transpose3d-crc32c"],
)  # fmt: skip
def test_zarr3_codecs(tmp_path, codecs):
    data = sample((3, 4, 5), "int64", seed=22)
    path = tmp_path / "a.zarr"
    _ts_write(_zarr3(path, data.shape, "int64", chunks=(2, 3, 5), codecs=codecs, dims=["t", "y", "x"]), data)
    check_read(path, data, tmp_path, convert=("npy", "zarr"))


@pytest.mark.parametrize(
    ("dtype", "fill"),
    [("float64", "NaN"), ("float32", "-Infinity"), ("float64", "0x7ff8000000000bad"), ("int16", -3),
     ("uint64", 18446744073709551615), ("complex64", [1.5, "NaN"]), ("bool", True)],
)  # fmt: skip
def test_zarr3_fill_and_missing_chunks(tmp_path, dtype, fill):
    path = tmp_path / "a.zarr"
    part = sample((2, 3), dtype, seed=23)
    got = _ts_write(_zarr3(path, (6, 6), dtype, chunks=(2, 3), fill=fill), part, np.s_[:2, :3])
    assert got.shape == (6, 6)
    check_read(path, got, tmp_path)


ZARR2_DTYPES = ["|b1", "|i1", "|u1", "<i2", ">i2", "<u4", ">u8", "<f2", ">f4", "<f8", ">f8", "<c8", ">c16"]
# TensorStore has no zarr v2 "<U" types; its "|S<n>" arrays are a trailing dimension of its "char" type,
# which its Python binding cannot fill from numpy (written and read back as empty "|S0"), so none here.


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", ZARR2_DTYPES)
def test_zarr2_dtypes(tmp_path, dtype, order):
    data = sample((5, 4), dtype, seed=31)
    path = tmp_path / "a.zarr"
    compressor = {"id": "zlib", "level": 1} if order == "F" else None
    got = _ts_write(_zarr2(path, data.shape, dtype, chunks=(2, 3), order=order, compressor=compressor), data)
    same_bytes(got, data, "TensorStore's own read")
    check_read(path, data, tmp_path)


def test_zarr2_structured(tmp_path):
    dtype = [["id", "<i4"], ["x", ">f8"], ["n", "<u2"]]  # no "|S" field: see ZARR2_DTYPES
    npdt = np.dtype([("id", "<i4"), ("x", ">f8"), ("n", "<u2")])
    data = sample((4, 3), npdt, seed=32)
    path = tmp_path / "a.zarr"
    blosc = {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1}
    spec = _zarr2(path, data.shape, dtype, chunks=(3, 2), compressor=blosc)
    for i, name in enumerate(npdt.names):
        field = ts.open({**spec, "field": name}, create=i == 0, open=i > 0).result()
        field.write(data[name]).result()
        same_bytes(np.asarray(field.read().result()), data[name], f"TensorStore's own read of {name}")
    check_read(path, data, tmp_path)


@pytest.mark.parametrize(("dtype", "fill"), [("<f8", "NaN"), (">i4", -9), ("<f4", "-Infinity"), ("|u1", 255)])
def test_zarr2_fill_and_missing_chunks(tmp_path, dtype, fill):
    path = tmp_path / "a.zarr"
    part = sample((2, 3), dtype, seed=33)
    got = _ts_write(_zarr2(path, (5, 7), dtype, chunks=(2, 3), fill=fill), part, np.s_[2:4, 3:6])
    check_read(path, got.astype(dtype), tmp_path)


@pytest.mark.parametrize("dtype", ["bfloat16", "int4", "float8_e4m3fn", "float8_e5m2"])
def test_zarr3_types_without_numpy_equivalent_refused(tmp_path, dtype):
    path = tmp_path / "a.zarr"
    try:
        _ts_write(_zarr3(path, (4,), dtype, chunks=(2,)), None)
    except ValueError as exc:
        pytest.skip(f"this TensorStore does not write {dtype} to zarr3: {exc}")
    check_refused(path, UnsupportedDtypeError)


@pytest.mark.parametrize("separator", [".", "/"])
@pytest.mark.parametrize("name", ["default", "v2"])
def test_zarr3_chunk_key_encoding(tmp_path, name, separator):
    data = sample((5, 6), "int32", seed=24)
    path = tmp_path / "a.zarr"
    spec = _zarr3(path, data.shape, "int32", chunks=(2, 4))
    spec["metadata"]["chunk_key_encoding"] = {"name": name, "configuration": {"separator": separator}}
    _ts_write(spec, data)
    check_read(path, data, tmp_path, convert=("zarr",))


@pytest.mark.parametrize("separator", [".", "/"])
def test_zarr2_dimension_separator(tmp_path, separator):
    data = sample((5, 6), "<u2", seed=34)
    path = tmp_path / "a.zarr"
    spec = _zarr2(path, data.shape, "<u2", chunks=(2, 4))
    spec["metadata"]["dimension_separator"] = separator
    _ts_write(spec, data)
    check_read(path, data, tmp_path, convert=("zarr",))


def test_zarr3_sharded_missing_shards_and_inner_chunks(tmp_path):
    codecs = [{"name": "sharding_indexed", "configuration": {"chunk_shape": [2, 2], "codecs": [{"name": "bytes"}]}}]
    path = tmp_path / "a.zarr"
    got = _ts_write(_zarr3(path, (8, 8), "float64", chunks=(4, 4), codecs=codecs, fill="NaN"),
                    sample((1, 3), "float64", seed=25), np.s_[5:6, 1:4])  # fmt: skip
    check_read(path, got, tmp_path, convert=("raw",))
