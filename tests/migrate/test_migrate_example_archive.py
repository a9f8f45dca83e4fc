"""The example legacy archive: generated deterministically, every file resolves as expected."""

from __future__ import annotations

import filecmp
import importlib.util
import sys
from pathlib import Path

import pytest

from arraystore.migration import is_metadata_file, load_rules, resolve, suggest_rules

REPO = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("make_legacy_archive", REPO / "tools" / "make_legacy_archive.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_legacy_archive", module)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    out = tmp_path_factory.mktemp("examples") / "legacy"
    assert GEN.main(["make_legacy_archive", str(out)]) == 0
    return out


def _data_files(root: Path) -> list[Path]:
    return sorted(f for f in root.rglob("*") if f.is_file() and not is_metadata_file(f))


def test_every_file_has_its_expected_outcome(archive):
    rules = load_rules(archive.parent / "rules.toml")
    seen = {}
    for f in _data_files(archive):
        r = resolve(f, root=archive, rules=rules)
        got = (r.status, r.meta.dtype.str if r.meta else None, r.meta.shape if r.meta else None,
               r.meta.order if r.meta else None, r.offset if r.meta else None, r.source)
        seen[r.name] = got
    assert seen == GEN.EXPECTED
    assert rules.unused() == []


def test_undetermined_and_truncated_files(archive):
    r = resolve(archive / "mystery" / "unknown.bin", root=archive)
    assert r.status == "undetermined" and len(r.candidates) >= 5
    assert "mystery/unknown.bin" in suggest_rules([r])
    bad = resolve(archive / "broken" / "truncated.dat", root=archive)
    assert type(bad.error).__name__ == "SizeMismatchError"
    assert "40,000" in str(bad.error) and "30,000" in str(bad.error)


def test_without_rules_the_rules_file_is_undetermined(archive):
    r = resolve(archive / "instrument_b" / "sweep.bin", root=archive)
    assert r.status == "undetermined"


def test_archive_is_small_deterministic_and_committed_copy_is_current(archive, tmp_path):
    total = sum(f.stat().st_size for f in archive.rglob("*") if f.is_file())
    assert total < 1_000_000
    again = tmp_path / "legacy"
    GEN.write_archive(again)
    names = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file())
    _, mismatch, errors = filecmp.cmpfiles(archive, again, names, shallow=False)
    assert mismatch == [] and errors == []
    committed = REPO / "examples" / "legacy"
    if committed.is_dir():
        _, mismatch, errors = filecmp.cmpfiles(committed, archive, names, shallow=False)
        assert mismatch == [] and errors == [], "examples/legacy is stale: run tools/make_legacy_archive.py"
        assert (REPO / "examples" / "rules.toml").read_text() == GEN.RULES_TOML
