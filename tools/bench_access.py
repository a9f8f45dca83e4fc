"""Benchmark: random rows and full scans of a raw array, cold and warm page cache.

Random rows (``--rows`` of them, 1 KiB each, from an array of ``--gib`` GiB), cold and
warm side by side: naive random order through the memory map (``mm[idx]``), sorted
order through the map (``mm[np.sort(idx)]``), ``arraystore.access.take`` in its
automatic mode and with each mode forced (``sequential``, ``gather``, ``mapped``), and
``sample_batches`` (the same number of rows as random batches from random windows). The
device's calibration (measured on the file on first use) and what ``auto`` chose are
printed first. The first ``take`` of the process, cold, measures the device inside the call:
it is timed and reported on a row of its own, with the measurement alone, and the random-row
table's ``take`` rows then use that calibration (as every later call of a process does). The
user cache file is pointed into the benchmark's folder, so a calibration persisted earlier
is not used and none is left behind. Full scan: ``iter_blocks`` against a plain sequential ``readinto`` of the
file, cold and warm.

Before every cold run the file is evicted from the page cache (``fsync`` +
``posix_fadvise(POSIX_FADV_DONTNEED)``), and eviction is checked by timing 256 random
4 KiB reads, which are much slower cold than warm.

Warm means the file read sequentially once (evicted and read again before each repetition's
warm runs, so that every repetition starts from the same page cache).

``--repeat N`` runs the random-row comparison N times, the order of the variants rotated
each time (no variant always runs first after an eviction; warm, each variant is timed 5
times per repetition); the table gives medians, the
ratio of each median to the best median, CPU seconds per run (median) and, warm, the ratio
of CPU medians and of the fastest runs (the least disturbed by other processes). The goal lines
give auto against the best forced mode and against sorted memmap reads as ratios of medians,
paired by repetition (the median of each repetition's ratio: runs close in time share the
load) and by CPU medians. The load average is printed before and after: on a shared machine,
compare ratios from one run.

Each cold repetition also prints the model's seconds for every mode (as ``auto`` computed them in that
repetition) next to each forced mode's measured wall and CPU seconds, so a misprediction shows.
``--rows-only`` skips ``sample_batches`` and the full scans (for iterating on the random-row comparison).

Run: ``python tools/bench_access.py [--gib 2] [--rows 100000] [--repeat 3] [--dir /tmp] [--rows-only]`` (Linux only).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import arraystore
from arraystore import _iocost, access
from arraystore._fsutil import evict_from_page_cache
from arraystore.backends import _mapped_access

MiB = 1 << 20
WARM_RUNS = 5  # timed warm runs per variant and repetition (each on a fresh store)
ROW = 1024  # bytes per row: 128 float64


def evict(path: str) -> None:
    evict_from_page_cache(path)


def probe(path: str, seed: int = 99) -> float:
    """Seconds for 256 random 4 KiB preads (not the pages the benchmarks read)."""
    size = os.path.getsize(path)
    offs = np.random.default_rng(seed).integers(0, size // 4096, 256) * 4096
    fd = os.open(path, os.O_RDONLY)
    try:
        t = time.perf_counter()
        for o in offs:
            os.pread(fd, 4096, int(o))
        return time.perf_counter() - t
    finally:
        os.close(fd)


def cold(path: str, warm_probe: float) -> float:
    evict(path)
    p = probe(path, seed=int(time.time()))
    evict(path)
    if p < 3 * warm_probe:
        print(
            f"  warning: eviction looks ineffective (probe {p * 1e3:.1f} ms vs warm {warm_probe * 1e3:.1f} ms)"
        )
    return p


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def seq_read(path: str) -> None:
    buf = bytearray(64 * MiB)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--repeat", type=int, default=1, help="random-row comparisons, variants rotated each time")
    ap.add_argument("--rows-only", action="store_true",
                    help="the random-row comparison only (no sample_batches, no full scans): for iterating")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}")
    folder = Path(tempfile.mkdtemp(dir=args.dir, prefix="bench_access_"))
    os.environ["XDG_CACHE_HOME"] = str(folder / "cache")  # first use measures; nothing persisted is read
    path = str(folder / "rows.dat")
    n = int(args.gib * 2**30) // ROW
    print(f"creating {path}: {n:,} rows of {ROW} bytes ({n * ROW / 2**30:.2f} GiB)")
    with arraystore.create(path, (n, ROW // 8), "<f8") as new:
        step = 65536
        for a in range(0, n, step):
            b = min(a + step, n)
            new[a:b] = np.arange(a, b, dtype="<f8")[:, None]
    idx = np.random.default_rng(0).integers(0, n, args.rows)
    seq_read(path)
    warm_probe = min(probe(path) for _ in range(3))
    print(f"warm probe: {warm_probe * 1e3:.2f} ms for 256 random 4 KiB reads")
    results: list[tuple[str, float, str]] = []
    side: dict[str, dict[str, list[float]]] = {}
    cpu: dict[str, dict[str, list[float]]] = {}

    def rows_per_s(name: str, fn: Callable[[], object]) -> None:
        p = cold(path, warm_probe)
        s = timed(fn)
        results.append((name, s, f"{args.rows / s:,.0f} rows/s"))
        print(f"{name}: {s:.2f} s, {args.rows / s:,.0f} rows/s (cold probe {p * 1e3:.1f} ms)", flush=True)

    def fresh(fn: Callable[[arraystore.ArrayStore], object]) -> Callable[[], object]:
        # A new store (and map) per run: pages still mapped by an earlier run's map would
        # survive eviction (POSIX_FADV_DONTNEED skips mapped pages) and make the run warm.
        def run() -> object:
            with arraystore.open(path) as store:
                return fn(store)

        return run

    try:
        cold(path, warm_probe)  # first use: the device is measured inside the call, on the file out of the cache
        access.reset_calibration()
        t_first = timed(fresh(lambda st: access.take(st, idx)))
        first_choice = _mapped_access.LAST_CHOICE[0] if _mapped_access.LAST_CHOICE else "?"
        cold(path, warm_probe)
        t_cal = timed(lambda: _iocost.measure(path))  # the measurement alone (its result not used)
        results.append(("take (auto), first call of the process, cold: device measured inside", t_first,
                        f"{args.rows / t_first:,.0f} rows/s"))
        results.append(("device calibration alone (once per device and process)", t_cal, "-"))
        print(f"take (auto), first call, cold: {t_first:.2f} s, {args.rows / t_first:,.0f} rows/s (chose "
              f"{first_choice}); the calibration alone: {t_cal:.3f} s", flush=True)
        with arraystore.open(path) as store:
            cal = access.calibrate(store)  # the one measured by the first call
            uniq = np.unique(idx)
            for state in ("cold", "warm"):
                if state == "cold":
                    cold(path, warm_probe)
                else:
                    seq_read(path)
                stats = _mapped_access.gather_stats(store, uniq, ROW, 64 * MiB, cal)
                costs = _iocost.gather_costs(stats, cal, store.io)
                chosen = ("copied from the map in the order asked" if stats.resident == 1.0
                          else _iocost.choose_gather(stats, cal, store.io))
                print(f"auto, {state}: {chosen} "
                      f"(resident {stats.resident:.0%} of a sample; model seconds "
                      + ", ".join(f"{m} {c:.2f}" for m, c in costs.items()) + ")")
        print(f"calibration (measured by the first call; {t_cal:.3f} s alone, once per device and process): {cal}")
        takes: list[tuple[str, Callable[[arraystore.ArrayStore], object]]] = [
            ("naive random order, memmap mm[idx]", lambda st: np.asarray(st.as_memmap()[idx])),
            ("sorted order, memmap mm[np.sort(idx)]", lambda st: np.asarray(st.as_memmap()[np.sort(idx)])),
            ("take (auto)", lambda st: access.take(st, idx)),
        ]
        for mode in _iocost.MODES:
            takes.append((f"take, forced {mode}", lambda st, mode=mode: access.take(st, idx, mode=mode)))
        predicted: dict[str, tuple[str, dict[str, float]]] = {}
        for rep in range(args.repeat):
            turn = takes[rep % len(takes):] + takes[: rep % len(takes)]
            for state in ("cold", "warm"):
                if state == "warm":
                    # One defined page-cache state for every repetition: the file read sequentially (large folios,
                    # mapped with few faults), not whatever the last cold variant left (a WILLNEED gather leaves
                    # small folios, whose page faults cost several times more for every variant).
                    evict(path)
                    seq_read(path)
                for name, fn in turn:
                    if state == "cold":
                        cold(path, warm_probe)
                    else:
                        fresh(fn)()
                    for _ in range(1 if state == "cold" else WARM_RUNS):  # warm runs are short: several
                        c = time.process_time()
                        s = timed(fresh(fn))
                        c = time.process_time() - c
                        side.setdefault(name, {}).setdefault(state, []).append(s)
                        cpu.setdefault(name, {}).setdefault(state, []).append(c)
                    chose = ""
                    if name == "take (auto)" and _mapped_access.LAST_CHOICE:
                        mode, costs, _ = _mapped_access.LAST_CHOICE
                        chose = f" (chose {mode}" + "".join(f", {m} {v:.2f}" for m, v in costs.items()) + ")"
                        predicted[state] = (mode, costs)
                    print(f"{name}, {state}: {s:.3f} s, {args.rows / s:,.0f} rows/s, cpu {c:.3f} s{chose}", flush=True)
                if state == "cold" and "cold" in predicted:
                    # The model's seconds for every mode (as auto computed them in this repetition) next to each
                    # forced mode's measured wall and CPU seconds in the same repetition: a misprediction shows.
                    mode, costs = predicted.pop("cold")
                    print(f"  repetition {rep + 1}, cold, auto chose {mode}; model vs measured (wall / cpu): "
                          + "; ".join(f"{m} {costs[m]:.3f} vs {side[f'take, forced {m}']['cold'][-1]:.3f} / "
                                      f"{cpu[f'take, forced {m}']['cold'][-1]:.3f}" for m in costs)
                          + f"; auto {side['take (auto)']['cold'][-1]:.3f} / {cpu['take (auto)']['cold'][-1]:.3f}; "
                          f"sorted memmap {side['sorted order, memmap mm[np.sort(idx)]']['cold'][-1]:.3f} / "
                          f"{cpu['sorted order, memmap mm[np.sort(idx)]']['cold'][-1]:.3f}", flush=True)

        def batches(store: arraystore.ArrayStore) -> None:
            got = 0
            for _, b in access.sample_batches(store, args.batch, rng=0):
                got += len(b)
                if got >= args.rows:
                    break

        gb = n * ROW / 1e9
        if not args.rows_only:
            rows_per_s(f"sample_batches (batch {args.batch}, default window)", fresh(batches))

        def scan(store: arraystore.ArrayStore) -> None:
            for _ in store.iter_blocks():
                pass

        def scan_buffered() -> None:
            with arraystore.open(path, io="buffered") as store:
                scan(store)

        scans: list[tuple[str, Callable[[], object]]] = [
            ("sequential readinto, 64 MiB", lambda: seq_read(path)),
            ("iter_blocks()", fresh(scan)),
            ("iter_blocks(), io='buffered'", scan_buffered),
        ]
        for name, fn in [] if args.rows_only else scans:
            for state in ("cold", "warm"):
                if state == "cold":
                    cold(path, warm_probe)
                else:
                    fn()
                s = timed(fn)
                results.append((f"full scan, {name}, {state}", s, f"{gb / s:.2f} GB/s"))
                print(f"full scan, {name}, {state}: {s:.2f} s, {gb / s:.2f} GB/s", flush=True)
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()
    print(f"load average {os.getloadavg()}")
    print(f"\n{args.rows:,} random rows of {ROW} B from a {n * ROW / 2**30:.2f} GiB raw array, cold page cache "
          f"and warm; medians of {args.repeat} run(s), variants rotated\n")
    print("| random rows | cold rows/s | warm rows/s | cold vs best | warm vs best | cpu s cold / warm "
          "| warm cpu vs best | warm fastest vs best |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    best_cpu = min(float(np.median(c["warm"])) for c in cpu.values())
    fastest = {name: min(t["warm"]) for name, t in side.items()}  # warm runs are short: the least disturbed
    med = {name: {state: float(np.median(v)) for state, v in t.items()} for name, t in side.items()}
    best = {state: min(t[state] for t in med.values()) for state in ("cold", "warm")}
    for name, t in med.items():
        cs = {state: float(np.median(v)) for state, v in cpu[name].items()}
        print(f"| {name} | {args.rows / t['cold']:,.0f} | {args.rows / t['warm']:,.0f} | "
              f"{best['cold'] / t['cold']:.2f}x | {best['warm'] / t['warm']:.2f}x | "
              f"{cs['cold']:.3f} / {cs['warm']:.3f} | {best_cpu / cs['warm']:.2f}x | "
              f"{min(fastest.values()) / fastest[name]:.2f}x |")
    forced = [f"take, forced {mode}" for mode in _iocost.MODES]
    sorted_name = "sorted order, memmap mm[np.sort(idx)]"
    for state in ("cold", "warm"):
        auto = med["take (auto)"][state]
        best_forced = min(forced, key=lambda k: med[k][state])
        sorted_mm = med[sorted_name][state]
        # Paired: each repetition's ratio (its runs close in time, under the same load), then their median.
        per = WARM_RUNS if state == "warm" else 1
        pair = [
            (float(np.median(side[best_forced][state][r * per:(r + 1) * per])),
             float(np.median(side[sorted_name][state][r * per:(r + 1) * per])),
             float(np.median(side["take (auto)"][state][r * per:(r + 1) * per])))
            for r in range(args.repeat)
        ]
        print(f"\ngoal, {state} (>= 0.90x): take (auto) at {med[best_forced][state] / auto:.2f}x the best forced mode "
              f"({best_forced}) and {sorted_mm / auto:.2f}x sorted-order memmap reads (medians); paired by repetition "
              f"{float(np.median([f / a for f, _, a in pair])):.2f}x and {float(np.median([s / a for _, s, a in pair])):.2f}x "
              f"(per repetition: {', '.join(f'{f / a:.2f}/{s / a:.2f}' for f, s, a in pair)}); CPU medians "
              f"{float(np.median(cpu[best_forced][state])) / float(np.median(cpu['take (auto)'][state])):.2f}x and "
              f"{float(np.median(cpu[sorted_name][state])) / float(np.median(cpu['take (auto)'][state])):.2f}x. "
              "The calibration was measured before (first-call row below)", end="")
    print()
    print()
    print("| access | time (s) | rate |")
    print("| --- | ---: | ---: |")
    for name, s, rate in results:
        print(f"| {name} | {s:.2f} | {rate} |")


if __name__ == "__main__":
    main()
