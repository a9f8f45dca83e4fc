"""Decoded sources read one block ahead: the read-ahead thread, reused block buffers, exact results, bounded memory."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore._fsutil import evict_from_page_cache
from arraystore.checksums import StreamHasher
from arraystore.conversion import _band_reads, _fastpath, _movers
from arraystore.conversion._movers import BlockBuffers, BlockMover, files_resident_share
from arraystore.conversion._parallel import ReadAhead
from arraystore.conversion._plan import blocks_in_memory
from arraystore.conversion._zarr_direct import ZarrChunkReader
from arraystore.registry import backend_class

from .conftest import BACKENDS, SUFFIX, bytes_equal, read_back, write_source

pytestmark = pytest.mark.skipif("zarr" not in BACKENDS, reason="zarr is not installed")


# -- the read-ahead thread ---------------------------------------------------------------------------------------


def test_read_ahead_takes_the_block_started_and_reads_others_inline() -> None:
    threads: dict[int, str] = {}

    def read(sel: int) -> int:
        threads[sel] = threading.current_thread().name
        return sel * 10

    ahead = ReadAhead(read)
    try:
        ahead.start(1, 1)
        assert ahead.take(1, 1) == 10
        assert threads[1].startswith("arraystore-read-ahead")
        assert ahead.take(2, 2) == 20  # never started: read here
        assert threads[2] == threading.current_thread().name
        ahead.start(3, 3)
        assert ahead.take(4, 4) == 40  # another block: the one in flight is dropped, this one read here
        ahead.start(5, 5)
        ahead.start(6, 6)  # a second start drops the first
        assert ahead.take(6, 6) == 60
    finally:
        ahead.close()


def test_read_ahead_reraises_the_failure_of_the_block_taken() -> None:
    def read(sel: int) -> int:
        if sel == 2:
            raise OSError("disk gone")
        return sel

    ahead = ReadAhead(read)
    try:
        ahead.start(2, 2)
        with pytest.raises(OSError, match="disk gone"):
            ahead.take(2, 2)
        ahead.start(2, 2)
        ahead.start(3, 3)  # the failed read nobody takes is not raised
        assert ahead.take(3, 3) == 3
    finally:
        ahead.close()


def test_read_ahead_close_waits_for_the_read_in_flight() -> None:
    release = threading.Event()
    finished: list[int] = []

    def read(sel: int) -> int:
        release.wait(10)
        finished.append(sel)
        return sel

    ahead = ReadAhead(read)
    ahead.start(1, 1)
    release.set()
    ahead.close()
    assert finished == [1]


# -- block buffers ---------------------------------------------------------------------------------------------


def test_block_buffers_reuse_only_what_was_given_back() -> None:
    pool = BlockBuffers(1024)
    a = pool.take(1024)
    b = pool.take(512)
    assert not np.shares_memory(a, b)
    view = a.view("<f4").reshape(16, 16)[::2]  # a view of a view: its buffer is found through .base
    pool.give_back(view)
    c = pool.take(1000)
    assert np.shares_memory(a, c) and c.size == 1000
    pool.give_back(np.empty(1024, np.uint8))  # never lent: ignored
    d = pool.take(1024)
    assert not np.shares_memory(d, a) and not np.shares_memory(d, b)
    pool.give_back(b)
    pool.give_back(b)  # twice: lent once, back once
    e, f = pool.take(10), pool.take(10)
    assert not np.shares_memory(e, f)


# -- whole conversions -----------------------------------------------------------------------------------------


def _zarr_source(tmp: Path, data: np.ndarray[Any, Any], chunks: tuple[int, ...], shards: tuple[int, ...] | None,
                 compression: str | None) -> str:
    opts: dict[str, Any] = {"chunks": chunks}
    if shards is not None:
        opts["shards"] = shards
    if compression is not None:
        opts["compression"] = compression
    return write_source(tmp / "src.zarr", data, **opts)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 90),
    cols=st.integers(1, 40),
    chunk_rows=st.integers(1, 12),
    sharded=st.booleans(),
    compression=st.sampled_from([None, "zstd:1", "blosc:lz4:5", "gzip:1"]),
    dst=st.sampled_from([b for b in ("npy", "raw", "hdf5", "zarr") if b in BACKENDS]),
    budget=st.sampled_from([16384, 65536, 1 << 20]),
    seed=st.integers(0, 1000),
)
def test_decoded_source_converts_exactly(tmp_path_factory: pytest.TempPathFactory, rows: int, cols: int,
                                         chunk_rows: int, sharded: bool, compression: str | None, dst: str,
                                         budget: int, seed: int) -> None:
    tmp = tmp_path_factory.mktemp("ra")
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(rows, cols)).astype("<f4")
    data[rng.random(rows) < 0.3] = 0.0  # whole fill-value chunks: absent in the source
    chunks = (chunk_rows, cols)
    shards = (chunk_rows * 2, cols) if sharded else None
    src = _zarr_source(tmp, data, chunks, shards, compression)
    report = arraystore.convert(src, str(tmp / f"dst{SUFFIX[dst]}"), max_memory=budget, verify=True)
    back, _ = read_back(str(tmp / f"dst{SUFFIX[dst]}"))
    assert bytes_equal(back, data)
    assert report.checksum == StreamHasher.of(data)
    assert report.memory_estimate <= budget


def test_blocks_are_whole_rows_of_source_chunks(tmp_path: Path) -> None:
    data = np.arange(1000 * 64, dtype="<i4").reshape(1000, 64)
    src = write_source(tmp_path / "src.zarr", data, chunks=(7, 64), compression="zstd:1")
    report = arraystore.convert(src, str(tmp_path / "dst.npy"), max_memory=200_000)
    rows = report.plan["blocks"]["block_bytes"] // (64 * 4)
    assert rows % 7 == 0 and report.plan["blocks"]["n_blocks"] > 2
    assert report.memory_estimate == report.plan["blocks"]["block_bytes"] * blocks_in_memory("blocks", False, 1, True)
    assert bytes_equal(read_back(str(tmp_path / "dst.npy"))[0], data)


@pytest.mark.parametrize(("dst", "kind"), [*((b, "f4") for b in ("npy", "hdf5", "zarr") if b in BACKENDS),
                                           ("npy", "datetime")])
def test_blocks_alive_at_once_stay_within_the_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dst: str,
                                                   kind: str) -> None:
    """Every block buffer is lent by BlockBuffers: count how many are lent at once, and their bytes.

    ``datetime``: a portable Zarr source stores int64, so each decoded block is converted (a copy) and
    its buffer must be free again at once, not lent forever.
    """
    lent_now: set[int] = set()
    peak = [0, 0]  # buffers, bytes
    sizes: dict[int, int] = {}
    lock = threading.Lock()
    take, give_back = BlockBuffers.take, BlockBuffers.give_back

    def counting_take(self: BlockBuffers, nbytes: int) -> np.ndarray[Any, Any]:
        buf = take(self, nbytes)
        root: Any = buf
        while isinstance(root.base, np.ndarray):
            root = root.base
        with lock:
            lent_now.add(id(root))
            sizes[id(root)] = root.nbytes
            peak[0] = max(peak[0], len(lent_now))
            peak[1] = max(peak[1], sum(sizes[k] for k in lent_now))
        return buf

    def counting_give_back(self: BlockBuffers, block: np.ndarray[Any, Any]) -> None:
        root: Any = block
        while isinstance(root.base, np.ndarray):
            root = root.base
        with lock:
            lent_now.discard(id(root))
        give_back(self, block)

    monkeypatch.setattr(_movers.BlockBuffers, "take", counting_take)
    monkeypatch.setattr(_movers.BlockBuffers, "give_back", counting_give_back)
    monkeypatch.setattr(_band_reads, "BAND_MAX", 0)  # whole blocks (bands: test_band_reads)
    data = np.random.default_rng(3).normal(size=(400, 128)).astype("<f4")
    extra: dict[str, Any] = {}
    if kind == "datetime":
        data = (data * 1e6).astype("M8[s]")
        extra["portable"] = True
    src = write_source(tmp_path / "src.zarr", data, chunks=(8, 128), compression="zstd:1", **extra)
    budget = 256 * 1024
    opts: dict[str, Any] = {"compression": "zstd:1", "chunks": (8, 128)} if dst == "zarr" else {}
    report = arraystore.convert(src, str(tmp_path / f"dst{SUFFIX[dst]}"), max_memory=budget, **opts)
    assert report.blocks_total > 4
    compressed = dst == "zarr"
    # The read ahead, the block being hashed, and the writers' blocks: never more, whatever the timing.
    assert (1 if kind == "datetime" else 2) <= peak[0] <= report.plan["workers"] * compressed + (2 if compressed else 3)
    assert peak[1] <= report.memory_estimate <= budget
    assert not lent_now  # every buffer came back
    assert bytes_equal(read_back(str(tmp_path / f"dst{SUFFIX[dst]}"))[0], data)


def test_failure_mid_pipeline_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = np.random.default_rng(5).normal(size=(300, 64)).astype("<f8")
    src = write_source(tmp_path / "src.zarr", data, chunks=(10, 64), compression="zstd:1")
    dst = tmp_path / "dst.dat"
    write = BlockMover.write

    def failing_write(self: BlockMover, i: int, sel: tuple[slice, ...], block: np.ndarray[Any, Any],
                      digest: str) -> tuple[int, int, str]:
        if i == 5:
            raise OSError("the disk went away")
        return write(self, i, sel, block, digest)

    monkeypatch.setattr(BlockMover, "write", failing_write)
    monkeypatch.setattr(_band_reads, "BAND_MAX", 0)  # whole blocks (bands: test_band_reads)
    with pytest.raises(OSError, match="the disk went away"):
        arraystore.convert(src, str(dst), max_memory=64 * 1024, resume=True)
    monkeypatch.setattr(BlockMover, "write", write)
    report = arraystore.convert(src, str(dst), max_memory=64 * 1024, resume=True, verify=True)
    assert report.blocks_resumed >= 4 and report.blocks_rewritten == 0
    assert report.blocks_resumed + report.blocks_written == report.blocks_total
    assert report.checksum == StreamHasher.of(data)
    assert bytes_equal(read_back(str(dst))[0], data)


# -- the page-cache regime of a decoded source ---------------------------------------------------------------------


@pytest.mark.parametrize("state", ["cached", "cold"])
@pytest.mark.parametrize("shards", [None, (16, 64), "hdf5-gzip"])
@pytest.mark.parametrize("dst", [b for b in ("npy", "raw", "hdf5") if b in BACKENDS])
def test_decoded_source_read_from_the_disk_drops_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         state: str, shards: tuple[int, int] | str | None,
                                                         dst: str) -> None:
    """The residency of a decoded source's files (Zarr chunks or shards, a deflated HDF5 dataset's file) chooses
    the regime, as a byte-range source's does: a source read from the disk has the output written back at the
    disk's pace while it is read (drop-behind), not all of it left to the end."""
    monkeypatch.setattr(_movers, "resident_share",
                        lambda fd, offset, nbytes, probes=32: 0.0 if state == "cold" else 1.0)
    monkeypatch.setattr(_movers, "WINDOW", 64 * 1024)  # small arrays cross many windows
    monkeypatch.setattr(_fastpath, "WINDOW", 64 * 1024)
    data = np.random.default_rng(7).normal(size=(400, 64)).astype("<f4")
    data[40:80] = 0.0  # absent chunks: their files do not exist
    if shards == "hdf5-gzip":
        if "hdf5" not in BACKENDS:
            pytest.skip("h5py is not installed")
        src = write_source(tmp_path / "src.h5", data, chunks=(4, 64), compression="gzip:1")
    else:
        src = _zarr_source(tmp_path, data, (4, 64), shards if isinstance(shards, tuple) else None, "zstd:1")
    out = tmp_path / f"dst{SUFFIX[dst]}"
    report = arraystore.convert(src, str(out), max_memory=32 * 1024, verify=True)
    assert any("source chunks fetched and decoded here" in n for n in report.plan["notes"]), report.plan["notes"]
    assert f"page cache: {'drop-behind' if state == 'cold' else 'page-cache'}" in report.plan["notes"]
    assert report.blocks_total > 4
    assert bytes_equal(read_back(str(out))[0], data)
    assert report.checksum == StreamHasher.of(data)


@pytest.mark.parametrize("shards", [None, (6, 10)])
def test_sampled_chunk_files_spread_over_the_grid(tmp_path: Path, shards: tuple[int, int] | None) -> None:
    data = np.arange(30 * 20, dtype="<i4").reshape(30, 20) + 1
    src = _zarr_source(tmp_path, data, (3, 10), shards, "zstd:1")
    (tmp_path / "src.zarr" / "c" / "1" / "1").unlink()  # an absent chunk (shard)
    files = sorted(str(p) for p in (tmp_path / "src.zarr").rglob("c/*/*"))
    grid = 10 * 2 if shards is None else 5 * 2
    with arraystore.open(src) as store:
        reader = ZarrChunkReader(store, 1)
        try:
            every = reader.sample_files(1000)
            assert len(every) == len(set(every)) == grid  # each chunk (shard) once, absent ones too
            assert set(files) <= set(every) and len(files) < grid
            some = reader.sample_files(4)
            assert len(some) == 4 and set(some) <= set(every) and some[0] == every[0]
            assert reader.sample_files(0) == []
        finally:
            reader.close()
    share = files_resident_share(every)
    assert share is None or 0.0 <= share <= 1.0
    assert files_resident_share([str(tmp_path / "absent")]) is None
    assert files_resident_share([]) is None


def test_hdf5_destination_written_by_the_mover_is_flushed_once(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks put into the HDF5 file by pwrite are in it once written: one flush (the file's own state), not a flush
    (an msync, which waits for the disk) per block; a destination written through ``dst[sel] =`` keeps them."""
    if "hdf5" not in BACKENDS:
        pytest.skip("h5py is not installed")
    cls = backend_class("hdf5")
    flushes: list[str] = []
    flush = cls.flush

    def counting_flush(self: Any, durable: bool = False) -> None:
        flushes.append(self.path)
        flush(self, durable)

    monkeypatch.setattr(cls, "flush", counting_flush)
    data = np.random.default_rng(8).normal(size=(400, 64)).astype("<f4")
    src = _zarr_source(tmp_path, data, (4, 64), None, "zstd:1")
    report = arraystore.convert(src, str(tmp_path / "dst.h5"), max_memory=32 * 1024, verify=True)
    assert report.blocks_total > 4
    assert len(flushes) == 1
    assert bytes_equal(read_back(str(tmp_path / "dst.h5"))[0], data)
    flushes.clear()  # a chunked destination is written by h5py: each block flushed before it is journaled
    report = arraystore.convert(src, str(tmp_path / "chunked.h5"), max_memory=32 * 1024, chunks=(4, 64))
    assert report.blocks_total > 4 and len(flushes) == report.blocks_total
    assert bytes_equal(read_back(str(tmp_path / "chunked.h5"))[0], data)


def _drops_pages(folder: Path) -> bool:
    """True when the file system under ``folder`` drops a clean file's pages when asked (not tmpfs)."""
    probe = folder / "probe"
    probe.write_bytes(b"x" * (1 << 20))
    evict_from_page_cache(probe)
    share = files_resident_share([str(probe)])
    probe.unlink()
    return share == 0.0


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this platform")
def test_evict_from_page_cache_empties_files_and_folders(tmp_path: Path) -> None:
    """The helper tests and benchmarks use for a cold start: a file, and every file below a folder."""
    if not _drops_pages(tmp_path):
        pytest.skip("this file system keeps pages in memory whatever is asked (tmpfs)")
    (tmp_path / "d" / "e").mkdir(parents=True)
    names = [tmp_path / "one", tmp_path / "d" / "two", tmp_path / "d" / "e" / "three"]
    for name in names:
        name.write_bytes(b"y" * (256 << 10))  # dirty pages: written back by the helper, then dropped
    assert files_resident_share([str(n) for n in names]) == 1.0
    evict_from_page_cache(names[0])
    assert files_resident_share([str(names[0])]) == 0.0
    assert files_resident_share([str(n) for n in names[1:]]) == 1.0
    evict_from_page_cache(tmp_path / "d")
    assert files_resident_share([str(n) for n in names]) == 0.0


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this platform")
@pytest.mark.parametrize("shards", [None, (16, 64)])
def test_drop_behind_drops_the_source_chunk_files_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       shards: tuple[int, int] | None) -> None:
    """An output larger than the memory: the source's chunk files leave the page cache as they are read."""
    if not _drops_pages(tmp_path):
        pytest.skip("this file system keeps pages in memory whatever is asked (tmpfs)")
    data = np.random.default_rng(9).normal(size=(400, 64)).astype("<f4")
    src = _zarr_source(tmp_path, data, (4, 64), shards, "zstd:1")
    os.sync()  # clean pages: only those are dropped
    files = [str(p) for p in (tmp_path / "src.zarr").rglob("c/*/*")]
    for name in files:  # every chunk file in the page cache
        Path(name).read_bytes()
    assert files_resident_share(files) == 1.0
    for regime, available in (("page-cache", 1 << 50), ("drop-behind", 0)):
        monkeypatch.setattr(_movers, "available_memory", lambda room=available: room)
        out = tmp_path / f"{regime}.npy"
        report = arraystore.convert(src, str(out), max_memory=32 * 1024)
        assert f"page cache: {regime}" in report.plan["notes"] and report.blocks_total > 4
        assert bytes_equal(read_back(str(out))[0], data)
        share = files_resident_share(files)
        assert share == (1.0 if regime == "page-cache" else 0.0), (regime, share)


@pytest.mark.parametrize("state", ["cached", "cold"])
def test_durable_decoded_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str) -> None:
    """Durable: write-through from a source in the page cache, drop-behind from one read from the disk; a Zarr
    destination (chunk files, not a byte range) not durable: write-through from the disk (each chunk file
    written back at once), page-cache from memory."""
    monkeypatch.setattr(_movers, "resident_share",
                        lambda fd, offset, nbytes, probes=32: 0.0 if state == "cold" else 1.0)
    monkeypatch.setattr(_movers, "WINDOW", 64 * 1024)
    monkeypatch.setattr(_fastpath, "WINDOW", 64 * 1024)
    data = np.random.default_rng(10).normal(size=(400, 64)).astype("<f4")
    src = _zarr_source(tmp_path, data, (4, 64), None, "zstd:1")
    report = arraystore.convert(src, str(tmp_path / "dst.npy"), max_memory=32 * 1024, durable=True)
    assert f"page cache: {'drop-behind' if state == 'cold' else 'write-through'}" in report.plan["notes"]
    assert bytes_equal(read_back(str(tmp_path / "dst.npy"))[0], data)
    report = arraystore.convert(src, str(tmp_path / "dst.zarr"), max_memory=32 * 1024, chunks=(8, 64))
    assert f"page cache: {'write-through' if state == 'cold' else 'page-cache'}" in report.plan["notes"]
    assert bytes_equal(read_back(str(tmp_path / "dst.zarr"))[0], data)


@pytest.mark.parametrize("state", ["cached", "cold"])
@pytest.mark.parametrize("compression", [None, "zstd:1"])
@pytest.mark.parametrize("src_suffix", [".dat", ".npy"])
def test_zarr_chunk_files_from_a_cold_source_start_their_write_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    state: str, compression: str | None,
                                                                    src_suffix: str) -> None:
    """A byte-range source read from the disk into Zarr: every chunk file written starts its write-back at once
    (many small files left to one sync at the end wrote slower); from a cached source (page-cache regime) none
    does. The array is the same either way."""
    if "zarr" not in BACKENDS:
        pytest.skip("zarr is not installed")
    from arraystore.conversion import _zarr_direct

    monkeypatch.setattr(_movers, "resident_share",
                        lambda fd, offset, nbytes, probes=32: 0.0 if state == "cold" else 1.0)
    monkeypatch.setattr(_movers, "WINDOW", 64 * 1024)  # small arrays count as large enough to be sampled
    monkeypatch.setattr(_fastpath, "WINDOW", 64 * 1024)
    started: list[int] = []
    real = _zarr_direct.start_writeback
    monkeypatch.setattr(_zarr_direct, "start_writeback", lambda fd: (started.append(fd), real(fd))[1])
    data = np.random.default_rng(3).normal(size=(256, 128)).astype("<f4")
    src = write_source(tmp_path / f"src{src_suffix}", data)
    out = tmp_path / "dst.zarr"
    report = arraystore.convert(src, str(out), chunks=(16, 128), compression=compression, verify=True)
    assert f"page cache: {'write-through' if state == 'cold' else 'page-cache'}" in report.plan["notes"]
    chunk_files = [p for p in (out / "c").rglob("*") if p.is_file()]
    assert len(chunk_files) == 16
    assert len(started) == (16 if state == "cold" else 0)
    assert bytes_equal(read_back(str(out))[0], data)
    assert report.checksum == StreamHasher.of(data)
