"""Same-layout copies: the page-cache regime (a pure function, and the measured inputs it is given), the kernel
copy hashed through maps of the source's pages, and the overlapped buffered copy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore._fsutil import evict_from_page_cache
from arraystore.checksums import checksum
from arraystore.conversion import _fastpath, _movers
from arraystore.conversion._fastpath import (
    CACHE_SHARE,
    COLD_SHARE,
    WINDOW,
    available_memory,
    cache_regime,
    resident_share,
)
from arraystore.conversion._plan import blocks_in_memory

from .conftest import BACKENDS, SUFFIX, bytes_equal, read_back, write_source

GiB = 1 << 30
CONTIGUOUS = [b for b in ("raw", "npy", "hdf5") if b in BACKENDS]


@pytest.mark.parametrize(
    ("nbytes", "available", "durable", "expected"),
    [
        (0, 8 * GiB, False, "page-cache"),
        (1, 8 * GiB, True, "page-cache"),  # below one window: the fsync at publish is all there is
        (WINDOW - 1, 8 * GiB, True, "page-cache"),
        (WINDOW, 8 * GiB, True, "write-through"),
        (2 * GiB, 8 * GiB, False, "page-cache"),
        (2 * GiB, 8 * GiB, True, "write-through"),
        (2 * GiB + 1, 8 * GiB, False, "drop-behind"),
        (2 * GiB + 1, 8 * GiB, True, "drop-behind"),
        (3 * GiB, 1 * GiB, False, "drop-behind"),  # the "big" regime: a cgroup smaller than the data
        (1, 0, False, "drop-behind"),
    ],
)
def test_cache_regime_table(nbytes: int, available: int, durable: bool, expected: str) -> None:
    assert cache_regime(nbytes, available, durable) == expected


@pytest.mark.parametrize(
    ("nbytes", "available", "durable", "expected"),
    [
        (WINDOW - 1, 8 * GiB, False, "page-cache"),
        (WINDOW, 8 * GiB, False, "page-cache"),  # a cold source: read first, written after (as cp and sync)
        (2 * GiB, 8 * GiB, True, "page-cache"),  # durable too: the fsync at publish writes after the reads
        (2 * GiB + 1, 8 * GiB, False, "drop-behind"),  # does not fit: drop-behind whatever the source
        (2 * GiB + 1, 8 * GiB, True, "drop-behind"),
    ],
)
def test_cache_regime_of_a_cold_source(nbytes: int, available: int, durable: bool, expected: str) -> None:
    assert cache_regime(nbytes, available, durable, source_cold=True) == expected


@pytest.mark.parametrize(
    ("nbytes", "available", "durable", "decoded", "chunk_files", "expected"),
    [
        (WINDOW - 1, 8 * GiB, False, True, False, "page-cache"),  # below one window: nothing to pace
        (WINDOW, 8 * GiB, False, True, False, "drop-behind"),  # decoded into a file: written beside the reads
        (WINDOW, 8 * GiB, True, True, False, "drop-behind"),
        (WINDOW - 1, 8 * GiB, False, False, True, "page-cache"),
        (WINDOW, 8 * GiB, False, False, True, "write-through"),  # chunk files: each written back at once
        (WINDOW, 8 * GiB, True, True, True, "write-through"),
        (2 * GiB + 1, 8 * GiB, False, False, True, "drop-behind"),  # does not fit: drop-behind whatever the output
        (2 * GiB + 1, 8 * GiB, False, True, False, "drop-behind"),
    ],
)
def test_cache_regime_of_a_cold_decoded_source_or_chunk_files(nbytes: int, available: int, durable: bool,
                                                               decoded: bool, chunk_files: bool,
                                                               expected: str) -> None:
    assert cache_regime(nbytes, available, durable, source_cold=True, decoded=decoded,
                        chunk_files=chunk_files) == expected


@pytest.mark.parametrize("decoded", [False, True])
@pytest.mark.parametrize("chunk_files", [False, True])
@pytest.mark.parametrize("durable", [False, True])
def test_a_cached_source_ignores_decoded_and_chunk_files(durable: bool, decoded: bool, chunk_files: bool) -> None:
    for n in (WINDOW - 1, WINDOW, 2 * GiB, 2 * GiB + 1):
        assert cache_regime(n, 8 * GiB, durable, decoded=decoded, chunk_files=chunk_files) == cache_regime(
            n, 8 * GiB, durable)


def test_resident_share_follows_the_page_cache(tmp_path: Path) -> None:
    """mincore sees a file's pages leave the cache and come back (the measurement the regime choice uses)."""
    path = tmp_path / "f.bin"
    path.write_bytes(np.random.default_rng(0).bytes(4 << 20))
    evict_from_page_cache(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        cold = resident_share(fd, 0, 4 << 20)
        if cold is None:
            pytest.skip("mincore is not available here")
        os.pread(fd, 4 << 20, 0)
        warm = resident_share(fd, 0, 4 << 20)
        assert warm is not None and warm >= COLD_SHARE
        assert resident_share(fd, 12345, 1000) is not None  # unaligned ranges map from the page below
        assert resident_share(fd, 0, 0) is None
    finally:
        os.close(fd)
    assert cold < 1.0  # tmpfs keeps every page: there a file is never cold, and the copy treats it so


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 1 << 40), m=st.integers(0, 1 << 40), avail=st.integers(0, 1 << 40), durable=st.booleans())
def test_cache_regime_is_monotonic(n: int, m: int, avail: int, durable: bool) -> None:
    """A larger output never goes back into the page cache; durable only turns page-cache into write-through."""
    rank = {"page-cache": 0, "write-through": 1, "drop-behind": 2}
    small, large = sorted((n, m))
    if cache_regime(small, avail, durable) == "drop-behind":
        assert cache_regime(large, avail, durable) == "drop-behind"
    assert (cache_regime(n, avail, False) == "drop-behind") == (n > avail // CACHE_SHARE)
    assert rank[cache_regime(n, avail, durable)] >= rank[cache_regime(n, avail, False)]
    if cache_regime(n, avail, True) == "write-through":
        assert cache_regime(n, avail, False) == "page-cache"
    assert cache_regime(n, avail, durable, source_cold=True) == (
        "drop-behind" if n > avail // CACHE_SHARE else "page-cache")  # a cold source never overlaps its writes


def test_available_memory_is_bounded_by_the_machine() -> None:
    got = available_memory()
    assert 0 <= got <= psutil.virtual_memory().available + (64 << 20)  # the two reads are moments apart
    direct = _fastpath._meminfo_available()  # read without importing psutil, where /proc/meminfo exists
    if direct is not None:
        assert abs(direct - psutil.virtual_memory().available) <= 64 << 20


def test_buffered_copy_holds_two_buffers() -> None:
    assert blocks_in_memory("buffered-copy", False, 1) == 2
    assert blocks_in_memory("kernel-copy", False, 1) == 1


SHAPES = [(0,), (1,), (7,), (4097,), (3, 0, 5), (33, 17), (5, 7, 3)]


@settings(max_examples=30, deadline=None)
@given(
    src_backend=st.sampled_from(CONTIGUOUS),
    dst_backend=st.sampled_from(CONTIGUOUS),
    shape=st.sampled_from(SHAPES),
    dtype=st.sampled_from(["|u1", "<i2", ">f8", "<c16"]),
    budget=st.sampled_from([4096, 8192, 1 << 20]),
    regime=st.sampled_from(["page-cache", "write-through", "drop-behind"]),
    kernel=st.booleans() if _fastpath.KERNEL_COPY else st.just(False),
    workers=st.sampled_from([1, 2, 3]),
)
def test_overlapped_copy_is_byte_identical(tmp_path_factory: pytest.TempPathFactory, src_backend: str,
                                           dst_backend: str, shape: tuple[int, ...], dtype: str, budget: int,
                                           regime: str, kernel: bool, workers: int) -> None:
    """Kernel copies (1 or 2 streams) and buffered copies, in every regime: the same bytes, the source's checksum."""
    tmp = tmp_path_factory.mktemp("ov")
    data = np.random.default_rng(len(shape)).integers(0, 255, size=shape).astype(dtype)
    src = write_source(tmp / f"src{SUFFIX[src_backend]}", data)
    dst = tmp / f"dst{SUFFIX[dst_backend]}"
    available = {"page-cache": 1 << 50, "write-through": 1 << 50, "drop-behind": 0}[regime]
    mp = pytest.MonkeyPatch()
    mp.setattr(_movers, "available_memory", lambda: available)
    mp.setattr(_fastpath, "KERNEL_COPY", kernel)
    try:
        report = arraystore.convert(src, str(dst), max_memory=budget, durable=(regime == "write-through"),
                                    verify=True, workers=workers)
    finally:
        mp.undo()
    back, _ = read_back(str(dst))
    assert bytes_equal(back, data)
    if data.nbytes:
        assert report.method == ("kernel-copy" if kernel else "buffered-copy"), report.plan
        expect = regime if (regime != "write-through" or data.nbytes >= WINDOW) else "page-cache"
        assert f"page cache: {expect}" in report.plan["notes"]
        assert report.checksum == checksum(src, decoded=True)
        with arraystore.open(str(dst)) as out:
            assert out.recorded_checksum in (None, report.checksum)


@pytest.fixture(params=["ring", "kernel"])
def copy_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Same-layout copies through the ring (cached sources) or in the kernel (sources read from the disk), whatever
    the source's state."""
    monkeypatch.setattr(_movers, "copies_through_ring", lambda source_cold: request.param == "ring")
    return str(request.param)


@pytest.mark.skipif(not _fastpath.KERNEL_COPY, reason="no copy_file_range on this platform")
@pytest.mark.parametrize("workers", [1, 2])
def test_kernel_copy_records_the_buffered_path_checksum(tmp_path: Path, workers: int, source_state: str,
                                                        copy_path: str) -> None:
    """The kernel copy and the ring hash the source's bytes, cached or read from the disk: the same checksum as
    bytes read into buffers."""
    data = np.random.default_rng(1).random((3001, 17))  # odd sizes: blocks end mid-row, mid-page
    src = write_source(tmp_path / "a.npy", data)  # a 128-byte header: maps start below the data
    kernel = arraystore.convert(src, str(tmp_path / "k.dat"), max_memory=8192, workers=workers)
    mp = pytest.MonkeyPatch()
    mp.setattr(_fastpath, "KERNEL_COPY", False)
    try:
        buffered = arraystore.convert(src, str(tmp_path / "b.dat"), max_memory=8192)
    finally:
        mp.undo()
    assert (kernel.method, buffered.method) == ("kernel-copy", "buffered-copy")
    assert kernel.copy_call == ("copy_file_range" if copy_path == "kernel" else "preadv/pwritev")
    assert min(kernel.blocks_total, buffered.blocks_total) > 4
    assert kernel.checksum == buffered.checksum == checksum(src, decoded=True)
    with arraystore.open(str(tmp_path / "k.dat")) as out:
        assert out.recorded_checksum == kernel.checksum


@pytest.fixture(params=["cached", "cold"])
def source_state(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The source as the page cache holds it, or as if read from the disk: two copy streams, write-back started
    every 64 KiB window (the window shrunk so that small arrays cross many)."""
    if request.param == "cold":
        monkeypatch.setattr(_movers, "resident_share", lambda fd, offset, nbytes: 0.0)
        monkeypatch.setattr(_movers, "WINDOW", 64 * 1024)
        monkeypatch.setattr(_fastpath, "WINDOW", 64 * 1024)
    return str(request.param)


@pytest.mark.skipif(not _fastpath.KERNEL_COPY, reason="no copy_file_range on this platform")
def test_cold_source_copies_in_two_streams(tmp_path: Path, source_state: str, copy_path: str) -> None:
    data = np.random.default_rng(2).random((257, 129))
    src = write_source(tmp_path / "a.npy", data)
    report = arraystore.convert(src, str(tmp_path / "b.dat"), max_memory=16 * 1024, workers=2, verify=True)
    notes = report.plan["notes"]
    assert "page cache: page-cache" in notes  # a cold source too: read first, written back after
    cold = ", the source read from the disk" if source_state == "cold" else ""
    if copy_path == "kernel":
        assert f"copied in the kernel by {2 if cold else 1} thread(s) ahead of the hashing{cold}" in notes
    else:
        assert f"copied through a ring of cache-sized buffers, hashed on a second thread{cold}" in notes
        assert report.copy_call == "preadv/pwritev"
    assert report.checksum == checksum(src, decoded=True)
    assert bytes_equal(read_back(str(tmp_path / "b.dat"))[0], data)


@pytest.mark.skipif(not _fastpath.KERNEL_COPY, reason="no copy_file_range on this platform")
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("stop_at", [1, 7, 30])
def test_interrupted_kernel_copy_resumes_with_digests(tmp_path: Path, workers: int, stop_at: int,
                                                      source_state: str, copy_path: str) -> None:
    """Stopped with copies started ahead: the rerun trusts only journaled blocks whose bytes match their digest,
    rewrites a block whose bytes were damaged, and records the source's checksum."""
    data = np.arange(64 * 1024, dtype="<f8")
    src = write_source(tmp_path / "a.dat", data)
    dst = str(tmp_path / "a.npy")
    calls = [0]

    def stop(done: int, total: int) -> Any:
        calls[0] += 1
        if calls[0] == stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        arraystore.convert(src, dst, max_memory=8192, progress=stop, workers=workers)
    journal = next(tmp_path.glob("*journal*"), None) or next(tmp_path.glob(".*"), None)
    assert journal is not None, sorted(p.name for p in tmp_path.iterdir())
    staged = [p for p in tmp_path.iterdir() if p.name not in ("a.dat", "a.dat.json") and p != journal
              and p.is_file() and p.stat().st_size >= data.nbytes]
    assert len(staged) == 1, sorted(p.name for p in tmp_path.iterdir())
    with open(staged[0], "r+b") as f:  # damage the first block's bytes: its digest no longer matches
        f.seek(staged[0].stat().st_size - data.nbytes + 10)
        f.write(b"\xff\xfe")
    report = arraystore.convert(src, dst, max_memory=8192, verify=True, workers=workers)
    assert report.method == "kernel-copy" and report.verified
    assert report.blocks_resumed >= stop_at - 2 and report.blocks_rewritten == 1
    assert report.blocks_resumed + report.blocks_written == report.blocks_total
    assert report.checksum == checksum(src, decoded=True)
    assert bytes_equal(read_back(dst)[0], data)



@pytest.fixture(params=["kernel-copy", "buffered-copy"])
def copy_method(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Same-layout copies in the kernel (where the platform has copy_file_range) and through two buffers."""
    if request.param == "kernel-copy" and not _fastpath.KERNEL_COPY:
        pytest.skip("no copy_file_range on this platform")
    monkeypatch.setattr(_fastpath, "KERNEL_COPY", request.param == "kernel-copy")
    return str(request.param)


def test_many_blocks_through_two_buffers(tmp_path: Path, copy_method: str) -> None:
    """Hundreds of blocks alternating between two buffers, or two kernel copy streams, while one is being written
    (or retired): every byte in place."""
    data = np.arange(300_001, dtype="<u4")  # odd size: the last block is short
    src = write_source(tmp_path / "a.dat", data)
    report = arraystore.convert(src, str(tmp_path / "a.npy"), max_memory=8192, verify=True, workers=2)
    assert report.method == copy_method and report.blocks_total > 100
    assert bytes_equal(read_back(str(tmp_path / "a.npy"))[0], data)


def test_interrupted_overlapped_copy_resumes(tmp_path: Path, copy_method: str) -> None:
    """An exception while a write is in flight keeps the journaled prefix; the rerun resumes it and verifies."""
    data = np.arange(64 * 1024, dtype="<f8")
    src = write_source(tmp_path / "a.dat", data)
    dst = str(tmp_path / "a.npy")
    calls = [0]

    def stop(done: int, total: int) -> Any:
        calls[0] += 1
        if calls[0] == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        arraystore.convert(src, dst, max_memory=8192, progress=stop)
    report = arraystore.convert(src, dst, max_memory=8192, verify=True)
    assert report.blocks_resumed >= 9 and report.blocks_rewritten == 0
    assert report.verified
    assert bytes_equal(read_back(dst)[0], data)


@pytest.mark.skipif(not _fastpath.KERNEL_COPY, reason="no copy_file_range on this platform")
def test_blocks_hashed_in_pieces_resume_as_journaled(tmp_path: Path, source_state: str, copy_path: str) -> None:
    """Blocks of several hash pieces (the last one short): the digests journaled piece by piece are those of the
    destination's bytes read back whole, so an interrupted copy resumes every journaled block."""
    data = np.random.default_rng(3).integers(0, 1 << 30, size=(1_900_001,), dtype="<i4")  # 7.6 MB, odd
    src = write_source(tmp_path / "a.npy", data)
    dst = str(tmp_path / "a.dat")
    budget = 3 * _movers.HASH_PIECE + 1000

    def stop(done: int, total: int) -> None:
        if done > budget:  # the second block journaled
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        arraystore.convert(src, dst, max_memory=budget, workers=2, progress=stop)
    report = arraystore.convert(src, dst, max_memory=budget, workers=2, verify=True)
    assert report.method == "kernel-copy" and report.blocks_total >= 3
    assert report.blocks_resumed == 2 and report.blocks_rewritten == 0 and report.verified
    assert report.checksum == checksum(src, decoded=True)
    assert bytes_equal(read_back(dst)[0], data)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.sampled_from([(1,), (4097,), (33, 17), (301, 17), (5, 7, 3)]),
    dtype=st.sampled_from(["|u1", "<i2", ">f8"]),
    budget=st.sampled_from([4096, 8192, 1 << 20]),
    piece=st.sampled_from([1, 7, 4096, 65536]),
    slots=st.sampled_from([1, 2, 4]),
    pair=st.sampled_from([(s, d) for s in CONTIGUOUS for d in CONTIGUOUS]),
)
def test_ring_copy_in_any_pieces(tmp_path_factory: pytest.TempPathFactory, shape: tuple[int, ...], dtype: str,
                                 budget: int, piece: int, slots: int, pair: tuple[str, str]) -> None:
    """Blocks split into pieces of any size (pieces across block ends, a short last piece, one slot or several):
    the same bytes, the source's checksum, and journal digests that a resume accepts."""
    tmp = tmp_path_factory.mktemp("ring")
    data = np.random.default_rng(piece).integers(0, 255, size=shape).astype(dtype)
    src = write_source(tmp / f"src{SUFFIX[pair[0]]}", data)
    dst = tmp / f"dst{SUFFIX[pair[1]]}"
    mp = pytest.MonkeyPatch()
    mp.setattr(_movers, "RING_PIECE", piece)
    mp.setattr(_movers, "RING_SLOTS", slots)
    mp.setattr(_movers, "copies_through_ring", lambda source_cold: True)
    calls = [0]

    def stop(done: int, total: int) -> None:
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt

    try:
        first = arraystore.convert(src, str(dst), max_memory=budget, verify=True)
        assert first.copy_call == "preadv/pwritev"
        assert bytes_equal(read_back(str(dst))[0], data)
        assert first.checksum == checksum(src, decoded=True)
        resumed = tmp / f"again{SUFFIX[pair[1]]}"
        try:
            arraystore.convert(src, str(resumed), max_memory=budget, progress=stop)
        except KeyboardInterrupt:
            report = arraystore.convert(src, str(resumed), max_memory=budget, verify=True)
            assert report.blocks_rewritten == 0 and report.blocks_resumed >= 1
            assert report.checksum == first.checksum
        assert bytes_equal(read_back(str(resumed))[0], data)
    finally:
        mp.undo()


def test_ring_hashing_error_reaches_the_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure on the hashing thread is raised by the conversion (nothing published), and the thread ends."""
    import threading

    data = np.arange(300_001, dtype="<u4")
    src = write_source(tmp_path / "a.dat", data)
    real = _movers.block_digester
    made = [0]

    class Failing:
        def __init__(self) -> None:
            self._d = real()
            made[0] += 1
            self._fail = made[0] == 3

        def update(self, piece: Any) -> None:
            if self._fail:
                raise ValueError("hashing failed")
            self._d.update(piece)

        def hexdigest(self) -> str:
            return str(self._d.hexdigest())

    monkeypatch.setattr(_movers, "block_digester", Failing)
    monkeypatch.setattr(_movers, "copies_through_ring", lambda source_cold: True)
    with pytest.raises(ValueError, match="hashing failed"):
        arraystore.convert(src, str(tmp_path / "a.npy"), max_memory=8192)
    assert not (tmp_path / "a.npy").exists()
    assert not any(t.name == "arraystore-hash" for t in threading.enumerate())
