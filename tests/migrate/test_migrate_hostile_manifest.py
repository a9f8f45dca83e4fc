"""A tampered ``migration.jsonl`` never steers a write or a delete; overlapping outputs are refused."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.errors import MetadataError
from arraystore.migration import migrate
from arraystore.migration._discover import destination_names, overlapping_outputs


def snapshot(root: Path, skip: Path) -> dict[str, tuple[str, str]]:
    """Every path under ``root`` except ``skip``'s subtree: kind and content hash (files) or link target."""
    out: dict[str, tuple[str, str]] = {}
    for p in sorted(root.rglob("*")):
        if p == skip or skip in p.parents:
            continue
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = ("link", str(p.readlink()))
        elif p.is_dir():
            out[rel] = ("dir", "")
        else:
            out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def make_world(base: Path) -> tuple[Path, Path]:
    src = base / "src"
    (src / "sub").mkdir(parents=True)
    np.arange(12, dtype="<f4").tofile(src / "a_f4_3x4.dat")
    np.arange(6, dtype="<i2").tofile(src / "sub" / "b_i2_6.dat")
    victim = base / "victim"
    (victim / "keep").mkdir(parents=True)
    (victim / "keep" / "precious.txt").write_text("do not delete")
    (base / "victim.zarr").mkdir()
    (base / "victim.zarr" / "x").write_text("mine")
    return src, base / "dst"


HOSTILE_DESTS = [
    "../victim",
    "../victim.zarr",
    "../../victim",
    "/tmp/../victim",
    "sub/../../victim",
    "a_f4_3x4.zarr/../../victim",
    "",
    ".",
    "..",
    "sub/b_i2_6.zarr",
]


def _line(source: str, **kw: Any) -> str:
    rec = {"source": source, "status": "converted", "size": 48, "mtime_ns": 0, "backend": "zarr"}
    rec.update(kw)
    return json.dumps(rec)


@pytest.mark.parametrize("dest", [*HOSTILE_DESTS, "ABSOLUTE"])
def test_tampered_destination_never_steers_a_write_or_delete(tmp_path: Path, dest: str) -> None:
    src, dst = make_world(tmp_path)
    migrate(src, dst, to="zarr", workers=1)
    if dest == "ABSOLUTE":
        dest = str(tmp_path / "victim")
    manifest = dst / "migration.jsonl"
    # the source "changed" (mtime 0): a rerun replaces its destination, wherever the manifest says it is
    manifest.write_text(_line("a_f4_3x4.dat", destination=dest) + "\n" + _line("sub/b_i2_6.dat", destination=dest) + "\n")
    before = snapshot(tmp_path, dst)
    report = migrate(src, dst, to="zarr", workers=1)
    assert snapshot(tmp_path, dst) == before
    dests = {r.source: r.destination for r in report.records}
    assert dests == {"a_f4_3x4.dat": "a_f4_3x4.zarr", "sub/b_i2_6.dat": "sub/b_i2_6.zarr"}
    with arraystore.open(dst / "a_f4_3x4.zarr") as s:
        np.testing.assert_array_equal(s[...], np.arange(12, dtype="<f4").reshape(3, 4))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
hostile_paths = st.sampled_from(HOSTILE_DESTS) | st.text(
    alphabet=st.sampled_from("./\\ab\x00\n~"), min_size=0, max_size=12
)
records = st.fixed_dictionaries(
    {
        "source": st.sampled_from(["a_f4_3x4.dat", "sub/b_i2_6.dat", "../victim", "/etc/passwd"]) | json_values,
        "status": st.sampled_from(["converted", "skipped", "failed", "planned"]) | json_values,
    },
    optional={
        "destination": hostile_paths | json_values,
        "backend": st.sampled_from(["zarr", "npy", "raw"]) | json_values,
        "size": st.sampled_from([48, 12]) | json_values,
        "mtime_ns": st.integers(min_value=-(2**100), max_value=2**100) | json_values,
        "resolution": json_values,
        "source_checksum": json_values,
        "verified": json_values,
        "error": json_values,
    },
)


@settings(max_examples=30)
@given(lines=st.lists(records | json_values, min_size=1, max_size=4))
def test_hostile_manifest_entries_change_nothing_outside_dst(tmp_path_factory: pytest.TempPathFactory, lines: list[Any]) -> None:
    base = tmp_path_factory.mktemp("hostile")
    src, dst = make_world(base)
    migrate(src, dst, to="zarr", workers=1)
    (dst / "migration.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    before = snapshot(base, dst)
    try:
        report = migrate(src, dst, to="zarr", workers=1)
    except MetadataError as exc:
        refused: MetadataError | None = exc
    else:
        refused = None
    if refused is not None:
        assert "migration.jsonl" in str(refused)
    else:
        assert {r.source: r.destination for r in report.records} == {
            "a_f4_3x4.dat": "a_f4_3x4.zarr",
            "sub/b_i2_6.dat": "sub/b_i2_6.zarr",
        }
        assert {r.status for r in report.records} <= {"converted", "skipped"}
    assert snapshot(base, dst) == before
    shutil.rmtree(base)


def test_destination_names_ignore_foreign_previous_names() -> None:
    got = destination_names(["a/x.dat"], ".zarr", {"a/x.dat": "../../victim"})
    assert got == {"a/x.dat": "a/x.zarr"}
    assert destination_names(["a/x.dat"], ".zarr", {"a/x.dat": "a/x.dat.zarr"}) == {"a/x.dat": "a/x.dat.zarr"}


def test_overlapping_outputs_are_refused_per_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "x.zarr").mkdir(parents=True)
    np.arange(4, dtype="<f4").tofile(src / "x_f4.dat")
    (src / "x_f4.dat").rename(src / "x.dat")
    np.arange(4, dtype="<f4").tofile(src / "x.zarr" / "y.dat")
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nglob = "**.dat"\ndtype = "float32"\n')
    dst = tmp_path / "dst"
    report = migrate(src, dst, to="zarr", workers=1, rules=rules)
    by = {r.source: r for r in report.records}
    assert by["x.dat"].status == "failed" and by["x.zarr/y.dat"].status == "failed"
    assert by["x.dat"].error is not None and "x.zarr/y.zarr" in by["x.dat"].error["message"]
    assert by["x.zarr/y.dat"].error is not None and by["x.zarr/y.dat"].error["type"] == "UnsafeInputError"
    assert not (dst / "x.zarr").exists()
    # a rerun keeps refusing: nothing is ever written into another file's output
    report = migrate(src, dst, to="zarr", workers=1, rules=rules)
    assert {r.status for r in report.records} == {"failed"}
    assert not (dst / "x.zarr").exists()


@given(
    names=st.lists(
        st.lists(st.sampled_from(["x", "x.zarr", "y", "x.dat", "y.dat"]), min_size=1, max_size=3).map("/".join),
        min_size=1,
        max_size=6,
        unique=True,
    )
)
def test_overlap_detection_matches_a_brute_force_oracle(names: list[str]) -> None:
    src, dst = Path("/archive/src"), Path("/archive/dst")
    dests = destination_names(names, ".zarr")
    refused = overlapping_outputs(dests, src, dst)

    def inside(a: str, b: str) -> bool:
        return a.startswith(b + "/")

    for n in names:
        clash = any(inside(dests[n], dests[m]) or inside(dests[m], dests[n]) for m in names if m != n)
        assert (n in refused) == clash


def test_a_torn_line_is_cut_before_new_lines_are_appended(tmp_path: Path) -> None:
    from arraystore.migration._manifest import FileRecord, Manifest

    path = tmp_path / "migration.jsonl"
    path.write_bytes(b'{"source": "a.dat", "status": "failed"}\n{"source": "b.dat", "sta')  # killed mid-line
    m = Manifest(path)
    assert set(m.read()) == {"a.dat"}
    m.append(FileRecord(source="c.dat", status="failed"))
    m.append(FileRecord(source="d.dat", status="failed"))
    m.close()
    assert set(Manifest(path).read()) == {"a.dat", "c.dat", "d.dat"}  # no torn line left in the middle


def test_a_suffixless_file_beside_a_recorded_stem_gets_a_destination_of_its_own(tmp_path: Path) -> None:
    """``x.dat`` converted to ``x.npy``, then a suffix-less ``x`` added: ``x`` gets ``x.2.npy`` (its stem and
    whole-name forms are both ``x.npy``; it failed with "exists and does not hold this file's data")."""
    src = tmp_path / "src"
    src.mkdir()
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nglob = "**"\ndtype = "float32"\n')
    np.arange(4, dtype="<f4").tofile(src / "x.dat")
    dst = tmp_path / "dst"
    kw: dict[str, Any] = {"to": "npy", "workers": 1, "rules": rules, "include": ["*"]}
    assert migrate(src, dst, **kw).counts["converted"] == 1
    np.arange(10, 16, dtype="<f4").tofile(src / "x")
    report = migrate(src, dst, **kw)
    by = {r.source: r for r in report.records}
    assert by["x"].status == "converted" and by["x"].destination == "x.2.npy"
    assert by["x.dat"].status == "skipped" and by["x.dat"].destination == "x.npy"
    np.testing.assert_array_equal(np.load(dst / "x.npy"), np.arange(4, dtype="<f4"))
    np.testing.assert_array_equal(np.load(dst / "x.2.npy"), np.arange(10, 16, dtype="<f4"))
    assert migrate(src, dst, **kw).counts["converted"] == 0


_NAMES = st.sampled_from(["x", "x.dat", "x.raw", "x.dat.dat", "x.2", "x.2.dat", "a/x", "a/x.dat", "y.bin"])


@given(
    names=st.lists(_NAMES, min_size=1, max_size=6, unique=True),
    previous=st.dictionaries(
        _NAMES,
        st.one_of(
            st.sampled_from(["x.npy", "x.dat.npy", "x.2.npy", "x.3.npy", "x.dat.2.npy", "a/x.npy", "../v", "y.npy"]),
            _NAMES.map(lambda n: n + ".npy"),
        ),
        max_size=4,
    ),
)
def test_destination_names_are_distinct_own_and_keep_what_they_can(names: list[str], previous: dict[str, str]) -> None:
    """Whatever an earlier run (or a tampered manifest) recorded: no two sources share a destination, each is one
    of the forms the source may have, and a recorded one of those forms is kept unless another source kept it."""
    from arraystore.migration._discover import _is_own_name

    got = destination_names(names, ".npy", previous)
    assert set(got) == set(names)
    assert len(set(got.values())) == len(names)
    for n, d in got.items():
        assert _is_own_name(n, d, ".npy") and d.endswith(".npy") and not d.startswith(("/", ".."))
    for n in names:
        rec = previous.get(n)
        if rec is not None and _is_own_name(n, rec, ".npy") and got[n] != rec:
            assert any(previous.get(m) == rec and got[m] == rec for m in names if m < n)
    assert destination_names(list(reversed(names)), ".npy", previous) == got
