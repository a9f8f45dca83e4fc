"""Adversarial sources read from the disk into Zarr chunks: bytes dirty in the page cache, odd offsets, every dtype
family of both byte orders and both layouts, a source cut short or rewritten mid-conversion."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arraystore
from arraystore._fsutil import evict_from_page_cache
from arraystore.checksums import StreamHasher
from arraystore.conversion import _fastpath, _movers
from arraystore.conversion._movers import mapped_region
from arraystore.errors import ConversionError
from arraystore.meta import ArrayMeta

from .conftest import BACKENDS, bytes_equal, read_back, truncate_on_second_call, write_source

pytestmark = pytest.mark.skipif("zarr" not in BACKENDS, reason="zarr is not installed")

DTYPES = ["|b1", "|u1", ">i2", "<u2", ">i4", "<f4", ">f8", "<c8", ">c16", "<M8[s]", ">m8[ms]"]


def _cold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small sources count as large and as read from the disk."""
    monkeypatch.setattr(_movers, "resident_share", lambda fd, offset, nbytes, probes=32: 0.0)
    monkeypatch.setattr(_movers, "WINDOW", 1)
    monkeypatch.setattr(_fastpath, "WINDOW", 1)


def _rewrite_elsewhere(path: Path, offset: int, payload: bytes) -> None:
    """``payload`` written over ``path`` at ``offset`` by another process, not synced: dirty pages in the cache only."""
    code = "import os,sys;fd=os.open(sys.argv[1],os.O_WRONLY);os.pwrite(fd,sys.stdin.buffer.read(),int(sys.argv[2]))"
    subprocess.run([sys.executable, "-c", code, str(path), str(offset)], input=payload, check=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dtype=st.sampled_from(DTYPES), order_name=st.sampled_from(["C", "F"]), rows=st.integers(1, 200), cols=st.integers(1, 67),
       header=st.integers(0, 9000), kind=st.sampled_from(["raw", "npy"]), codec=st.sampled_from(["zstd:1", "blosc:lz4:5"]),
       seed=st.integers(0, 2**32 - 1))
def test_dirty_source_at_any_offset_reads_the_new_bytes(tmp_path_factory: pytest.TempPathFactory,
                                                        monkeypatch: pytest.MonkeyPatch, dtype: str, order_name: str,
                                                        rows: int, cols: int, header: int, kind: str, codec: str,
                                                        seed: int) -> None:
    """A source whose bytes on the disk are old (synced, evicted) and whose new bytes are still dirty in the page
    cache (rewritten by another process just before, not synced), at any offset (a raw file after ``header`` bytes;
    a .npy after its header), of any dtype, C or F order, read from the disk: the Zarr array holds the new bytes."""
    _cold(monkeypatch)
    order: Literal["C", "F"] = "F" if order_name == "F" else "C"
    tmp = tmp_path_factory.mktemp("dirty")
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    old = np.frombuffer(rng.integers(0, 256, rows * cols * dt.itemsize, dtype=np.uint8).tobytes(), dt)
    new = np.frombuffer(rng.integers(0, 256, rows * cols * dt.itemsize, dtype=np.uint8).tobytes(), dt)
    if dt.kind == "b":
        old, new = old.view(np.uint8) % 2 == 1, new.view(np.uint8) % 2 == 0
    old, new = old.reshape((rows, cols), order=order), new.reshape((rows, cols), order=order)  # type: ignore[call-overload]
    if kind == "npy":
        src = tmp / "src.npy"
        write_source(src, old, order=order)
        with arraystore.open(str(src)) as s:
            region = mapped_region(s)
        assert region is not None
        start = region[1]
    else:
        src = tmp / "src.bin"
        src.write_bytes(rng.integers(0, 256, header, dtype=np.uint8).tobytes() + np.ravel(old, order=order).tobytes())
        start = header
    with open(src, "rb+") as f:
        os.fsync(f.fileno())
    evict_from_page_cache(src)
    _rewrite_elsewhere(src, start, np.ravel(new, order=order).tobytes())
    out = tmp / "dst.zarr"
    opts: dict[str, Any] = {"chunks": (7, cols), "compression": codec, "max_memory": 16 * 7 * cols * dt.itemsize + 65536}
    if kind == "npy":
        report = arraystore.convert(str(src), str(out), **opts)
    else:
        with arraystore.open(str(src), backend="raw", meta=ArrayMeta((rows, cols), dt, order), offset=header) as s:
            report = arraystore.convert(s, str(out), **opts)
    assert bytes_equal(read_back(str(out))[0], np.ascontiguousarray(new))
    assert report.checksum == StreamHasher.of(np.ascontiguousarray(new))  # the new bytes were the ones hashed


@pytest.mark.parametrize("suffix", [".dat", ".npy"])
def test_source_cut_short_mid_cold_reads_is_a_typed_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            suffix: str) -> None:
    """A source truncated by another writer after the first blocks were read from the disk: ConversionError, nothing
    published, no staging or journal left."""
    _cold(monkeypatch)
    data = np.random.default_rng(5).normal(size=(400, 64)).astype(">f8")
    src = Path(write_source(tmp_path / f"src{suffix}", data))
    evict_from_page_cache(src)
    calls = [0]

    cut = truncate_on_second_call(src, calls)
    out = tmp_path / "dst.zarr"
    with pytest.raises(ConversionError, match="changed size"):
        arraystore.convert(str(src), str(out), chunks=(10, 64), compression="zstd:1", max_memory=96 * 1024,
                           progress=cut)
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith((".partial", ".jsonl"))]



@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no tmpfs at /dev/shm on this platform")
def test_a_source_on_tmpfs_converts_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """tmpfs: a .npy source after its header, counted as read from the disk, converts to the same array, unsynced
    and never on a disk."""
    _cold(monkeypatch)
    base = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        data = np.random.default_rng(9).normal(size=(333, 41)).astype(">f8")
        src = write_source(base / "src.npy", np.asfortranarray(data), order="F")
        report = arraystore.convert(src, str(base / "dst.zarr"), chunks=(10, 41), compression="zstd:1",
                                    max_memory=96 * 1024, verify=True)
        assert report.verified and report.blocks_total > 1
        assert bytes_equal(read_back(str(base / "dst.zarr"))[0], data)
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize("cold", [True, False])
@pytest.mark.parametrize("put_back", [True, False])
@pytest.mark.parametrize(("suffix", "dst_name", "compression"), [
    (".dat", "dst.zarr", "zstd:1"), (".npy", "dst.zarr", None), (".npy", "dst.dat", None), (".dat", "dst.h5", None),
])
def test_source_rewritten_in_place_mid_conversion_is_a_typed_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cold: bool, put_back: bool, suffix: str, dst_name: str,
    compression: str | None,
) -> None:
    """A byte-range source rewritten in place (same size; its modification time put back or not) after the first
    blocks were read, from the disk or the page cache: ConversionError, nothing published (an array of
    old and new bytes was published, and reported as converted)."""
    if dst_name.endswith(".h5"):
        pytest.importorskip("h5py", reason="the hdf5 extra is not installed")
    if cold:
        _cold(monkeypatch)
    data = np.random.default_rng(6).normal(size=(400, 64)).astype("<f8")
    src = Path(write_source(tmp_path / f"src{suffix}", data))
    data_file = src
    if cold:
        evict_from_page_cache(src)
    calls = [0]

    def rewrite(done: int, total: int) -> None:
        calls[0] += 1
        if calls[0] == 2:
            st = data_file.stat()
            time.sleep(0.02)  # a later status-change time on any file system clock (no assertion on time)
            with open(data_file, "r+b") as f:
                f.seek(st.st_size - 8 * 64)
                f.write(np.full(64, 7.0, "<f8").tobytes())
            if put_back:
                os.utime(data_file, ns=(st.st_atime_ns, st.st_mtime_ns))

    out = tmp_path / dst_name
    opts: dict[str, Any] = {"max_memory": 96 * 1024}
    if dst_name.endswith(".zarr"):
        opts.update(chunks=(10, 64), compression=compression)
    with pytest.raises(ConversionError, match="was modified while being converted"):
        arraystore.convert(str(src), str(out), progress=rewrite, **opts)
    assert calls[0] >= 2
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith((".partial", ".jsonl"))]
