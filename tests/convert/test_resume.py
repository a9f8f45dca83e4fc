"""Interrupted conversions leave nothing complete-looking and resume without rewriting finished blocks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.checksums import StreamHasher, verify
from arraystore.conversion import convert
from arraystore.conversion._journal import source_fingerprint
from arraystore.errors import ArrayNotFoundError, VerificationError
from arraystore.location import parse_location

from .conftest import BACKENDS, SUFFIX, Stop, bytes_equal, read_back, stop_after, write_source


def journal_blocks(dst: Path) -> int:
    path = dst.with_name(dst.name + ".partial.journal.jsonl")
    return sum(1 for line in path.read_text().splitlines()[1:] if json.loads(line).get("block") is not None)


def _data() -> np.ndarray[Any, Any]:
    return np.arange(64 * 1024, dtype="<i4").reshape(256, 256)


@pytest.mark.parametrize("dst_backend", BACKENDS)
def test_interrupted_then_resumed(tmp_path: Path, dst_backend: str) -> None:
    data = _data()
    src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / f"dst{SUFFIX[dst_backend]}"
    opts: dict[str, Any] = {"max_memory": "64KiB"}
    if dst_backend in ("hdf5", "zarr"):
        opts["chunks"] = (16, 256)
    with pytest.raises(Stop):
        convert(src, str(dst), progress=stop_after(3), **opts)
    assert not dst.exists()
    with pytest.raises(ArrayNotFoundError):
        arraystore.open(str(dst))
    assert journal_blocks(dst) == 3
    report = convert(src, str(dst), verify=True, **opts)
    assert (report.blocks_resumed, report.blocks_rewritten) == (3, 0)
    assert report.blocks_written == report.blocks_total - 3 and report.restarted is None
    got, _ = read_back(str(dst))
    assert bytes_equal(got, data) and report.checksum == StreamHasher.of(data)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("dst")) == sorted(
        [dst.name, *([dst.name + ".json"] if dst_backend == "raw" else [])])


def test_changed_source_restarts(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src.npy", _data())
    dst = tmp_path / "dst.dat"
    with pytest.raises(Stop):
        convert(src, str(dst), max_memory="64KiB", progress=stop_after(2))
    new = _data()[::-1].copy()
    write_source(tmp_path / "src2.npy", new)
    (tmp_path / "src2.npy").replace(tmp_path / "src.npy")
    report = convert(src, str(dst), max_memory="64KiB")
    assert report.restarted is not None and "source changed" in report.restarted
    assert report.blocks_resumed == 0
    assert bytes_equal(read_back(str(dst))[0], new)


def _rewrite_in_place_keeping_size_and_mtime(path: Path, data: np.ndarray[Any, Any]) -> None:
    """Write ``data`` over the source's values in place, then put back every file's modification time (``os.utime``),
    until a status-change time moved (the kernel's clock may tick coarser than nanoseconds)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    before = {p: p.stat() for p in files}
    for _ in range(100_000):
        with arraystore.open(str(path), "r+") as s:
            s[...] = data
        for p, st in before.items():
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        if any(p.stat().st_ctime_ns != st.st_ctime_ns for p, st in before.items()):
            break
    after = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    assert after == files
    assert all((p.stat().st_size, p.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns) for p, st in before.items())


def _stopped_after_three_blocks(tmp_path: Path, src_backend: str) -> tuple[np.ndarray[Any, Any], Path, Path]:
    """A conversion of a ``src_backend`` source into ``dst.npy`` interrupted after three blocks: (data, src, dst)."""
    old = _data()
    src = tmp_path / f"src{SUFFIX[src_backend]}"
    write_source(src, old, **({"chunks": (16, 256)} if src_backend in ("hdf5", "zarr") else {}))
    dst = tmp_path / "dst.npy"
    with pytest.raises(Stop):
        convert(str(src), str(dst), max_memory="64KiB", progress=stop_after(3))
    return old, src, dst


@pytest.mark.parametrize("verify", [False, True])
@pytest.mark.parametrize("src_backend", BACKENDS)
def test_a_source_rewritten_in_place_with_its_mtime_put_back_restarts(tmp_path: Path, src_backend: str,
                                                                       verify: bool) -> None:
    """A resume sees the source's status-change time too: a source rewritten in place between the kill and the
    rerun, its size and modification time put back, is converted from scratch (never its new blocks published
    beside the journaled blocks of its old values)."""
    old, src, dst = _stopped_after_three_blocks(tmp_path, src_backend)
    assert journal_blocks(dst) >= 2
    new = old[::-1] * 3
    _rewrite_in_place_keeping_size_and_mtime(src, new)
    report = convert(str(src), str(dst), max_memory="64KiB", verify=verify)
    assert report.blocks_resumed == 0 and report.restarted is not None and "status-change" in report.restarted
    got, _ = read_back(str(dst))
    assert bytes_equal(got, new)


@pytest.mark.parametrize("src_backend", BACKENDS)
def test_verify_reads_the_source_again_after_a_resume(tmp_path: Path, src_backend: str) -> None:
    """Verification never trusts the journal: a source changed behind a journal that still matches it (a file
    system whose times do not move, simulated by writing the new fingerprint into the journal) is refused with
    VerificationError, nothing published, instead of publishing resumed blocks of the old values."""
    old, src, dst = _stopped_after_three_blocks(tmp_path, src_backend)
    with arraystore.open(str(src), "r+") as s:
        s[...] = old[::-1] * 3
    jpath = dst.with_name(dst.name + ".partial.journal.jsonl")
    lines = jpath.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    with arraystore.open(str(src)) as s:
        header["source"] = source_fingerprint(parse_location(s.path), s.backend, s.meta.to_dict(), s._version())
    jpath.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    with pytest.raises(VerificationError):
        convert(str(src), str(dst), max_memory="64KiB", verify=True)
    assert not dst.exists()


def test_changed_options_and_no_resume_restart(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src.dat", _data())
    dst = tmp_path / "dst.npy"
    with pytest.raises(Stop):
        convert(src, str(dst), max_memory="64KiB", progress=stop_after(2))
    with pytest.raises(Stop):
        convert(src, str(dst), max_memory="32KiB", progress=stop_after(5))
    assert journal_blocks(dst) == 5
    report = convert(src, str(dst), max_memory="32KiB", resume=False)
    assert report.restarted == "resume disabled: starting from scratch" and report.blocks_resumed == 0
    assert bytes_equal(read_back(str(dst))[0], _data())
    assert not dst.with_name(dst.name + ".partial.journal.jsonl").exists()


def test_options_change_message(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src.dat", _data())
    dst = tmp_path / "dst.dat"
    with pytest.raises(Stop):
        convert(src, str(dst), max_memory="64KiB", progress=stop_after(2))
    report = convert(src, str(dst), max_memory="128KiB")
    assert report.restarted is not None and "options changed" in report.restarted


def test_damaged_partial_block_is_rewritten(tmp_path: Path) -> None:
    data = _data()
    src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / "dst.dat"
    with pytest.raises(Stop):
        convert(src, str(dst), max_memory="64KiB", progress=stop_after(3))
    with open(dst.with_name("dst.dat.partial"), "r+b") as f:  # damage the first journaled block
        f.write(b"\xff" * 100)
    report = convert(src, str(dst), max_memory="64KiB", verify=True)
    assert (report.blocks_resumed, report.blocks_rewritten) == (2, 1)
    assert bytes_equal(read_back(str(dst))[0], data)


def test_verify_detects_corruption_and_compares_formats(tmp_path: Path) -> None:
    data = _data()
    src = write_source(tmp_path / "src.npy", data)
    convert(src, str(tmp_path / "a.dat"))
    assert verify(str(tmp_path / "a.dat"), against=src)["match"]
    for other in BACKENDS:
        out = str(tmp_path / f"b{SUFFIX[other]}")
        convert(str(tmp_path / "a.dat"), out)
        assert verify(out, against=str(tmp_path / "a.dat"))["expected_from"].endswith("a.dat")
    with pytest.raises(VerificationError, match="no"):
        verify(src)  # npy cannot record a checksum
    with open(tmp_path / "a.dat", "r+b") as f:
        f.seek(1000)
        f.write(b"\x01")
    with pytest.raises(VerificationError, match="differs"):
        verify(str(tmp_path / "a.dat"))
    write_source(tmp_path / "c.dat", data[:10])
    with pytest.raises(VerificationError, match="cannot be the same array"):
        verify(str(tmp_path / "c.dat"), against=src)


@pytest.mark.parametrize("interval", [0.0, 3600.0])
def test_durable_journal_keeps_every_record_across_an_interruption(tmp_path: Path, interval: float,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A durable journal fsyncs its records in batches (every record, or only when closed): an interrupted
    durable conversion leaves every journaled block on record, and the rerun resumes them all."""
    from arraystore.conversion import _journal

    monkeypatch.setattr(_journal, "SYNC_INTERVAL", interval)
    data = _data()
    src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / "dst.npy"
    with pytest.raises(Stop):
        convert(src, str(dst), max_memory=16 * 1024, durable=True, progress=stop_after(5))
    kept = journal_blocks(dst)
    assert kept >= 5
    report = convert(src, str(dst), max_memory=16 * 1024, durable=True, verify=True)
    assert report.blocks_resumed == kept and report.blocks_rewritten == 0 and report.verified
    assert bytes_equal(read_back(str(dst))[0], data)
    assert not dst.with_name(dst.name + ".partial.journal.jsonl").exists()


# -- one pass over each block for its digest and the content checksum -------------------------------------------


@pytest.mark.parametrize(("src_name", "dst_name", "options"),
                         [("src.dat", "dst.zarr", {"chunks": (8, 33), "compression": "zstd:1"}),
                          ("src.npy", "dst.zarr", {"chunks": (8, 33), "compression": "blosc:lz4:5"}),
                          ("src.zarr", "dst.npy", {}), ("src.npy", "dst.h5", {"chunks": (8, 33), "compression": "gzip:1"})])
def test_blocks_hashed_once_for_digest_and_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, src_name: str,
                                                   dst_name: str, options: dict[str, Any]) -> None:
    """Blocks read as arrays are hashed in one pass for their journal digest and the content checksum: the journal
    holds each block's own digest (what a resume by any scheduler, or by an earlier arraystore, compares), the
    checksum is the data's, and an interrupted conversion resumes to the same."""
    from arraystore.checksums import block_digest
    from arraystore.conversion import _band_reads, _movers

    if ("zarr" in src_name + dst_name and "zarr" not in BACKENDS) or ("h5" in dst_name and "hdf5" not in BACKENDS):
        pytest.skip("the zarr or hdf5 extra is not installed")
    data = np.random.default_rng(4).random((200, 33))
    src = write_source(tmp_path / src_name, data, **({"chunks": (8, 33)} if src_name.endswith(".zarr") else {}))
    whole: list[int] = []  # blocks digested in a pass of their own (the two hashes not shared)
    monkeypatch.setattr(_movers, "block_digest", lambda block, order="C": whole.append(1) or block_digest(block, order))
    digests: dict[tuple[int, int], str] = {}

    def spy(read: Any) -> Any:
        def reading(self: _movers.BlockMover, sel: tuple[slice, ...]) -> Any:
            block, digest = read(self, sel)
            digests[(sel[0].start, sel[0].stop)] = digest
            return block, digest

        return reading

    # the base class's reads, those of the mover streaming byte ranges into compressed chunk files in bands and
    # those of the mover decoding Zarr chunks into a byte range in bands
    for cls in (_movers.BlockMover, _movers.DirectChunkMover, _band_reads.BandReadMover):
        monkeypatch.setattr(cls, "read", spy(cls.read))
    dst = tmp_path / dst_name
    with pytest.raises(Stop):
        convert(src, str(dst), max_memory="16KiB", progress=stop_after(4), **options)
    assert not whole and len(digests) >= 4
    assert all(d == block_digest(data[a:b]) for (a, b), d in digests.items())
    journal = dst.with_name(dst.name + ".partial.journal.jsonl")
    recorded = {json.loads(line)["digest"] for line in journal.read_text().splitlines()[1:]}
    assert len(recorded) >= 3 and recorded <= set(digests.values())
    report = convert(src, str(dst), max_memory="16KiB", verify=True, **options)
    assert report.blocks_resumed == len(recorded) and report.blocks_rewritten == 0
    assert report.checksum == StreamHasher.of(data) and report.verified
    assert len(whole) == len(recorded)  # only the resumed blocks, read back, had a pass of their own
    assert bytes_equal(read_back(str(dst))[0], data)


@pytest.mark.parametrize("bands", [False, True])
def test_a_block_hashed_twice_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bands: bool) -> None:
    """The bytes hashed into the content checksum are checked after every block: a block fed twice (a read dropped
    after it was hashed) stops the conversion before a wrong checksum is recorded; read whole or in bands of chunk
    rows."""
    from arraystore.conversion import _movers

    cls: Any = _movers.DirectChunkMover if bands else _movers.BlockMover
    name = "_hash_band" if bands else "_digest"
    digest = getattr(cls, name)
    calls = [0]

    def twice(self: _movers.BlockMover, *args: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            digest(self, *args)
        return digest(self, *args)

    monkeypatch.setattr(cls, name, twice)
    if not bands:
        monkeypatch.setattr(_movers, "BAND_MAX", 0)
    data = np.random.default_rng(5).random((200, 33))
    src = write_source(tmp_path / "src.dat", data)
    with pytest.raises(RuntimeError, match="hashed after block 2, expected"):
        convert(src, str(tmp_path / "dst.zarr"), chunks=(8, 33), compression="zstd:1", max_memory="16KiB")
    assert not (tmp_path / "dst.zarr").exists()
