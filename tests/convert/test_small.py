"""Small conversions skip what only pays for large ones: journal file, drop-behind, sampling thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.conversion import convert
from arraystore.conversion._journal import Journal
from arraystore.conversion._memory import MemorySampler, read_status
from arraystore.errors import ArrayNotFoundError

from .conftest import BACKENDS, SUFFIX, write_source


class Stop(Exception):
    pass


def _stop(done: int, total: int) -> None:
    raise Stop


def _journal(dst: Path) -> Path:
    return dst.with_name(dst.name + ".partial.journal.jsonl")


@pytest.mark.parametrize("dst_backend", BACKENDS)
def test_single_block_conversion_writes_no_journal(tmp_path: Path, dst_backend: str) -> None:
    data = np.arange(1000, dtype="<f4")
    src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / f"dst{SUFFIX[dst_backend]}"
    with pytest.raises(Stop):  # interrupted after its only block: nothing to resume, so no journal
        convert(src, str(dst), progress=_stop)
    assert not _journal(dst).exists()
    with pytest.raises(ArrayNotFoundError):
        arraystore.open(str(dst))
    report = convert(src, str(dst), verify=True)
    assert report.blocks_total == 1 and report.blocks_resumed == 0 and report.verified
    assert not _journal(dst).exists()
    with arraystore.open(str(dst)) as s:
        assert np.array_equal(s[...], data)


def test_stale_journal_is_removed_by_a_single_block_conversion(tmp_path: Path) -> None:
    data = np.arange(1000, dtype="<f4")
    src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / "dst.npy"
    _journal(dst).write_text('{"journal": "arraystore.convert", "version": 1}\n')
    convert(src, str(dst))
    assert not _journal(dst).exists()


def test_multi_block_conversion_still_journals(tmp_path: Path) -> None:
    data = np.arange(64 * 1024, dtype="<i4").reshape(256, 256)
    src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / "dst.npy"
    with pytest.raises(Stop):
        convert(src, str(dst), max_memory="64KiB", progress=_stop)
    assert _journal(dst).exists()


def test_disabled_journal_api(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal, message = Journal.open(path, {"s": 1}, {"o": 1}, resume=True, enabled=False)
    assert message is None and not path.exists()
    journal.record(0, "abc")
    assert journal.done == {0: "abc"} and not path.exists()
    journal.restart({"o": 2}, enabled=True)  # the plan grew to several blocks after create
    journal.record(1, "def")
    assert path.exists() and len(path.read_text().splitlines()) == 2
    journal.remove()
    assert not path.exists()


def test_small_conversion_starts_no_sampler_thread(tmp_path: Path) -> None:
    data = np.arange(4096, dtype="<f8")
    src = write_source(tmp_path / "src.dat", data)
    seen: list[list[str]] = []

    def progress(done: int, total: int) -> None:
        seen.append([t.name for t in threading.enumerate()])

    report = convert(src, str(tmp_path / "dst.npy"), progress=progress)
    assert seen and not any("arraystore-memory-sampler" in names for names in seen)
    assert report.peak_memory >= report.baseline_memory > 0


def test_read_status_and_sampler() -> None:
    s = read_status()
    assert s.anon > 0 and s.file >= 0
    sampler = MemorySampler()
    # 64 MiB: above glibc's largest mmap threshold (32 MiB), so fresh pages, not reused heap
    block: Any = np.ones(64 * 1024 * 1024, np.uint8)
    sampler.sample()
    del block
    sampler.stop()
    assert sampler.peak_anon >= sampler.baseline.anon + 32 * 1024 * 1024
    with MemorySampler(interval=0.001) as running:
        assert running.running
    assert not running.running
