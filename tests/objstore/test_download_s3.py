"""Downloads of uncompressed Zarr arrays into a local file: chunks written as they arrive, within the budget."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

import arraystore
from arraystore.checksums import StreamHasher
from arraystore.conversion._plan import parse_size
from arraystore.conversion._remote_file import MAX_IN_FLIGHT, in_flight
from arraystore.errors import MetadataError

pytestmark = pytest.mark.timeout(120)


def _download(bucket: str, tmp_path: Path, a: np.ndarray[Any, Any], chunks: tuple[int, ...], name: str,
              **options: Any) -> Any:
    np.save(tmp_path / f"{name}.npy", a)
    arraystore.convert(tmp_path / f"{name}.npy", f"{bucket}/{name}.zarr", chunks=chunks, **options)
    report = arraystore.convert(f"{bucket}/{name}.zarr", tmp_path / f"{name}-back.npy", max_memory="256KiB")
    back = np.load(tmp_path / f"{name}-back.npy")
    assert back.dtype == a.dtype and back.shape == a.shape and back.tobytes() == a.tobytes()
    assert report.checksum == StreamHasher.of(a)
    return report


def test_requests_in_flight_follow_the_budget() -> None:
    assert in_flight(256 << 20, 1 << 20) == MAX_IN_FLIGHT  # half the default budget holds 128 chunks of 1 MiB
    assert in_flight(16 << 20, 1 << 20) == 8
    assert in_flight(256 << 10, 32 << 10) == 4
    assert in_flight(1 << 20, 64 << 20) == 1  # a chunk larger than the budget: one at a time (the plan refuses it)


@pytest.mark.parametrize(("max_memory", "window"), [("256KiB", 16), ("1MiB", 64), ("64MiB", 64)])
def test_chunks_held_never_exceed_the_window(bucket: str, tmp_path: Path, max_memory: str, window: int) -> None:
    a = np.random.default_rng(1).standard_normal((512, 256))  # 128 chunks of 8 KiB
    np.save(tmp_path / "a.npy", a)
    arraystore.convert(tmp_path / "a.npy", f"{bucket}/w.zarr", chunks=(4, 256))
    report = arraystore.convert(f"{bucket}/w.zarr", tmp_path / "back.npy", max_memory=max_memory)
    assert np.load(tmp_path / "back.npy").tobytes() == a.tobytes()
    got = report.plan["download"]
    assert got["requests_in_flight"] == window == in_flight(parse_size(max_memory), 8192)
    # The window fills at once (requests are issued before any arrives) and never grows past it.
    assert got["peak_chunks_held"] == min(window, 128)
    assert report.memory_estimate == window * 8192


@pytest.mark.parametrize(("dtype", "shape", "chunks"), [
    ("<f8", (500, 256), (16, 256)),  # the last chunk only partly inside the array
    (">i4", (300, 7), (32, 7)),  # big-endian: the bytes codec's order
    ("|u1", (1000,), (64,)),
    ("|b1", (33, 5, 3), (4, 5, 3)),
    ("<c16", (40, 3), (40, 3)),  # one chunk
    ("<u2", (1, 9), (1, 9)),
])
def test_downloads_equal_their_source(bucket: str, tmp_path: Path, dtype: str, shape: tuple[int, ...],
                                      chunks: tuple[int, ...]) -> None:
    rng = np.random.default_rng(2)
    a = (rng.integers(0, 250, size=shape).astype(dtype) if np.dtype(dtype).kind != "c"
         else (rng.standard_normal(shape) + 1j).astype(dtype))
    report = _download(bucket, tmp_path, a, chunks, "d")
    assert "download" in report.plan, report.plan.get("notes")


@pytest.mark.parametrize(("chunks", "options"), [
    ((16, 128), {}),  # chunks that do not span the rows: the general path
    ((16, 256), {"compression": "gzip:1"}),  # a codec that cannot decode into a buffer
])
def test_other_layouts_take_the_general_path(bucket: str, tmp_path: Path, chunks: tuple[int, ...],
                                             options: dict[str, Any]) -> None:
    a = np.random.default_rng(3).standard_normal((200, 256)).astype("<f4")
    report = _download(bucket, tmp_path, a, chunks, "g", **options)
    assert "download" not in report.plan


@pytest.mark.parametrize("compression", ["zstd:1", "blosc", "blosc:zstd:3"])
@pytest.mark.parametrize(("dtype", "shape", "chunks"), [
    ("<f8", (500, 256), (16, 256)),  # the last chunk only partly inside the array
    (">i4", (300, 7), (32, 7)),  # big-endian
    ("|b1", (33, 5, 3), (4, 5, 3)),
    ("<u2", (1, 9), (1, 9)),
])
def test_compressed_downloads_equal_their_source(bucket: str, tmp_path: Path, compression: str, dtype: str,
                                                 shape: tuple[int, ...], chunks: tuple[int, ...]) -> None:
    a = np.random.default_rng(6).integers(0, 250, size=shape).astype(dtype)
    a.reshape(-1)[: a.size // 3] = 0  # zeros compress: streams of several sizes
    report = _download(bucket, tmp_path, a, chunks, "z", compression=compression)
    got = report.plan["download"]
    chunk_bytes = math.prod(chunks) * a.dtype.itemsize
    assert got["chunk_bytes"] == chunk_bytes
    # A request holds a chunk's stored and decoded bytes: the window counts both.
    assert got["requests_in_flight"] == in_flight(parse_size("256KiB"), 2 * chunk_bytes)
    assert report.memory_estimate == got["requests_in_flight"] * 2 * chunk_bytes
    assert got["peak_chunks_held"] <= got["requests_in_flight"]


def test_absent_compressed_chunks_are_the_fill_value(bucket: str, tmp_path: Path) -> None:
    import zarr
    from obstore.store import from_url

    a = np.full((256, 64), -1.5, "<f4")
    a[40:50] = 7  # in chunks 2 and 3 of 16 rows; zarr-python writes no other chunk
    z = zarr.create_array(zarr.storage.ObjectStore(from_url(f"{bucket}/fz.zarr")), shape=a.shape, dtype=a.dtype,
                          chunks=(16, 64), compressors=zarr.codecs.ZstdCodec(level=1), fill_value=-1.5,
                          config={"write_empty_chunks": False}, zarr_format=3)
    z[...] = a
    report = arraystore.convert(f"{bucket}/fz.zarr", tmp_path / "back.npy", max_memory="256KiB")
    assert "download" in report.plan
    assert np.array_equal(np.load(tmp_path / "back.npy"), a)


def _damaged(bucket: str, tmp_path: Path, body: bytes) -> None:
    """Chunk 3 of a zstd array replaced by ``body``: the download raises, and publishes nothing."""
    a = np.arange(64 * 32, dtype="<f4").reshape(64, 32)
    np.save(tmp_path / "a.npy", a)
    arraystore.convert(tmp_path / "a.npy", f"{bucket}/zd.zarr", chunks=(8, 32), compression="zstd")
    boto3.client("s3").put_object(Bucket=bucket.removeprefix("s3://"), Key="zd.zarr/c/3/0", Body=body)
    arraystore.convert(f"{bucket}/zd.zarr", tmp_path / "back.npy", max_memory="256KiB")


@pytest.mark.parametrize(("body", "message"), [
    (b"\0" * 5000, "at most 2,056"),  # larger than any encoding of a 1,024-byte chunk
    (zstd_frame := __import__("numcodecs").Zstd(1).encode(b"\1" * 1000), "does not declare"),  # another size
    (zstd_frame[:-3], "not a valid zstd stream|does not declare"),  # cut short
    (b"\x28\xb5\x2f\xfd" + b"\x7f" * 40, "not a valid zstd stream|does not declare"),  # garbage after the magic
])
def test_a_damaged_compressed_chunk_is_a_typed_error(bucket: str, tmp_path: Path, body: bytes, message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        _damaged(bucket, tmp_path, body)
    assert not (tmp_path / "back.npy").exists()


def test_absent_chunks_are_the_fill_value(bucket: str, tmp_path: Path) -> None:
    a = np.zeros((256, 64), "<i8")
    a[40:50] = 7  # chunks 2 and 3 of 16 rows; the others are all fill and never written
    report = _download(bucket, tmp_path, a, (16, 64), "f")
    assert "download" in report.plan
    name = bucket.removeprefix("s3://")
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=name, Prefix="f.zarr/c/")["Contents"]]
    assert sorted(keys) == ["f.zarr/c/2/0", "f.zarr/c/3/0"]


def test_a_chunk_of_the_wrong_size_is_a_typed_error(bucket: str, tmp_path: Path) -> None:
    a = np.arange(64 * 32, dtype="<f4").reshape(64, 32)
    np.save(tmp_path / "a.npy", a)
    arraystore.convert(tmp_path / "a.npy", f"{bucket}/s.zarr", chunks=(8, 32))
    name = bucket.removeprefix("s3://")
    boto3.client("s3").put_object(Bucket=name, Key="s.zarr/c/3/0", Body=b"\0" * (8 * 32 * 4 + 1))
    with pytest.raises(MetadataError, match="1,025 bytes"):
        arraystore.convert(f"{bucket}/s.zarr", tmp_path / "back.npy", max_memory="256KiB")
    assert not (tmp_path / "back.npy").exists()


def _interrupted(bucket: str, tmp_path: Path, seed: int, name: str, stop_at: float,
                 compression: str | None = None) -> tuple[Any, str]:
    """An array uploaded as 64 chunks of 16 KiB, its download into ``back.npy`` stopped at ``stop_at`` of the bytes."""
    a = np.random.default_rng(seed).standard_normal((1024, 128))
    np.save(tmp_path / "a.npy", a)
    url = f"{bucket}/{name}.zarr"
    arraystore.convert(tmp_path / "a.npy", url, chunks=(16, 128), compression=compression)

    def stop_midway(done: int, total: int) -> None:
        if total * stop_at <= done < total:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        arraystore.convert(url, tmp_path / "back.npy", max_memory="128KiB", resume=True, progress=stop_midway)
    assert not (tmp_path / "back.npy").exists()
    return a, url


@pytest.mark.parametrize("compression", [None, "zstd:1"])
def test_an_interrupted_download_resumes_with_the_blocks_it_wrote(bucket: str, tmp_path: Path,
                                                                   compression: str | None) -> None:
    a, url = _interrupted(bucket, tmp_path, 4, "i", 1 / 3, compression)
    report = arraystore.convert(url, tmp_path / "back.npy", max_memory="128KiB", resume=True, verify=True)
    assert report.blocks_resumed > 0 and report.blocks_rewritten == 0  # the journal's digests are the file's
    assert report.blocks_resumed + report.blocks_written == report.blocks_total
    assert "download" in report.plan
    assert np.load(tmp_path / "back.npy").tobytes() == a.tobytes()
    assert report.checksum == StreamHasher.of(a) and report.verified


def test_a_resumed_block_that_no_longer_matches_is_downloaded_again(bucket: str, tmp_path: Path) -> None:
    a, url = _interrupted(bucket, tmp_path, 5, "j", 1 / 2)
    staged = [p for p in tmp_path.rglob("*") if p.is_file() and p.name.startswith("back.npy")
              and p.stat().st_size > a.nbytes]
    assert len(staged) == 1, list(tmp_path.rglob("*"))
    with open(staged[0], "r+b") as f:  # damage the first block the journal holds
        f.seek(200)
        f.write(b"\xff" * 64)
    report = arraystore.convert(url, tmp_path / "back.npy", max_memory="128KiB", resume=True)
    assert report.blocks_rewritten == 1 and report.blocks_resumed > 0
    assert np.load(tmp_path / "back.npy").tobytes() == a.tobytes()
    assert report.checksum == StreamHasher.of(a)
