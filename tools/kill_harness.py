"""Kill harness: run writers, conversions and migrations in subprocesses and SIGKILL them mid-flight.

The instants are progress points, chosen by a seeded RNG: the child reports its progress
(rows appended, bytes converted, files migrated) in a small file after each step; the
parent polls that file and sends SIGKILL as soon as the chosen point is reached. After
each kill it checks the invariants (see ``docs/reliability.md``):

* the source is byte-identical;
* no destination opens as complete unless its content equals the expected content;
* for the writer, every row before the last checkpoint is intact;
* a rerun (``resume=True``) completes and verifies.

Used by ``tests/reliability/test_kill.py`` (fast profile) and from the command line for
the full run::

    python tools/kill_harness.py run --kills 200 --seed 1 --out kill-results.json

The child entry points (``child-writer``, ``child-convert``, ``child-migrate``) are internal.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"

#: Writer flush strategies compared in docs/reliability.md: name -> ArrayWriter options.
STRATEGIES: dict[str, dict[str, Any]] = {
    "every-write": {"flush_every": 1},
    "every-N": {"flush_every": 16},
    "every-T": {"flush_every_seconds": 0.02},
    "at-close": {},
}

WRITER_SHAPE = (400, 256)  # float64 rows of 2 KiB
CONVERT_SHAPE = (256, 1024)  # float32, 1 MiB
CONVERT_BUDGET = "64KiB"


def row_value(i: int, cols: int) -> np.ndarray[Any, Any]:
    """Row ``i`` of the writer's array: deterministic and different for every row."""
    return np.arange(cols, dtype="f8") + i * 1000.0 + 0.5


def expected_writer_array(shape: tuple[int, int] = WRITER_SHAPE) -> np.ndarray[Any, Any]:
    return np.stack([row_value(i, shape[1]) for i in range(shape[0])])


# -- progress files ----------------------------------------------------------------------


class Progress:
    """A one-number progress file the child rewrites in place and the parent polls."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def set(self, value: int) -> None:
        os.pwrite(self.fd, f"{value:020d}".encode(), 0)


def read_progress(path: str | os.PathLike[str]) -> int:
    try:
        with open(path, "rb") as f:
            raw = f.read(20)
    except FileNotFoundError:
        return -1
    return int(raw) if len(raw) == 20 and raw.isdigit() else -1


# -- children ----------------------------------------------------------------------------


def child_writer(path: str, strategy: str, durable: bool, progress: str) -> None:
    from arraystore.writer import ArrayWriter

    p = Progress(progress)
    n, cols = WRITER_SHAPE
    w = ArrayWriter.create(path, WRITER_SHAPE, "f8", durable=durable, resume=True, **STRATEGIES[strategy])
    with w:
        p.set(w.rows)
        for i in range(w.rows, n):
            w.append(row_value(i, cols)[None], user={"next": i + 1})
            p.set(w.rows)


def child_convert(src: str, dst: str, progress: str) -> None:
    import arraystore.conversion as conv

    p = Progress(progress)
    p.set(0)
    conv.convert(src, dst, max_memory=CONVERT_BUDGET, resume=True, progress=lambda done, total: p.set(done))


# -- parent side -------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_child(args: list[str], progress: Path, kill_at: int | None, timeout: float = 60.0) -> tuple[int, int]:
    """Run a child; SIGKILL it once its progress reaches ``kill_at``. Returns (returncode, progress at end)."""
    progress.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, __file__, *args], env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            if kill_at is not None and read_progress(progress) >= kill_at:
                proc.send_signal(signal.SIGKILL)
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"child {args[:1]} did not finish in {timeout} s")
            time.sleep(0.0005)
        _, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"child {args} failed with {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    return proc.returncode, read_progress(progress)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted([path] if path.is_file() else path.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@dataclass
class KillOutcome:
    """What one kill found."""

    job: str
    kill_at: int
    killed: bool
    progress: int
    checkpoint_rows: int | None = None
    lost: int = 0
    opened_complete: bool = False
    problems: list[str] = field(default_factory=list)


def check_published(path: str, expected: np.ndarray[Any, Any], problems: list[str]) -> bool:
    """True when ``path`` opens (as complete); then its content must be ``expected``."""
    import arraystore
    from arraystore.errors import ArrayStoreError

    try:
        with arraystore.open(path) as s:
            complete = s.complete
            data = s[...]
    except ArrayStoreError:
        return False
    except Exception as exc:  # an untyped error is a finding of its own
        problems.append(f"open({path}) raised untyped {type(exc).__name__}: {exc}")
        return False
    if not complete:
        problems.append(f"{path} opened without allow_incomplete but says complete=False")
    if data.shape != expected.shape or not np.array_equal(data, expected):
        problems.append(f"{path} opens as complete but its content differs from the expected array")
    return True


def _next_point(rng: random.Random, last: int, total: int, step: int) -> int:
    """A progress point after ``last``: up to a quarter of the job ahead, at least one step."""
    span = max(step, (total - last) // 4)
    return last + rng.randint(step, span)


def _clear(*paths: Path) -> None:
    import shutil

    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def writer_job(work: Path, strategy: str, durable: bool, rng: random.Random, kills: int,
               suffix: str = ".dat") -> list[KillOutcome]:
    """A writer killed ``kills`` times at seeded progress points; each run resumes where the checkpoint says.

    When a run gets to the end (a kill landing after the last row), the published array is
    checked, removed, and a new cycle starts from row 0.
    """
    from arraystore.writer import ArrayWriter, checkpoint_path

    path = work / f"w-{strategy}{suffix}"
    progress = work / f"w-{strategy}.progress"
    expected = expected_writer_array()
    n = WRITER_SHAPE[0]
    outcomes: list[KillOutcome] = []
    args = ["child-writer", str(path), strategy, "1" if durable else "0", str(progress)]
    job = f"writer/{strategy}{'/durable' if durable else ''}{suffix}"
    while len(outcomes) < kills:
        before = ArrayWriter.resume(path)
        start = before.rows if before and not before.complete else 0
        point = _next_point(rng, start, n, 1)
        rc, done = run_child(args, progress, point)
        out = KillOutcome(job, point, rc == -signal.SIGKILL, done)
        out.opened_complete = check_published(str(path), expected, out.problems)
        cp = ArrayWriter.resume(path)
        out.checkpoint_rows = cp.rows if cp else 0
        if cp is not None and not cp.complete and not out.opened_complete:
            # Every row before the checkpoint must be intact in the half-built array.
            w = ArrayWriter.create(path, WRITER_SHAPE, "f8", resume=True)
            got = w.store[: cp.rows]
            if not np.array_equal(got, expected[: cp.rows]):
                bad = int(np.flatnonzero(~(got == expected[: cp.rows]).all(axis=1))[0])
                out.problems.append(f"row {bad} before the checkpoint ({cp.rows}) is not intact")
            if w.rows != cp.rows or w.user.get("next", 0) != cp.rows:
                out.problems.append(f"resume gave rows={w.rows} user={w.user}, checkpoint says {cp.rows}")
            w.abandon()
        out.lost = 0 if out.opened_complete else max(done - (out.checkpoint_rows or 0), 0)
        outcomes.append(out)
        if out.opened_complete or rc == 0:
            _clear(path, checkpoint_path(path))  # finished: start a new cycle
    run_child(args, progress, None)  # the last rerun completes
    if not check_published(str(path), expected, outcomes[-1].problems):
        outcomes[-1].problems.append(f"{path}: the rerun did not publish a complete array")
    return outcomes


def make_convert_source(path: Path) -> np.ndarray[Any, Any]:
    import arraystore

    data = np.arange(np.prod(CONVERT_SHAPE), dtype="<f4").reshape(CONVERT_SHAPE)
    with arraystore.create(path, data.shape, data.dtype) as s:
        s[...] = data
    return data


def tree_digest(folder: Path, pattern: str = "*") -> dict[str, str]:
    return {str(p.relative_to(folder)): file_digest(p) for p in sorted(folder.rglob(pattern)) if p.is_file()}


def convert_job(work: Path, dst_name: str, rng: random.Random, kills: int) -> list[KillOutcome]:
    """A conversion killed ``kills`` times at seeded byte counts; each rerun resumes from the journal."""
    import arraystore.conversion as conv

    src = work / "source.dat"
    if not src.exists():
        make_convert_source(src)
    expected = np.fromfile(src, "<f4").reshape(CONVERT_SHAPE)
    before = {p.name: file_digest(p) for p in work.glob("source.dat*")}
    dst = work / dst_name
    progress = work / f"c-{dst_name}.progress"
    total = expected.nbytes
    outcomes: list[KillOutcome] = []
    args = ["child-convert", str(src), str(dst), str(progress)]
    last = 0
    while len(outcomes) < kills:
        point = _next_point(rng, last, total, 4096)
        rc, done = run_child(args, progress, point)
        last = max(done, 0)
        out = KillOutcome(f"convert/{dst_name.split('.', 1)[1]}", point, rc == -signal.SIGKILL, done)
        out.opened_complete = check_published(str(dst), expected, out.problems)
        after = {p.name: file_digest(p) for p in work.glob("source.dat*")}
        if after != before:
            out.problems.append("the source changed")
        outcomes.append(out)
        if out.opened_complete or rc == 0 or last >= total:
            conv.convert(src, work / f"check-{dst_name}", max_memory=CONVERT_BUDGET, verify=True, overwrite=True)
            _clear(dst)
            last = 0
    report = conv.convert(src, dst, max_memory=CONVERT_BUDGET, resume=True, verify=True)
    if not report.verified or not check_published(str(dst), expected, outcomes[-1].problems):
        outcomes[-1].problems.append(f"{dst}: the rerun did not publish a verified array")
    return outcomes


MIGRATE_FILES = 10


def make_archive(folder: Path) -> dict[str, np.ndarray[Any, Any]]:
    """A small legacy archive: raw files described by ``<name>_meta.json`` legacy sidecars."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i in range(MIGRATE_FILES):
        data = (np.arange(64 * 512, dtype="<f4") * (i + 1)).reshape(64, 512)
        (folder / f"scan{i:02d}.dat").write_bytes(data.tobytes())
        (folder / f"scan{i:02d}_meta.json").write_text(json.dumps({"dtype": "<f4", "shape": [64, 512]}))
        out[f"scan{i:02d}"] = data
    return out


def child_migrate(src: str, dst: str, to: str, progress: str) -> None:
    from arraystore.migration import migrate

    p = Progress(progress)
    p.set(0)
    migrate(src, dst, to=to, workers=1, max_memory="64KiB", progress=lambda m: p.set(m.done_files))


def migrate_job(work: Path, to: str, rng: random.Random, kills: int) -> list[KillOutcome]:
    """A migration killed ``kills`` times after seeded numbers of finished files; reruns pick up where it was."""
    from arraystore.migration import migrate

    src, dst = work / "archive", work / f"out-{to}"
    expected = make_archive(src) if not src.exists() else None
    assert expected is not None
    before = tree_digest(src)
    progress = work / f"m-{to}.progress"
    suffix = {"zarr": ".zarr", "npy": ".npy", "hdf5": ".h5", "raw": ".dat"}[to]
    key = "::/data" if to == "hdf5" else ""
    args = ["child-migrate", str(src), str(dst), to, str(progress)]
    outcomes: list[KillOutcome] = []
    while len(outcomes) < kills:
        done_before = sum((dst / f"{name}{suffix}").exists() for name in expected)
        point = min(_next_point(rng, 0, MIGRATE_FILES - done_before, 1), MIGRATE_FILES - 1)
        rc, done = run_child(args, progress, point)
        out = KillOutcome(f"migrate/{to}", point, rc == -signal.SIGKILL, done)
        for name, data in expected.items():
            out.opened_complete |= check_published(f"{dst / name}{suffix}{key}", data, out.problems)
        if tree_digest(src) != before:
            out.problems.append("the archive changed")
        outcomes.append(out)
        if rc == 0 or all((dst / f"{name}{suffix}").exists() for name in expected):
            _clear(dst)
    report = migrate(src, dst, to=to, workers=1, max_memory="64KiB")
    counts = report.counts
    if counts.get("failed") or counts.get("converted", 0) + counts.get("skipped", 0) != MIGRATE_FILES:
        outcomes[-1].problems.append(f"the rerun did not finish the migration: {counts}")
    for name, data in expected.items():
        if not check_published(f"{dst / name}{suffix}{key}", data, outcomes[-1].problems):
            outcomes[-1].problems.append(f"{name}: not migrated by the rerun")
    return outcomes


JOBS: list[tuple[str, Any]] = [
    ("writer", ("every-write", False, ".dat")),
    ("writer", ("every-N", True, ".dat")),
    ("writer", ("every-T", False, ".dat")),
    ("writer", ("at-close", False, ".dat")),
    ("writer", ("every-N", False, ".npy")),
    ("writer", ("every-N", False, ".h5")),
    ("writer", ("every-N", False, ".zarr")),
    ("convert", "dst.npy"),
    ("convert", "dst.h5"),
    ("convert", "dst.zarr"),
    ("convert", "dst.dat"),
    ("migrate", "zarr"),
    ("migrate", "hdf5"),
]


def run_all(work: Path, kills: int, seed: int = 1) -> list[KillOutcome]:
    """Spread ``kills`` over the writer strategies, the conversion destinations and migrations."""
    rng = random.Random(seed)
    per_job = max(1, kills // len(JOBS))
    extra = kills - per_job * len(JOBS)
    outcomes: list[KillOutcome] = []
    for i, (kind, spec) in enumerate(JOBS):
        k = per_job + (1 if i < extra else 0)
        sub = work / f"job{i}"
        sub.mkdir(parents=True, exist_ok=True)
        if kind == "writer":
            strategy, durable, suffix = spec
            outcomes += writer_job(sub, strategy, durable, rng, k, suffix)
        elif kind == "convert":
            outcomes += convert_job(sub, spec, rng, k)
        else:
            outcomes += migrate_job(sub, spec, rng, k)
    return outcomes


def summarize(outcomes: list[KillOutcome]) -> dict[str, Any]:
    """Counts per job: kills, kills that landed mid-run, problems, maximum rows lost after the checkpoint."""
    jobs: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        j = jobs.setdefault(o.job, {"kills": 0, "landed": 0, "published_early": 0, "problems": 0, "max_lost": 0})
        j["kills"] += 1
        j["landed"] += int(o.killed)
        j["published_early"] += int(o.opened_complete)
        j["problems"] += len(o.problems)
        j["max_lost"] = max(j["max_lost"], o.lost)
    return {"kills": len(outcomes), "problems": sum(len(o.problems) for o in outcomes), "jobs": jobs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("child-writer")
    w.add_argument("path")
    w.add_argument("strategy", choices=sorted(STRATEGIES))
    w.add_argument("durable")
    w.add_argument("progress")
    m = sub.add_parser("child-migrate")
    m.add_argument("src")
    m.add_argument("dst")
    m.add_argument("to")
    m.add_argument("progress")
    c = sub.add_parser("child-convert")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("progress")
    r = sub.add_parser("run", help="the full kill run")
    r.add_argument("--kills", type=int, default=int(os.environ.get("ARRAYSTORE_KILLS", "200")))
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    r.add_argument("--out", default=None, help="write every outcome and the summary as JSON here")
    a = ap.parse_args(argv)
    if a.cmd == "child-writer":
        child_writer(a.path, a.strategy, a.durable == "1", a.progress)
        return 0
    if a.cmd == "child-migrate":
        child_migrate(a.src, a.dst, a.to, a.progress)
        return 0
    if a.cmd == "child-convert":
        child_convert(a.src, a.dst, a.progress)
        return 0
    import tempfile

    sys.path.insert(0, str(SRC))
    with tempfile.TemporaryDirectory(dir=a.work) as tmp:
        t0 = time.perf_counter()
        outcomes = run_all(Path(tmp), a.kills, a.seed)
        summary = summarize(outcomes)
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        summary["command"] = f"python tools/kill_harness.py run --kills {a.kills} --seed {a.seed}"
    print(json.dumps(summary, indent=1))
    if a.out:
        Path(a.out).write_text(json.dumps({"summary": summary, "outcomes": [asdict(o) for o in outcomes]}, indent=1))
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
