"""Conversions into Zarr of the arrays with the fewest elements: 0-d, size 0, one element, read by zarr-python itself.

Every dtype family the conversion's chunk writer encodes (either byte order, bool, complex, datetime, bytes,
structured), every codec, with and without shards, from C- and Fortran-order sources: zarr-python reads the
shape and the values numpy holds (in its native byte order).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore

from .conftest import write_source

zarr = pytest.importorskip("zarr", reason="the zarr extra is not installed")

DTYPES = ["|b1", ">i2", "<u8", ">f8", "<c16", ">c8", "<M8[ns]", ">m8[s]", "<i4,>f8", "|S3", ">f2"]
SHAPES = [(), (0,), (0, 5), (7, 0, 3), (1,), (1, 1), (1, 1, 1)]
COMPRESSIONS = [None, "zstd:1", "blosc:lz4:5", "gzip:1"]
CASES = [(d, s, COMPRESSIONS[i % len(COMPRESSIONS)], o, h) for i, (d, s, o, h) in enumerate(itertools.product(
    DTYPES, SHAPES, "CF", [False, True]))
    if not (h and (not s or np.dtype(d).names))]  # 0-d has no shards; zarr-python cannot shard structured items


def _values(dtype: np.dtype[Any], shape: tuple[int, ...], seed: int) -> np.ndarray[Any, Any]:
    raw = np.random.default_rng(seed).integers(1, 255, size=int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8)
    if dtype.kind == "b":
        raw[:] = 1
    out: np.ndarray[Any, Any] = raw.view(dtype).reshape(shape).copy()
    if dtype.kind in "fc":
        out = np.nan_to_num(out)  # NaNs compare unequal: bytes are compared below, values here
    return out


@pytest.mark.parametrize(("dtype", "shape", "compression", "order", "sharded"), CASES)
def test_smallest_arrays_read_by_zarr_python_as_numpy(tmp_path: Path, dtype: str, shape: tuple[int, ...],
                                                      compression: str | None, order: str, sharded: bool) -> None:
    dt = np.dtype(dtype)
    data = _values(dt, shape, len(shape) + dt.itemsize)
    src = write_source(tmp_path / "src.npy", data if order == "C" or not shape else np.asfortranarray(data),
                       order=order if shape else "C")
    options: dict[str, Any] = {"compression": compression}
    if shape:
        options["chunks"] = tuple(max(1, n) for n in shape)
        if sharded:
            options["shards"] = options["chunks"]
    arraystore.convert(src, str(tmp_path / "dst.zarr"), **options)
    got = zarr.open_array(str(tmp_path / "dst.zarr"), mode="r")[...]
    assert got.shape == data.shape
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(data.astype(got.dtype)).tobytes()
    with arraystore.open(str(tmp_path / "dst.zarr")) as s:
        ours = s[...]
    assert ours.dtype == data.dtype and ours.shape == data.shape
    assert np.ascontiguousarray(ours).tobytes() == np.ascontiguousarray(data).tobytes()
