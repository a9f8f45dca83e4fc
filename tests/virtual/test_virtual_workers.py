"""A virtual migration's files resolved in worker processes give what resolving them in this process gives.

The same records (status, resolution, evidence, checksums, notes, errors), the same store byte for
byte, the same suggested rules and unused rules, on archives mixing referenced, copied,
undetermined and failed files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from arraystore.migration import FileRecord, migrate, run
from arraystore.migration._manifest import Manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _outcome(rec: FileRecord) -> tuple[object, ...]:
    err = (rec.error["type"], rec.error["message"]) if rec.error else None
    return (rec.source, rec.status, rec.size, rec.mtime_ns, rec.destination, rec.backend, rec.resolution,
            rec.source_checksum, rec.destination_checksum, rec.note, err)


def _same_runs(src: Path, out: Path, fmt: str, **kw: object) -> tuple[list[FileRecord], int]:
    """Migrate ``src`` in this process and in 2 workers; assert equal outcomes; the records and pooled workers."""
    one = migrate(src, out / "one", virtual=True, format=fmt, workers=1, **kw)  # type: ignore[arg-type]
    two = migrate(src, out / "two", virtual=True, format=fmt, workers=2, **kw)  # type: ignore[arg-type]
    assert one.workers == 1 and two.workers == 2
    assert [_outcome(r) for r in two.records] == [_outcome(r) for r in one.records]
    assert two.rules_unused == one.rules_unused
    assert (out / "one" / "rules-suggested.toml").exists() == (out / "two" / "rules-suggested.toml").exists()
    if (out / "one" / "rules-suggested.toml").exists():
        suggested = [(out / d / "rules-suggested.toml").read_text() for d in ("one", "two")]
        assert suggested[0] == suggested[1]
    for d in ("one", "two"):
        assert set(Manifest(out / d / "migration.jsonl").read()) == {r.source for r in one.records}
    if fmt == "kerchunk":  # the whole reference file: hierarchy, attrs, evidence, references, in the same order
        texts = [(out / d / "virtual.json").read_bytes() for d in ("one", "two")]
        assert texts[0] == texts[1].replace(str(out / "two").encode(), str(out / "one").encode())
    return one.records, two.workers


@pytest.mark.parametrize("checksum", [True, False])
@pytest.mark.parametrize("fmt", ["kerchunk", "icechunk"])
def test_example_archive_in_workers_equals_in_process(tmp_path: Path, fmt: str, checksum: bool) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(EXAMPLES / "legacy", archive)
    unused = tmp_path / "more.toml"
    unused.write_text('[[rule]]\nglob = "nowhere/*.bin"\ndtype = "int16"\n')
    records, _ = _same_runs(archive, tmp_path, fmt, checksum=checksum, rules=[EXAMPLES / "rules.toml", unused])
    assert {r.status for r in records} >= {"converted", "undetermined", "failed"}


def test_copies_and_broken_headers_in_workers_equal_in_process(tmp_path: Path) -> None:
    pytest.importorskip("SimpleITK", reason="SimpleITK writes the compressed MetaImage files under test")
    pytest.importorskip("spectral", reason="spectral writes the ENVI file under test")
    from .test_virtual_fallback import build

    build(tmp_path / "archive")
    shutil.copytree(EXAMPLES / "legacy", tmp_path / "archive" / "legacy")
    records, _ = _same_runs(tmp_path / "archive", tmp_path, "kerchunk", rules=EXAMPLES / "rules.toml")
    copied = [r.source for r in records if (r.note or "").startswith("copied:")]
    assert "ct.zraw" in copied and len(copied) == len(set(copied))  # the header's data file copied once
    assert sorted(p.name for p in (tmp_path / "two" / "virtual.copies").iterdir()) == sorted(copied)


def test_large_archives_resolve_in_workers_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(EXAMPLES / "legacy", archive)
    files = sum(1 for _ in archive.rglob("*"))
    monkeypatch.setattr(run, "VIRTUAL_POOL_FILES", files + 1)
    assert migrate(archive, tmp_path / "few", virtual=True, rules=EXAMPLES / "rules.toml").workers == 1
    monkeypatch.setattr(run, "VIRTUAL_POOL_FILES", 2)
    many = migrate(archive, tmp_path / "many", virtual=True, rules=EXAMPLES / "rules.toml")
    assert many.workers == (os.cpu_count() or 1)
    one = migrate(archive, tmp_path / "one", virtual=True, rules=EXAMPLES / "rules.toml", workers=1)
    assert [_outcome(r) for r in many.records] == [_outcome(r) for r in one.records]
    assert (tmp_path / "many" / "virtual.json").read_text().replace("many", "one") == (
        (tmp_path / "one" / "virtual.json").read_text()
    )


def test_an_unguarded_script_migrates_a_large_archive_in_its_own_process(tmp_path: Path) -> None:
    """Workers a virtual migration picks by itself are a speed-up: a script without a main guard (whose workers
    would run it again) gets the same store from its own process, not an error."""
    import json
    import subprocess
    import sys

    archive = tmp_path / "archive"
    shutil.copytree(EXAMPLES / "legacy", archive)
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import json, sys\n"
        "from arraystore.migration import migrate, run\n"
        "run.VIRTUAL_POOL_FILES = 2\n"
        f"report = migrate({str(archive)!r}, {str(tmp_path / 'out')!r}, virtual=True, rules={str(EXAMPLES / 'rules.toml')!r})\n"
        "print(json.dumps({'workers': report.workers, 'statuses': sorted({r.status for r in report.records})}))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["workers"] == 1 and "converted" in got["statuses"]
