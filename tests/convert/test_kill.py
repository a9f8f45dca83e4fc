"""SIGKILL in the middle of a real conversion: nothing complete-looking remains; a rerun resumes and verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.checksums import StreamHasher, verify
from arraystore.conversion import convert
from arraystore.errors import ArrayNotFoundError

from .conftest import BACKENDS, SUFFIX, bytes_equal, journal_lines, read_back, write_source

# The child converts with a progress callback that pauses 5 ms per block (the kill's instant spreads over
# seconds) and stops itself (SIGSTOP) once its last block is done, before publishing: it cannot finish
# before the kill, whatever the machine.
CHILD = """
import os, signal, sys, time
from arraystore.conversion import convert
def progress(done, total):
    time.sleep(0.005)
    if done >= total:
        os.kill(os.getpid(), signal.SIGSTOP)
src, dst, chunks, compression, shards = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
opts = {"chunks": tuple(int(c) for c in chunks.split(","))} if chunks else {}
if shards:
    opts["shards"] = tuple(int(c) for c in shards.split(","))
if compression:
    opts["compression"] = compression
convert(src, dst, max_memory="64KiB", progress=progress, **opts)
print("finished")
"""


@pytest.mark.slow
@pytest.mark.parametrize(("src_backend", "dst_backend", "compression", "shards"),
                         [(s, d, c, h) for s, d, c, h in (
                             ("raw", "raw", None, ""), ("raw", "zarr", None, ""), ("zarr", "raw", None, ""),
                             ("raw", "zarr", "zstd:1", ""), ("raw", "zarr", "blosc:lz4:5", ""),
                             ("zarr", "hdf5", None, ""), ("raw", "zarr", "zstd:1", "2,1024"))
                          if s in BACKENDS and d in BACKENDS])
def test_sigkill_then_resume(tmp_path: Path, src_backend: str, dst_backend: str, compression: str | None,
                             shards: str) -> None:
    """A Zarr source is decoded one block ahead of the writer, a raw source into compressed chunks read one block
    ahead (its chunks compressed into a buffer per thread used again, zstd and blosc): the kill lands with a block in
    flight. A sharded destination resumes too (its staged array reopened with its shards)."""
    data = np.arange(1024 * 1024, dtype="<f4").reshape(1024, 1024)  # 4 MiB: 256+ blocks of 16 KiB
    if src_backend == "zarr":  # chunks of 8 KiB: blocks of one chunk within 64 KiB (5 block buffers)
        src = write_source(tmp_path / "src.zarr", data, chunks=(2, 1024), compression="zstd:1")
    else:
        src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / f"dst{SUFFIX[dst_backend]}"
    journal = dst.with_name(dst.name + ".partial.journal.jsonl")
    chunks = ("1,1024" if shards else "2,1024" if compression else "4,1024") if dst_backend == "zarr" else ""  # within 64 KiB's blocks
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(arraystore.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, src, str(dst), chunks, compression or "", shards], env=env,
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
    assert not dst.exists()
    with pytest.raises(ArrayNotFoundError):
        arraystore.open(str(dst))
    done_before = {rec["block"] for rec in journal_lines(journal)}
    assert len(done_before) >= 2

    opts: dict[str, Any] = {"chunks": tuple(int(c) for c in chunks.split(","))} if chunks else {}
    if compression:
        opts["compression"] = compression
    if shards:
        opts["shards"] = tuple(int(c) for c in shards.split(","))
    report = convert(src, str(dst), max_memory="64KiB", verify=True, **opts)
    assert report.blocks_resumed == len(done_before) and report.blocks_rewritten == 0
    assert report.blocks_written == report.blocks_total - report.blocks_resumed
    assert report.verified and report.checksum == StreamHasher.of(data)
    assert bytes_equal(read_back(str(dst))[0], data)
    assert verify(str(dst))["match"]
    assert not journal.exists()
