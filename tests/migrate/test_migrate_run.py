"""``arraystore.migration.migrate``: the example archive, every target format, reruns, manifest, originals untouched."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore.errors import ArrayNotFoundError, MetadataError
from arraystore.migration import FileRecord, MigrationReport, migrate
from arraystore.migration._discover import destination_names, discover, overlapping_outputs
from arraystore.migration._manifest import Manifest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "legacy"
RULES = REPO / "examples" / "rules.toml"


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


TARGETS = [
    "raw",
    "npy",
    pytest.param("zarr", marks=pytest.mark.skipif(not _available("zarr"), reason="zarr is not installed")),
    pytest.param("hdf5", marks=pytest.mark.skipif(not _available("h5py"), reason="h5py is not installed")),
]


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    out = tmp_path / "legacy"
    shutil.copytree(EXAMPLE, out)
    return out


def fingerprint(root: Path) -> dict[str, tuple[str, int, int]]:
    """Hash, size and mtime of every file under ``root``."""
    return {
        f.relative_to(root).as_posix(): (
            hashlib.sha256(f.read_bytes()).hexdigest(),
            f.stat().st_size,
            f.stat().st_mtime_ns,
        )
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }


def source_array(src: Path, rec: FileRecord) -> np.ndarray:
    r = rec.resolution
    dtype = arraystore.meta.dtype_from_json(r["dtype"])
    return np.memmap(src / rec.source, dtype, "r", r["offset"], tuple(r["shape"]), r["order"])


def assert_converted_equal(src: Path, dst: Path, report: MigrationReport) -> None:
    for rec in report.records:
        if rec.status not in ("converted", "skipped"):
            continue
        assert rec.destination is not None
        with arraystore.open(dst / rec.destination, "r", backend=report.to) as store:
            got = store[...]
            expected = source_array(src, rec)
            assert got.dtype == expected.dtype, rec.source
            np.testing.assert_array_equal(got, expected, err_msg=rec.source)


@pytest.mark.parametrize("to", TARGETS)
def test_example_archive_every_target(archive: Path, tmp_path: Path, to: str) -> None:
    before = fingerprint(archive)
    dst = tmp_path / "out"
    report = migrate(archive, dst, to=to, rules=RULES, workers=1)
    assert report.counts == {"converted": 20, "skipped": 0, "undetermined": 1, "failed": 1}
    assert report.exit_code == 4
    assert [r.source for r in report.by_status("undetermined")] == ["mystery/unknown.bin"]
    [failed] = report.by_status("failed")
    assert failed.source == "broken/truncated.dat"
    assert failed.error is not None and failed.error["type"] == "SizeMismatchError"
    assert "30,000" in failed.error["message"] and "40,000" in failed.error["message"]
    assert all(
        r.verified and r.source_checksum == r.destination_checksum for r in report.by_status("converted")
    )
    assert_converted_equal(archive, dst, report)
    assert fingerprint(archive) == before  # originals: same bytes, same mtimes, nothing added or removed


def test_outputs_manifest_report_summary_and_rules_template(archive: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    report = migrate(archive, dst, to="npy", rules=RULES, workers=1)
    lines = (dst / "migration.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 22 and len({r["source"] for r in records}) == 22
    conv = next(r for r in records if r["source"] == "legacy_json/scan_a.dat")
    assert conv["status"] == "converted" and conv["destination"] == "legacy_json/scan_a.npy"
    assert conv["size"] == 4096 and conv["source_checksum"]["algorithm"] == "xxh3_128"
    assert (
        conv["resolution"]["dtype"] == "<i2"
        and conv["resolution"]["source"] == "legacy-json:scan_a_meta.json"
    )
    assert conv["resolution"]["evidence"][0]["source"] == "legacy-json:scan_a_meta.json"
    und = next(r for r in records if r["source"] == "mystery/unknown.bin")
    assert und["status"] == "undetermined" and und["resolution"]["candidates"]
    saved = json.loads((dst / "migration-report.json").read_text())
    assert saved["counts"] == report.counts and saved["exit_code"] == 4
    assert saved == json.loads(report.to_json())  # the same content, each record on a line of its own
    lines = (dst / "migration-report.json").read_text().splitlines()
    assert sum(line.startswith('    {"source": ') for line in lines) == len(report.records)
    summary = (dst / "migration-summary.txt").read_text()
    assert "mystery/unknown.bin" in summary and "SizeMismatchError" in summary
    template = (dst / "rules-suggested.toml").read_text()
    assert 'glob = "mystery/unknown.bin"' in template


def test_rerun_skips_retries_and_picks_up_new_files(archive: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    migrate(archive, dst, to="raw", rules=RULES, workers=1)
    again = migrate(archive, dst, to="raw", rules=RULES, workers=1)
    assert again.counts == {"converted": 0, "skipped": 20, "undetermined": 1, "failed": 1}
    # A new file, and a rule for the undetermined one.
    np.arange(50, dtype="<i4").tofile(archive / "patterns" / "late_int32.dat")
    more = tmp_path / "more.toml"
    more.write_text('[[rule]]\nglob = "mystery/unknown.bin"\ndtype = "float32"\nshape = [24, 32]\n')
    third = migrate(archive, dst, to="raw", rules=[RULES, more], workers=1)
    assert sorted(r.source for r in third.by_status("converted")) == [
        "mystery/unknown.bin",
        "patterns/late_int32.dat",
    ]
    assert third.counts["skipped"] == 20 and third.exit_code == 4  # the truncated file still fails
    assert not (dst / "rules-suggested.toml").exists()
    assert_converted_equal(archive, dst, third)
    assert len((dst / "migration.jsonl").read_text().splitlines()) == 23  # compacted: one line per file


def test_changed_source_and_changed_rules_are_converted_again(archive: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    migrate(archive, dst, to="npy", rules=RULES, workers=1)
    f = archive / "patterns" / "frames_float32.dat"
    f.write_bytes(np.full(1000, 7, "<f4").tobytes())
    rules = tmp_path / "r.toml"
    rules.write_text(RULES.read_text().replace("shape = [-1, 128]", "shape = [-1, 64]"))
    report = migrate(archive, dst, to="npy", rules=rules, workers=1)
    assert sorted(r.source for r in report.by_status("converted")) == [
        "instrument_b/sweep.bin",
        "patterns/frames_float32.dat",
    ]
    assert np.load(dst / "patterns" / "frames_float32.npy")[0] == 7
    assert np.load(dst / "instrument_b" / "sweep.npy").shape == (80, 64)


def _rewrite_keeping_size_and_mtime(path: Path, body: bytes) -> None:
    """Rewrite ``path`` with ``body`` (of its size) and put its modification time back (``os.utime``), until its
    status-change time differs from before (the kernel's clock may tick coarser than nanoseconds)."""
    st = path.stat()
    assert len(body) == st.st_size
    for _ in range(100_000):
        path.write_bytes(body)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        if path.stat().st_ctime_ns != st.st_ctime_ns:
            break
    now = path.stat()
    assert (now.st_size, now.st_mtime_ns) == (st.st_size, st.st_mtime_ns) and now.st_ctime_ns != st.st_ctime_ns


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("to", TARGETS)
def test_a_source_rewritten_after_a_run_with_its_mtime_put_back_is_converted_again(
    archive: Path, tmp_path: Path, to: str, workers: int
) -> None:
    """A rerun keys a finished file on its size, modification and status-change times: a rewrite of the same size
    whose modification time was put back is converted again (its new values published), not skipped as done."""
    dst = tmp_path / "out"
    first = migrate(archive, dst, to=to, rules=RULES, workers=workers)
    rec = next(r for r in first.records if r.source == "patterns/frames_float32.dat")
    assert rec.status == "converted" and rec.ctime_ns != 0
    f = archive / rec.source
    new = np.linspace(-5, 5, f.stat().st_size // 4, dtype="<f4")
    _rewrite_keeping_size_and_mtime(f, new.tobytes())
    again = migrate(archive, dst, to=to, rules=RULES, workers=workers)
    assert [r.source for r in again.by_status("converted")] == [rec.source]
    assert again.counts["skipped"] == first.counts["converted"] - 1
    assert_converted_equal(archive, dst, again)
    third = migrate(archive, dst, to=to, rules=RULES, workers=workers)
    assert third.counts["converted"] == 0  # its new status-change time was recorded


def test_a_manifest_line_without_ctime_is_skipped_on_size_and_mtime(archive: Path, tmp_path: Path) -> None:
    """A line written before the status-change time was recorded (no ``ctime_ns``) still marks its file done."""
    dst = tmp_path / "out"
    first = migrate(archive, dst, to="npy", rules=RULES, workers=1)
    lines = [json.loads(line) for line in (dst / "migration.jsonl").read_text().splitlines()]
    assert all(line.pop("ctime_ns") for line in lines if line["status"] == "converted")
    (dst / "migration.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    again = migrate(archive, dst, to="npy", rules=RULES, workers=1)
    assert again.counts["skipped"] == first.counts["converted"] and again.counts["converted"] == 0


def test_recheck_reads_back_and_repairs_a_damaged_destination(archive: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    migrate(archive, dst, to="npy", rules=RULES, workers=1)
    damaged = dst / "legacy_json" / "scan_a.npy"
    raw = bytearray(damaged.read_bytes())
    raw[-1] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    plain = migrate(archive, dst, to="npy", rules=RULES, workers=1)
    assert (
        plain.counts["skipped"] == 20
    )  # cheap checks cannot see flipped bits in .npy (no recorded checksum)
    report = migrate(archive, dst, to="npy", rules=RULES, workers=1, recheck=True)
    assert [r.source for r in report.by_status("converted")] == ["legacy_json/scan_a.dat"]
    assert report.counts["skipped"] == 19
    assert all(r.verified for r in report.by_status("skipped"))
    assert_converted_equal(archive, dst, report)


def test_destination_published_before_its_manifest_line_is_adopted(archive: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    migrate(archive, dst, to="raw", rules=RULES, workers=1)
    (dst / "migration.jsonl").unlink()  # as if killed between publishing and writing the lines
    report = migrate(archive, dst, to="raw", rules=RULES, workers=1)
    converted = report.by_status("converted")
    assert len(converted) == 20 and all(r.note and "interrupted run" in r.note for r in converted)


def test_foreign_file_at_the_destination_is_not_overwritten(archive: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    (dst / "legacy_json").mkdir(parents=True)
    np.save(dst / "legacy_json" / "scan_a.npy", np.zeros((64, 32), "<i2"))
    report = migrate(archive, dst, to="npy", rules=RULES, workers=1)
    bad = next(r for r in report.records if r.source == "legacy_json/scan_a.dat")
    assert bad.status == "failed" and bad.error is not None and "move it away" in bad.error["message"]
    assert not np.load(dst / "legacy_json" / "scan_a.npy").any()


def test_torn_last_manifest_line_is_ignored(archive: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    migrate(archive, dst, to="raw", rules=RULES, workers=1)
    manifest = dst / "migration.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:40])  # killed mid-write
    report = migrate(archive, dst, to="raw", rules=RULES, workers=1)
    assert report.counts["converted"] + report.counts["skipped"] == 20
    assert len(manifest.read_text().splitlines()) == 22


def test_corrupt_manifest_line_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "migration.jsonl"
    path.write_text('not json\n{"source": "a", "status": "converted"}\n')
    with pytest.raises(MetadataError, match="line 1"):
        Manifest(path).read()


def test_dry_run_writes_nothing(archive: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    report = migrate(archive, dst, to="zarr", rules=RULES, dry_run=True)
    assert not dst.exists()
    assert report.counts == {"skipped": 0, "planned": 20, "undetermined": 1, "failed": 1}
    assert report.bytes_converted == sum(r.size for r in report.by_status("planned"))
    assert (
        "would write:" in report.summary()
        and "instrument_b/sweep.bin  ->  instrument_b/sweep.zarr" in report.summary()
    )


def test_process_pool_gives_the_same_result(archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from arraystore.migration import run

    monkeypatch.setattr(run, "IN_PROCESS_FILES", 0)  # the pool, even for one batch
    dst = tmp_path / "out"
    report = migrate(archive, dst, to="npy", rules=RULES, workers=2)
    assert report.workers == 2
    assert report.counts == {"converted": 20, "skipped": 0, "undetermined": 1, "failed": 1}
    assert_converted_equal(archive, dst, report)


def test_progress_callback_sees_every_file(archive: Path, tmp_path: Path) -> None:
    events = []
    migrate(archive, tmp_path / "out", to="raw", rules=RULES, workers=1, progress=events.append)
    assert events[-1].done_files == events[-1].total_files == 22
    assert events[-1].done_bytes == events[-1].total_bytes


def test_top_level_function(archive: Path, tmp_path: Path) -> None:
    import arraystore

    report = arraystore.migrate(archive, tmp_path / "out", to="raw", rules=RULES, dry_run=True)
    assert isinstance(report, MigrationReport)
    assert callable(arraystore.migrate)  # still the function after the package was imported


def test_bad_arguments(tmp_path: Path, archive: Path) -> None:
    with pytest.raises(ArrayNotFoundError):
        migrate(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(MetadataError, match="to="):
        migrate(archive, tmp_path / "out", to="tiff")
    with pytest.raises(MetadataError, match="destination"):
        migrate(archive, archive)
    with pytest.raises(MetadataError, match="destination"):
        migrate(archive / "patterns", archive)


def test_discovery_rule(tmp_path: Path) -> None:
    root = tmp_path / "a"
    shutil.copytree(EXAMPLE / "dialects", root / "dialects")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x_float32.dat").write_bytes(b"\0" * 8)
    (root / "notes.txt").write_text("hello")
    (root / "skip_float32.dat").write_bytes(b"\0" * 8)
    (root / "orphan.mhd").write_text(
        "ObjectType = Image\nNDims = 2\nDimSize = 4 4\nElementType = MET_UCHAR\nElementDataFile = gone.raw\n"
    )
    found = discover(root, exclude=("skip_*",), skip=root / "out")
    assert found.data == (
        "dialects/ct.raw",
        "dialects/dem.bil",
        "dialects/digits-idx3-ubyte",
        "dialects/scene.img",
    )
    assert [name for name, _ in found.broken_headers] == ["orphan.mhd"]


def test_destination_inside_the_source_is_not_searched(archive: Path) -> None:
    dst = archive / "converted"
    migrate(archive, dst, to="raw", rules=RULES, workers=1)
    again = migrate(archive, dst, to="raw", rules=RULES, workers=1)
    assert again.counts == {"converted": 0, "skipped": 20, "undetermined": 1, "failed": 1}


def test_destination_names_collisions_are_deterministic() -> None:
    names = ["a/x.dat", "a/x.raw", "a/y.bin", "b/x.dat", "a/digits-idx3-ubyte"]
    got = destination_names(names, ".zarr")
    assert got == {
        "a/x.dat": "a/x.dat.zarr",
        "a/x.raw": "a/x.raw.zarr",
        "a/y.bin": "a/y.zarr",
        "b/x.dat": "b/x.zarr",
        "a/digits-idx3-ubyte": "a/digits-idx3-ubyte.zarr",
    }
    assert destination_names(list(reversed(names)), ".zarr") == got
    # A name recorded by an earlier run is kept when a same-stem file appears later.
    assert destination_names(["c/x.dat", "c/x.raw"], ".npy", {"c/x.dat": "c/x.npy"}) == {
        "c/x.dat": "c/x.npy",
        "c/x.raw": "c/x.raw.npy",
    }


def test_colliding_stems_are_both_converted(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    np.arange(10, dtype="<f4").tofile(src / "x_float32.dat")
    np.arange(10, dtype="<f4").tofile(src / "x_float32.raw")
    report = migrate(src, tmp_path / "out", to="npy", workers=1)
    assert sorted(r.destination for r in report.records) == ["x_float32.dat.npy", "x_float32.raw.npy"]


def test_report_file_json_without_records_is_the_report() -> None:
    from arraystore.migration._report import MigrationReport

    report = MigrationReport(src="a", dst="b", to="npy", dry_run=False, workers=1, rules=None, scheduler=None)
    assert json.loads(report.to_file_json()) == json.loads(report.to_json())


_CASE_NAMES = st.lists(
    st.builds(lambda d, f, s: f"{d}{f}{s}", st.sampled_from(["", "a/", "A/", "b/c/", "B/C/"]),
              st.sampled_from(["x", "X", "run", "RUN", "Run", "x.dat", "X.DAT"]),
              st.sampled_from([".dat", ".DAT", ".raw", ".bin", ""])),
    min_size=1, max_size=12, unique=True,
)


@given(names=_CASE_NAMES, previous=st.booleans())
def test_destination_names_differ_in_more_than_case(names: list[str], previous: bool) -> None:
    """No two outputs differ only in case: on a case-insensitive file system (macOS, Windows) one would replace
    the other, and the manifest would record both as converted."""
    prev = destination_names(names[: len(names) // 2], ".npy") if previous else None
    got = destination_names(names, ".npy", prev)
    assert sorted(got) == sorted(names)
    folded = [d.casefold() for d in got.values()]
    assert len(set(folded)) == len(folded), got
    assert destination_names(list(reversed(names)), ".npy", prev) == got


def test_outputs_differing_only_in_case_are_kept_apart(tmp_path: Path) -> None:
    """``A_float32.dat`` and ``a_float32.dat`` (and folders ``Run/``, ``run/``): every output has its own
    case-insensitive name, and holds its own source's values."""
    src = tmp_path / "src"
    values = {}
    for i, name in enumerate(["A_float32.dat", "a_float32.dat", "Run/x_float32.dat", "run/x_float32.dat"]):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        values[name] = np.arange(100, dtype="<f4") + i
        values[name].tofile(src / name)
    report = migrate(src, tmp_path / "out", to="npy", workers=1)
    assert report.counts["converted"] == 4, report.counts
    dests = {r.source: r.destination for r in report.records if r.destination}
    assert len({d.casefold() for d in dests.values()}) == 4, dests
    for name, expected in values.items():
        np.testing.assert_array_equal(np.load(tmp_path / "out" / dests[name]), expected)


def test_an_output_inside_a_source_of_another_case_is_refused(tmp_path: Path) -> None:
    """Migrating in place: ``A.DAT/b.npy`` would lie inside the source file ``a.dat`` on a case-insensitive file
    system; both files of the pair are refused, as for the same case."""
    dests = {"a.dat": "a.npy", "A.DAT/b.dat": "A.DAT/b.npy"}
    refused = overlapping_outputs(dests, tmp_path, tmp_path)
    assert "a.dat" in refused["A.DAT/b.dat"]
    assert overlapping_outputs(dests, tmp_path, tmp_path / "elsewhere") == {}
