"""The cheaper forms of a migration's per-file work give what the plain forms give.

Records sent from a worker process to the one writing the manifest travel as their line and their fields but
``resolution``, decoded from the line when first read, and nothing of them is lost; a record made without a
``__setattr__`` per field is the one the constructor makes; a built-in target is known without reading the
entry points; the overlap check of outputs refuses what it refused when every ancestor of every source was
listed."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arraystore.migration import FileRecord, migrate
from arraystore.migration._manifest import Manifest, record_line
from arraystore.registry import BACKENDS, is_target, target_names


def _record(**changes: Any) -> FileRecord:
    fields: dict[str, Any] = {
        "source": "run1/a_float32.dat",
        "status": "converted",
        "size": 4096,
        "mtime_ns": 123,
        "ctime_ns": 456,
        "destination": "run1/a_float32.npy",
        "backend": "npy",
        "source_checksum": {"algorithm": "xxh3_128", "value": "ab"},
        "destination_checksum": {"algorithm": "xxh3_128", "value": "ab"},
        "verified": True,
        "resolution": {"status": "resolved", "dtype": "<f4", "shape": [1024],
                       "evidence": [{"source": "filename", "detail": "file name states dtype <f4", "dtype": "<f4"}]},
        "seconds": 0.25,
        "note": None,
    }
    fields.update(changes)
    return FileRecord(**fields)


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_an_encoded_record_travels_without_its_resolution_and_reads_back_equal(protocol: int) -> None:
    sent = _record()
    line = record_line(sent)
    got = pickle.loads(pickle.dumps(sent, protocol))
    assert "resolution" not in got.__dict__  # not pickled: its line holds it
    assert record_line(got) == line  # the manifest, its rewrite and the report reuse the line as it is
    assert got == sent  # reading any field (here every one) decodes the resolution
    assert got.resolution == sent.resolution
    assert json.loads(line) == got.to_dict()


def test_a_record_changed_after_the_transfer_keeps_its_resolution_and_is_encoded_again() -> None:
    sent = _record()
    record_line(sent)
    got = pickle.loads(pickle.dumps(sent))
    got.status = "failed"  # drops the line: the resolution must not go with it
    assert got.resolution == sent.resolution
    assert json.loads(record_line(got))["status"] == "failed"
    assert json.loads(record_line(got))["resolution"] == sent.resolution


def test_a_record_not_encoded_pickles_whole_and_copies_and_replaces_alike() -> None:
    sent = _record(error={"type": "OSError", "message": "x"}, status="failed")
    got = pickle.loads(pickle.dumps(sent))
    assert got == sent and "resolution" in got.__dict__
    record_line(sent)
    moved = pickle.loads(pickle.dumps(sent))
    assert copy.deepcopy(moved) == sent
    assert dataclasses.replace(moved, note="n") == dataclasses.replace(sent, note="n")
    with pytest.raises(AttributeError):
        _ = moved.not_a_field  # type: ignore[attr-defined]


def test_records_from_worker_processes_make_the_same_report_and_manifest(tmp_path: Path) -> None:
    """A 2-worker migration's records (most sent as lines) against a 1-worker one's (made in this process)."""
    src = tmp_path / "src"
    rng = np.random.default_rng(3)
    for i in range(600):  # more than the batches this process runs while the pool starts
        folder = src / f"d{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (rng.standard_normal(256).astype("<f4") + i).tofile(folder / f"s{i:03d}_float32.dat")
    (src / "mystery.bin").write_bytes(bytes(96))  # undetermined: its resolution is read by the summary
    one = migrate(src, tmp_path / "one", to="npy", workers=1)
    two = migrate(src, tmp_path / "two", to="npy", workers=2)
    assert one.counts == two.counts and one.counts["undetermined"] == 1
    assert one.summary().splitlines()[2:] == two.summary().replace(str(tmp_path / "two"), str(tmp_path / "one")).splitlines()[2:]

    def stable(records: list[FileRecord]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.to_dict().items() if k not in ("seconds", "finished")} for r in records]

    assert stable(one.records) == stable(two.records)
    for out in ("one", "two"):
        lines = Manifest(tmp_path / out / "migration.jsonl").read()
        assert stable([lines[k] for k in sorted(lines)]) == stable(one.records)
    report = json.loads((tmp_path / "two" / "migration-report.json").read_text())
    assert [r["resolution"] for r in report["records"]] == [r.resolution for r in one.records]


@pytest.mark.parametrize("name", [*BACKENDS, "no-such-format", "virtual"])
def test_is_target_says_what_target_names_lists(name: str) -> None:
    assert is_target(name) == (name in target_names())


def test_made_is_the_constructor_without_a_setattr_per_field() -> None:
    fields = _record().to_dict()
    made = FileRecord.made(**fields)
    assert made == FileRecord(**fields) and made.to_dict() == fields
    assert FileRecord.made(source="a", status="failed") == FileRecord(source="a", status="failed")
    first, second = FileRecord.made(source="a", status="failed"), FileRecord.made(source="b", status="failed")
    first.resolution["x"] = 1
    assert second.resolution == {}  # a dict of its own, as the field's default_factory gives
    for bad in ({"source": "a", "status": "failed", "sauce": 1}, {"status": "failed"}, {"source": "a"}):
        with pytest.raises(TypeError):
            FileRecord.made(**bad)


def _overlaps_reference(dests: dict[str, str], src: Path, dst: Path | None) -> dict[str, str]:
    """``overlapping_outputs`` as it was written first (every ancestor of every source listed): the reference."""
    from arraystore.migration._discover import _folded

    owner = {_folded(d.split("/")): n for n, d in dests.items()}
    dst_root = _folded(dst.resolve().parts) if dst is not None else None
    src_root = _folded(src.resolve().parts)
    sources = {src_root + _folded(n.split("/")): n for n in dests}
    source_dirs: dict[tuple[str, ...], str] = {}
    for parts, name in sources.items():
        for i in range(1, len(parts)):
            source_dirs.setdefault(parts[:i], name)
    out: dict[str, str] = {}

    def refuse(name: str, why: str) -> None:
        out.setdefault(name, f"its output {dests[name]!r} {why}; exclude one of the two files or rename it, then rerun")

    for parts, name in owner.items():
        for i in range(1, len(parts)):
            anc = parts[:i]
            if anc in owner:
                refuse(name, f"would lie inside {'/'.join(anc)!r}, the output of {owner[anc]!r}")
                refuse(owner[anc], f"would contain {dests[name]!r}, the output of {name!r}")
        if dst_root is None:
            continue
        full = dst_root + parts
        for i in range(len(src_root) + 1, len(full) + 1):
            if full[:i] in sources:
                refuse(name, f"would overwrite or lie inside the source file {sources[full[:i]]!r}")
        if full in source_dirs:
            refuse(name, f"would contain the source file {source_dirs[full]!r}")
    return out


_SEGMENT = st.sampled_from(["a", "b", "src", "Src", "x.dat", "X.dat", "x.npy", "y.dat", "x", "out"])


@settings(max_examples=300, deadline=None)
@given(names=st.lists(st.lists(_SEGMENT, min_size=1, max_size=4).map("/".join), min_size=1, max_size=8, unique=True),
       dst_at=st.sampled_from(["inside", "beside", "above-named", "remote"]))
def test_overlapping_outputs_refuses_as_the_reference(tmp_path_factory: pytest.TempPathFactory, names: list[str],
                                                      dst_at: str) -> None:
    """Outputs inside, around or onto sources and other outputs, the destination inside the archive, beside it,
    or its parent (an output named like the archive's root): the same refusals, with the same reasons."""
    from arraystore.migration._discover import destination_names, overlapping_outputs

    base = tmp_path_factory.mktemp("overlap")
    src = base / "src" / "x.npy" if dst_at == "above-named" else base / "src"
    dst = {"inside": src / "out", "beside": base / "out", "above-named": base / "src", "remote": None}[dst_at]
    dests = destination_names(names, ".npy")
    assert overlapping_outputs(dests, src, dst) == _overlaps_reference(dests, src, dst)
