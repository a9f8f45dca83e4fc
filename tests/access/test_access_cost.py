"""take()'s cost model: decisions follow from a calibration, every mode equals numpy, calibration stays out of
the data folder."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore import _iocost, access
from arraystore._fsutil import evict_from_page_cache
from arraystore._iocost import Calibration, GatherStats, choose_gather, gather_costs
from arraystore.errors import AccessError

MiB = 1 << 20
# Three devices, as a calibration describes them (the figures are the kind measured on such devices).
SPINNING = Calibration("hdd", read_bytes_per_s=150e6, random_read_s=8e-3, parallel_read_s=4e-3,
                       memory_bytes_per_s=5e9, call_s=1e-6, fault_window_bytes=128 * 1024)
NVME = Calibration("nvme", read_bytes_per_s=2e9, random_read_s=80e-6, parallel_read_s=8e-6,
                   memory_bytes_per_s=5e9, call_s=1e-6, fault_window_bytes=128 * 1024)
BIG_READAROUND = Calibration("vm", read_bytes_per_s=1.3e9, random_read_s=100e-6, parallel_read_s=40e-6,
                             memory_bytes_per_s=5e9, call_s=1e-6, fault_window_bytes=8 * MiB)


def _evict(path: str) -> None:
    """Out of the page cache (clean, unmapped pages: the kernel drops them)."""
    evict_from_page_cache(path)


def _stats(*, span: int, touched: int, runs: int, windows: int, resident: float = 0.0) -> GatherStats:
    return GatherStats(span_bytes=span, touched_pages=touched, runs=runs, windows=windows, resident=resident,
                       block_bytes=64 * MiB, row_bytes=touched * 4096)


def test_dense_rows_read_in_one_pass() -> None:
    # every page of 1 GiB wanted: one sequential pass on any device
    dense = _stats(span=1 << 30, touched=(1 << 30) // 4096, runs=1000, windows=8192)
    for cal in (SPINNING, NVME, BIG_READAROUND):
        assert choose_gather(dense, cal) == "sequential"


def test_few_far_rows_on_a_disk_are_gathered() -> None:
    # 100 rows spread over 100 GiB: reading them beats reading 100 GiB
    sparse = _stats(span=100 << 30, touched=100, runs=100, windows=100)
    assert choose_gather(sparse, SPINNING) == "gather"
    assert choose_gather(sparse, NVME) == "gather"


def test_large_read_around_makes_the_sorted_map_gather_cheapest() -> None:
    # 100k rows in 2 GiB on a device whose page faults read 8 MiB: 256 faults cover them all
    stats = _stats(span=2 << 30, touched=95_000, runs=99_000, windows=256)
    assert choose_gather(stats, BIG_READAROUND) == "mapped"
    # the same rows on a device whose faults read 128 KiB (16,384 windows): the advised parallel gather
    assert choose_gather(_stats(span=2 << 30, touched=95_000, runs=99_000, windows=16_384), NVME) == "gather"
    # buffered I/O never gathers from a map
    assert "mapped" not in gather_costs(stats, BIG_READAROUND, io="buffered")
    assert choose_gather(stats, BIG_READAROUND, io="buffered") in ("gather", "sequential")


def test_close_runs_are_advised_as_one_range_where_reading_the_gap_is_cheaper() -> None:
    # the break-even gap: one more read in the gather costs what reading the gap does
    assert _iocost.merge_gap_bytes(NVME) == int(8e-6 * 2e9)
    assert _iocost.merge_gap_bytes(SPINNING) == int(4e-3 * 150e6)  # 600 KB
    slow = dataclass_replace(SPINNING, parallel_read_s=1.0)
    assert _iocost.merge_gap_bytes(slow) == _iocost.MAX_MERGE_GAP  # bounded
    assert _iocost.merge_gap_bytes(None) == 0
    # 100k runs merged into 20k ranges of 5 pages: fewer reads, a few more pages each
    apart = _stats(span=2 << 30, touched=100_000, runs=100_000, windows=256)
    merged = dataclass_replace_stats(apart, advised_runs=20_000, advised_pages=100_000)
    assert gather_costs(merged, NVME)["gather"] < gather_costs(apart, NVME)["gather"]
    # buffered I/O reads each run with its own preadv: merging plays no part there
    assert gather_costs(merged, NVME, io="buffered") == gather_costs(apart, NVME, io="buffered")


def dataclass_replace_stats(stats: GatherStats, **kw: int) -> GatherStats:
    import dataclasses

    return dataclasses.replace(stats, **kw)


def test_warm_rows_cost_only_copies() -> None:
    stats = _stats(span=2 << 30, touched=20_000, runs=20_000, windows=16_000, resident=1.0)
    costs = gather_costs(stats, SPINNING)
    # in the page cache the device's latency plays no part
    assert costs == gather_costs(stats, dataclass_replace(SPINNING, random_read_s=1.0, parallel_read_s=1.0))
    assert choose_gather(stats, SPINNING) != "sequential"  # copying 2 GiB costs more than 20k faults


def dataclass_replace(cal: Calibration, **kw: float) -> Calibration:
    import dataclasses

    return dataclasses.replace(cal, **kw)


_CALS = st.builds(
    Calibration, device=st.just("x"), read_bytes_per_s=st.floats(1e6, 1e10), random_read_s=st.floats(1e-7, 1e-1),
    parallel_read_s=st.floats(1e-7, 1e-1), memory_bytes_per_s=st.floats(1e8, 1e11), call_s=st.floats(1e-8, 1e-4),
    fault_window_bytes=st.sampled_from([4096, 128 * 1024, 8 * MiB]),
    gather_page_s=st.one_of(st.just(0.0), st.floats(1e-8, 1e-3)),
    mapped_bytes_per_s=st.one_of(st.just(0.0), st.floats(1e6, 1e10)),
)


@given(cal=_CALS, span_pages=st.integers(1, 10**7), frac=st.floats(0.0, 1.0), runs_frac=st.floats(0.0, 1.0),
       resident=st.floats(0.0, 1.0), io=st.sampled_from(["mmap", "buffered"]))
def test_decision_is_the_cheapest_and_deterministic(cal: Calibration, span_pages: int, frac: float, runs_frac: float,
                                                    resident: float, io: str) -> None:
    touched = max(1, int(span_pages * frac))
    runs = max(1, int(touched * runs_frac))
    stats = _stats(span=span_pages * 4096, touched=touched, runs=runs, windows=max(1, touched // 32),
                   resident=resident)
    costs = gather_costs(stats, cal, io)
    mode = choose_gather(stats, cal, io)
    assert costs[mode] == min(costs.values())
    assert all(choose_gather(stats, cal, io) == mode for _ in range(3))
    assert set(costs) == ({"sequential", "gather", "mapped"} if io == "mmap" else {"sequential", "gather"})


def test_an_injected_calibration_is_used_and_nothing_is_measured(make_store: Callable[..., str]) -> None:
    data = np.arange(4000 * 64, dtype="<f8").reshape(4000, 64)
    path = make_store("raw", data)
    _evict(path)  # cold rows: without a calibration given, the device would be measured
    access.reset_calibration()
    with arraystore.open(path) as store:
        got = access.take(store, [3, 2000, 7], calibration=NVME)
    np.testing.assert_array_equal(got, data[[3, 2000, 7]])
    assert _iocost._CACHE == {}  # no device was measured


@given(indices=st.lists(st.integers(-3000, 2999), max_size=300), mode=st.sampled_from(access.TAKE_MODES),
       io=st.sampled_from(["mmap", "buffered"]), order=st.sampled_from(["C", "F"]), kib=st.integers(4, 256),
       cal=st.sampled_from([BIG_READAROUND, NVME, SPINNING]))
def test_every_mode_equals_numpy(tmp_path_factory: pytest.TempPathFactory, indices: list[int], mode: str, io: str,
                                 order: str, kib: int, cal: Calibration) -> None:
    # the calibrations merge runs of the gather closer than 52 KB, 16 KB and 600 KB (rows of 148 B)
    data = np.random.default_rng(5).integers(-2**31, 2**31 - 1, size=(3000, 37), dtype="<i4").astype(">i4")
    if order == "F":
        data = np.asfortranarray(data.T)  # (37, 3000): the outermost storage axis is the last
    path = tmp_path_factory.getbasetemp() / f"modes-{order}.dat"
    if not path.exists():
        with arraystore.create(str(path), data.shape, data.dtype, order=order) as new:  # type: ignore[arg-type]
            new[...] = data
    axis = 0 if order == "C" else 1
    with arraystore.open(str(path), io=io) as store:
        if mode == "mapped" and io == "buffered":
            with pytest.raises(AccessError, match="buffered"):
                access.take(store, indices, axis=axis, mode=mode)
            return
        got = access.take(store, indices, axis=axis, mode=mode, max_bytes=kib * 1024, calibration=cal)
    np.testing.assert_array_equal(got, np.take(data, indices, axis=axis))


def test_forced_modes_need_a_memory_mappable_store_and_its_outer_axis(make_store: Callable[..., str]) -> None:
    data = np.arange(60, dtype="<i2").reshape(10, 6)
    with arraystore.open(make_store("raw", data)) as store:
        with pytest.raises(AccessError, match="one of"):
            access.take(store, [1], mode="fastest")
        with pytest.raises(AccessError, match="outermost"):
            access.take(store, [1], axis=1, mode="gather")
        np.testing.assert_array_equal(store.take([4, 1], mode="sequential"), data[[4, 1]])
    h5 = make_store("hdf5", data, name="b")
    with arraystore.open(h5) as store, pytest.raises(AccessError, match="mode='auto'"):
        access.take(store, [1], mode="mapped")


def test_calibration_never_writes_next_to_the_data(tmp_path_factory: pytest.TempPathFactory,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   make_store: Callable[..., str]) -> None:
    cache = tmp_path_factory.mktemp("user-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    data = np.random.default_rng(1).random((5000, 100))
    path = Path(make_store("raw", data))
    before = {p.name: p.stat().st_mtime_ns for p in path.parent.iterdir()}
    access.reset_calibration()
    try:
        with arraystore.open(str(path)) as store:
            cal = access.calibrate(store, force=True, persist=True)
            assert cal.source == "measured" and cal.read_bytes_per_s > 0 and cal.random_read_s > 0
            access.take(store, np.arange(0, 5000, 7))
        after = {p.name: p.stat().st_mtime_ns for p in path.parent.iterdir()}
        assert after == before  # nothing added or changed in the data folder
        assert access.calibration_cache_file() == cache / "arraystore" / "io-calibration.json"
        assert access.calibration_cache_file().is_file()
        # a new process (here: a reset cache) reads the persisted calibration instead of measuring
        access.reset_calibration()
        with arraystore.open(str(path)) as store:
            again = access.calibrate(store)
        assert again.source == "cache file" and again.read_bytes_per_s == cal.read_bytes_per_s
        access.reset_calibration(persisted=True)
        assert not access.calibration_cache_file().exists()
    finally:
        access.reset_calibration()


def test_residency_of_pages_just_read(tmp_path: Path) -> None:
    path = tmp_path / "warm.bin"
    path.write_bytes(os.urandom(64 * 4096))
    path.read_bytes()
    fd = os.open(path, os.O_RDONLY)
    try:
        frac = _iocost.resident_fraction(fd, np.arange(64) * 4096)
    finally:
        os.close(fd)
    if frac is None:
        pytest.fail("preadv2(RWF_NOWAIT) is not available: the cost model cannot see the page cache here")
    assert frac == 1.0


def test_all_or_none_residency_stops_at_the_first_page_out_of_the_cache(tmp_path: Path) -> None:
    # Asking "all in the page cache?" must not probe (and start reads of) the pages after the first one out of it.
    path = tmp_path / "cold.bin"
    path.write_bytes(os.urandom(256 * 4096))
    _evict(str(path))
    fd = os.open(path, os.O_RDONLY)
    try:
        with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m:
            before = _iocost.resident_pages(m, np.arange(256))
            if before is None or before.any():
                pytest.skip("the page cache cannot be inspected or emptied here (no mincore, or tmpfs)")
            probes = np.arange(16, 256, 32) * 4096  # pages far apart: no read-ahead of one reaches the next
            frac = _iocost.resident_fraction(fd, probes, all_or_none=True)
            if frac is None:
                pytest.skip("preadv2(RWF_NOWAIT) is not available here")
            assert frac == 0.0
            after = _iocost.resident_pages(m, probes[1:] // 4096)
            assert after is not None and not after.any()  # not one of them probed
        os.pread(fd, 256 * 4096, 0)  # all in the page cache now
        assert _iocost.resident_fraction(fd, probes, all_or_none=True) == 1.0
        _evict(str(path))
        os.pread(fd, 4096, 16 * 4096)  # the first probed page only
        assert _iocost.resident_fraction(fd, probes, all_or_none=True) == 0.0
    finally:
        os.close(fd)


def test_a_calibration_from_a_small_file_is_replaced_by_a_larger_files(tmp_path: Path) -> None:
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    small.write_bytes(os.urandom(3 * 4096))
    large.write_bytes(os.urandom(9 << 20))
    access.reset_calibration()
    try:
        rough = _iocost.calibration_for(small)
        assert rough.sample_bytes == 3 * 4096
        assert _iocost.calibration_for(small) is rough  # cached for the device
        full = _iocost.calibration_for(large)
        assert full.sample_bytes == 8 << 20 and full.device == rough.device
        assert _iocost.calibration_for(small) is full  # the larger file's figure serves the whole device
    finally:
        access.reset_calibration()


def test_warm_rows_need_no_device_measurement_and_cold_ones_get_it(make_store: Callable[..., str]) -> None:
    data = np.random.default_rng(4).random((8000, 64))
    path = make_store("raw", data)
    access.reset_calibration()
    try:
        with open(path, "rb") as f:
            f.read()  # every page in the page cache
        idx = np.arange(0, 8000, 13)
        with arraystore.open(path) as store:
            np.testing.assert_array_equal(access.take(store, idx), data[idx])
        assert _iocost._CACHE == {}  # copies only: the device was not measured
        _evict(path)
        with arraystore.open(path) as store:
            np.testing.assert_array_equal(access.take(store, idx), data[idx])
        (cal,) = _iocost._CACHE.values()
        assert cal.source == "measured"
    finally:
        access.reset_calibration()


def _resident_pages(path: str) -> int:
    import mmap

    fd = os.open(path, os.O_RDONLY)
    try:
        with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m:
            got = _iocost.resident_pages(m, np.arange(-(-os.path.getsize(path) // 4096)))
    finally:
        os.close(fd)
    if got is None:
        pytest.skip("mincore is not available here: the page cache cannot be inspected")
    return int(got.sum())


def test_the_gather_is_measured_on_the_file_and_the_page_cache_left_as_found(tmp_path: Path) -> None:
    path = tmp_path / "device.bin"
    path.write_bytes(os.urandom(16 << 20))
    _evict(str(path))
    if _resident_pages(str(path)):
        pytest.skip("this file system keeps the file in the page cache (eviction has no effect)")
    gathered = _iocost._willneed_gather(str(path), (16 << 20) // 4096, np.random.default_rng(0))
    if gathered is None:
        pytest.skip("O_DIRECT-less or mincore-less file system: the gather cannot be measured here")
    assert gathered > 0
    assert _resident_pages(str(path)) == 0  # the pages the measurement read were evicted again
    access.reset_calibration()
    try:
        cal = _iocost.measure(path)
        assert cal.parallel_read_s > 0
        assert _resident_pages(str(path)) == 0
    finally:
        access.reset_calibration()


def test_the_streaming_read_is_measured_out_of_the_page_cache_and_evicted_again(tmp_path: Path) -> None:
    path = tmp_path / "stream.bin"
    path.write_bytes(os.urandom(48 << 20))
    _evict(str(path))
    if _resident_pages(str(path)):
        pytest.skip("this file system keeps the file in the page cache (eviction has no effect)")
    rates = _iocost._streaming_read(str(path), (48 << 20) // 4096, np.random.default_rng(0))
    assert rates is not None and rates.read > 0 and rates.cached > 0
    assert (rates.mapped, rates.window, rates.page_s) == (0.0, 0, 0.0)  # a file too small for those stretches
    assert _resident_pages(str(path)) == 0  # the stretch and the read-ahead past it evicted again
    path.read_bytes()  # all in the page cache: no stretch out of it, nothing measured, nothing evicted
    assert _iocost._streaming_read(str(path), (48 << 20) // 4096, np.random.default_rng(0)) is None
    assert _resident_pages(str(path)) == (48 << 20) // 4096


def test_the_streaming_read_tolerates_a_few_cached_pages_and_leaves_them_cached(tmp_path: Path) -> None:
    # The take that measures the device on first use has probed a page here and there (each probe of a page out
    # of the page cache reads it): the stretch is measured all the same, and exactly those pages stay cached.
    path = tmp_path / "probed.bin"
    path.write_bytes(os.urandom(48 << 20))
    _evict(str(path))
    if _resident_pages(str(path)):
        pytest.skip("this file system keeps the file in the page cache (eviction has no effect)")
    probed = np.arange(100, (48 << 20) // 4096, 1024)  # one page in 1,024 (a 4 MiB stride)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for page in probed.tolist():
            os.pread(fd, 1, page * 4096)
        with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m:
            before = _iocost.resident_pages(m, np.arange((48 << 20) // 4096))
            assert before is not None and set(np.flatnonzero(before)) == set(probed.tolist())
            rates = _iocost._streaming_read(str(path), (48 << 20) // 4096, np.random.default_rng(0))
            assert rates is not None and rates.read > 0 and rates.cached > 0
            after = _iocost.resident_pages(m, np.arange((48 << 20) // 4096))
            assert after is not None and set(np.flatnonzero(after)) == set(probed.tolist())  # as found
    finally:
        os.close(fd)


def test_the_gather_of_a_file_in_the_page_cache_leaves_it_there(tmp_path: Path) -> None:
    path = tmp_path / "warm.bin"
    path.write_bytes(os.urandom(4 << 20))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # clean pages: the kernel evicts those only
    finally:
        os.close(fd)
    path.read_bytes()
    pages = (4 << 20) // 4096
    if _resident_pages(str(path)) < pages:
        pytest.skip("this file system does not keep the file in the page cache")
    # every page is in the page cache: some are evicted and their reading back measured (a page in the cache
    # would look like a free read), and the file is all in the page cache again afterwards
    gathered = _iocost._willneed_gather(str(path), pages, np.random.default_rng(0))
    assert gathered is not None and gathered > 0
    assert _resident_pages(str(path)) == pages


def test_cache_file_entries_of_another_version_are_measured_again(tmp_path_factory: pytest.TempPathFactory,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
    path = tmp_path_factory.mktemp("data") / "f.bin"
    path.write_bytes(os.urandom(1 << 20))
    key = _iocost._device_key(str(path))
    old = {**NVME.to_dict(), "device": key}  # written before entries had a format: an O_DIRECT-only figure
    access.calibration_cache_file().parent.mkdir(parents=True)
    access.calibration_cache_file().write_text(json.dumps({key: old}))
    access.reset_calibration()
    try:
        assert _iocost.calibration_for(path).source == "measured"
        _iocost.calibration_for(path, force=True, persist=True)
        stored = json.loads(access.calibration_cache_file().read_text())[key]
        assert stored["format"] == _iocost.FORMAT
        access.reset_calibration()
        assert _iocost.calibration_for(path).source == "cache file"
    finally:
        access.reset_calibration(persisted=True)


# -- issue 14: what mapped reads and the gather's pages cost, as measured ------------------------------------------

# The calibration measured on the VM of docs/benchmarks.md (a virtual disk, read_ahead_kb 8192): a page fault of a
# map reads 8 MiB around it; rows at random places read that way stream at about 1.1 GB/s, while the read-ahead of a
# sequential read reaches 2.9 GB/s; each further page of an advised range costs 2.5 us (the kernel's work per
# 4 KiB page included), not the 1.4 us of one page at the sequential rate.
VM_MEASURED = Calibration("vm", read_bytes_per_s=2.9e9, random_read_s=40e-6, parallel_read_s=10e-6,
                          memory_bytes_per_s=13e9, call_s=0.26e-6, fault_window_bytes=8 * MiB, gather_page_s=2.5e-6,
                          mapped_bytes_per_s=1.1e9)


def _row_stats(rows: int, file_bytes: int, cal: Calibration, row_bytes: int = 1024, seed: int = 0) -> GatherStats:
    """The statistics ``take`` computes for ``rows`` random rows of a file, all out of the page cache (the window
    and range counts come from the same helpers ``take`` uses)."""
    from types import SimpleNamespace

    from arraystore.backends import _mapped_access

    uniq = np.unique(np.random.default_rng(seed).integers(0, file_bytes // row_bytes, rows))
    store = SimpleNamespace(offset=0)
    lo = uniq * row_bytes // 4096
    hi = ((uniq + 1) * row_bytes - 1) // 4096
    touched = int(np.sum(hi - lo + 1)) - int(np.sum(lo[1:] == hi[:-1]))
    starts, _ = access._runs(uniq)
    return GatherStats(span_bytes=int(hi[-1] - lo[0] + 1) * 4096, touched_pages=touched, runs=int(starts.size),
                       resident=0.0, block_bytes=64 * MiB, row_bytes=uniq.size * row_bytes,
                       **_mapped_access._windows(store, uniq, row_bytes, cal),
                       **_mapped_access._advised(store, uniq, row_bytes, cal))


def test_measured_figures_replace_the_sequential_rate_where_given() -> None:
    # without the two measurements (a calibration of an older format, or a file too small for their stretches) the
    # model is the former one: further pages of a range and read-around windows at the sequential rate
    older = dataclass_replace(VM_MEASURED, gather_page_s=0.0, mapped_bytes_per_s=0.0)
    assert older.page_s() == 4096 / older.read_bytes_per_s and older.mapped_rate() == older.read_bytes_per_s
    stats = _row_stats(100_000, 2 << 30, older)
    explicit = dataclass_replace(older, gather_page_s=4096 / older.read_bytes_per_s,
                                 mapped_bytes_per_s=older.read_bytes_per_s)
    assert gather_costs(stats, older) == pytest.approx(gather_costs(stats, explicit))
    # measured: the gather's pages and the map's windows cost what was measured
    slow_pages = dataclass_replace(VM_MEASURED, gather_page_s=4 * VM_MEASURED.gather_page_s)
    assert gather_costs(stats, slow_pages)["gather"] > gather_costs(stats, VM_MEASURED)["gather"]
    fast_map = dataclass_replace(VM_MEASURED, mapped_bytes_per_s=4 * VM_MEASURED.mapped_bytes_per_s)
    assert gather_costs(stats, fast_map)["mapped"] < gather_costs(stats, VM_MEASURED)["mapped"] / 2


def test_the_merge_gap_is_where_a_further_read_costs_what_the_pages_in_between_do() -> None:
    # one more range costs parallel_read_s; each page in between gather_page_s: 10 us / 2.5 us = 4 pages
    assert _iocost.merge_gap_bytes(VM_MEASURED) == 4 * 4096
    # pages that cost more to read make merging across a gap less worthwhile
    assert _iocost.merge_gap_bytes(dataclass_replace(VM_MEASURED, gather_page_s=5e-6)) == 2 * 4096


def test_dense_random_rows_go_the_way_the_measurements_say() -> None:
    # 100,000 rows of 1 KiB in 2 GiB (issue 14): every 8 MiB window is touched, in one run of windows
    stats = _row_stats(100_000, 2 << 30, VM_MEASURED)
    assert stats.windows == 256 and stats.window_runs == 1
    # read-around of rows at random places measured at 1.1 GB/s: 2 GiB of windows cost more than the gather
    assert choose_gather(stats, VM_MEASURED) == "gather"
    # the same rows where mapped reads were measured streaming at the read-ahead's rate, and the gather's pages
    # dearer: the sorted gather from the map (the mode auto missed in issue 14's cold run)
    streaming = dataclass_replace(VM_MEASURED, mapped_bytes_per_s=4.2e9, gather_page_s=4e-6)
    assert choose_gather(_row_stats(100_000, 2 << 30, streaming), streaming) == "mapped"


def test_a_long_run_of_windows_streams_at_the_read_aheads_steady_rate() -> None:
    # the first 32 MiB of a run at the sampled rate (the read-ahead's ramp included), the rest at the steady one
    cal = dataclass_replace(VM_MEASURED, stream_bytes_per_s=4.2e9)
    head = _iocost.MAPPED_SAMPLE_BYTES
    assert cal.streamed_s(head, 1.1e9, head) == pytest.approx(head / 1.1e9)
    assert cal.streamed_s(head + 4.2e9, 1.1e9, head) == pytest.approx(head / 1.1e9 + 1.0)
    assert VM_MEASURED.streamed_s(2e9, 1.1e9, head) == pytest.approx(2e9 / 1.1e9)  # steady rate not measured
    assert dataclass_replace(VM_MEASURED, stream_bytes_per_s=0.5e9).streamed_s(2e9, 1.1e9, head) == \
        pytest.approx(2e9 / 1.1e9)  # never slower than the sample
    # issue 14's cold run: 100,000 rows of 2 GiB, mapped reads sampled at 1.28 GB/s over 32 MiB and the
    # read-ahead measured at 4.2 GB/s once under way: the whole run streams, and mapped is the cheapest mode
    quiet = dataclass_replace(VM_MEASURED, mapped_bytes_per_s=1.28e9, stream_bytes_per_s=4.2e9, read_bytes_per_s=2.9e9)
    stats = _row_stats(100_000, 2 << 30, quiet)
    costs = gather_costs(stats, quiet)
    assert choose_gather(stats, quiet) == "mapped"
    assert costs["mapped"] < 0.8 * costs["gather"]
    assert costs["sequential"] < gather_costs(stats, VM_MEASURED)["sequential"]  # the pass streams too
    # windows apart: each run is one window (8 MiB, within the sample), read at the sampled rate as before
    apart = dataclass_replace_stats(_stats(span=1 << 30, touched=8, runs=8, windows=8), window_runs=8)
    assert gather_costs(apart, quiet)["mapped"] == pytest.approx(
        gather_costs(apart, dataclass_replace(quiet, stream_bytes_per_s=0.0))["mapped"])
    # 1,000 rows of 2 GiB touch every window (one run): mapped streams the file, the gather reads the rows
    assert choose_gather(_row_stats(1_000, 2 << 30, quiet), quiet) == "gather"


def test_the_residency_of_cold_rows_is_read_without_starting_reads(tmp_path: Path) -> None:
    # the cost model's sample of a cold file: the page tables say "out", and no page is read in by asking (probes
    # with RWF_NOWAIT would start a read for each, scattered over the file, breaking a mapped gather's read-ahead)
    path = tmp_path / "f.bin"
    path.write_bytes(np.random.default_rng(3).bytes(64 << 20))
    _evict(str(path))
    if _resident_pages(str(path)):
        pytest.skip("this file system keeps the file in the page cache (eviction has no effect)")
    offsets = np.arange(64) * (1 << 20) + 4096
    share = _iocost.sampled_residency(str(path), offsets)
    if _iocost.libc_mincore() is None:
        pytest.skip("no mincore here: the probes are the only way to ask")
    assert share == 0.0
    assert _resident_pages(str(path)) == 0
    path.read_bytes()
    assert _iocost.sampled_residency(str(path), offsets) == 1.0


@pytest.mark.parametrize(("rows", "file_bytes"), [(1_000, 2 << 30), (100_000, 8 << 30), (12_500, 1 << 30)])
@pytest.mark.parametrize("mapped_rate", [1.1e9, 4.2e9])
def test_sparse_cold_rows_are_gathered_however_fast_the_map_streams(rows: int, file_bytes: int,
                                                                    mapped_rate: float) -> None:
    # one row per 2 MiB, 84 KiB, 84 KiB: reading every window of the span costs far more than reading the rows
    cal = dataclass_replace(VM_MEASURED, mapped_bytes_per_s=mapped_rate)
    stats = _row_stats(rows, file_bytes, cal)
    costs = gather_costs(stats, cal)
    assert choose_gather(stats, cal) == "gather"
    assert costs["gather"] < 0.5 * min(costs["mapped"], costs["sequential"])


def test_a_run_of_windows_waits_for_the_device_once() -> None:
    # within a run of consecutive windows each one's read-ahead has started the next: one wait per run
    base = _stats(span=64 * MiB, touched=2000, runs=2000, windows=8)
    one_run = dataclass_replace_stats(base, window_runs=1)
    apart = dataclass_replace_stats(base, window_runs=8)
    gap = gather_costs(apart, VM_MEASURED)["mapped"] - gather_costs(one_run, VM_MEASURED)["mapped"]
    assert gap == pytest.approx(7 * VM_MEASURED.random_read_s)
    assert gather_costs(base, VM_MEASURED)["mapped"] == gather_costs(apart, VM_MEASURED)["mapped"]  # 0: each waits


def test_window_runs_count_runs_of_consecutive_windows() -> None:
    from types import SimpleNamespace

    from arraystore.backends import _mapped_access

    cal = dataclass_replace(VM_MEASURED, fault_window_bytes=4096)  # one page per window: rows of 1 KiB, 4 a window
    store = SimpleNamespace(offset=0)
    # windows 0, 1, 2 (one run), 5 (another), 7 and 8 (a third): a row spanning two windows joins them
    uniq = np.array([0, 3, 4, 9, 20, 31, 32])
    got = _mapped_access._windows(store, uniq, 1024, cal)
    assert got == {"windows": 6, "window_runs": 3}
    # 512 bytes in: row 3 spans windows 0 and 1, row 8 lies in window 2, next to them: one run of 3
    rows_over_two = _mapped_access._windows(SimpleNamespace(offset=512), np.array([3, 8]), 1024, cal)
    assert rows_over_two == {"windows": 3, "window_runs": 1}


def test_mapped_reads_and_ranges_are_measured_on_the_file_and_evicted_with_it(tmp_path: Path) -> None:
    # a file large enough for every stretch of the measurement (sparse: its holes are read as zero pages)
    path = tmp_path / "big.bin"
    size = 320 << 20
    with open(path, "wb") as f:
        f.truncate(size)
    _evict(str(path))
    if _resident_pages(str(path)):
        pytest.skip("this file system keeps the file in the page cache (eviction has no effect)")
    rates = _iocost._streaming_read(str(path), size // 4096, np.random.default_rng(0), 10e-6)
    if rates is None:
        pytest.skip("no stretch out of the page cache could be found or inspected here")
    assert rates.read > 0 and rates.cached > 0 and rates.mapped > 0 and rates.page_s >= 0 and rates.stream > 0
    assert rates.window >= 4096  # the read-around one fault brought in
    assert _resident_pages(str(path)) == 0  # every stretch evicted again, read-ahead in flight waited for
