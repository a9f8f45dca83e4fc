"""Throughput of the writer's flush strategies: every write, every N writes, every T seconds, at close only.

Usage::

    python tools/bench_flush.py [--dir DIR] [--rows 1024] [--row-kib 64] [--backend raw] [--repeat 3]

Writes ``rows`` rows of ``row-kib`` KiB through :class:`arraystore.writer.ArrayWriter`
for each strategy, with and without ``durable=True`` (fsync at each flush), and prints a
Markdown table of MiB/s (best of ``repeat``) and the number of checkpoints recorded.
The figures in ``docs/reliability.md`` come from this script.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from arraystore.writer import ArrayWriter

SUFFIX = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}


def strategies(n: int, seconds: float) -> dict[str, dict[str, Any]]:
    return {
        "every write": {"flush_every": 1},
        f"every {n} writes": {"flush_every": n},
        f"every {seconds:g} s": {"flush_every_seconds": seconds},
        "at close only": {},
    }


def run_once(folder: Path, backend: str, rows: int, row: np.ndarray[Any, Any], durable: bool,
             options: dict[str, Any]) -> tuple[float, int]:
    path = folder / f"bench{SUFFIX[backend]}"
    ArrayWriter.clear(path)
    extra: dict[str, Any] = {"chunks": (max(1, (4 << 20) // row.nbytes), row.shape[0])} if backend in ("zarr", "hdf5") else {}
    t0 = time.perf_counter()
    w = ArrayWriter.create(path, (rows, row.shape[0]), row.dtype, durable=durable, backend=backend,
                           overwrite=True, **options, **extra)
    with w:
        for _ in range(rows):
            w.append(row[None])
    seconds = time.perf_counter() - t0
    n_checkpoints = w.last_checkpoint.sequence if w.last_checkpoint else 0
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
    ArrayWriter.clear(path)
    return seconds, n_checkpoints


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary folder)")
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--row-kib", type=int, default=64)
    ap.add_argument("--backend", default="raw", choices=sorted(SUFFIX))
    ap.add_argument("--every", type=int, default=64, help="N of the every-N strategy")
    ap.add_argument("--seconds", type=float, default=0.1, help="T of the every-T strategy")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    row = np.random.default_rng(0).random(a.row_kib * 1024 // 8)
    total = a.rows * row.nbytes / 2**20
    print(f"{a.rows} rows of {a.row_kib} KiB ({total:.0f} MiB), backend {a.backend}, best of {a.repeat}\n")
    print("| strategy | durable | MiB/s | checkpoints |")
    print("| --- | --- | ---: | ---: |")
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        for name, options in strategies(a.every, a.seconds).items():
            for durable in (False, True):
                runs = [run_once(Path(tmp), a.backend, a.rows, row, durable, options) for _ in range(a.repeat)]
                best = min(s for s, _ in runs)
                print(f"| {name} | {'yes' if durable else 'no'} | {total / best:,.0f} | {runs[0][1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
