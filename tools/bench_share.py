"""Benchmark: N worker processes summing one raw array, three ways, with their memory and wall time.

(a) each worker loads its slice with ``np.fromfile``;
(b) the parent passes slices of a ``numpy.memmap`` to the pool (they pickle as data, numpy#2049);
(c) ``arraystore.parallel.map_blocks`` (workers open the store by reference and map it).

Memory is the proportional set size (PSS, ``/proc/<pid>/smaps_rollup``) summed over the
workers and the parent, sampled every 20 ms, peak reported; split into ``Pss_Anon``
(private copies: what exhausts RAM, there is no swap to push it to) and ``Pss_File``
(page-cache pages mapped by the processes, shared and reclaimable). The drop of
``MemAvailable`` (``/proc/meminfo``) is the system-wide view. The file is in the page
cache (warm) before each run, so the times measure copying, not the disk.

Run: ``python tools/bench_share.py [--gib 4] [--workers 8] [--dir /tmp]`` (Linux only).
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

import arraystore
from arraystore.parallel import map_blocks, mp_context

MiB = 1 << 20


def smaps(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except OSError:
        pass
    return out


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


class Sampler(threading.Thread):
    """Peak of summed PSS (total, anon, file) over the pool's workers and this process."""

    def __init__(self, pool: ProcessPoolExecutor):
        super().__init__(daemon=True)
        self.pool = pool
        self.stop = threading.Event()
        self.peak = {"Pss": 0, "Pss_Anon": 0, "Pss_File": 0}
        self.avail0 = mem_available()
        self.min_avail = self.avail0

    def run(self) -> None:
        while not self.stop.is_set():
            pids = [os.getpid(), *list(getattr(self.pool, "_processes", {}) or {})]
            rolls = [smaps(p) for p in pids]
            for key in self.peak:
                self.peak[key] = max(self.peak[key], sum(r.get(key, 0) for r in rolls))
            self.min_avail = min(self.min_avail, mem_available())
            time.sleep(0.02)


def sum_slice(path: str, dtype: str, offset: int, count: int) -> float:
    return float(np.fromfile(path, dtype=dtype, count=count, offset=offset).sum())


def sum_array(block: np.ndarray[Any, Any]) -> float:
    return float(block.sum())


def sum_block(block: np.ndarray[Any, Any], sel: tuple[slice, ...]) -> float:
    return float(block.sum())


def warm(path: str) -> None:
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(64 * MiB)
        while f.readinto(buf):
            pass


def run(name: str, workers: int, job: Any) -> dict[str, Any]:
    with ProcessPoolExecutor(workers, mp_context=mp_context()) as pool:
        list(pool.map(int, range(workers * 4)))  # start every worker before measuring
        base = {
            k: sum(smaps(p).get(k, 0) for p in [os.getpid(), *pool._processes]) for k in ("Pss", "Pss_Anon")
        }
        sampler = Sampler(pool)
        sampler.start()
        t = time.perf_counter()
        total = job(pool)
        wall = time.perf_counter() - t
        sampler.stop.set()
        sampler.join()
    return {
        "scenario": name,
        "wall_s": wall,
        "pss_gib": (sampler.peak["Pss"] - base["Pss"]) / 2**30,
        "anon_gib": (sampler.peak["Pss_Anon"] - base["Pss_Anon"]) / 2**30,
        "file_gib": sampler.peak["Pss_File"] / 2**30,
        "avail_drop_gib": (sampler.avail0 - sampler.min_avail) / 2**30,
        "sum": total,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=4.0)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(dir=args.dir, prefix="bench_share_"))
    path = str(folder / "share.dat")
    rows = int(args.gib * 2**30) // (1024 * 8)
    print(f"creating {path}: {rows:,} x 1024 float64 ({rows * 8192 / 2**30:.2f} GiB)")
    with arraystore.create(path, (rows, 1024), "f8") as store:
        step = 8192
        for a in range(0, rows, step):
            store[a : a + step] = np.float64(1.0)
    n, w = rows * 1024, args.workers
    bounds = np.linspace(0, rows, w + 1).astype(int)

    def a(pool: ProcessPoolExecutor) -> float:
        jobs = [(path, "<f8", int(b0) * 8192, int(b1 - b0) * 1024) for b0, b1 in itertools.pairwise(bounds)]
        return sum(pool.map(sum_slice, *zip(*jobs)))

    def b(pool: ProcessPoolExecutor) -> float:
        with arraystore.open(path) as store:
            mm = store.as_memmap()
            return sum(pool.map(sum_array, [mm[b0:b1] for b0, b1 in itertools.pairwise(bounds)]))

    def c(pool: ProcessPoolExecutor) -> float:
        return sum(map_blocks(sum_block, path, max_bytes=64 * MiB, executor=pool))

    results = []
    try:
        for name, job in [
            ("(a) np.fromfile per worker", a),
            ("(b) memmap slices to the pool", b),
            ("(c) map_blocks", c),
        ]:
            warm(path)
            r = run(name, w, job)
            assert r["sum"] == n, (r["sum"], n)
            results.append(r)
            print(f"{name}: {r['wall_s']:.2f} s", flush=True)
    finally:
        arraystore.open(path).close()
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()
    print(
        f"\n{w} workers, {rows * 8192 / 2**30:.2f} GiB raw float64 array, warm page cache, {os.cpu_count()} CPUs\n"
    )
    print(
        "| scenario | wall time (s) | peak PSS, sum (GiB) | of which anon (GiB) | of which file (GiB) | MemAvailable drop (GiB) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['scenario']} | {r['wall_s']:.2f} | {r['pss_gib']:.2f} | {r['anon_gib']:.2f} | "
            f"{r['file_gib']:.2f} | {r['avail_drop_gib']:.2f} |"
        )


if __name__ == "__main__":
    main()
