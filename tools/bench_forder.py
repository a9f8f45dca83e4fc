"""Fortran-order sources into HDF5: the C-layout write against the transposed byte copy and against cp.

One command::

    python tools/bench_forder.py --size 512MiB --runs 3 [--dir /tmp/bench-forder]

The source is a raw float64 file in Fortran order, shape ``(n, 256, 256)`` of about
``--size`` bytes. Three ways to HDF5 (or a plain copy), each timed with an ``os.sync()``
of what it wrote after the source was dropped from the page cache (fsync +
``posix_fadvise(DONTNEED)``):

* ``cp``: ``shutil.copyfile`` of the source file (the floor);
* ``transposed``: the dataset arraystore wrote before C layout became the default
  (``hdf5_layout="transposed"``: a contiguous reversed-shape dataset), filled by a
  kernel byte copy (``os.copy_file_range``) of the source;
* ``c-layout``: ``arraystore.convert`` (the default: C order, chunks that are
  contiguous runs of the source, each reordered in cache-sized tiles on the writer's
  threads and written with ``write_direct_chunk``).

The table gives the median seconds and throughput of ``--runs`` runs, the ratio of
the C-layout write to the transposed copy (target: at least 0.7), and the median CPU
seconds (user + system, all threads) each method used: on a shared machine the wall
clock waits for other jobs, the CPU seconds much less so.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

import arraystore
from arraystore.conversion._plan import parse_size


def _drop(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _cpu() -> float:
    """User + system CPU seconds of this process (all its threads; the kernel's copy counts as system time)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cp(src: Path, dst: Path, shape: tuple[int, ...]) -> None:
    shutil.copyfile(src, dst)


def _transposed(src: Path, dst: Path, shape: tuple[int, ...]) -> None:
    with arraystore.create(str(dst), shape, "<f8", order="F", hdf5_layout="transposed") as s:
        offset = s.dataset.id.get_offset()
        n = s.nbytes
    with open(src, "rb") as fin, open(dst, "r+b") as fout:
        done = 0
        while done < n:
            done += os.copy_file_range(fin.fileno(), fout.fileno(), n - done, done, offset + done)


def _c_layout(src: Path, dst: Path, shape: tuple[int, ...]) -> None:
    arraystore.convert(str(src), str(dst), max_memory="256MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512MiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default="/tmp/bench-forder")
    args = parser.parse_args()
    folder = Path(args.dir)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        n0 = max(1, parse_size(args.size) // (256 * 256 * 8))
        shape = (n0, 256, 256)
        src = folder / "src.dat"
        with arraystore.create(str(src), shape, "<f8", order="F") as s:
            for k in range(shape[2]):  # last-axis slabs: contiguous in the Fortran-order file
                s[:, :, k] = np.random.default_rng(k).random(shape[:2])
        nbytes = n0 * 256 * 256 * 8
        results: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for name, op in (("cp", _cp), ("transposed", _transposed), ("c-layout", _c_layout)):
                dst = folder / ("out.dat" if name == "cp" else "out.h5")
                _drop(src)
                t0, c0 = time.perf_counter(), _cpu()
                op(src, dst, shape)
                os.sync()
                results.setdefault(name, []).append(time.perf_counter() - t0)
                cpu.setdefault(name, []).append(_cpu() - c0)
                if name == "c-layout":
                    with arraystore.open(str(dst)) as out, arraystore.open(str(src)) as inp:
                        assert out.shape == shape and np.array_equal(out[:, :, :3], inp[:, :, :3])
                dst.unlink()
        print(f"source: float64 {shape} Fortran order, {nbytes / 2**20:.0f} MiB; median of {args.runs} runs\n")
        print("| method | seconds | MiB/s | vs transposed | CPU seconds |")
        print("|---|---|---|---|---|")
        base = statistics.median(results["transposed"])
        for name, times in results.items():
            t = statistics.median(times)
            print(f"| {name} | {t:.2f} | {nbytes / 2**20 / t:.0f} | {base / t:.2f}x | {statistics.median(cpu[name]):.2f} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
