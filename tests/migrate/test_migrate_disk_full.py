"""A full disk stops a migration with ``StorageFullError``; the manifest of what was done stays consistent,
and a rerun after space is freed finishes the job. Run on a real, small tmpfs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.errors import StorageFullError
from arraystore.migration import migrate
from arraystore.migration._manifest import Manifest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the CI container runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _archive(root: Path, n: int = 24, size: int = 64 * 1024) -> dict[str, np.ndarray]:
    root.mkdir()
    out = {}
    for i in range(n):
        a = (np.arange(size // 4, dtype="<f4") + i).astype("<f4")
        a.tofile(root / f"f{i:02d}_f4.dat")
        out[f"f{i:02d}_f4.dat"] = a
    return out


def _check_consistent(dst: Path, arrays: dict[str, np.ndarray]) -> dict[str, str]:
    records = Manifest(dst / "migration.jsonl").read()  # parses: no torn or partial line in the middle
    for name, rec in records.items():
        if rec.status in ("converted", "skipped"):
            with arraystore.open(dst / rec.destination, backend="npy") as s:  # type: ignore[operator]
                np.testing.assert_array_equal(s[...], arrays[name])
    return {n: r.status for n, r in records.items()}


@pytest.mark.parametrize("workers", [1, 2])
def test_full_disk_stops_cleanly_and_a_rerun_finishes(tmp_path: Path, small_disk: Path, workers: int) -> None:
    arrays = _archive(tmp_path / "src")  # 1.5 MiB of sources for a 1 MiB destination
    dst = small_disk / "out"
    with pytest.raises(StorageFullError):
        migrate(tmp_path / "src", dst, to="npy", workers=workers, verify=True)
    statuses = _check_consistent(dst, arrays)
    assert all(s in ("converted", "failed") for s in statuses.values())
    # Progress before the disk filled, and no published output that is not whole. (Whether the
    # manifest could record it depends on who wins the last free blocks: with two workers, their
    # files can fill the disk before this process appends the first batch's lines.)
    published = sorted(dst.rglob("*.npy"))
    assert published
    for out in published:
        with arraystore.open(out) as s:
            np.testing.assert_array_equal(s[...], arrays[out.stem + ".dat"])
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    report = migrate(tmp_path / "src", dst, to="npy", workers=workers)
    assert report.exit_code == 0
    assert sorted(r.source for r in report.records) == sorted(arrays)
    assert set(_check_consistent(dst, arrays).values()) <= {"converted", "skipped"}
    assert not list(dst.rglob("*.partial*"))


def test_manifest_on_a_full_disk_keeps_whole_lines(tmp_path: Path, small_disk: Path) -> None:
    from arraystore.migration._manifest import FileRecord

    m = Manifest(small_disk / "migration.jsonl")
    (small_disk / "filler").write_bytes(b"\0" * (1024 * 1024 - 8 * 1024))
    written = 0

    def fill() -> None:
        nonlocal written
        for i in range(10_000):
            m.append(FileRecord(source=f"x{i}.dat", status="failed", note="n" * 200))
            written += 1

    with pytest.raises(StorageFullError):
        fill()
    m.close()
    assert len(Manifest(small_disk / "migration.jsonl").read()) == written
    assert (small_disk / "migration.jsonl").read_bytes().endswith(b"\n")


def test_cli_reports_a_full_disk_in_one_line(tmp_path: Path, small_disk: Path) -> None:
    _archive(tmp_path / "src")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, "-m", "arraystore", "migrate", str(tmp_path / "src"), str(small_disk / "out"), "--to", "npy",
         "--workers", "1"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert "StorageFullError" in proc.stderr and "Traceback" not in proc.stderr
