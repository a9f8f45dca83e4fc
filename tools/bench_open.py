"""Opening cost: arraystore.open vs np.load / np.fromfile, for a small and a large array.

    python tools/bench_open.py [--dir DIR] [--small 2MiB] [--large 2GiB] [--repeat 5]

Each measurement evicts the file from the page cache first (fsync + POSIX_FADV_DONTNEED),
so "open" means a cold open, and reports the median of --repeat runs. arraystore.open reads
metadata only (the sidecar or the .npy header) and checks the file's size; np.load and
np.fromfile read the whole array.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import arraystore
from arraystore._fsutil import evict_from_page_cache


def parse_size(text: str) -> int:
    units = {"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30}
    t = text.upper()
    for u, f in units.items():
        if t.endswith(u):
            return int(float(t[: -len(u)]) * f)
    return int(t)


def evict(path: Path) -> None:
    evict_from_page_cache(path)


def timed(fn: Callable[[], Any], path: Path, repeat: int) -> float:
    fn()  # warm-up: imports and first-call costs are not what is measured
    times = []
    for _ in range(repeat):
        evict(path)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make(folder: Path, nbytes: int) -> tuple[Path, Path]:
    n = nbytes // 4
    raw, npy = folder / f"a{nbytes}.dat", folder / f"a{nbytes}.npy"
    for path in (raw, npy):
        with arraystore.create(path, (n // 256, 256), "<f4") as s:
            for sel, _ in s.iter_blocks(64 << 20):
                s[sel] = 1.0
    return raw, npy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="folder for the test files (default: a temp folder)")
    parser.add_argument("--small", default="2MiB")
    parser.add_argument("--large", default="2GiB")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        rows = []
        for label in (args.small, args.large):
            raw, npy = make(Path(tmp), parse_size(label))
            shape = (parse_size(label) // 4 // 256, 256)

            def as_open_raw(raw: Path = raw) -> Any:
                with arraystore.open(raw) as s:
                    return s[0, 0]

            def as_open_npy(npy: Path = npy) -> Any:
                with arraystore.open(npy) as s:
                    return s[0, 0]

            cases = [
                ("arraystore.open(raw) + one element", as_open_raw, raw),
                ("arraystore.open(npy) + one element", as_open_npy, npy),
                ("np.load(npy, mmap_mode='r') + one element", lambda npy=npy: np.load(npy, mmap_mode="r")[0, 0], npy),
                ("np.load(npy)", lambda npy=npy: np.load(npy), npy),
                ("np.fromfile(raw).reshape", lambda raw=raw, shape=shape: np.fromfile(raw, "<f4").reshape(shape), raw),
            ]
            for name, fn, path in cases:
                rows.append((label, name, timed(fn, path, args.repeat)))
            raw.unlink()
            npy.unlink()
    print(f"| size | operation | median seconds (cold, {args.repeat} runs) |")
    print("| --- | --- | ---: |")
    for label, name, sec in rows:
        print(f"| {label} | {name} | {sec:.6f} |")


if __name__ == "__main__":
    main()
