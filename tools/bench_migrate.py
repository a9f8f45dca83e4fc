"""Benchmark ``arraystore.migrate`` against a plain per-file numpy script.

Usage::

    python tools/bench_migrate.py [--small 2000] [--small-size 64KiB] [--large 8] [--large-size 256MiB]
                                  [--to npy] [--workers 1,2] [--repeat N] [--sidecars] [--durable]
                                  [--dir DIR] [--json OUT.json] [--baseline OTHER/src]

Generates an archive of ``--small`` small and ``--large`` large float32 files (dtype in
the file name, as legacy archives often have), then times, each into a fresh folder:

* **baseline**: a plain script, per file ``np.fromfile`` + ``np.save`` (no metadata
  resolution, no manifest, no verification, no atomic publish), one process;
* **guarded loop** (the limit of a migration): the same plain script given the guarantees a
  migration must give, and nothing else: per file, the sidecar JSON read (``shot_float32.json``
  when the archive has one, see ``--sidecars``; else the dtype taken from the file name by one
  regular expression, without looking at the data), ``np.fromfile`` on an open file whose
  ``fstat`` gives the size and modification time the manifest records, its ``xxh3_128``
  checksum, ``np.save`` to a staging name (``x.npy.partial``), the staged file read back
  (``np.lib.format.read_array``) and its checksum compared, ``os.replace`` onto the final name,
  and a manifest line (JSON) appended with one ``write`` to a file kept open. In one process,
  then spread over each ``--workers`` count (a ``fork`` process pool, batches of at most 64
  files, the lines of a batch sent back and appended in one write, as ``migrate`` does). Only
  for ``--to npy``. The gap between the baseline and this row is what the guarantees cost;
  the gap between this row and ``migrate`` is what arraystore adds (evidence-based metadata
  resolution, the checks of every guarantee, the records and reports);
* **migrate**: ``arraystore.migrate(..., to=--to, verify=True)`` with each ``--workers`` count.

Each row gives its files/s as a multiple of the baseline's in the same run (``x baseline``:
on a shared machine, compare ratios, not rates), each ``migrate`` row also as a multiple of the
guarded loop's with the same worker count in the same repetition (``x guarded loop``), the
CPU time of this process per file for the runs that stay in it (the baseline and ``--workers 1``), which other jobs on the
machine barely change, and the CPU time per file of every process of the run (this one,
its worker processes and the forkserver, read with psutil as the last file finishes). The load average before and after is printed with the date.

``--baseline OTHER/src`` compares two versions of arraystore: each ``migrate`` row is run with this
tree's ``src`` and then (``(--baseline)`` rows) with ``OTHER/src`` (say a checkout of ``main``), on the
same archive, each version in a process of its own started once (so the first repetition of each
pays its worker processes' server start, and the later ones do not, alike). On a shared machine,
compare the two rows' ``x baseline`` ratios and CPU per file, repetition by repetition.

``--sidecars`` writes a legacy JSON sidecar beside every file (``shot00001_float32.json``:
dtype and shape), read by the guarded loop and by ``migrate`` (which then resolves each file
from it rather than from its name and a look at its data).

The outputs of the small-file rows are removed after the last row of the last repetition,
not between rows (the small files need the archive's size on disk for each row of each
repetition: 5 x 125 MiB per repetition by default). On ext4 without a journal (this VM's root
file system) a new inode skips those deleted in the last minute or so (``recently_deleted``
in ``fs/ext4/ialloc.c`` reads each one's deletion time): a row run just after thousands of
files were deleted pays for it at every file it creates (``find_inode_bit``,
``recently_deleted`` and the inode-table lookups were about a quarter of a ``perf`` profile
of a migration's conversions), so the row after another row's cleanup, or the first row of
a repetition after the cleanup of the one before, would be slowed by it. Deletions by other
jobs on the machine still weigh on all rows alike.

With ``--repeat N`` the rows run N times, every second time in reverse order (the
migrations first, the baseline last), so that no kind of row always runs first.

Small and large files are timed separately: files/s on the small ones, GB/s on the large
ones (GB = 1e9 bytes). Sources are read from the page cache in every run (they were just
written, and the machine has the memory): the figures compare CPU and write costs, not a
cold disk.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import xxhash

ROOT = Path(__file__).resolve().parent.parent
_SERVE = "--serve-src"
if __name__ == "__main__":  # not in the worker processes' server, which has the sys.path of the process it serves
    sys.path.insert(0, sys.argv[sys.argv.index(_SERVE) + 1] if _SERVE in sys.argv else str(ROOT / "src"))

from arraystore.conversion import parse_size  # noqa: E402
from arraystore.migration import migrate  # noqa: E402


def make_archive(root: Path, count: int, size: int, seed: int, sidecars: bool = False) -> int:
    """``count`` float32 files of ``size`` bytes in 10 folders (and a legacy JSON sidecar each
    with ``sidecars``); returns the total bytes."""
    rng = np.random.default_rng(seed)
    n = size // 4
    block = rng.standard_normal(min(n, 1 << 24)).astype("<f4")
    for i in range(count):
        folder = root / f"run{i % 10:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"shot{i:05d}_float32.dat", "wb") as f:
            left = n
            while left:
                k = min(left, block.size)
                (block[:k] + np.float32(i)).tofile(f)
                left -= k
        if sidecars:
            (folder / f"shot{i:05d}_float32.json").write_text(json.dumps({"dtype": "float32", "shape": [n]}))
    return count * n * 4


def baseline(src: Path, dst: Path) -> tuple[float, float]:
    """The plain script: per file, ``np.fromfile`` + ``np.save``. Returns seconds and CPU seconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    for path in sorted(src.rglob("*.dat")):
        out = dst / path.relative_to(src).with_suffix(".npy")
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, np.fromfile(path, dtype="<f4"))
    return time.perf_counter() - t0, time.process_time() - c0


_NAME_DTYPE = re.compile(r"_(float32|float64|int16|uint16|int32|uint8)\.")


def _guarded_one(path: Path, out: Path, rel: str) -> bytes:
    """One file with a migration's guarantees (see the module docstring); returns its manifest line."""
    try:
        with open(path.with_suffix(".json"), "rb") as f:
            side = json.load(f)
        dtype, shape = np.dtype(side["dtype"]), tuple(side["shape"])
    except FileNotFoundError:
        found = _NAME_DTYPE.search(path.name)
        if found is None:
            raise ValueError(f"{path}: no sidecar and no dtype in the name") from None
        dtype, shape = np.dtype(found.group(1)), None
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        data = np.fromfile(f, dtype=dtype)
    if shape is not None:
        data = data.reshape(shape)
    digest = xxhash.xxh3_128(data.data).hexdigest()
    staged = out.with_name(out.name + ".partial")
    with open(staged, "w+b") as f:
        np.save(f, data)
        f.seek(0)
        back = np.lib.format.read_array(f)
        if xxhash.xxh3_128(back.data).hexdigest() != digest:
            raise OSError(f"{staged}: read back with another checksum")
    os.replace(staged, out)
    return json.dumps({"source": rel, "status": "converted", "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                       "destination": rel[:-4] + ".npy", "checksum": digest}).encode() + b"\n"


def _guarded_batch(task: tuple[str, str, list[str]]) -> bytes:
    """A batch of files in a worker process: their manifest lines, in one piece."""
    src, dst, names = task
    lines = []
    for rel in names:
        out = Path(dst, rel[:-4] + ".npy")
        out.parent.mkdir(parents=True, exist_ok=True)
        lines.append(_guarded_one(Path(src, rel), out, rel))
    return b"".join(lines)


def guarded_loop(src: Path, dst: Path, workers: int) -> tuple[float, float, float]:
    """The limit: the plain script with a migration's guarantees, in this process (``workers=1``)
    or a ``fork`` pool. Seconds, CPU seconds of this process, CPU seconds of every process."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    t0, c0 = time.perf_counter(), time.process_time()
    dst.mkdir(parents=True, exist_ok=True)
    names = sorted(p.relative_to(src).as_posix() for p in src.rglob("*.dat"))
    others = 0.0
    with open(dst / "migration.jsonl", "ab", buffering=0) as manifest:
        if workers <= 1:
            for rel in names:
                out = dst / (rel[:-4] + ".npy")
                out.parent.mkdir(parents=True, exist_ok=True)
                manifest.write(_guarded_one(src / rel, out, rel))
        else:
            per = max(1, min(64, -(-len(names) // (2 * workers))))
            before = _children_cpu()
            with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
                futures = [pool.submit(_guarded_batch, (str(src), str(dst), names[i:i + per]))
                           for i in range(0, len(names), per)]
                for future in as_completed(futures):
                    manifest.write(future.result())
                at_end = _children_cpu()
            others = sum(t - before.get(pid, 0.0) for pid, t in at_end.items())
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return seconds, cpu, cpu + others


def _children_cpu(user: bool = False) -> dict[int, float]:
    """CPU seconds (user + system, or ``user`` only) of every live descendant of this process, by pid."""
    out = {}
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.Error:
            continue
        out[child.pid] = t.user if user else t.user + t.system
    return out


def run_migrate(
    src: Path, dst: Path, to: str, workers: int, durable: bool = False
) -> tuple[float, float, float, dict[str, int], float]:
    """Seconds, CPU seconds of this process, CPU seconds of all processes (worker processes
    and the forkserver included, measured as the last file finishes), the counts, and the user
    CPU seconds of all processes (the system's share, file creation mostly, varies with the
    state of the file system: see the module docstring)."""
    before, before_user = _children_cpu(), _children_cpu(user=True)
    at_end: dict[int, float] = {}
    at_end_user: dict[int, float] = {}

    def progress(event: Any) -> None:
        if event.done_files == event.total_files:
            at_end.update(_children_cpu())
            at_end_user.update(_children_cpu(user=True))

    t0, c0, u0 = time.perf_counter(), time.process_time(), os.times().user
    report = migrate(src, dst, to=to, workers=workers, verify=True, progress=progress, durable=durable)
    seconds, cpu, user = time.perf_counter() - t0, time.process_time() - c0, os.times().user - u0
    if report.exit_code != 0:
        raise SystemExit(f"migration failed: {report.summary()}")
    others = sum(t - before.get(pid, 0.0) for pid, t in at_end.items())
    others_user = sum(t - before_user.get(pid, 0.0) for pid, t in at_end_user.items())
    return seconds, cpu, cpu + others, report.counts, user + others_user


class _Server:
    """A process migrating with the arraystore of one ``src`` folder (``--serve-src``), on request (``--baseline``).

    Both trees of a paired comparison migrate in a process of their own, started once: the first
    migration of each pays its worker processes' server start, the later ones do not, alike.
    """

    def __init__(self, src: str) -> None:
        import subprocess

        env = dict(os.environ, PYTHONPATH=src)
        self.src = src
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), _SERVE, src], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def migrate(
        self, src: Path, dst: Path, to: str, workers: int, durable: bool
    ) -> tuple[float, float, float, dict[str, int], float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([str(src), str(dst), to, workers, durable]) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise SystemExit(f"the migration server of {self.src} stopped")
        seconds, cpu, total, counts, user = json.loads(answer)
        return seconds, cpu, total, counts, user

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def serve() -> int:
    """``--serve-src SRC``: one migration per request line on stdin, its figures as a line on stdout."""
    import arraystore

    print(f"serving arraystore from {Path(arraystore.__file__).parent}", file=sys.stderr)
    for line in sys.stdin:
        src, dst, to, workers, durable = json.loads(line)
        print(json.dumps(run_migrate(Path(src), Path(dst), to, workers, durable)), flush=True)
    return 0


def _row(
    name: str, files: int, nbytes: int, seconds: float, cpu: float | None, base: float, total_cpu: float | None = None,
    limit: float | None = None, user_cpu: float | None = None,
) -> dict[str, Any]:
    every = cpu if total_cpu is None else total_cpu
    return {
        "run": name,
        "files": files,
        "bytes": nbytes,
        "seconds": round(seconds, 3),
        "files_per_s": round(files / seconds, 1),
        "gb_per_s": round(nbytes / seconds / 1e9, 3),
        "vs_baseline": round(base / seconds, 3),
        # files/s against the guarded loop's with the same worker count, in the same repetition
        "vs_limit": None if limit is None else round(limit / seconds, 3),
        # CPU of this process per file: worker processes' time is not in it (workers > 1)
        "cpu_ms_per_file": None if cpu is None else round(cpu / files * 1e3, 3),
        # every process's CPU: this one, the worker processes and the forkserver
        "total_cpu_ms_per_file": None if every is None else round(every / files * 1e3, 3),
        # the user part of it (migrations only)
        "user_cpu_ms_per_file": None if user_cpu is None else round(user_cpu / files * 1e3, 3),
    }


def bench(
    kind: str, src: Path, scratch: Path, files: int, nbytes: int, to: str, workers: list[int], durable: bool = False,
    reverse: bool = False, done: list[Path] | None = None, tag: str = "", servers: dict[str, _Server] | None = None,
) -> list[dict[str, Any]]:
    """One row per run: the baseline, the guarded loops (``--to npy``) and the migrations, in this
    order or (``reverse``) the opposite one, so that no kind of row always runs first. The
    small-file rows' outputs are added to ``done``, for the caller to remove after the last row
    of the last repetition (see the module docstring); ``tag`` tells the repetitions' folders apart."""
    done = [] if done is None else done

    def finished(out: Path) -> None:
        """Remove a row's output now (large files), or leave it in ``done`` (small files)."""
        if kind == "small":
            done.append(out)
        else:
            shutil.rmtree(out)

    def run_baseline() -> tuple[float, float, float, None, None]:
        seconds, cpu = baseline(src, scratch / f"{kind}-baseline{tag}")
        return seconds, cpu, cpu, None, None

    def run_guarded(w: int) -> tuple[float, float, float, None, None]:
        return (*guarded_loop(src, scratch / f"{kind}-guarded-{w}{tag}", w), None, None)

    def run_migration(w: int, which: str = "migrate") -> tuple[float, float, float, dict[str, int], float]:
        out = scratch / f"{kind}-{which}-{w}{tag}"
        if servers:
            return servers[which].migrate(src, out, to, w, durable)
        return run_migrate(src, out, to, w, durable)

    plan: list[tuple[str, int, str, Any]] = [("baseline", 1, f"{kind}-baseline{tag}", run_baseline)]
    if to == "npy":
        plan += [("guarded", w, f"{kind}-guarded-{w}{tag}", lambda w=w: run_guarded(w)) for w in workers]
    for w in workers:  # with --baseline, each migration of this tree beside the same of the other tree
        plan.append(("migrate", w, f"{kind}-migrate-{w}{tag}", lambda w=w: run_migration(w)))
        if servers:
            plan.append(("other", w, f"{kind}-other-{w}{tag}", lambda w=w: run_migration(w, "other")))
    measured: dict[tuple[str, int], tuple[float, float, float, float | None]] = {}
    for what, w, folder, fn in reversed(plan) if reverse else plan:
        os.sync()  # untimed, before every timed row: no write-back of the archive or an earlier row lands in it
        seconds, cpu, total, counts, user = fn()
        if counts is not None:
            assert counts["converted"] == files, counts
        measured[what, w] = (seconds, cpu, total, user)
        finished(scratch / folder)
    base = measured["baseline", 1][0]
    rows = [_row(f"{kind}: baseline np.fromfile+np.save", files, nbytes, base, measured["baseline", 1][1], base)]
    for w in workers if to == "npy" else []:
        seconds, cpu, total, _user = measured["guarded", w]
        rows.append(_row(f"{kind}: guarded loop (limit) workers={w}", files, nbytes, seconds, cpu if w == 1 else None,
                         base, total))
    for w in workers:
        for which, label in (("migrate", ""), ("other", " (--baseline)")) if servers else (("migrate", ""),):
            seconds, cpu, total, user = measured[which, w]
            limit = measured.get(("guarded", w), (None,))[0]
            rows.append(_row(f"{kind}: migrate{label} to={to} workers={w} verify{' durable' if durable else ''}", files,
                             nbytes, seconds, cpu if w == 1 else None, base, total, limit, user))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=2000, help="number of small files (default 2000)")
    ap.add_argument("--small-size", default="64KiB", help="size of each small file (default 64KiB)")
    ap.add_argument("--large", type=int, default=8, help="number of large files (default 8)")
    ap.add_argument("--large-size", default="256MiB", help="size of each large file (default 256MiB)")
    ap.add_argument(
        "--to", default="npy", choices=("npy", "raw", "zarr", "hdf5"), help="target format (default npy)"
    )
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the baseline and the migrations N times, alternated (every second time in reverse order)")
    ap.add_argument("--durable", action="store_true", help="migrate with durable=True (the baseline stays unsynced)")
    ap.add_argument("--sidecars", action="store_true", help="write a legacy JSON sidecar beside every file")
    ap.add_argument("--dir", help="scratch folder (default: a temporary folder, removed at the end)")
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    ap.add_argument("--baseline", metavar="SRC",
                    help="also migrate with the arraystore of another tree's src folder (e.g. a checkout of main), "
                         "each of its migrations right after the same one of this tree, both in a process of "
                         "their own")
    ap.add_argument(_SERVE, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_src:
        return serve()
    workers = [int(w) for w in args.workers.split(",")]
    scratch = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_migrate_"))
    scratch.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    load = os.getloadavg()
    servers: dict[str, _Server] = {}
    if args.baseline:
        servers = {"migrate": _Server(str(ROOT / "src")), "other": _Server(str(Path(args.baseline).resolve()))}
    try:
        for kind, count, size in (
            ("small", args.small, parse_size(args.small_size)),
            ("large", args.large, parse_size(args.large_size)),
        ):
            if count <= 0:
                continue
            src = scratch / f"{kind}-src"
            nbytes = make_archive(src, count, size, seed=len(kind), sidecars=args.sidecars)
            done: list[Path] = []
            for rep in range(args.repeat):  # the baseline and the migrations alternate, each repetition a row each
                rows.extend(dict(r, run=f"{r['run']} #{rep + 1}") if args.repeat > 1 else r
                            for r in bench(kind, src, scratch, count, nbytes, args.to, workers, args.durable,
                                           reverse=rep % 2 == 1, done=done, tag=f"-{rep}", servers=servers))
            for out in done:
                shutil.rmtree(out)
            shutil.rmtree(src)
    finally:
        for server in servers.values():
            server.close()
        if not args.dir:
            shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average before/after: "
        f"{load[0]:.2f} / {os.getloadavg()[0]:.2f}; command: python tools/bench_migrate.py "
        + " ".join(sys.argv[1:] if argv is None else argv)
    )
    print("| run | files | MiB | seconds | files/s | GB/s | x baseline | x guarded loop | CPU ms/file (this process) "
          "| CPU ms/file (all processes) | user CPU ms/file (all processes) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        cpu = "-" if r["cpu_ms_per_file"] is None else f"{r['cpu_ms_per_file']:.2f}"
        total = "-" if r["total_cpu_ms_per_file"] is None else f"{r['total_cpu_ms_per_file']:.2f}"
        limit = "-" if r["vs_limit"] is None else f"{r['vs_limit']:.2f}"
        user = "-" if r["user_cpu_ms_per_file"] is None else f"{r['user_cpu_ms_per_file']:.3f}"
        print(
            f"| {r['run']} | {r['files']} | {r['bytes'] / 2**20:,.0f} | {r['seconds']:.2f} | "
            f"{r['files_per_s']:,.1f} | {r['gb_per_s']:.2f} | {r['vs_baseline']:.2f} | {limit} | {cpu} | {total} | {user} |"
        )
    if servers:
        _paired_summary(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _paired_summary(rows: list[dict[str, Any]]) -> None:
    """Per worker count: the medians over the repetitions of this tree's figures against ``--baseline``'s."""
    import statistics

    pairs: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for r in rows:
        if " (--baseline) " in r["run"]:
            mine = next(m for m in rows if m["run"] == r["run"].replace(" (--baseline)", ""))
            key = r["run"].split(" (--baseline) ", 1)[1].split(" #", 1)[0]
            pairs.setdefault(key, []).append((mine, r))
    print("\npaired (medians over the repetitions; this tree / --baseline):")
    for key, found in pairs.items():
        def med(field: str, which: int, found: list[tuple[dict[str, Any], dict[str, Any]]] = found) -> float:
            return float(statistics.median(p[which][field] for p in found if p[which][field] is not None))

        def ratio(field: str, found: list[tuple[dict[str, Any], dict[str, Any]]] = found) -> float:
            return float(statistics.median(p[0][field] / p[1][field] for p in found if p[1][field]))

        print(f"  {key}: x baseline {med('vs_baseline', 0):.2f} vs {med('vs_baseline', 1):.2f}; CPU ms/file (all) "
              f"{med('total_cpu_ms_per_file', 0):.3f} vs {med('total_cpu_ms_per_file', 1):.3f} (ratio "
              f"{ratio('total_cpu_ms_per_file'):.3f}); user CPU ms/file {med('user_cpu_ms_per_file', 0):.3f} vs "
              f"{med('user_cpu_ms_per_file', 1):.3f} (ratio {ratio('user_cpu_ms_per_file'):.3f}); "
              f"{len(found)} repetitions")


if __name__ == "__main__":
    sys.exit(main())
