"""Fortran-order sources into HDF5 in C layout: chunks reordered tile by tile and written with write_direct_chunk.

The oracle is numpy (the array the source was written from) and h5py itself reading
the file; the checksum is the C-order one every other conversion records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore.checksums import StreamHasher, block_digest, checksum, verify
from arraystore.conversion import convert
from arraystore.testing.dtypes import CONFORMANCE_DTYPES, sample_data

from .conftest import BACKENDS, journal_lines, write_source

pytestmark = pytest.mark.skipif("hdf5" not in BACKENDS, reason="h5py is not installed")

DIRECT = "laid out in C order"
_DTYPES = [d for d in CONFORMANCE_DTYPES if d.kind in "biufc"] + [np.dtype("<M8[s]"), np.dtype([("a", ">i2"), ("b", "<f4")])]


def _h5py_read(path: str) -> tuple[np.ndarray[Any, Any], tuple[int, ...] | None]:
    import h5py

    with h5py.File(path, "r") as f:
        (name,) = [n for n in f if not h5py.h5ds.is_scale(f[n].id)]
        ds = f[name]
        return ds[...], ds.chunks


def _fortran(data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asfortranarray(data) if data.ndim else data


@given(
    dtype=st.sampled_from(_DTYPES),
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=4).map(tuple),
    src_suffix=st.sampled_from([".dat", ".npy"]),
    budget=st.sampled_from(["16KiB", "64KiB", "1MiB"]),  # 16 KiB: four buffers of the largest chunk, 4**4 x 16 B
    chunk_seed=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_property_fortran_source_into_c_layout_hdf5(dtype: np.dtype[Any], shape: tuple[int, ...], src_suffix: str,
                                                     budget: str, chunk_seed: int, seed: int) -> None:
    """Any dtype, byte order, shape (odd sizes, 1-D to 4-D) and budget: h5py reads the array itself."""
    data = _fortran(sample_data(dtype, shape, seed=seed))
    # chunk_seed 0: the plan chooses the chunks; else odd explicit chunks (edge chunks on every axis)
    chunks = None if chunk_seed == 0 else tuple(max(1, min(n, chunk_seed + (i % 2))) for i, n in enumerate(shape))
    with tempfile.TemporaryDirectory() as tmp:
        src = write_source(Path(tmp) / f"src{src_suffix}", data, order="F")
        dst = str(Path(tmp) / "dst.h5")
        report = convert(src, dst, chunks=chunks, max_memory=budget, verify=True)
        got, _ = _h5py_read(dst)
        assert got.dtype == dtype and got.shape == shape
        assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(data).tobytes()
        assert report.checksum == StreamHasher.of(data)
        assert verify(dst)["match"]
        with arraystore.open(dst) as s:
            assert s.order == "C" and s.shape == shape


@pytest.mark.parametrize("dtype", ["<f8", ">f8", ">i2", "|u1", "<c8", "?"])
def test_fortran_source_takes_the_direct_path_with_source_shaped_chunks(tmp_path: Path, dtype: str) -> None:
    data = _fortran(sample_data(np.dtype(dtype), (37, 11, 60), seed=4))  # > 16 KiB blocks
    src = write_source(tmp_path / "src.dat", data, order="F")
    report = convert(src, str(tmp_path / "dst.h5"), max_memory="64KiB")
    assert any(DIRECT in n for n in report.plan["notes"]), report.plan["notes"]
    assert report.blocks_total > 1
    got, chunks = _h5py_read(str(tmp_path / "dst.h5"))
    # chunks are contiguous runs of the Fortran-order source: whole along the first axes
    assert chunks is not None and chunks[0] == 37
    assert got.dtype == np.dtype(dtype) and got.tobytes() == np.ascontiguousarray(data).tobytes()
    assert report.checksum == StreamHasher.of(data)


def test_uncompressed_chunked_c_source_is_written_directly_too(tmp_path: Path) -> None:
    data = sample_data(np.dtype(">i4"), (45, 37), seed=2)
    src = write_source(tmp_path / "src.npy", data)
    report = convert(src, str(tmp_path / "dst.h5"), chunks=(8, 16), max_memory="8KiB", verify=True)
    assert any(DIRECT in n for n in report.plan["notes"])
    got, chunks = _h5py_read(str(tmp_path / "dst.h5"))
    assert chunks == (8, 16) and got.dtype == data.dtype and got.tobytes() == data.tobytes()


def test_transposing_blocks_stay_small_for_overlap(tmp_path: Path) -> None:
    """A large budget still gives several blocks: reading one overlaps reordering and writing the one before."""
    from arraystore.conversion._plan import OVERLAP_BLOCK_BYTES

    data = _fortran(np.arange(64 * 64 * 1100, dtype="<f8").reshape(64, 64, 1100))  # 34 MiB
    src = write_source(tmp_path / "src.dat", data, order="F")
    report = convert(src, str(tmp_path / "dst.h5"), max_memory="1GiB")
    assert report.plan["blocks"]["block_bytes"] <= OVERLAP_BLOCK_BYTES < data.nbytes
    assert report.blocks_total >= 3
    with arraystore.open(str(tmp_path / "dst.h5")) as s:
        assert np.array_equal(s[...], data)


def test_block_digests_are_of_the_source_order() -> None:
    """The journal digests a Fortran-order block without reordering it, and a C read-back digests the same."""
    data = sample_data(np.dtype(">f8"), (5, 4, 3), seed=1)
    f, c = np.asfortranarray(data), np.ascontiguousarray(data)
    assert block_digest(f, "F") == block_digest(c, "F") != block_digest(c, "C") == block_digest(f, "C")
    import xxhash

    assert block_digest(f, "F") == xxhash.xxh3_64(f.T.tobytes()).hexdigest()


def test_old_c_digest_journal_restarts_instead_of_trusting_digests(tmp_path: Path) -> None:
    """A journal of a Fortran-order source written before digests followed the source's order restarts."""

    class Stop(Exception):
        pass

    calls = [0]

    def stop(done: int, total: int) -> None:
        calls[0] += 1
        if calls[0] >= 3:
            raise Stop

    data = _fortran(sample_data(np.dtype("<i4"), (40, 30), seed=3))
    src = write_source(tmp_path / "src.dat", data, order="F")
    dst = tmp_path / "dst.h5"
    with pytest.raises(Stop):
        convert(src, str(dst), max_memory="4KiB", progress=stop)
    journal = dst.with_name(dst.name + ".partial.journal.jsonl")
    lines = journal.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["options"].pop("digest_order") == "F"
    journal.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    report = convert(src, str(dst), max_memory="4KiB", verify=True)
    assert report.restarted is not None and "options changed" in report.restarted
    assert report.blocks_resumed == 0
    with arraystore.open(str(dst)) as s:
        assert np.array_equal(s[...], data)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("shape", [(300, 7, 130), (2, 700, 600), (1, 1, 5000), (700, 1, 300)])
def test_checksum_of_fortran_stores_on_threads(tmp_path: Path, shape: tuple[int, ...], workers: int) -> None:
    data = _fortran(sample_data(np.dtype(">f4"), shape, seed=5))
    src = write_source(tmp_path / "src.dat", data, order="F")
    for decoded in (False, True):
        assert checksum(src, max_bytes=200_000, decoded=decoded, workers=workers) == StreamHasher.of(data)


# A child converting slowly (a pause per block spreads the kill's instant over the run) that stops itself
# (SIGSTOP) once its last block is done, before publishing: it cannot finish before the kill, whatever the machine.
CHILD = """
import os, signal, sys, time
from arraystore.conversion import convert
def progress(done, total):
    time.sleep(0.005)
    if done >= total:
        os.kill(os.getpid(), signal.SIGSTOP)
convert(sys.argv[1], sys.argv[2], max_memory="64KiB", progress=progress)
print("finished")
"""


@pytest.mark.slow
def test_sigkill_then_resume_keeps_every_journaled_block(tmp_path: Path) -> None:
    data = _fortran(np.arange(64 * 48 * 256, dtype=">f8").reshape(64, 48, 256))  # 6 MiB: hundreds of blocks
    src = write_source(tmp_path / "src.dat", data, order="F")
    dst = tmp_path / "dst.h5"
    journal = dst.with_name(dst.name + ".partial.journal.jsonl")
    src_root = str(Path(arraystore.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src_root, os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, src, str(dst)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(journal_lines(journal)) < 3:
            assert child.poll() is None, f"the child ended early: {child.communicate()}"
            assert time.monotonic() < deadline, "no block was journaled within 60 s"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not dst.exists()
    done_before = {rec["block"] for rec in journal_lines(journal)}
    assert len(done_before) >= 3

    report = convert(src, str(dst), max_memory="64KiB", verify=True)
    assert report.blocks_resumed == len(done_before) and report.blocks_rewritten == 0
    assert report.verified and report.checksum == StreamHasher.of(data)
    got, _ = _h5py_read(str(dst))
    assert got.dtype == data.dtype and got.tobytes() == np.ascontiguousarray(data).tobytes()
    assert not journal.exists()
