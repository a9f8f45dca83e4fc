"""Byte-range sources compressed into local chunk files: blocks of a few chunks (CHUNK_FILE_BLOCK_BYTES), not the
budget's share, with the journal, resume and verification as for any block size."""

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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.checksums import StreamHasher
from arraystore.conversion import _run
from arraystore.conversion._plan import CHUNK_FILE_BLOCK_BYTES

from .conftest import Stop, journal_lines, stop_after, write_source

zarr = pytest.importorskip("zarr", reason="the zarr extra is not installed")

SMALL_CAP = 64 * 1024


def _data(shape: tuple[int, ...], seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 100).round(1).astype("<f4")


@pytest.mark.parametrize("compression", ["zstd:3", "blosc:lz4:5"])
def test_compressed_chunk_files_from_a_byte_range_take_small_blocks(tmp_path: Path, compression: str) -> None:
    """16 MiB of a raw source into 2 MiB chunks, the default budget (36 MiB blocks otherwise): blocks of
    CHUNK_FILE_BLOCK_BYTES, the array zarr-python's values, the checksum the data's."""
    data = _data((1024, 4096), 1)
    src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / "dst.zarr"
    report = arraystore.convert(src, str(dst), chunks=(128, 4096), compression=compression)
    blocks = report.plan["blocks"]
    assert blocks["block_bytes"] == CHUNK_FILE_BLOCK_BYTES and report.blocks_total == data.nbytes // CHUNK_FILE_BLOCK_BYTES
    assert report.checksum == StreamHasher.of(data)
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[...], data)


def test_a_chunk_larger_than_the_cap_is_a_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks above the cap: one chunk per block (a block is never smaller than a chunk); rows not a multiple of the
    chunk's: the last block is the edge chunk."""
    monkeypatch.setattr(_run, "CHUNK_FILE_BLOCK_BYTES", SMALL_CAP)
    data = _data((100, 1000), 2)
    src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / "dst.zarr"
    report = arraystore.convert(src, str(dst), chunks=(24, 1000), compression="zstd:1", verify=True)
    assert report.plan["blocks"]["chunks_per_block"] == 1 and report.blocks_total == 5
    assert report.verified and report.checksum == StreamHasher.of(data)
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[...], data)


@pytest.mark.parametrize(("dst_name", "compression"), [("dst.zarr", None), ("dst.h5", "gzip:1")])
def test_other_destinations_keep_the_budgets_blocks(tmp_path: Path, dst_name: str, compression: str | None) -> None:
    """Uncompressed Zarr and HDF5 (chunks written under one lock) are not capped."""
    if dst_name.endswith(".h5"):
        pytest.importorskip("h5py", reason="the hdf5 extra is not installed")
    data = _data((1024, 4096), 3)
    src = write_source(tmp_path / "src.dat", data)
    opts: dict[str, Any] = {"chunks": (128, 4096)}
    if compression:
        opts["compression"] = compression
    report = arraystore.convert(src, str(tmp_path / dst_name), **opts)
    assert report.plan["blocks"]["block_bytes"] > CHUNK_FILE_BLOCK_BYTES
    with arraystore.open(str(tmp_path / dst_name)) as s:
        np.testing.assert_array_equal(s[...], data)


@pytest.mark.parametrize("compression", ["zstd:1", "blosc:lz4:5"])
def test_interrupted_then_resumed_in_capped_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   compression: str) -> None:
    """Interrupted after a few capped blocks (the budget's share would be the whole array: one block, no journal):
    the rerun resumes the journaled blocks, writes the rest and verifies."""
    monkeypatch.setattr(_run, "CHUNK_FILE_BLOCK_BYTES", SMALL_CAP)
    data = _data((256, 1024), 4)  # 1 MiB: 16 blocks of 64 KiB (16 rows)
    src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / "dst.zarr"
    opts: dict[str, Any] = {"chunks": (8, 1024), "compression": compression}
    with pytest.raises(Stop):
        arraystore.convert(src, str(dst), progress=stop_after(4), **opts)
    journal = dst.with_name(dst.name + ".partial.journal.jsonl")
    done = {rec["block"] for rec in journal_lines(journal)}
    assert len(done) >= 2
    report = arraystore.convert(src, str(dst), verify=True, **opts)
    assert report.blocks_total == data.nbytes // SMALL_CAP
    assert report.blocks_resumed == len(done) and report.blocks_rewritten == 0
    assert report.verified and report.checksum == StreamHasher.of(data)
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[...], data)


CHILD = """
import sys, time
from arraystore.conversion import _run, convert
_run.CHUNK_FILE_BLOCK_BYTES = int(sys.argv[3])
convert(sys.argv[1], sys.argv[2], chunks=(8, 1024), compression=sys.argv[4],
        progress=lambda done, total: time.sleep(0.01))
print("finished")
"""


@pytest.mark.slow
@pytest.mark.parametrize("compression", ["zstd:1", "blosc:lz4:5"])
def test_sigkill_in_capped_blocks_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              compression: str) -> None:
    """SIGKILL while capped blocks are in flight (one read ahead, two being compressed): nothing published; the
    rerun, planning the same blocks, resumes every journaled one and verifies."""
    monkeypatch.setattr(_run, "CHUNK_FILE_BLOCK_BYTES", SMALL_CAP)
    data = _data((4096, 1024), 5)  # 16 MiB: 256 blocks of 64 KiB
    src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / "dst.zarr"
    journal = dst.with_name(dst.name + ".partial.journal.jsonl")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(arraystore.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, src, str(dst), str(SMALL_CAP), compression], env=env,
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
    report = arraystore.convert(src, str(dst), chunks=(8, 1024), compression=compression, verify=True)
    assert report.blocks_total == data.nbytes // SMALL_CAP
    assert report.blocks_resumed == len(done_before) and report.blocks_rewritten == 0
    assert report.verified and report.checksum == StreamHasher.of(data)
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[...], data)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(9, 120), cols=st.integers(3, 90), crow=st.integers(1, 40), ccol=st.integers(1, 90),
       shard_mul=st.sampled_from([None, 2, 3]), order_name=st.sampled_from(["C", "F"]),
       caps=st.tuples(st.sampled_from([512, 4096, 20_000]), st.sampled_from([512, 4096, 20_000])),
       budgets=st.tuples(st.sampled_from([None, 200_000]), st.sampled_from([None, 300_000])),
       stop=st.integers(1, 4), compression=st.sampled_from(["zstd:1", "blosc:lz4:5"]))
def test_interrupted_then_resumed_with_another_cap_or_budget(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, rows: int, cols: int, crow: int,
    ccol: int, shard_mul: int | None, order_name: str, caps: tuple[int, int], budgets: tuple[int | None, int | None],
    stop: int, compression: str,
) -> None:
    """Chunks that do not divide the array, shards or not, a C or F source: interrupted after a few capped blocks,
    then run again with another cap and another max_memory (another block plan): the array published is the
    source's, verified, whatever the first run left in the journal and the staged chunk files."""
    tmp = tmp_path_factory.mktemp("recap")
    ccol = min(ccol, cols)
    data = _data((rows, cols), rows * 1000 + cols)
    order: Any = "F" if order_name == "F" else "C"
    src = write_source(tmp / "src.dat", np.asfortranarray(data) if order == "F" else data, order=order)
    dst = tmp / "dst.zarr"
    opts: dict[str, Any] = {"chunks": (crow, ccol), "compression": compression}
    if shard_mul is not None:
        opts["shards"] = (crow * shard_mul, ccol)
    monkeypatch.setattr(_run, "CHUNK_FILE_BLOCK_BYTES", caps[0])
    first = {**opts, **({"max_memory": budgets[0]} if budgets[0] else {})}
    try:
        arraystore.convert(src, str(dst), progress=stop_after(stop), **first)
    except Stop:
        pass
    monkeypatch.setattr(_run, "CHUNK_FILE_BLOCK_BYTES", caps[1])
    then = {**opts, **({"max_memory": budgets[1]} if budgets[1] else {})}
    report = arraystore.convert(src, str(dst), verify=True, overwrite=dst.exists(), **then)
    assert report.verified and report.checksum == StreamHasher.of(data)
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[...], data)
    assert not [p.name for p in tmp.iterdir() if p.name.endswith((".partial", ".jsonl"))]
