"""Same-layout copies: the page-cache regime (a pure function) and the overlapped buffered copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.conversion import _movers
from arraystore.conversion._fastpath import CACHE_SHARE, WINDOW, available_memory, cache_regime
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


def test_available_memory_is_bounded_by_the_machine() -> None:
    got = available_memory()
    assert 0 <= got <= psutil.virtual_memory().available + (64 << 20)  # the two reads are moments apart


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
)
def test_overlapped_copy_is_byte_identical(tmp_path_factory: pytest.TempPathFactory, src_backend: str,
                                           dst_backend: str, shape: tuple[int, ...], dtype: str, budget: int,
                                           regime: str) -> None:
    tmp = tmp_path_factory.mktemp("ov")
    data = np.random.default_rng(len(shape)).integers(0, 255, size=shape).astype(dtype)
    src = write_source(tmp / f"src{SUFFIX[src_backend]}", data)
    dst = tmp / f"dst{SUFFIX[dst_backend]}"
    available = {"page-cache": 1 << 50, "write-through": 1 << 50, "drop-behind": 0}[regime]
    mp = pytest.MonkeyPatch()
    mp.setattr(_movers, "available_memory", lambda: available)
    try:
        report = arraystore.convert(src, str(dst), max_memory=budget, durable=(regime == "write-through"),
                                    verify=True)
    finally:
        mp.undo()
    back, _ = read_back(str(dst))
    assert bytes_equal(back, data)
    if data.nbytes:
        assert report.method == "buffered-copy", report.plan
        expect = regime if (regime != "write-through" or data.nbytes >= WINDOW) else "page-cache"
        assert f"page cache: {expect}" in report.plan["notes"]


def test_many_blocks_through_two_buffers(tmp_path: Path) -> None:
    """Hundreds of blocks alternating between the two buffers while one is being written: every byte in place."""
    data = np.arange(300_001, dtype="<u4")  # odd size: the last block is short
    src = write_source(tmp_path / "a.dat", data)
    report = arraystore.convert(src, str(tmp_path / "a.npy"), max_memory=8192, verify=True)
    assert report.method == "buffered-copy" and report.blocks_total > 100
    assert bytes_equal(read_back(str(tmp_path / "a.npy"))[0], data)


def test_interrupted_overlapped_copy_resumes(tmp_path: Path) -> None:
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
