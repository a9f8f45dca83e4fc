"""store[key] of Zarr v3 arrays read by arraystore's own chunk reader (backends/_zarr_read.py).

Arrays are written by zarr-python itself (codecs and layouts arraystore never writes:
big-endian ``bytes``, crc32c, shard index at the start, missing chunks and inner
chunks, edge chunks) and by arraystore (F order through ``transpose``, big-endian
dtypes); every key numpy takes on basic indexing (ints, negative ints, slices with
any step, ``...``) must give numpy's answer on the data, and zarr-python must read
the same array.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
import zarr.codecs
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.backends import _zarr_read
from arraystore.errors import MetadataError, UnsafeInputError

DTYPES = ["|b1", "|i1", "<u2", ">i2", "<i4", ">u4", "<f4", ">f8", "<c8", ">c16", "<M8[s]", "<m8[ms]"]


def _values(dtype: np.dtype[Any], shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray[Any, Any]:
    ints = rng.integers(-100, 100, size=shape)
    if dtype.kind == "b":
        return (ints > 0).astype(dtype)
    if dtype.kind == "c":
        return (ints + 1j * rng.integers(-9, 9, size=shape)).astype(dtype)
    if dtype.kind in "mM":
        return ints.astype(np.int64).view(dtype.newbyteorder("=")).astype(dtype)
    if dtype.kind == "u":
        return np.abs(ints).astype(dtype)
    return ints.astype(dtype)


def _compressors(name: str) -> list[Any]:
    return {
        "none": [],
        "zstd": [zarr.codecs.ZstdCodec(level=1)],
        "zstd+crc": [zarr.codecs.ZstdCodec(level=1), zarr.codecs.Crc32cCodec()],
        "blosc": [zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")],
        "gzip": [zarr.codecs.GzipCodec(level=1)],
    }[name]


@st.composite
def keys(draw: Any, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """A basic numpy key: per axis an int (maybe negative) or a slice (any bounds, steps of either sign)."""
    key: list[Any] = []
    for n in shape:
        if draw(st.booleans()) and n:
            key.append(draw(st.integers(-n, n - 1)))
        else:
            bound = st.none() | st.integers(-n - 2, n + 2)
            step = draw(st.none() | st.sampled_from([1, 2, 3, -1, -2, 5]))
            key.append(slice(draw(bound), draw(bound), step))
    if key and draw(st.booleans()):
        at = draw(st.integers(0, len(key)))
        cut = draw(st.integers(0, len(key) - at))
        key[at : at + cut] = [Ellipsis]
    return tuple(key)


@st.composite
def cases(draw: Any) -> dict[str, Any]:
    shape = tuple(draw(st.lists(st.integers(1, 13), min_size=1, max_size=3)))
    chunks = tuple(draw(st.integers(1, n + 1)) for n in shape)  # n + 1: a chunk larger than the array
    sharded = draw(st.booleans())
    shards = tuple(c * draw(st.integers(1, 3)) for c in chunks) if sharded else None
    return {
        "dtype": np.dtype(draw(st.sampled_from(DTYPES))),
        "shape": shape,
        "chunks": chunks,
        "shards": shards,
        "compressor": draw(st.sampled_from(["none", "zstd", "zstd+crc", "blosc", "gzip"])),
        "index_at_start": draw(st.booleans()),
        "big_bytes": draw(st.booleans()),
        "written": tuple(slice(0, draw(st.integers(0, n))) for n in shape),  # the rest is never written
        "seed": draw(st.integers(0, 2**16)),
        "keys": [draw(keys(shape)) for _ in range(4)],
    }


def _zarr_python_array(path: Path, case: dict[str, Any]) -> np.ndarray[Any, Any]:
    """Write the case with zarr-python; return what the array holds (fill value where never written)."""
    dtype, shape = case["dtype"], case["shape"]
    rng = np.random.default_rng(case["seed"])
    fill = _values(dtype, (), rng)
    data = np.full(shape, fill, dtype)
    data[case["written"]] = _values(dtype, data[case["written"]].shape, rng)
    serializer: Any = zarr.codecs.BytesCodec(endian="big" if case["big_bytes"] else "little")
    compressors: Any = _compressors(case["compressor"])
    if case["shards"] is not None:
        serializer = zarr.codecs.ShardingCodec(
            chunk_shape=case["chunks"], codecs=[serializer, *compressors],
            index_location="start" if case["index_at_start"] else "end",
        )
        compressors, chunks = None, case["shards"]
    else:
        chunks = case["chunks"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's UnstableSpecificationWarning for time types
        arr = zarr.create_array(str(path), shape=shape, dtype=dtype.newbyteorder("="), chunks=chunks,
                                serializer=serializer, compressors=compressors, fill_value=fill[()], zarr_format=3,
                                config={"write_empty_chunks": False})
        if all(s.stop for s in case["written"]):
            arr[case["written"]] = data[case["written"]]
        back = np.asarray(arr[...])
    assert back.tobytes() == data.astype(back.dtype).tobytes()  # zarr-python reads what it wrote (the oracle holds)
    return data


@settings(max_examples=40)
@given(case=cases())
def test_keys_match_numpy_on_zarr_python_arrays(tmp_path_factory: pytest.TempPathFactory, case: dict[str, Any]) -> None:
    path = tmp_path_factory.mktemp("zr") / "a.zarr"
    data = _zarr_python_array(path, case)
    with arraystore.open(str(path)) as store:
        assert store._chunk_reader() is not None  # type: ignore[attr-defined]  # the path under test
        for key in case["keys"]:
            got = store[key]
            want = data[key]
            assert got.shape == np.shape(want), key
            assert got.astype(data.dtype.newbyteorder("=")).tobytes() == np.asarray(want).astype(
                data.dtype.newbyteorder("=")).tobytes(), key


@settings(max_examples=30)
@given(
    dtype=st.sampled_from(["<i4", ">f8", ">c8", "<u2", ">M8[ns]"]),
    shape=st.lists(st.integers(1, 11), min_size=1, max_size=3).map(tuple),
    order=st.sampled_from(["C", "F"]),
    sharded=st.booleans(),
    compression=st.sampled_from([None, "zstd:1", "blosc:lz4:5", "gzip:1"]),
    data_seed=st.integers(0, 1000),
    st_keys=st.data(),
)
def test_keys_match_numpy_on_arraystore_arrays(tmp_path_factory: pytest.TempPathFactory, dtype: str,
                                               shape: tuple[int, ...], order: str, sharded: bool,
                                               compression: str | None, data_seed: int, st_keys: Any) -> None:
    path = tmp_path_factory.mktemp("zr") / "a.zarr"
    dt = np.dtype(dtype)
    data = _values(dt, shape, np.random.default_rng(data_seed))
    chunks = tuple(max(1, n // 2) for n in shape)
    shards = tuple(2 * c for c in chunks) if sharded else None
    with arraystore.create(str(path), shape, dt, chunks=chunks, shards=shards, order=order,
                           compression=compression) as s:
        s[...] = data
    with arraystore.open(str(path)) as store:
        assert store._chunk_reader() is not None  # type: ignore[attr-defined]
        assert store[...].dtype == dt and store[...].tobytes() == data.tobytes()
        for _ in range(4):
            key = st_keys.draw(keys(shape))
            got, want = store[key], data[key]
            assert got.dtype == dt and got.shape == np.shape(want) and got.tobytes() == np.asarray(want).astype(dt).tobytes()
    assert np.asarray(zarr.open_array(str(path), mode="r")[...]).astype(dt).tobytes() == data.tobytes()


def test_large_read_on_threads_matches_zarr_python(tmp_path: Path) -> None:
    """Reads above the threading threshold: chunks decoded straight into the result and through scratch chunks.

    Shards: several per read (a thread per shard) and one shard for the whole array (its inner chunks fanned out).
    """
    data = np.random.default_rng(3).normal(size=(300, 1100)).astype("<f4")
    for shards in (None, (64, 1100), (320, 1100)):
        path = tmp_path / f"a{shards}.zarr"
        with arraystore.create(str(path), data.shape, data.dtype, chunks=(16, 1100), shards=shards,
                               compression="zstd:1") as s:
            s[...] = data
        with arraystore.open(str(path)) as store:
            assert store[...].nbytes > _zarr_read._THREADED_BYTES
            for key in [(Ellipsis,), (slice(5, 290), slice(3, 1000)), (slice(None, None, -3),), (slice(100, 110),)]:
                assert store[key].tobytes() == np.ascontiguousarray(data[key]).tobytes(), key
        assert np.array_equal(zarr.open_array(str(path), mode="r")[...], data)


@pytest.mark.parametrize("sharded", [False, True])
def test_damaged_chunk_is_a_typed_error(tmp_path: Path, sharded: bool) -> None:
    """A truncated chunk (shard whose index points past its end): a typed error, not values."""
    path = tmp_path / "a.zarr"
    data = np.arange(64 * 64, dtype="<i4").reshape(64, 64)
    with arraystore.create(str(path), data.shape, data.dtype, chunks=(8, 64), shards=(32, 64) if sharded else None,
                           compression="zstd:1") as s:
        s[...] = data
    victim = sorted(p for p in (path / "c").rglob("*") if p.is_file())[0]
    raw = victim.read_bytes()
    victim.write_bytes(raw[: len(raw) // 2] if not sharded else raw[:40] + raw[-8 - 16 * 4 :])  # truncated
    with arraystore.open(str(path)) as store, pytest.raises((MetadataError, UnsafeInputError)):
        store[...]


def test_decompression_bomb_refused_before_decoding(tmp_path: Path) -> None:
    """A chunk whose zstd frame declares more than the chunk's size: refused as zarr's reads are."""
    import numcodecs

    path = tmp_path / "a.zarr"
    with arraystore.create(str(path), (64,), "<u1", chunks=(64,), compression="zstd:1") as s:
        s[...] = np.zeros(64, "u1")
    (path / "c" / "0").write_bytes(numcodecs.Zstd(1).encode(np.zeros(10 * 2**20, "u1")))
    with arraystore.open(str(path)) as store, pytest.raises(UnsafeInputError, match="decompression bomb"):
        store[...]


def test_axis_parts_cover_every_position() -> None:
    for start, n, step, unit in [(0, 10, 1, 3), (2, 7, 3, 4), (5, 4, 10, 1), (1, 0, 2, 5), (3, 5, 2, 100)]:
        seen = []
        for i, k0, k1 in _zarr_read.axis_parts(start, n, step, unit):
            assert k0 < k1
            for k in range(k0, k1):
                assert (start + k * step) // unit == i
                seen.append(k)
        assert seen == list(range(n))


def test_folder_at_a_chunk_key_reads_as_absent_like_zarr_python(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    zarr.create_array(str(path), shape=(16,), dtype="<i2", chunks=(8,), fill_value=-7)[...] = np.arange(16, dtype="<i2")
    chunk = path / "c" / "0"
    chunk.unlink()
    (chunk / "x").mkdir(parents=True)
    want = np.asarray(zarr.open_array(str(path), mode="r")[...])
    assert want[:8].tolist() == [-7] * 8
    with arraystore.open(str(path)) as store:
        assert store._chunk_reader() is not None  # type: ignore[attr-defined]
        assert store[...].tobytes() == want.tobytes()


def test_thread_buffer_is_reused_for_chunks_a_little_larger(tmp_path: Path) -> None:
    """Compressed chunks differ in size by a few bytes: the thread's read buffer is not made again for each record
    size (a new buffer costs a zeroed page per page touched), and what it returns is the file's bytes."""
    arr = zarr.create_array(str(tmp_path / "a.zarr"), shape=(64,), chunks=(8,), dtype="<i4", zarr_format=3)
    arr[...] = np.arange(64, dtype="<i4")
    with arraystore.open(str(tmp_path / "a.zarr")) as store:
        files = _zarr_read._Files(store.zarr_array.store_path.store)  # type: ignore[attr-defined]
    sizes = [100_000, 100_001, 100_500, 112_000]  # within an eighth of the first
    for k, n in enumerate(sizes):
        (tmp_path / "a.zarr" / f"blob{k}").write_bytes(bytes([k]) * n)
    got = [files.get(f"blob{k}", reuse=True) for k in range(len(sizes))]
    assert all(g is not None for g in got)
    assert len({id(g.base) for g in got if g is not None}) == 1
    last = got[-1]
    assert last is not None and last.size == sizes[-1] and bytes(last) == bytes([3]) * sizes[-1]
    fresh = files.get("blob0")  # not reused: a buffer of its own
    assert fresh is not None and bytes(fresh) == bytes([0]) * sizes[0] and not np.shares_memory(fresh, last)
