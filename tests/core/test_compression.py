"""One grammar for compression=, one error type, the same defaults in every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore.compression import CODECS, Compression, parse_compression
from arraystore.errors import BackendError, CompressionError, MetadataError
from arraystore.registry import BACKENDS, backend_class


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, None),
        ("none", None),
        ("zstd", Compression("zstd", 3)),
        ("ZSTD:7", Compression("zstd", 7)),
        ("gzip", Compression("gzip", 6)),
        ("gzip:0", Compression("gzip", 0)),
        ("lzf", Compression("lzf", None)),
        ("blosc", Compression("blosc", 5, (("cname", "lz4"),))),
        ("blosc:5", Compression("blosc", 5, (("cname", "lz4"),))),
        ("blosc:zstd", Compression("blosc", 5, (("cname", "zstd"),))),
        ("blosc:zstd:9", Compression("blosc", 9, (("cname", "zstd"),))),
        ({"codec": "blosc", "level": 2, "cname": "zlib"}, Compression("blosc", 2, (("cname", "zlib"),))),
        (Compression("gzip", 1), Compression("gzip", 1)),
    ],
)
def test_the_grammar(given: Any, expected: Compression | None) -> None:
    assert parse_compression(given) == expected
    if expected is not None:
        assert parse_compression(str(expected)) == expected  # str() is the canonical spelling


@pytest.mark.parametrize(
    "bad", [3, True, 2.5, b"gzip", "snappy", "gzip:11", "gzip:-1", "zstd:0", "zstd:23", "zstd:x", "lzf:3",
            "blosc:nope", "blosc:lz4:5:1", "gzip:1:2", {"level": 3}, {"codec": "gzip", "shuffle": "yes"},
            Compression("gzip", 42)],
)
def test_bad_values_are_one_typed_error(bad: Any) -> None:
    with pytest.raises(CompressionError) as info:
        parse_compression(bad)
    assert isinstance(info.value, (BackendError, MetadataError, ValueError))
    assert "expected" in str(info.value) or "no levels" in str(info.value) or "takes no option" in str(info.value)


@given(codec=st.sampled_from(sorted(CODECS)), level=st.integers(-200, 200))
def test_levels_in_range_are_accepted_and_others_refused(codec: str, level: int) -> None:
    spec = CODECS[codec]
    if spec.levels is None:
        with pytest.raises(CompressionError):
            parse_compression(f"{codec}:{level}")
        return
    lo, hi = spec.levels
    if lo <= level <= hi:
        c = parse_compression(f"{codec}:{level}")
        assert c is not None and c.level == level
    else:
        with pytest.raises(CompressionError, match=f"from {lo} to {hi}"):
            parse_compression(f"{codec}:{level}")


def _create(tmp: Path, backend: str, compression: Any) -> str:
    path = str(tmp / f"a{BACKENDS[backend].suffixes[0]}")
    data = np.arange(600, dtype="<f8").reshape(20, 30)
    chunks = (10, 30) if backend_class(backend).layouts != {"contiguous"} else None
    with arraystore.create(path, data.shape, data.dtype, backend=backend, chunks=chunks,
                           compression=compression) as s:
        s[...] = data
    with arraystore.open(path) as s:
        np.testing.assert_array_equal(s[...], data)
    return path


@pytest.mark.parametrize("backend", [n for n, spec in BACKENDS.items() if spec.creates])  # read-only ones store nothing
@pytest.mark.parametrize("spelling", ["zstd", "gzip", "blosc", "blosc:5", "blosc:zstd:3", "lzf", 3, "gzip:12"])
def test_every_backend_parses_alike_and_refuses_alike(tmp_path: Path, backend: str, spelling: Any) -> None:
    cls = backend_class(backend)
    try:
        c = parse_compression(spelling)
    except CompressionError:
        with pytest.raises(CompressionError):
            _create(tmp_path, backend, spelling)
        assert list(tmp_path.iterdir()) == []
        return
    assert c is not None
    if c.codec not in cls.codecs:
        with pytest.raises(CompressionError) as info:
            _create(tmp_path, backend, spelling)
        assert all(name in str(info.value) for name in cls.codecs)  # names what the backend supports
        assert list(tmp_path.iterdir()) == []
        return
    path = _create(tmp_path, backend, spelling)
    if backend == "hdf5":
        with h5py.File(path, "r") as f:
            ds = f["data"]
            if c.codec == "gzip":
                assert ds.compression == "gzip" and ds.compression_opts == c.level == 6
    elif backend == "zarr":
        arr = zarr.open_array(path, mode="r")
        (codec,) = arr.compressors
        config = codec.to_dict()["configuration"]
        if c.codec == "gzip":
            assert config["level"] == 6
        if c.codec == "zstd":
            assert config["level"] == 3
        if c.codec == "blosc":
            assert config["cname"] == c.option("cname") and config["clevel"] == c.level


def test_convert_refuses_before_writing(tmp_path: Path) -> None:
    src = tmp_path / "a.npy"
    np.save(src, np.arange(10.0))
    for dst, compression in [("b.zarr", "lzf"), ("b.h5", 4), ("b.dat", "zstd")]:
        with pytest.raises(CompressionError):
            arraystore.convert(src, tmp_path / dst, compression=compression)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]
