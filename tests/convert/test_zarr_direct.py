"""Zarr destinations written by the conversion's own chunk writer (conversion/_zarr_direct.py).

The oracle is zarr-python itself: the same array written by ``zarr.Array.__setitem__``
(with ``write_empty_chunks=False``) must give the same chunk files, byte for byte, and
both zarr-python and TensorStore must read our array as numpy holds it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.conversion._zarr_direct import ZarrChunkWriter

from .conftest import Stop, stop_after, truncate_on_second_call, write_source

zarr = pytest.importorskip("zarr", reason="the zarr extra is not installed")
zstandard = pytest.importorskip("zstandard", reason="the zarr extra is not installed")

DTYPES = ["|b1", "|i1", "<u2", ">i4", "<f4", ">f8", "<c8", "<M8[s]", "<m8[ms]"]
COMPRESSIONS = [None, "zstd:1", "gzip:1", "blosc:lz4:5", "blosc:zstd:3"]


_GZIP_MTIME = re.compile(rb"\x1f\x8b\x08\x00....", re.DOTALL)


def _chunk_files(folder: Path) -> dict[str, bytes]:
    """Every file but the metadata; gzip's header time (numcodecs writes the clock's) zeroed; a zstd chunk decoded."""
    out = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            p = Path(dirpath) / name
            rel = p.relative_to(folder).as_posix()
            if rel != "zarr.json":
                out[rel] = _zstd_frame(_GZIP_MTIME.sub(b"\x1f\x8b\x08\x00\x00\x00\x00\x00", p.read_bytes()))
    return out


def _zstd_frame(raw: bytes) -> bytes:
    """A file that is one zstd frame (our streamed chunks need not equal numcodecs' one-shot bytes): its header
    fields that matter and its content; anything else as it is."""
    if not raw.startswith(b"\x28\xb5\x2f\xfd"):
        return raw
    frame = zstandard.get_frame_parameters(raw)
    content = zstandard.ZstdDecompressor().decompress(raw)
    assert frame.content_size == len(content)  # the size is in the header
    return b"zstd frame, checksum %d: " % frame.has_checksum + content


def _zarr_python_twin(ours: Any, folder: Path, data: np.ndarray[Any, Any]) -> Path:
    """The same array (same codecs, chunks, shards) written by zarr-python, skipping fill chunks as zarr does."""
    twin = zarr.create_array(
        str(folder), shape=ours.shape, dtype=ours.dtype, chunks=ours.chunks, shards=ours.shards,
        filters=ours.filters, serializer=ours.serializer, compressors=ours.compressors,
        fill_value=ours.fill_value, config={"write_empty_chunks": False}, zarr_format=3,
    )
    twin[...] = data
    return folder


def _data(dtype: str, shape: tuple[int, ...], seed: int, zero_rows: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    values = rng.integers(-40, 40, size=shape)
    if shape and zero_rows:
        values[:zero_rows] = 0  # whole chunk rows equal to the fill value: not written
    dt = np.dtype(dtype)
    if dt.kind in "mM":
        return values.astype(dt.newbyteorder("=").str[1:]).astype(dt)
    return values.astype(dt)


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(1, 23), min_size=1, max_size=3).map(tuple),
    chunk_seed=st.integers(0, 10_000),
    compression=st.sampled_from(COMPRESSIONS),
    sharded=st.booleans(),
    order=st.sampled_from(["C", "F"]),
    src_backend=st.sampled_from(["npy", "zarr"]),
    zero_rows=st.integers(0, 6),
)
def test_same_chunk_bytes_as_zarr_python(tmp_path_factory: pytest.TempPathFactory, dtype: str,
                                         shape: tuple[int, ...], chunk_seed: int, compression: str | None,
                                         sharded: bool, order: str, src_backend: str, zero_rows: int) -> None:
    tmp = tmp_path_factory.mktemp("zd")
    rng = np.random.default_rng(chunk_seed)
    chunks = tuple(int(rng.integers(1, n + 1)) for n in shape)
    shards = tuple(c * int(rng.integers(1, 4)) for c in chunks) if sharded else None
    data = _data(dtype, shape, chunk_seed, zero_rows)
    if src_backend == "npy":
        src = write_source(tmp / "src.npy", np.asfortranarray(data) if order == "F" else data, order=order)
    else:
        src = write_source(tmp / "src.zarr", data, order=order, chunks=tuple(max(1, n // 2) for n in shape))
    dst = tmp / "dst.zarr"
    report = arraystore.convert(src, str(dst), chunks=chunks, shards=shards, compression=compression, workers=3,
                                max_memory="8MiB")
    assert any("written as whole objects" in n for n in report.plan["notes"]), report.plan["notes"]
    ours = zarr.open_array(str(dst), mode="r")
    np.testing.assert_array_equal(arraystore.open(str(dst))[...], data)
    twin = _zarr_python_twin(ours, tmp / "twin.zarr", ours[...])
    assert _chunk_files(dst) == _chunk_files(twin)


@pytest.mark.parametrize("shards", [None, (8, 12)])
@pytest.mark.parametrize("compression", ["zstd:3", None])
def test_tensorstore_reads_it(tmp_path: Path, shards: tuple[int, int] | None, compression: str | None) -> None:
    ts = pytest.importorskip("tensorstore", reason="tensorstore is not installed")
    data = np.arange(30 * 37, dtype="<i8").reshape(30, 37)
    data[:8] = 0
    src = write_source(tmp_path / "a.npy", data)
    dst = tmp_path / "a.zarr"
    arraystore.convert(src, str(dst), chunks=(4, 6), shards=shards, compression=compression)
    arr = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(dst)}}, open=True).result()
    np.testing.assert_array_equal(arr.read().result(), data)
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[...], data)


@pytest.mark.parametrize("level", [1, 3, 9])
@pytest.mark.parametrize("kind", ["random", "smooth", "zeros-tail"])
def test_streamed_zstd_chunks_of_many_blocks(tmp_path: Path, level: int, kind: str) -> None:
    """Chunks of many zstd blocks, compressed straight into their files: one frame each, with its content size,
    holding zarr-python's chunk bytes; zarr-python, TensorStore and numcodecs read them."""
    rows, cols = 96, 3000  # chunks of 32 x 3000 float32: 375 KiB, three 128 KiB zstd blocks
    rng = np.random.default_rng(level)
    if kind == "random":
        data = rng.random((rows, cols), dtype=np.float32)
    else:
        data = (np.sin(np.arange(rows)[:, None] / 7.0) * np.cos(np.arange(cols)[None, :] / 50.0)).astype("<f4")
        if kind == "zeros-tail":
            data[40:] = 0  # the last chunk is fill (absent); the middle one starts with data and ends with zeros
            data[:40, :100] = 0
    src = write_source(tmp_path / "src.npy", data)
    dst = tmp_path / "dst.zarr"
    report = arraystore.convert(src, str(dst), chunks=(32, cols), compression=f"zstd:{level}")
    assert any("written as whole objects" in n for n in report.plan["notes"]), report.plan["notes"]
    files = _chunk_files(dst)
    twin = _zarr_python_twin(zarr.open_array(str(dst), mode="r"), tmp_path / "twin.zarr", data)
    assert files == _chunk_files(twin)
    assert all(v.startswith(b"zstd frame, checksum 0: ") for v in files.values())
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[...], data)
    np.testing.assert_array_equal(arraystore.open(str(dst))[...], data)
    ts = pytest.importorskip("tensorstore", reason="tensorstore is not installed")
    arr = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(dst)}}, open=True).result()
    np.testing.assert_array_equal(arr.read().result(), data)


def test_without_zstandard_numcodecs_encodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment without ``zstandard`` (zarr installed without arraystore's extra): the same array, its chunk
    files byte for byte zarr-python's (libzstd is called as numcodecs calls it)."""
    monkeypatch.setitem(__import__("sys").modules, "zstandard", None)  # `import zstandard` raises ImportError
    data = np.random.default_rng(5).random((96, 3000), dtype=np.float32)
    src = write_source(tmp_path / "src.npy", data)
    dst = tmp_path / "dst.zarr"
    arraystore.convert(src, str(dst), chunks=(32, 3000), compression="zstd:3")
    twin = _zarr_python_twin(zarr.open_array(str(dst), mode="r"), tmp_path / "twin.zarr", data)
    ours = {p.relative_to(dst): p.read_bytes() for p in (dst / "c").rglob("*") if p.is_file()}
    theirs = {p.relative_to(twin): p.read_bytes() for p in (twin / "c").rglob("*") if p.is_file()}
    assert ours and ours == theirs
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[...], data)


def test_streamed_zstd_keeps_the_codecs_checksum_and_level(tmp_path: Path) -> None:
    """The stream path writes what the array's ZstdCodec says: its checksum flag and level."""
    path = str(tmp_path / "a.zarr")
    data = np.random.default_rng(0).random((64, 2048), dtype=np.float32)
    arr = zarr.create_array(path, shape=data.shape, dtype=data.dtype, chunks=(32, 2048),
                            compressors=[zarr.codecs.ZstdCodec(level=5, checksum=True)], zarr_format=3)
    del arr
    with arraystore.open(path, "r+") as s:
        writer = ZarrChunkWriter(s, workers=2, may_exist=False)
        try:
            assert writer._zstd_files is not None and writer._zstd_files.level == 5
            writer.write((slice(0, 64), slice(0, 2048)), data)
        finally:
            writer.close()
    files = _chunk_files(Path(path))
    assert sorted(files) == ["c/0/0", "c/1/0"]
    assert all(v.startswith(b"zstd frame, checksum 1: ") for v in files.values())
    np.testing.assert_array_equal(zarr.open_array(path, mode="r")[...], data)


def test_a_failed_streamed_chunk_leaves_the_old_one(tmp_path: Path) -> None:
    """A chunk whose compression fails part-way leaves the chunk file before it and no temporary file."""
    path = str(tmp_path / "a.zarr")
    with arraystore.create(path, (4, 4096), "<f4", chunks=(2, 4096), compression="zstd:3") as s:
        s[...] = 1.0
    before = _chunk_files(Path(path))
    with arraystore.open(path, "r+") as s:
        writer = ZarrChunkWriter(s, workers=1, may_exist=True)
        assert writer._zstd_files is not None

        def fail(f: Any, data: Any) -> None:
            f.write(b"partial")
            raise RuntimeError("stopped")

        writer._zstd_files = fail  # type: ignore[assignment]
        try:
            with pytest.raises(RuntimeError, match="stopped"):
                writer.write((slice(0, 2), slice(0, 4096)), np.full((2, 4096), 2.0, "<f4"))
        finally:
            writer.close()
    assert _chunk_files(Path(path)) == before
    assert not [p for p in Path(path).rglob("*") if p.name.endswith(".tmp")]


def test_signed_zero_and_nan_chunks_are_kept(tmp_path: Path) -> None:
    """Fill chunks are compared bit for bit: -0.0 under a fill value of 0.0 is data, not fill."""
    data = np.zeros((8, 8), "<f8")
    data[:4] = -0.0
    data[4:6] = np.nan
    src = write_source(tmp_path / "a.npy", data)
    dst = tmp_path / "a.zarr"
    arraystore.convert(src, str(dst), chunks=(2, 8))
    back = arraystore.open(str(dst))[...]
    assert back.tobytes() == data.tobytes()
    assert sorted(_chunk_files(dst)) == ["c/0/0", "c/1/0", "c/2/0"]  # the all-+0.0 chunk is absent


def test_variable_length_and_raw_types_keep_zarr_python(tmp_path: Path) -> None:
    """Destinations whose values zarr encodes itself (structured, raw bytes) are written through zarr-python."""
    dt = np.dtype([("a", "<i4"), ("b", "<f8")])
    data = np.zeros(10, dt)
    data["a"] = np.arange(10)
    src = write_source(tmp_path / "a.npy", data)
    report = arraystore.convert(src, str(tmp_path / "a.zarr"), chunks=(3,))
    assert not any("whole objects" in n for n in report.plan["notes"])
    assert arraystore.open(str(tmp_path / "a.zarr"))[...].tobytes() == data.tobytes()


# -- the read side: ZarrChunkReader --------------------------------------------------------------------------------


def _outside_array(folder: Path, data: np.ndarray[Any, Any], *, chunks: tuple[int, ...],
                   shards: tuple[int, ...] | None, compressor: str | None, index_at_start: bool,
                   checksum: bool) -> str:
    """An array written by zarr-python itself, with codecs arraystore never writes (crc32c, index at the start)."""
    compressors: list[Any] = []
    if compressor == "zstd":
        compressors.append(zarr.codecs.ZstdCodec(level=1))
    elif compressor == "blosc":
        compressors.append(zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"))
    elif compressor == "gzip":
        compressors.append(zarr.codecs.GzipCodec(level=1))
    if checksum:
        compressors.append(zarr.codecs.Crc32cCodec())
    path = str(folder / "outside.zarr")
    if shards is not None:
        codec = zarr.codecs.ShardingCodec(chunk_shape=chunks, codecs=[zarr.codecs.BytesCodec(), *compressors],
                                          index_location="start" if index_at_start else "end")
        arr = zarr.create_array(path, shape=data.shape, dtype=data.dtype, chunks=shards, serializer=codec,
                                compressors=None, fill_value=0, zarr_format=3,
                                config={"write_empty_chunks": False})
    else:
        arr = zarr.create_array(path, shape=data.shape, dtype=data.dtype, chunks=chunks, compressors=compressors,
                                fill_value=0, zarr_format=3, config={"write_empty_chunks": False})
    arr[...] = data
    return path


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(["|i1", "<u2", "<f4", "<f8", "<c8"]),
    shape=st.lists(st.integers(1, 20), min_size=1, max_size=3).map(tuple),
    seed=st.integers(0, 10_000),
    compressor=st.sampled_from([None, "zstd", "blosc", "gzip"]),
    sharded=st.booleans(),
    index_at_start=st.booleans(),
    checksum=st.booleans(),
)
def test_reader_matches_zarr_python(tmp_path_factory: pytest.TempPathFactory, dtype: str, shape: tuple[int, ...],
                                    seed: int, compressor: str | None, sharded: bool, index_at_start: bool,
                                    checksum: bool) -> None:
    from arraystore.conversion._zarr_direct import ZarrChunkReader

    tmp = tmp_path_factory.mktemp("zr")
    rng = np.random.default_rng(seed)
    data = _data(dtype, shape, seed, int(rng.integers(0, 4)))
    chunks = tuple(int(rng.integers(1, n + 1)) for n in shape)
    shards = tuple(c * int(rng.integers(1, 3)) for c in chunks) if sharded else None
    path = _outside_array(tmp, data, chunks=chunks, shards=shards, compressor=compressor,
                          index_at_start=index_at_start, checksum=checksum)
    with arraystore.open(path) as store:
        reader = ZarrChunkReader(store, workers=3)
        try:
            for _ in range(4):
                lo = [int(rng.integers(0, n)) for n in shape]
                sel = tuple(slice(a, int(rng.integers(a + 1, n + 1))) for a, n in zip(lo, shape))
                got = reader.read(sel)
                assert got.dtype == data.dtype and got.tobytes() == np.ascontiguousarray(data[sel]).tobytes()
        finally:
            reader.close()


@pytest.mark.parametrize("shards", [None, (8, 12)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_zarr_source_decoded_here_converts_exactly(tmp_path: Path, shards: tuple[int, int] | None, order: str) -> None:
    data = (np.arange(30 * 37, dtype=">i4").reshape(30, 37) - 500)
    data[:8] = 0
    src = write_source(tmp_path / "a.zarr", data, order=order, chunks=(4, 6), shards=shards, compression="zstd:1")
    for dst in ("b.npy", "b.h5"):
        report = arraystore.convert(src, str(tmp_path / dst), max_memory=16384, verify=True)
        assert any("source chunks fetched and decoded here" in n for n in report.plan["notes"]), report.plan["notes"]
        back = arraystore.open(str(tmp_path / dst))[...]
        assert back.dtype == data.dtype and back.tobytes() == data.tobytes()


def test_tensorstore_written_source(tmp_path: Path) -> None:
    ts = pytest.importorskip("tensorstore", reason="tensorstore is not installed")
    data = np.random.default_rng(1).normal(size=(25, 31)).astype("<f4")
    path = str(tmp_path / "ts.zarr")
    arr = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": path},
                   "metadata": {"codecs": [{"name": "sharding_indexed", "configuration": {
                       "chunk_shape": [4, 8], "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                                         {"name": "zstd", "configuration": {"level": 1}}],
                       "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                        {"name": "crc32c"}]}}]}},
                  create=True, dtype=ts.float32, shape=data.shape,
                  chunk_layout=ts.ChunkLayout(write_chunk_shape=[8, 16])).result()
    arr.write(data).result()
    report = arraystore.convert(path, str(tmp_path / "b.npy"), verify=True)
    assert any("source chunks fetched and decoded here" in n for n in report.plan["notes"])
    assert np.load(tmp_path / "b.npy").tobytes() == data.tobytes()


def test_streamed_chunks_not_written_through_a_folder_symlink_outside(tmp_path: Path) -> None:
    """An existing array's chunk folder that is a symlink leading outside the store: the stream path refuses it."""
    from arraystore.errors import UnsafeInputError

    outside = tmp_path / "outside"
    outside.mkdir()
    path = tmp_path / "a.zarr"
    with arraystore.create(str(path), (4, 1024), "<f4", chunks=(2, 1024), compression="zstd:3") as s:
        s[...] = 1.0
    shutil.rmtree(path / "c" / "0")
    (path / "c" / "0").symlink_to(outside, target_is_directory=True)
    with arraystore.open(str(path), "r+") as s:
        writer = ZarrChunkWriter(s, workers=1, may_exist=True)
        try:
            assert writer._zstd_files is not None
            with pytest.raises(UnsafeInputError):
                writer.write((slice(0, 2), slice(0, 1024)), np.full((2, 1024), 2.0, "<f4"))
        finally:
            writer.close()
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("shards", [None, (4, 64)])
@pytest.mark.parametrize("compression", [None, "zstd:3", "gzip:1"])
def test_chunk_files_with_writeback_started(tmp_path: Path, compression: str | None,
                                            shards: tuple[int, int] | None) -> None:
    """Chunk (shard) files whose write-back is started as they are written (the write-through regime): the same
    files as zarr-python's."""
    data = np.random.default_rng(1).integers(0, 9, size=(12, 64)).astype("<i4")
    data[:4] = 0
    path = tmp_path / "a.zarr"
    arr = arraystore.create(str(path), data.shape, data.dtype, chunks=(2, 32), shards=shards, compression=compression)
    arr.close()
    with arraystore.open(str(path), "r+") as s:
        writer = ZarrChunkWriter(s, workers=2, may_exist=False)
        writer.writeback = True
        try:
            writer.write((slice(0, 12), slice(0, 64)), data)
        finally:
            writer.close()
    twin = _zarr_python_twin(zarr.open_array(str(path), mode="r"), tmp_path / "twin.zarr", data)
    assert _chunk_files(path) == _chunk_files(twin)
    np.testing.assert_array_equal(arraystore.open(str(path))[...], data)


# -- blosc chunks compressed into a buffer used again; sources compressed from their pages ------------------------


@pytest.mark.parametrize("shuffle", ["noshuffle", "shuffle", "bitshuffle"])
@pytest.mark.parametrize(("cname", "dtype", "blocksize"), [("lz4", "<f4", 0), ("zstd", ">i2", 0), ("blosclz", "|u1", 0),
                                                            ("lz4hc", "<f8", 4096), ("zlib", "<c8", 0)])
def test_blosc_chunks_from_a_reused_buffer_are_numcodecs_bytes(tmp_path: Path, shuffle: str, cname: str, dtype: str,
                                                               blocksize: int) -> None:
    """c-blosc called here, into one output buffer per thread used again, writes numcodecs' own chunk bytes, byte for
    byte, whatever the compressor, shuffle, type size and block size; edge chunks padded, fill chunks absent."""
    data = _data(dtype, (37, 300), 7, 8)
    data[8:16] = np.arange(8 * 300).reshape(8, 300).astype(dtype)  # compressible rows beside random ones
    path = tmp_path / "a.zarr"
    zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=(8, 128), zarr_format=3,
                      compressors=[zarr.codecs.BloscCodec(cname=cname, clevel=5, shuffle=shuffle, blocksize=blocksize)])
    with arraystore.open(str(path), "r+") as s:
        writer = ZarrChunkWriter(s, workers=2, may_exist=False)
        try:
            assert writer._blosc_files is not None
            writer.write((slice(0, 37), slice(0, 300)), data)
        finally:
            writer.close()
    twin = _zarr_python_twin(zarr.open_array(str(path), mode="r"), tmp_path / "twin.zarr", data)
    files = _chunk_files(path)
    assert "c/0/0" not in files and files == _chunk_files(twin)
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], data)


def test_blosc_without_c_blosc_entry_point_numcodecs_encodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A numcodecs build that does not export ``blosc_compress_ctx`` keeps its own encoder: the same files."""
    from arraystore.conversion import _zarr_direct

    monkeypatch.setattr(_zarr_direct, "_BLOSC_CTX", False)
    data = _data("<f4", (40, 200), 3, 0)
    src = write_source(tmp_path / "src.npy", data)
    dst = tmp_path / "dst.zarr"
    arraystore.convert(src, str(dst), chunks=(16, 200), compression="blosc:lz4:5")
    with arraystore.open(str(dst), "r+") as s:
        writer = ZarrChunkWriter(s, workers=1)
        writer.close()
        assert writer._blosc_files is None
        np.testing.assert_array_equal(s[...], data)
    twin = _zarr_python_twin(zarr.open_array(str(dst), mode="r"), tmp_path / "twin.zarr", data)
    assert _chunk_files(dst) == _chunk_files(twin)


@pytest.mark.parametrize("compression", ["zstd:1", "blosc:lz4:5"])
@pytest.mark.parametrize(("name", "order"), [("src.npy", "C"), ("src.npy", "F"), ("src.dat", "C"), ("src.dat", "F")])
def test_byte_range_source_into_compressed_chunks(tmp_path: Path, name: str, order: str, compression: str) -> None:
    """A raw or .npy source (its data at any offset: a .npy header is 128 bytes), C or Fortran order, into chunks
    compressed here: zarr-python's files, the checksum the data's."""
    from arraystore.checksums import StreamHasher

    data = _data("<f4", (96, 1000), 11, 16)
    src = write_source(tmp_path / name, np.asfortranarray(data) if order == "F" else data, order=order)
    dst = tmp_path / "dst.zarr"
    report = arraystore.convert(src, str(dst), chunks=(8, 1000), compression=compression, max_memory="1MiB")
    assert report.blocks_total > 1 and report.checksum == StreamHasher.of(data)
    twin = _zarr_python_twin(zarr.open_array(str(dst), mode="r"), tmp_path / "twin.zarr", data)
    assert _raw_chunk_files(dst) == _raw_chunk_files(twin)
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[...], data)


def test_source_shorter_than_its_array_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """A source cut short after it was opened: its reads find the end (never a read past a memory map's end, which
    would kill the process), and the conversion says the source changed."""
    from arraystore.errors import ConversionError

    data = _data("<f4", (96, 1000), 13, 0)
    src = write_source(tmp_path / "src.dat", data)
    with arraystore.open(src) as s:
        os.truncate(src, data.nbytes // 2)
        with pytest.raises(ConversionError, match="changed size"):
            arraystore.convert(s, str(tmp_path / "dst.zarr"), chunks=(8, 1000), compression="zstd:1",
                               max_memory="1MiB")
    assert not (tmp_path / "dst.zarr").exists()


def _raw_chunk_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in (folder / "c").rglob("*") if p.is_file()}


@pytest.mark.parametrize("checksum", [False, True])
@pytest.mark.parametrize("level", [-1, 1, 3, 9])
def test_zstd_chunks_from_a_reused_buffer_are_numcodecs_bytes(tmp_path: Path, level: int, checksum: bool) -> None:
    """libzstd called here (a context and an output buffer per thread, used again) writes numcodecs' own chunk
    bytes, byte for byte, at every level, with or without the frame checksum; the contexts are freed at close."""
    from arraystore.conversion._zarr_direct import _ZstdInto

    data = _data("<f4", (37, 300), level + 10, 8)
    data[8:16] = np.arange(8 * 300).reshape(8, 300)
    path = tmp_path / "a.zarr"
    zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=(8, 128), zarr_format=3,
                      compressors=[zarr.codecs.ZstdCodec(level=level, checksum=checksum)])
    with arraystore.open(str(path), "r+") as s:
        writer = ZarrChunkWriter(s, workers=2, may_exist=False)
        try:
            assert isinstance(writer._zstd_files, _ZstdInto)
            writer.write((slice(0, 37), slice(0, 300)), data)
        finally:
            writer.close()
        assert writer._zstd_files._contexts == []
    twin = _zarr_python_twin(zarr.open_array(str(path), mode="r"), tmp_path / "twin.zarr", data)
    files = _raw_chunk_files(path)
    assert "c/0/0" not in files and files == _raw_chunk_files(twin)
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], data)


@pytest.mark.parametrize("why", ["no entry point", "chunk too large"])
def test_zstd_streamed_without_the_entry_point_or_for_large_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   why: str) -> None:
    """Without libzstd's entry points in numcodecs, or for chunks above ZSTD_INTO_MAX (an output buffer per thread
    that large), zstd chunks are streamed into their files by ``zstandard``: the same decoded chunks."""
    from arraystore.conversion import _zarr_direct

    if why == "no entry point":
        monkeypatch.setattr(_zarr_direct, "_ZSTD_LIB", False)
    else:
        monkeypatch.setattr(_zarr_direct, "ZSTD_INTO_MAX", 16 * 200 * 4 - 1)
    data = _data("<f4", (40, 200), 3, 0)
    path = tmp_path / "a.zarr"
    zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=(16, 200), zarr_format=3,
                      compressors=[zarr.codecs.ZstdCodec(level=3)])
    with arraystore.open(str(path), "r+") as s:
        writer = ZarrChunkWriter(s, workers=2, may_exist=False)
        try:
            assert isinstance(writer._zstd_files, _zarr_direct._ZstdFiles)
            writer.write((slice(0, 40), slice(0, 200)), data)
        finally:
            writer.close()
    twin = _zarr_python_twin(zarr.open_array(str(path), mode="r"), tmp_path / "twin.zarr", data)
    assert _chunk_files(path) == _chunk_files(twin)
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], data)


# -- chunk files written in place while the array is staged ---------------------------------------------------------



@pytest.mark.parametrize("fill", [False, True])
@pytest.mark.parametrize("compression", [None, "zstd:1", "blosc:lz4:5", "gzip:1"])
def test_staged_chunks_are_written_in_place_and_a_torn_one_is_rewritten(tmp_path: Path, compression: str | None,
                                                                         fill: bool) -> None:
    """A conversion's chunk files go straight to their keys (the staging copy is published whole); one cut short
    by a kill (left as a few bytes, or empty, at its key) belongs to a block not yet journaled and is written again
    by the resumed run, which verifies. Where the resumed run finds that chunk all fill value (``fill``), it writes
    nothing there: the torn file must be removed, or the published array would read its bytes."""
    from arraystore.checksums import StreamHasher

    data = (np.arange(256 * 256, dtype="<f4") * 0.5).reshape(256, 256)
    if fill:
        data[128:] = 0  # chunk rows 16..31
    src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / "dst.zarr"
    opts: dict[str, Any] = {"chunks": (8, 256), "max_memory": "64KiB"}
    if compression:
        opts["compression"] = compression
    with pytest.raises(Stop):
        arraystore.convert(src, str(dst), progress=stop_after(3), **opts)
    staging = tmp_path / "dst.zarr.partial"
    files = sorted(p for p in staging.rglob("*") if p.is_file() and p.name != "zarr.json")
    assert files and not [p for p in files if p.name.endswith(".tmp")]
    journal = dst.with_name(dst.name + ".partial.journal.jsonl")
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    done = {int(rec["block"]) for rec in records[1:] if rec.get("block") is not None}

    per_block = int(records[0]["options"]["blocks"]["chunks_per_block"])  # blocks of whole chunk rows
    # A kill inside a chunk's write() leaves its file cut short: two chunk rows of blocks not journaled get one.
    torn = [r for r in range(16 if fill else 0, 32) if r // per_block not in done][:2]
    assert len(torn) == 2
    for k, i in enumerate(torn):
        p = staging / "c" / str(i) / "0"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\x28\xb5\x2f" if k == 0 else b"")
    report = arraystore.convert(src, str(dst), verify=True, **opts)
    assert report.verified and report.checksum == StreamHasher.of(data)
    if fill:
        assert not [i for i in torn if (dst / "c" / str(i) / "0").exists()]
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[...], data)


def test_in_place_chunk_files_take_the_arrays_mode_and_keep_their_own(tmp_path: Path) -> None:
    """New chunk files get the mode of the array's zarr.json within the umask (as renamed ones did); a chunk file a
    resumed run writes again keeps its own mode."""
    data = np.arange(64 * 256, dtype="<f4").reshape(64, 256)
    src = write_source(tmp_path / "src.dat", data)
    old = os.umask(0o077)
    try:
        dst = tmp_path / "a.zarr"
        arraystore.convert(src, str(dst), chunks=(8, 256), compression="zstd:1")
        modes = {p.name: p.stat().st_mode & 0o777 for p in dst.rglob("*") if p.is_file()}
        assert set(modes.values()) == {0o600}, modes
    finally:
        os.umask(old)
    from arraystore.backends._zarr_modes import ModeKeepingLocalStore

    store = ModeKeepingLocalStore(str(tmp_path / "b"))
    store.root.mkdir()
    with store.put_stream("c/0/0", in_place=True) as f:
        f.write(b"one")
    (store.root / "c/0/0").chmod(0o640)
    with store.put_stream("c/0/0", in_place=True) as f:
        f.write(b"2")
    assert (store.root / "c/0/0").read_bytes() == b"2"
    assert (store.root / "c/0/0").stat().st_mode & 0o777 == 0o640


def test_in_place_write_that_fails_leaves_no_file(tmp_path: Path) -> None:
    """An error inside the ``with`` block of an in-place write removes the file (nothing half written at its key);
    the renamed write leaves the old file as it was."""
    from arraystore.backends._zarr_modes import ModeKeepingLocalStore

    store = ModeKeepingLocalStore(str(tmp_path))
    for in_place, left in ((True, None), (False, b"old")):
        (tmp_path / "c" / "0").mkdir(parents=True, exist_ok=True)
        (tmp_path / "c" / "0" / "0").write_bytes(b"old")

        def half_written(in_place: bool = in_place) -> None:
            with store.put_stream("c/0/0", in_place=in_place) as f:
                f.write(b"half")
                raise Stop

        with pytest.raises(Stop):
            half_written()
        found = (tmp_path / "c" / "0" / "0").read_bytes() if (tmp_path / "c" / "0" / "0").exists() else None
        assert found == left
        assert [p.name for p in (tmp_path / "c" / "0").iterdir()] == ([] if left is None else ["0"])


def test_only_a_staged_array_is_written_in_place(tmp_path: Path) -> None:
    """The chunk writer writes in place only into an array being built aside; into an open, published one it
    replaces each chunk file by a rename (a reader never sees a chunk half written)."""
    with arraystore.create(tmp_path / "s.zarr", (16, 16), "<f4", chunks=(4, 16), compression="zstd:1") as s:
        w = ZarrChunkWriter(s, 1)
        try:
            assert w.in_place
        finally:
            w.close()
        s[...] = 1
    with arraystore.open(tmp_path / "s.zarr", "r+") as s:
        w = ZarrChunkWriter(s, 1)
        try:
            assert not w.in_place
        finally:
            w.close()


def _convert_bands(tmp_path: Path, name: str, data: np.ndarray[Any, Any], chunks: tuple[int, ...], compression: str,
                   bands: bool, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Any:
    """Convert ``data`` (written as ``name``) into ``name``.zarr, its chunk rows streamed in bands or not."""
    from arraystore.conversion import _movers

    monkeypatch.setattr(_movers, "BAND_MAX", _movers.BAND_MAX if bands else 0)
    src = tmp_path / "src" / name
    if not src.exists():
        src.parent.mkdir(exist_ok=True)
        write_source(src, data)
    return arraystore.convert(str(src), str(tmp_path / f"{name}.{bands}.zarr"), chunks=chunks, compression=compression,
                              **options)


@pytest.mark.parametrize(("dtype", "shape", "chunks"), [
    ("<f4", (1003, 300), (16, 300)),     # a last band of 11 rows
    (">f8", (600, 9, 7), (5, 9, 7)),     # three axes, a band of 5 rows of 63 values
    ("|b1", (1300, 70), (13, 35)),       # two chunks across a band
    ("<M8[s]", (900, 33), (8, 33)),      # times
    ("<i2", (400, 1000), (16, 1000)),    # one band per block
])
@pytest.mark.parametrize("compression", ["zstd:3", "blosc:lz4:5", "gzip:1"])
@pytest.mark.parametrize("name", ["src.dat", "src.npy"])
def test_chunk_rows_streamed_in_bands_are_the_blocks_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            name: str, compression: str, dtype: str,
                                                            shape: tuple[int, ...], chunks: tuple[int, ...]) -> None:
    """A byte-range source in the page cache read, hashed and compressed one band of chunk rows at a time: the same
    chunk files, checksum and journal digests as whole blocks (rows equal to the fill value included), verified."""
    from arraystore.checksums import StreamHasher

    data = _data(dtype, shape, 17, 2 * chunks[0])
    streamed = _convert_bands(tmp_path, name, data, chunks, compression, True, monkeypatch, max_memory="256KiB",
                              verify=True)
    whole = _convert_bands(tmp_path, name, data, chunks, compression, False, monkeypatch, max_memory="256KiB")
    assert any("in bands of" in note for note in streamed.plan["notes"])
    assert not any("in bands of" in note for note in whole.plan["notes"])
    assert streamed.blocks_total > 1 and streamed.verified
    assert streamed.checksum == whole.checksum == StreamHasher.of(data)
    assert _chunk_files(tmp_path / f"{name}.True.zarr") == _chunk_files(tmp_path / f"{name}.False.zarr")
    np.testing.assert_array_equal(arraystore.open(str(tmp_path / f"{name}.True.zarr"))[...], data)


@pytest.mark.parametrize("how", ["interrupted", "a chunk write failed"])
def test_chunk_rows_streamed_in_bands_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """A streamed conversion interrupted after a few blocks (or failing in one band's chunk write, the bands after it
    under way) publishes nothing; run again, it keeps the journaled blocks (their digests those of whole blocks)
    and ends with the source's array."""
    from arraystore.conversion import _movers
    from arraystore.conversion._journal import journal_path
    from arraystore.location import parse_location

    data = _data("<f4", (400, 250), 23, 0)
    src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / "dst.zarr"
    options: dict[str, Any] = {"chunks": (10, 250), "compression": "zstd:1", "max_memory": "256KiB"}
    if how == "interrupted":
        with pytest.raises(Stop):
            arraystore.convert(src, str(dst), progress=stop_after(4), **options)
    else:
        calls = [0]
        original = ZarrChunkWriter._write_chunk

        def failing(self: ZarrChunkWriter, *args: Any) -> None:
            calls[0] += 1
            if calls[0] == 9:
                raise OSError("injected")
            original(self, *args)

        monkeypatch.setattr(ZarrChunkWriter, "_write_chunk", failing)
        with pytest.raises(OSError, match="injected"):
            arraystore.convert(src, str(dst), **options)
        monkeypatch.undo()
    assert not dst.exists() and journal_path(parse_location(str(dst))).exists()
    monkeypatch.setattr(_movers, "BAND_MAX", 0)  # the rest in whole blocks: the journaled digests must match them
    report = arraystore.convert(src, str(dst), verify=True, **options)
    assert report.blocks_resumed >= 1 and report.blocks_rewritten == 0 and report.verified
    np.testing.assert_array_equal(arraystore.open(str(dst))[...], data)


def test_a_band_cancelled_unrun_gives_its_buffer_back(tmp_path: Path) -> None:
    """:meth:`ZarrChunkWriter.close` after a failure cancels the bands still queued: each one's ``done`` is still
    called, once (a reader waiting for a free band buffer is not left waiting forever)."""
    import threading

    with arraystore.create(tmp_path / "s.zarr", (8, 4), "<f4", chunks=(2, 4), compression="zstd:1") as s:
        w = ZarrChunkWriter(s, 1)
        gate, given = threading.Event(), []
        blocker = w._pool.submit(gate.wait)  # the one thread busy: the bands below stay queued
        try:
            rows = np.arange(8, dtype="<f4").reshape(2, 4)
            futures = [w.submit((slice(2 * i, 2 * i + 2), slice(0, 4)), rows, lambda i=i: given.append(i))
                       for i in range(3)]
            w._pool.shutdown(wait=False, cancel_futures=True)  # what close() does, without waiting for the blocker
            assert all(f.cancelled() for f in futures) and sorted(given) == [0, 1, 2]
        finally:
            gate.set()
        blocker.result(timeout=60)
        w.close()
        assert sorted(given) == [0, 1, 2]
        s[...] = 0


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_a_source_cut_short_under_streamed_bands_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              workers: int) -> None:
    """A source truncated while its blocks are streamed in bands of chunk rows: the band read that finds the end
    fails, no band waits for a buffer forever, and the conversion says the source changed size; nothing is
    published, nothing staged is left."""
    from arraystore.conversion import _movers
    from arraystore.errors import ConversionError

    data = _data("<f4", (800, 250), 29, 0)
    src = Path(write_source(tmp_path / "src.dat", data))
    calls, bands = [0], [0]
    hash_band = _movers.DirectChunkMover._hash_band

    def counted(self: Any, *args: Any) -> None:
        bands[0] += 1
        hash_band(self, *args)

    monkeypatch.setattr(_movers.DirectChunkMover, "_hash_band", counted)

    cut = truncate_on_second_call(src, calls)
    out = tmp_path / "dst.zarr"
    with pytest.raises(ConversionError, match="changed size"):
        arraystore.convert(str(src), str(out), chunks=(10, 250), compression="zstd:1", max_memory="256KiB",
                           workers=workers, progress=cut)
    assert bands[0] > 4  # the blocks were streamed in bands
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith((".partial", ".jsonl"))]


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_bands_of_uneven_reads_keep_the_stream_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        workers: int) -> None:
    """Bands whose reads take uneven times (every other one made slow) while the chunk threads compress the ones
    before: the content checksum and every journaled digest are the source's, and the chunk files those of whole
    blocks."""
    import time

    from arraystore.checksums import StreamHasher, block_digest
    from arraystore.conversion import _movers

    original = _movers.pread_into
    reads = [0]

    def uneven(fd: int, buf: Any, offset: int) -> Any:
        reads[0] += 1
        if reads[0] % 2:
            time.sleep(0.002)
        return original(fd, buf, offset)

    monkeypatch.setattr(_movers, "pread_into", uneven)
    data = _data("<f4", (1000, 120), 31, 20)
    digests: dict[tuple[int, int], str] = {}
    write = _movers.DirectChunkMover.write

    def spy(self: Any, i: int, sel: tuple[slice, ...], *args: Any) -> Any:
        done = write(self, i, sel, *args)
        digests[(sel[0].start, sel[0].stop)] = done[2]
        return done

    monkeypatch.setattr(_movers.DirectChunkMover, "write", spy)
    streamed = _convert_bands(tmp_path, "src.dat", data, (10, 120), "zstd:1", True, monkeypatch,
                              max_memory="256KiB", workers=workers, verify=True)
    assert any("in bands of" in note for note in streamed.plan["notes"]) and reads[0] > 4
    assert streamed.checksum == StreamHasher.of(data) and streamed.verified
    assert len(digests) == streamed.blocks_total > 1
    assert all(d == block_digest(data[a:b]) for (a, b), d in digests.items())
    whole = _convert_bands(tmp_path, "src.dat", data, (10, 120), "zstd:1", False, monkeypatch, max_memory="256KiB")
    assert _chunk_files(tmp_path / "src.dat.True.zarr") == _chunk_files(tmp_path / "src.dat.False.zarr")
    assert whole.checksum == streamed.checksum
