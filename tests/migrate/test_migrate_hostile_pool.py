"""A hostile legacy archive migrated in this process and by worker processes: the same outputs, the same manifest.

The archive (the example archive plus what an old disk holds: sidecars that lie about the dtype or the shape,
truncated files, names with spaces, newlines, quotes, glob characters, undecodable bytes, symbolic links inside,
outside, dangling and in loops, a FIFO and a folder named like data, duplicated contents and colliding stems) is
migrated three ways: ``workers=1``; ``workers=2`` with its files in one batch (run in this process, no pool); and
``workers=2`` with the pool forced. Every record, manifest line, suggested rule and output byte must be the same,
and no file whose evidence contradicts itself is converted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arraystore.migration import migrate
from arraystore.migration import run as migration_run
from arraystore.migration._manifest import Manifest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "legacy"
RULES = REPO / "examples" / "rules.toml"

#: Records' fields that differ between runs by nature (times), and the destination folder itself.
_VOLATILE = {"seconds", "finished"}


def _hostile(root: Path) -> set[str]:
    """The example archive plus hostile files under ``root/hostile``; the names that must not be converted."""
    shutil.copytree(EXAMPLE, root)
    h = root / "hostile"
    h.mkdir()
    a = np.arange(16, dtype="<f4")
    # Sidecars that lie: about the dtype (the file holds 64 bytes, float64 x 16 says 128), about the shape.
    (h / "lie_dtype.dat").write_bytes(a.tobytes())
    (h / "lie_dtype_meta.json").write_text(json.dumps({"dtype": "float64", "shape": [16]}))
    (h / "lie_shape.dat").write_bytes(a.tobytes())
    (h / "lie_shape_meta.json").write_text(json.dumps({"dtype": "float32", "shape": [4, 5]}))
    (h / "nan_shape.dat").write_bytes(a.tobytes())
    (h / "nan_shape_meta.json").write_text('{"dtype": "float32", "shape": [NaN]}')
    (h / "neg_shape.dat").write_bytes(a.tobytes())
    (h / "neg_shape_meta.json").write_text(json.dumps({"dtype": "float32", "shape": [-16]}))
    (h / "bad_json.dat").write_bytes(a.tobytes())
    (h / "bad_json_meta.json").write_text('{"dtype": "float32", "shape": [16')
    # A name that says one thing and a sidecar another.
    (h / "frames_int16_4x4.dat").write_bytes(a.tobytes())
    (h / "frames_int16_4x4_meta.json").write_text(json.dumps({"dtype": "float32", "shape": [16]}))
    # Truncated: the name says 10x10 float32 (400 bytes), the file has 399.
    (h / "trunc_10x10_float32.dat").write_bytes(np.zeros(100, "<f4").tobytes()[:-1])
    (h / "empty.dat").write_bytes(b"")
    # Odd names, all saying 4x4 float32.
    data = np.arange(16, dtype="<f4").tobytes()
    odd = ["spa ce_4x4_float32.dat", "ünïcödé_4x4_float32.dat", "new\nline_4x4_float32.dat", "-dash_4x4_float32.dat",
           "semi;colon'quote\"_4x4_float32.dat", "glob[*?]_4x4_float32.dat", "back\\slash_4x4_float32.dat",
           "tab\t_4x4_float32.dat", ("L" * 200) + "_4x4_float32.dat"]
    for name in odd:
        (h / name).write_bytes(data)
    os.close(os.open(os.fsencode(h) + b"/undecodable\xff\xfe_4x4_float32.dat", os.O_WRONLY | os.O_CREAT, 0o644))
    with open(os.fsencode(h) + b"/undecodable\xff\xfe_4x4_float32.dat", "wb") as f:
        f.write(data)
    # Duplicates: the same bytes twice; stems that collide at the destination.
    (h / "dup_4x4_float32.dat").write_bytes(data)
    (h / "dup_4x4_float32.bin").write_bytes(data)
    (h / "copy_4x4_float32.dat").write_bytes(data)
    # Links: inside, outside, dangling, looping; a folder link back up.
    outside = root.parent / "outside_4x4_float32.dat"
    outside.write_bytes(data)
    (h / "link_in_4x4_float32.dat").symlink_to(h / "copy_4x4_float32.dat")
    (h / "link_out_4x4_float32.dat").symlink_to(outside)
    (h / "dangling_4x4_float32.dat").symlink_to(h / "nowhere.dat")
    (h / "loop_4x4_float32.dat").symlink_to(h / "loop_4x4_float32.dat")
    (h / "up").symlink_to(root, target_is_directory=True)
    # Not regular files, named like data.
    os.mkfifo(h / "fifo_4x4_float32.dat")
    (h / "folder_4x4_float32.dat").mkdir()
    return {"lie_dtype.dat", "lie_shape.dat", "nan_shape.dat", "neg_shape.dat", "bad_json.dat",
            "frames_int16_4x4.dat", "trunc_10x10_float32.dat"}


def _tree(root: Path) -> dict[str, bytes]:
    """Every output file's bytes by relative name (the manifest and report compared apart; in the summary, the
    destination's own name as DST and no time)."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if rel not in ("migration.jsonl", "migration-report.json") and not rel.endswith(".lock"):
                out[rel] = re.sub(rb" in [0-9.]+ s\n", b"\n", p.read_bytes().replace(os.fsencode(root), b"DST"))
    return out


def _records(report: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.to_dict().items() if k not in _VOLATILE} for r in report.records]


def _manifest(dst: Path) -> dict[str, dict[str, Any]]:
    return {src: {k: v for k, v in rec.to_dict().items() if k not in _VOLATILE}
            for src, rec in Manifest(dst / "migration.jsonl").read().items()}


@pytest.mark.parametrize("to", ["npy", "zarr", "virtual"])
def test_a_hostile_archive_migrates_the_same_in_process_and_in_workers(
        tmp_path: Path, to: str, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "archive" / "legacy"
    src.parent.mkdir()
    liars = _hostile(src)
    options: dict[str, Any] = {"to": "npy", "virtual": True} if to == "virtual" else {"to": to}
    one = migrate(src, tmp_path / "one", rules=RULES, workers=1, **options)
    assert len(one.records) <= migration_run.IN_PROCESS_FILES  # one batch: workers=2 runs it here
    two = migrate(src, tmp_path / "two", rules=RULES, workers=2, **options)
    monkeypatch.setattr(migration_run, "IN_PROCESS_FILES", 0)  # the pool, even for one batch
    pool = migrate(src, tmp_path / "pool", rules=RULES, workers=2, **options)
    assert _records(two) == _records(one) == _records(pool)
    assert _manifest(tmp_path / "two") == _manifest(tmp_path / "one") == _manifest(tmp_path / "pool")
    assert _tree(tmp_path / "two") == _tree(tmp_path / "one") == _tree(tmp_path / "pool")
    by_name = {Path(r.source).name: r for r in one.records}
    for name in liars:
        assert by_name[name].status != "converted", (name, by_name[name].to_dict())
    assert {r.status for r in one.records} >= {"converted", "undetermined", "failed"}
    # Nothing outside the archive was read in; every source named in a record is inside it.
    for r in one.records:
        assert not Path(r.source).is_absolute() and ".." not in Path(r.source).parts, r.source
