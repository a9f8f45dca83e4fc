"""Property tests: random files made by zarr-python, h5py and spectral, read back by arraystore.

Hypothesis draws the dtype, byte order, shape (including zero-size and 0-d), chunks, layout
options and a conversion backend; the writer makes the file and :func:`check_read` compares
arraystore against the writer's own read, bit for bit.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .oracle import BACKENDS, check_read, same_bytes
from .values import STRUCT, sample

zarr = pytest.importorskip("zarr", reason="zarr-python is a writer under test")
h5py = pytest.importorskip("h5py", reason="h5py is a writer under test")
envi = pytest.importorskip("spectral.io.envi", reason="spectral is a writer under test")

BASE = ["bool", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8", "c8", "c16"]
EXTRA = ["M8[ns]", "m8[us]", "S3", "U2", "struct"]


def _dtype(name: str, big: bool) -> np.dtype:
    dt = STRUCT if name == "struct" else np.dtype(name)
    return dt.newbyteorder(">") if big and dt.itemsize > 1 and dt.kind not in "bSV" and dt.names is None else dt


@st.composite
def shapes_and_chunks(draw: Any, max_ndim: int = 3) -> tuple[tuple[int, ...], tuple[int, ...]]:
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=0, max_size=max_ndim)))
    chunks = tuple(draw(st.integers(1, max(1, s))) for s in shape)
    return shape, chunks


@given(
    name=st.sampled_from(BASE + EXTRA),
    big=st.booleans(),
    fmt=st.sampled_from([2, 3]),
    sc=shapes_and_chunks(),
    order=st.sampled_from(["C", "F"]),
    compressor=st.sampled_from([None, "zstd", "gzip", "blosc"]),
    seed=st.integers(0, 2**16),
    backend=st.sampled_from(sorted(BACKENDS)),
)
def test_zarr_python_files(name, big, fmt, sc, order, compressor, seed, backend):
    shape, chunks = sc
    dt = _dtype(name, big and fmt == 2)
    data = sample(shape, dt, seed)
    kwargs: dict[str, Any] = {"zarr_format": fmt, **({"chunks": chunks} if chunks else {})}
    if fmt == 2 and order == "F":
        kwargs["order"] = "F"
    if big and fmt == 3 and dt.itemsize > 1 and dt.kind not in "bSV" and dt.names is None:
        kwargs["serializer"] = zarr.codecs.BytesCodec(endian="big")
    if compressor is not None:
        import numcodecs

        codec = {"zstd": ("ZstdCodec", "Zstd"), "gzip": ("GzipCodec", "GZip"), "blosc": ("BloscCodec", "Blosc")}
        kwargs["compressors"] = [getattr(zarr.codecs, codec[compressor][0])() if fmt == 3
                                 else getattr(numcodecs, codec[compressor][1])()]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.zarr"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = zarr.create_array(zarr.storage.LocalStore(path), shape=shape, dtype=dt, **kwargs)
            arr[...] = data
            ref = np.asarray(zarr.open_array(zarr.storage.LocalStore(path, read_only=True), mode="r")[...])
        same_bytes(ref, data, "zarr-python's own read")
        stored = kwargs.get("serializer") is not None
        want = data.astype(dt.newbyteorder(">")) if stored else data
        check_read(path, want, Path(tmp), convert=(backend,))


@given(
    name=st.sampled_from(BASE + ["S3", "struct"]),
    big=st.booleans(),
    sc=shapes_and_chunks(),
    layout=st.sampled_from(["contiguous", "chunked", "gzip", "shuffle-lzf"]),
    seed=st.integers(0, 2**16),
    backend=st.sampled_from(sorted(BACKENDS)),
)
def test_h5py_files(name, big, sc, layout, seed, backend):
    shape, chunks = sc
    dt = _dtype(name, big)
    data = sample(shape, dt, seed)
    kwargs: dict[str, Any] = {}
    if layout != "contiguous" and shape and all(shape):
        kwargs["chunks"] = chunks
        if layout == "gzip":
            kwargs["compression"] = "gzip"
        elif layout == "shuffle-lzf":
            kwargs.update(compression="lzf", shuffle=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("g/x", data=data, **kwargs)
        with h5py.File(path, "r") as f:
            same_bytes(f["g/x"][()], data, "h5py's own read")
        check_read(f"{path}::/g/x", data, Path(tmp), convert=(backend,))


#: spectral's (line, sample, band) to the file layout arraystore gives.
FROM_SPECTRAL = {"bsq": (2, 0, 1), "bil": (0, 2, 1), "bip": (0, 1, 2)}


@given(
    name=st.sampled_from(["u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8", "c8", "c16"]),
    byteorder=st.sampled_from([0, 1]),
    interleave=st.sampled_from(sorted(FROM_SPECTRAL)),
    shape=st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(1, 4)),
    seed=st.integers(0, 2**16),
    backend=st.sampled_from(sorted(BACKENDS)),
)
def test_spectral_files(name, byteorder, interleave, shape, seed, backend):
    cube = sample(shape, name, seed)
    with tempfile.TemporaryDirectory() as tmp:
        hdr = Path(tmp) / "c.hdr"
        envi.save_image(str(hdr), cube, interleave=interleave, byteorder=byteorder, ext=".img")
        ref = np.array(envi.open(str(hdr)).open_memmap(interleave=interleave))
        want = np.ascontiguousarray(cube.transpose(FROM_SPECTRAL[interleave]))
        want = want.astype(want.dtype.newbyteorder(">" if byteorder else "<"))
        assert ref.dtype == want.dtype
        same_bytes(ref, want, "spectral's own read")
        check_read(Path(tmp) / "c.img", want, Path(tmp), convert=(backend,))
