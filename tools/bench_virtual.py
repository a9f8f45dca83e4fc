"""Virtual migration vs copying migration, and reading a virtual array vs the original.

Usage::

    python tools/bench_virtual.py [--files 1000] [--big-mib 512] [--repeat 3]
    python tools/bench_virtual.py --pool-sweep 1000,2000,4000,8000 [--repeat 3]
    python tools/bench_virtual.py --profile OUT.txt [--files 10000] [--workers 1]

Four measurements (median of ``--repeat`` runs, in one process, side by side):

1. ``--files`` small raw files (4 KiB each, arraystore sidecar): copying ``migrate(to="zarr")``
   vs ``migrate(virtual=True)`` (kerchunk, with checksums) vs ``--no-checksum`` (metadata only), with
   migrate's default workers (resolved in worker processes from ``run.VIRTUAL_POOL_FILES`` files on)
   and with ``workers=1`` (in this process).
2. A ``--big-mib`` archive (8 files): cold sequential read of every byte (page cache evicted
   with ``posix_fadvise(DONTNEED)``) vs a cold virtual migration (one checksum read per file).
3. Reading one 64 MiB virtual array whole through zarr-python (kerchunk + fsspec), xarray, and
   icechunk vs ``arraystore.open(original)[...]``, warm (page cache) and cold (evicted before each read).
   The readers run as their users write them (fsspec, icechunk, zarr, xarray: no arraystore code).
4. The readers' own limit, in the same loop: zarr-python and xarray reading a *regular* local
   uncompressed Zarr v3 group written by zarr-python (no arraystore) holding the same data with the
   same chunk shape, dtype and dimension names, and zarr-python reading regular copies with chunks of
   1, 16 and 64 MiB. ``virtual / regular`` is what the virtual store costs beyond the reader itself;
   the best ``regular / arraystore`` is the most any layout of references can reach.

The operations of each part are alternated within every repetition (one of each, then again), so
load affects them alike. Each row gives the median wall time and the median CPU time (this process
and every process it started: the copying migration's workers), also per GiB read or per file. The files are written under a temporary
folder and removed at the end.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil

import arraystore
from arraystore._fsutil import evict_from_page_cache
from arraystore.migration import migrate


def evict(folder: Path) -> None:
    evict_from_page_cache(folder)


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of every process it started, finished ones included.

    Worker processes start from a forkserver: when they finish, their time goes to the forkserver's
    children times, not to this process's ``RUSAGE_CHILDREN``.
    """
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    for proc in psutil.Process().children(recursive=True):
        try:
            t = proc.cpu_times()
        except psutil.Error:  # ended meanwhile
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


Op = tuple[str, Callable[[], object]]


def alternated(ops: list[Op], repeat: int, before: Callable[[], object] | None = None) -> dict[str, tuple[float, float]]:
    """``{name: (median wall s, median CPU s)}``, the operations taking turns in every repetition."""
    wall: dict[str, list[float]] = {name: [] for name, _ in ops}
    cpu: dict[str, list[float]] = {name: [] for name, _ in ops}
    for _ in range(repeat):
        for name, fn in ops:
            if before is not None:
                before()
            c0, t0 = cpu_seconds(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(cpu_seconds() - c0)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name, _ in ops}


def small_archive(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"d{i // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        with arraystore.create(folder / f"f{i:05d}.dat", shape=(32, 32), dtype="<f4", backend="raw") as st:
            st[...] = rng.random((32, 32), dtype=np.float32)


def big_archive(root: Path, mib: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    per = mib // 8
    block = np.random.default_rng(1).random((1 << 20) // 8)  # 1 MiB of float64
    for i in range(8):
        with arraystore.create(root / f"b{i}.dat", shape=(per, 1 << 17), dtype="<f8", backend="raw") as st:
            for r in range(per):
                st[r] = block


def cold_read(root: Path) -> None:
    buf = bytearray(8 << 20)
    for p in sorted(root.glob("*.dat")):
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def plain_readers(kerchunk: Path, ice: Path, archive: Path, regular: Path, name: str) -> list[Op]:
    """The reads as their users write them: fsspec, icechunk, zarr-python, xarray; no arraystore code."""
    import fsspec
    import icechunk
    import xarray as xr
    import zarr

    def kerchunk_store() -> zarr.storage.FsspecStore:
        fs = fsspec.filesystem("reference", fo=str(kerchunk), remote_protocol="file", asynchronous=True,
                               skip_instance_cache=True)
        return zarr.storage.FsspecStore(fs, read_only=True)

    def ice_store() -> object:
        repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(ice)),
                                        authorize_virtual_chunk_access={archive.resolve().as_uri() + "/": None})
        return repo.readonly_session("main").store

    def whole(group: Any) -> object:
        return group[name][...]

    def quiet(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zarr-python's notes on consolidated metadata
                return fn()
        return run

    return [
        ("zarr-python over kerchunk refs [...]", quiet(lambda: whole(zarr.open_group(kerchunk_store(), mode="r")))),
        ("zarr-python over icechunk [...]", quiet(lambda: whole(zarr.open_group(ice_store(), mode="r")))),
        ("xarray.open_zarr over kerchunk refs .values",
         quiet(lambda: xr.open_zarr(kerchunk_store(), zarr_format=3)[name].values)),
        ("zarr-python over regular Zarr [...]", quiet(lambda: whole(zarr.open_group(str(regular), mode="r")))),
        ("xarray.open_zarr over regular Zarr .values",
         quiet(lambda: xr.open_zarr(str(regular), zarr_format=3)[name].values)),
    ]


def regular_copy(kerchunk: Path, name: str, data: np.ndarray, out: Path, rows: int | None = None) -> None:
    """A regular uncompressed Zarr v3 group written by zarr-python, laid out as the virtual array is (or with
    chunks of ``rows`` whole rows)."""
    import zarr

    meta = json.loads(json.loads(kerchunk.read_text())["refs"][f"{name}/zarr.json"])
    chunks = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    group = zarr.open_group(str(out), mode="w", zarr_format=3)
    arr = group.create_array(name, shape=data.shape, dtype=data.dtype,
                             chunks=chunks if rows is None else (rows, *data.shape[1:]), compressors=None,
                             fill_value=0, dimension_names=meta["dimension_names"])
    arr[...] = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr-python's note that consolidated metadata is not in the v3 spec
        zarr.consolidate_metadata(str(out))  # as the kerchunk store is


#: Chunk rows (1 MiB each) of the extra regular copies read by zarr-python: the reader's limit by chunk size.
SWEEP_ROWS = (1, 16, 64)


def zarr_whole(path: Path, name: str) -> object:
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr: Any = zarr.open_group(str(path), mode="r")[name]
        return arr[...]


_ONE_RUN = """
import sys, time
sys.path.insert(0, sys.argv[4])
from bench_virtual import cpu_seconds
from arraystore.migration import migrate
if __name__ == "__main__":
    t0 = time.perf_counter()
    migrate(sys.argv[1], sys.argv[2], virtual=True, checksum=False, workers=int(sys.argv[3]))
    print(time.perf_counter() - t0, cpu_seconds())
"""


def _fresh_process(src: Path, out: Path, workers: int) -> tuple[float, float]:
    """(wall s of migrate() alone, CPU s of the process and its workers, imports included) of a run in a new process."""
    import subprocess

    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run([sys.executable, "-c", _ONE_RUN, str(src), str(out), str(workers), str(Path(__file__).parent)],
                          check=True, capture_output=True, text=True)
    wall, cpu = done.stdout.split()[-2:]
    return float(wall), float(cpu)


def pool_sweep(counts: list[int], repeat: int) -> None:
    """Virtual --no-checksum in this process vs in worker processes, by archive size, alternated, fresh processes."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_virtual_"))
    cpus = os.cpu_count() or 1
    load = os.getloadavg()[0]
    rows = []
    try:
        for n in counts:
            src = tmp / f"a{n}"
            small_archive(src, n)
            runs: dict[int, list[tuple[float, float]]] = {1: [], cpus: []}
            for _ in range(repeat):
                for w in runs:
                    runs[w].append(_fresh_process(src, tmp / "out", w))
            med = {w: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for w, v in runs.items()}
            rows.append((n, med[1], med[cpus]))
            shutil.rmtree(src)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average before/after: {load:.2f} / "
          f"{os.getloadavg()[0]:.2f}; command: python tools/bench_virtual.py {' '.join(sys.argv[1:])}")
    print(f"| files | in process: s (CPU s) | {cpus} workers: s (CPU s) | workers / in process (wall) |")
    print("| ---: | ---: | ---: | ---: |")
    for n, one, many in rows:
        print(f"| {n:,} | {one[0]:.3f} ({one[1]:.2f}) | {many[0]:.3f} ({many[1]:.2f}) | {many[0] / one[0]:.2f} |")


def profile(files: int, repeat: int, workers: int | None, out: str) -> None:
    """py-spy record of ``repeat`` virtual --no-checksum migrations (workers' processes included)."""
    import subprocess

    tmp = Path(tempfile.mkdtemp(prefix="bench_virtual_"))
    try:
        small_archive(tmp / "small", files)
        code = ("import sys, shutil\nfrom arraystore.migration import migrate\nif __name__ == '__main__':\n"
                f"    for _ in range({repeat}):\n        shutil.rmtree(sys.argv[2], ignore_errors=True)\n"
                f"        migrate(sys.argv[1], sys.argv[2], virtual=True, checksum=False, workers={workers!r})\n")
        script = tmp / "run.py"  # a file, not -c: py-spy's raw lines name the command, which must be one line
        script.write_text(code)
        subprocess.run(["py-spy", "record", "--subprocesses", "-f", "raw", "-o", out, "--", sys.executable, str(script),
                        str(tmp / "small"), str(tmp / "out")], check=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--big-mib", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--small-only", action="store_true", help="only the small-files rows (part 1)")
    ap.add_argument("--pool-sweep", metavar="N,N,...",
                    help="only this: virtual --no-checksum of N small files resolved in this process (workers=1) vs "
                    "in one worker per CPU (workers=cpu count), each run a fresh process as the command line is "
                    "(pool start included): where the pool starts to pay off (run.VIRTUAL_POOL_FILES)")
    ap.add_argument("--profile", metavar="OUT",
                    help="only this: py-spy record (raw format, to OUT) of --repeat virtual --no-checksum migrations "
                    "of --files small files, with --workers", default=None)
    ap.add_argument("--workers", type=int, default=None, help="workers of the --profile run (default: migrate's)")
    args = ap.parse_args()
    if args.pool_sweep:
        pool_sweep([int(n) for n in args.pool_sweep.split(",")], args.repeat)
        return
    if args.profile:
        profile(args.files, args.repeat, args.workers, args.profile)
        return
    load = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench_virtual_"))
    rows: list[tuple[str, str, float, float, str]] = []

    def add(scale: str, results: dict[str, tuple[float, float]], per: Callable[[float], str]) -> None:
        for op, (sec, cpu) in results.items():
            rows.append((scale, op, sec, cpu, per(cpu)))

    try:
        small = tmp / "small"
        small_archive(small, args.files)
        out = tmp / "out"

        def fresh() -> None:
            shutil.rmtree(out, ignore_errors=True)

        add(f"{args.files:,} files x 4 KiB", alternated([
            ("copying migrate (to zarr, default: 2 workers)", lambda: migrate(small, out)),
            ("virtual migrate (kerchunk, checksums)", lambda: migrate(small, out, virtual=True)),
            ("virtual migrate --no-checksum", lambda: migrate(small, out, virtual=True, checksum=False)),
            ("virtual migrate --no-checksum --workers 1",
             lambda: migrate(small, out, virtual=True, checksum=False, workers=1)),
            ("virtual migrate (icechunk, checksums)", lambda: migrate(small, out, virtual=True, format="icechunk")),
        ], args.repeat, fresh), lambda cpu: f"{cpu / args.files * 1e3:.2f} ms/file")

        if not args.small_only:
            big = tmp / "big"
            big_archive(big, args.big_mib)

            def fresh_cold() -> None:
                fresh()
                evict(big)

            scale = f"{args.big_mib} MiB in 8 files"
            gib = args.big_mib / 1024
            per_gib: Callable[[float], str] = lambda cpu: f"{cpu / gib:.2f} s/GiB"  # noqa: E731
            add(scale, alternated([
                ("cold sequential read (8 MiB reads)", lambda: cold_read(big)),
                ("cold virtual migrate (checksums)", lambda: migrate(big, out, virtual=True)),
            ], args.repeat, fresh_cold), per_gib)
            add(scale, alternated([("virtual migrate --no-checksum", lambda: migrate(big, out, virtual=True, checksum=False))],
                                  args.repeat, fresh), per_gib)

            one = tmp / "one"
            one.mkdir()
            with arraystore.create(one / "a.dat", shape=(64, 1 << 17), dtype="<f8", backend="raw") as st:
                st[...] = np.random.default_rng(2).random((64, 1 << 17))
            fresh()
            migrate(one, out, virtual=True, workers=1)
            migrate(one, tmp / "ice", virtual=True, format="icechunk", workers=1)
            regular = tmp / "regular.zarr"
            data = arraystore.open(one / "a.dat")[...]
            regular_copy(out / "virtual.json", "a.dat", data, regular)
            reads: list[Op] = [("arraystore.open(original)[...]", lambda: arraystore.open(one / "a.dat")[...])]
            reads += plain_readers(out / "virtual.json", tmp / "ice" / "virtual.icechunk", one, regular, "a.dat")
            others: dict[int, Path] = {}  # the reader's limit at other chunk sizes (rows of 1 MiB): is 4 MiB what holds it back?
            for rows_ in SWEEP_ROWS:
                others[rows_] = tmp / f"regular{rows_}.zarr"
                regular_copy(out / "virtual.json", "a.dat", data, others[rows_], rows_)
                reads.append((f"zarr-python over regular Zarr, {rows_} MiB chunks [...]",
                              functools.partial(zarr_whole, others[rows_], "a.dat")))
            for op, fn in reads:
                got = fn()
                if not np.array_equal(np.asarray(got), data):
                    raise SystemExit(f"{op}: read something else than the original")
            per_read: Callable[[float], str] = lambda cpu: f"{cpu / (data.nbytes / 2**30):.2f} s/GiB"  # noqa: E731
            def cold() -> None:
                evict(one)
                evict(regular)
                for p in others.values():
                    evict(p)

            for regime, before in (("warm", None), ("cold", cold)):
                add(f"64 MiB array, {regime}", alternated(reads, args.repeat + 2, before), per_read)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average before/after: {load:.2f} / "
          f"{os.getloadavg()[0]:.2f}; command: python tools/bench_virtual.py {' '.join(sys.argv[1:])}")
    print("| scale | operation | median seconds | median CPU s | CPU |\n| --- | --- | ---: | ---: | ---: |")
    for scale, op, sec, cpu, per in rows:
        print(f"| {scale} | {op} | {sec:.3f} | {cpu:.3f} | {per} |")
    t: dict[str, float] = {}
    for scale, op, sec, _, _ in rows:
        t.setdefault(op, sec)  # the first row of an operation: "--no-checksum" is the small-file one
        t[f"{op} ({scale.rsplit(', ', 1)[-1]})"] = sec
    copy = t["copying migrate (to zarr, default: 2 workers)"]
    ratios = [
        ("virtual (checksums) vs copying, small files: times faster", copy / t["virtual migrate (kerchunk, checksums)"], ">= 5"),
        ("virtual --no-checksum vs copying, small files: times faster", copy / t["virtual migrate --no-checksum"], ">= 20"),
        ("virtual --no-checksum --workers 1 vs copying, small files: times faster",
         copy / t["virtual migrate --no-checksum --workers 1"], "(in process)"),
    ]
    if not args.small_only:
        ratios.append(("cold virtual migrate vs cold sequential read: speed",
                       t["cold sequential read (8 MiB reads)"] / t["cold virtual migrate (checksums)"], ">= 0.9"))
    readers = (("zarr-python over kerchunk", "zarr-python over kerchunk refs [...]", "zarr-python over regular Zarr [...]"),
               ("zarr-python over icechunk", "zarr-python over icechunk [...]", "zarr-python over regular Zarr [...]"),
               ("xarray over kerchunk", "xarray.open_zarr over kerchunk refs .values", "xarray.open_zarr over regular Zarr .values"))
    for regime in () if args.small_only else ("warm", "cold"):
        mine = t[f"arraystore.open(original)[...] ({regime})"]
        for reader, op, _ in readers:
            ratios.append((f"{reader} vs arraystore.open, {regime}: read speed", mine / t[f"{op} ({regime})"], ">= 0.8"))
        for reader, op in (("zarr-python", "zarr-python over regular Zarr [...]"),
                           ("xarray", "xarray.open_zarr over regular Zarr .values")):
            ratios.append((f"reader's limit: {reader} over regular Zarr vs arraystore.open, {regime}",
                           mine / t[f"{op} ({regime})"], "(limit)"))
        best = max(mine / t[f"zarr-python over regular Zarr, {r} MiB chunks [...] ({regime})"] for r in SWEEP_ROWS)
        ratios.append((f"reader's limit: zarr-python over regular Zarr at its best of 1/4/16/64 MiB chunks vs "
                       f"arraystore.open, {regime}", max(best, mine / t[f"zarr-python over regular Zarr [...] ({regime})"]),
                       "(limit)"))
        for reader, op, base in readers:
            ratios.append((f"{reader} vs the same reader over regular Zarr, {regime}: read speed",
                           t[f"{base} ({regime})"] / t[f"{op} ({regime})"], "~1"))
    print("\n| ratio (same run) | measured | target |\n| --- | ---: | ---: |")
    for name, value, target in ratios:
        print(f"| {name} | {value:.2f} | {target} |")


if __name__ == "__main__":
    main()
