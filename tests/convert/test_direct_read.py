"""Byte-range sources read from the disk into Zarr chunks: read past the page cache (``O_DIRECT``), exactly."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.checksums import StreamHasher
from arraystore.conversion import _fastpath, _movers
from arraystore.conversion._fastpath import DIRECT_ALIGN, open_direct, pread_direct
from arraystore.conversion._movers import BlockMover

from .conftest import BACKENDS, bytes_equal, read_back, write_source

#: A file size that is no multiple of the alignment: its last block is read short.
FILE_BYTES = 5 * DIRECT_ALIGN + 1234


@pytest.fixture(scope="module")
def direct_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("direct") / "bytes"
    payload = np.random.default_rng(11).integers(0, 256, FILE_BYTES, dtype=np.uint8).tobytes()
    path.write_bytes(payload)
    fd = open_direct(str(path))
    if fd is None:
        pytest.skip("this platform or file system refuses O_DIRECT (the conversion then reads through the cache)")
    os.close(fd)
    return path


def _buffer(nbytes: int, misalign: int) -> np.ndarray[Any, Any]:
    """A buffer for :func:`pread_direct` whose start is ``misalign`` bytes past a page (it aligns itself)."""
    raw = np.empty(nbytes + 4 * DIRECT_ALIGN, np.uint8)
    start = -raw.ctypes.data % DIRECT_ALIGN + misalign
    return raw[start : start + nbytes + 3 * DIRECT_ALIGN]


@settings(max_examples=80, deadline=None)
@given(offset=st.integers(0, FILE_BYTES), nbytes=st.integers(0, FILE_BYTES), misalign=st.integers(0, 4095))
def test_pread_direct_reads_any_range_exactly(direct_file: Path, offset: int, nbytes: int, misalign: int) -> None:
    """Any offset and length (aligned or not, up to the end of a file whose size is not aligned), into a buffer
    aligned or not: the bytes of the file, or EOFError when the range runs past its end."""
    payload = direct_file.read_bytes()
    fd = open_direct(str(direct_file))
    assert fd is not None
    try:
        buf = _buffer(nbytes, misalign)
        if offset + nbytes > FILE_BYTES:
            with pytest.raises(EOFError, match="file ended"):
                pread_direct(fd, buf, offset, nbytes)
            return
        got = pread_direct(fd, buf, offset, nbytes)
        assert got is not None and got.tobytes() == payload[offset : offset + nbytes]
        assert nbytes == 0 or np.may_share_memory(got, buf)
    finally:
        os.close(fd)


def test_pread_direct_refuses_a_buffer_too_small(direct_file: Path) -> None:
    fd = open_direct(str(direct_file))
    assert fd is not None
    try:
        with pytest.raises(ValueError, match="cannot hold"):
            pread_direct(fd, np.empty(DIRECT_ALIGN, np.uint8), 10, DIRECT_ALIGN)
    finally:
        os.close(fd)


def _cold(monkeypatch: pytest.MonkeyPatch, state: str) -> None:
    """Small sources count as large and as read from the disk (``cold``) or from the page cache."""
    monkeypatch.setattr(_movers, "resident_share", lambda fd, offset, nbytes, probes=32: 0.0 if state == "cold" else 1.0)
    monkeypatch.setattr(_movers, "WINDOW", 64 * 1024)
    monkeypatch.setattr(_fastpath, "WINDOW", 64 * 1024)


NOTE = "source read from the disk past the page cache (O_DIRECT)"


@pytest.mark.skipif("zarr" not in BACKENDS, reason="zarr is not installed")
@pytest.mark.parametrize("state", ["cold", "cached"])
@pytest.mark.parametrize("compression", [None, "zstd:1", "blosc:lz4:5"])
@pytest.mark.parametrize("src_suffix", [".dat", ".npy"])
@pytest.mark.parametrize("shape", [(256, 128), (403, 77)])
def test_cold_byte_range_source_into_zarr_reads_past_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               state: str, compression: str | None, src_suffix: str,
                                                               shape: tuple[int, int]) -> None:
    """A byte-range source read from the disk (a raw file at offset 0, a .npy after its header: blocks at offsets and
    of lengths no multiple of a page) into Zarr chunks reads its blocks with O_DIRECT; from the page cache it does
    not. The array, its checksum and its verification are the same either way."""
    _cold(monkeypatch, state)
    data = np.random.default_rng(3).normal(size=shape).astype("<f4")
    src = write_source(tmp_path / f"src{src_suffix}", data)
    if open_direct(src) is None:
        pytest.skip("this file system refuses O_DIRECT")
    out = tmp_path / "dst.zarr"
    report = arraystore.convert(src, str(out), chunks=(16, shape[1]), compression=compression, verify=True,
                                max_memory=96 * 1024)
    assert report.blocks_total > 4
    assert (NOTE in report.plan["notes"]) == (state == "cold"), report.plan["notes"]
    assert bytes_equal(read_back(str(out))[0], data)
    assert report.checksum == StreamHasher.of(data)


@pytest.mark.skipif("zarr" not in BACKENDS, reason="zarr is not installed")
def test_a_file_system_refusing_direct_reads_is_read_through_the_cache(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system that opens with O_DIRECT but refuses the reads (EINVAL): the conversion reads through the page
    cache from then on, with the same result."""
    _cold(monkeypatch, "cold")
    refused: list[int] = []
    monkeypatch.setattr(_movers, "pread_direct", lambda fd, buf, offset, nbytes: refused.append(offset))
    monkeypatch.setattr(_movers, "open_direct", lambda path: os.open(path, os.O_RDONLY))
    data = np.random.default_rng(4).normal(size=(300, 64)).astype("<f8")
    src = write_source(tmp_path / "src.dat", data)
    report = arraystore.convert(src, str(tmp_path / "dst.zarr"), chunks=(20, 64), compression="zstd:1",
                                max_memory=96 * 1024, verify=True)
    assert len(refused) == 1 and report.blocks_total > 4
    assert bytes_equal(read_back(str(tmp_path / "dst.zarr"))[0], data)
    assert report.checksum == StreamHasher.of(data)


@pytest.mark.skipif("zarr" not in BACKENDS, reason="zarr is not installed")
@pytest.mark.parametrize("err", [errno.EINVAL, errno.EIO])
def test_a_direct_read_failing_part_way_is_read_through_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   err: int) -> None:
    """A direct read that fails after its first bytes (or with an I/O error): read through the page cache, whose read
    reports a real fault as any read does; here the file is fine, so the result is the source."""
    _cold(monkeypatch, "cold")
    failed: list[int] = []

    def fail(fd: int, buf: object, offset: int, nbytes: int) -> None:
        failed.append(offset)
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(_movers, "pread_direct", fail)
    monkeypatch.setattr(_movers, "open_direct", lambda path: os.open(path, os.O_RDONLY))
    data = np.random.default_rng(5).normal(size=(300, 64)).astype("<f8")
    src = write_source(tmp_path / "src.dat", data)
    report = arraystore.convert(src, str(tmp_path / "dst.zarr"), chunks=(20, 64), compression="zstd:1",
                                max_memory=96 * 1024, verify=True)
    assert len(failed) == 1 and report.blocks_total > 4
    assert bytes_equal(read_back(str(tmp_path / "dst.zarr"))[0], data)


@pytest.mark.skipif("zarr" not in BACKENDS, reason="zarr is not installed")
def test_failure_mid_pipeline_then_resume_from_a_cold_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks read with O_DIRECT are journaled and resumed as any others: the rerun keeps the blocks written and
    reads the rest past the cache."""
    _cold(monkeypatch, "cold")
    data = np.random.default_rng(5).normal(size=(300, 64)).astype("<f8")
    src = write_source(tmp_path / "src.npy", data)
    if open_direct(src) is None:
        pytest.skip("this file system refuses O_DIRECT")
    dst = tmp_path / "dst.zarr"
    write = _movers.DirectChunkMover.write

    def failing_write(self: BlockMover, i: int, sel: tuple[slice, ...], block: np.ndarray[Any, Any],
                      digest: str) -> tuple[int, int, str]:
        if i == 5:
            raise OSError("the disk went away")
        return write(self, i, sel, block, digest)  # type: ignore[arg-type]

    monkeypatch.setattr(_movers.DirectChunkMover, "write", failing_write)
    with pytest.raises(OSError, match="the disk went away"):
        arraystore.convert(src, str(dst), chunks=(10, 64), compression="zstd:1", max_memory=64 * 1024, resume=True)
    monkeypatch.setattr(_movers.DirectChunkMover, "write", write)
    report = arraystore.convert(src, str(dst), chunks=(10, 64), compression="zstd:1", max_memory=64 * 1024,
                                resume=True, verify=True)
    assert NOTE in report.plan["notes"]
    assert report.blocks_resumed >= 4 and report.blocks_rewritten == 0
    assert report.blocks_resumed + report.blocks_written == report.blocks_total
    assert report.checksum == StreamHasher.of(data)
    assert bytes_equal(read_back(str(dst))[0], data)


# The child reads its source as read from the disk (O_DIRECT) and pauses 5 ms per block, so the kill lands mid-way.
KILLED_CHILD = """
import sys, time
from arraystore.conversion import _fastpath, _movers, convert
_movers.resident_share = lambda fd, offset, nbytes, probes=32: 0.0
_movers.WINDOW = _fastpath.WINDOW = 64 * 1024
src, dst, compression = sys.argv[1], sys.argv[2], sys.argv[3]
report = convert(src, dst, chunks=(2, 1024), compression=compression, max_memory="64KiB",
                 progress=lambda done, total: time.sleep(0.005))
print(report.plan["notes"])
"""


@pytest.mark.slow
@pytest.mark.skipif("zarr" not in BACKENDS, reason="zarr is not installed")
@pytest.mark.parametrize("compression", ["zstd:1", "blosc:lz4:5"])
@pytest.mark.parametrize("src_suffix", [".dat", ".npy"])
def test_sigkill_mid_direct_reads_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: str,
                                              src_suffix: str) -> None:
    """SIGKILL of a real process converting a source it reads with O_DIRECT (one block read ahead in flight): the
    rerun resumes the blocks journaled, reads the rest past the cache, and verifies."""
    import signal
    import subprocess
    import sys
    import time

    from arraystore.checksums import verify
    from arraystore.errors import ArrayNotFoundError

    from .conftest import journal_lines

    data = np.arange(1024 * 1024, dtype="<f4").reshape(1024, 1024)  # 4 MiB: 256+ blocks of 16 KiB
    src = write_source(tmp_path / f"src{src_suffix}", data)
    if open_direct(src) is None:
        pytest.skip("this file system refuses O_DIRECT")
    dst = tmp_path / "dst.zarr"
    journal = dst.with_name(dst.name + ".partial.journal.jsonl")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(arraystore.__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, src, str(dst), compression], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(journal_lines(journal)) < 2:
            assert child.poll() is None, f"the child ended early: {child.communicate()}"
            assert time.monotonic() < deadline, "no block was journaled within 60 s"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    with pytest.raises(ArrayNotFoundError):
        arraystore.open(str(dst))
    done_before = {rec["block"] for rec in journal_lines(journal)}
    assert len(done_before) >= 2

    _cold(monkeypatch, "cold")
    report = arraystore.convert(src, str(dst), chunks=(2, 1024), compression=compression, max_memory="64KiB",
                                verify=True)
    assert NOTE in report.plan["notes"]
    assert report.blocks_resumed == len(done_before) and report.blocks_rewritten == 0
    assert report.blocks_written == report.blocks_total - report.blocks_resumed
    assert report.verified and report.checksum == StreamHasher.of(data)
    assert bytes_equal(read_back(str(dst))[0], data)
    assert verify(str(dst))["match"]
    assert not journal.exists()
