"""Fortran-order sources into HDF5: the C-layout write against the transposed byte copy and against cp.

One command::

    python tools/bench_forder.py --size 512MiB --runs 3 [--dir /tmp/bench-forder] [--before-tree DIR]

The source is a raw float64 file in Fortran order, shape ``(n, 256, 256)`` of about
``--size`` bytes. Three ways to HDF5 (or a plain copy), each timed with an ``os.sync()``
of what it wrote after the source was dropped from the page cache (fsync +
``posix_fadvise(DONTNEED)``):

* ``cp``: ``shutil.copyfile`` of the source file (the floor);
* ``transposed``: the dataset arraystore wrote before C layout became the default
  (``hdf5_layout="transposed"``: a contiguous reversed-shape dataset), filled by a
  kernel byte copy (``os.copy_file_range``) of the source;
* ``transposed+checksum``: the same byte copy followed by the content checksum every
  arraystore conversion records (:func:`arraystore.checksums.checksum` of the source, C-order
  slabs reordered on a thread per core): what converting into the transposed layout costs
  with arraystore's guarantees, the layout arraystore's conversions wrote before;
* ``before``, with ``--before-tree DIR``: ``arraystore.convert`` from another checkout of
  arraystore (its ``src`` put first on ``PYTHONPATH``, timed inside a subprocess), e.g. the
  commit before C layout became the default (``git worktree add --detach DIR 715513f^``):
  the transposed conversion as it shipped, checksum and all (CPU seconds include the
  subprocess's start and import);
* ``c-layout``: ``arraystore.convert`` (the default: C order, chunks that are
  contiguous runs of the source, each reordered in cache-sized tiles on the writer's
  threads and written with ``write_direct_chunk``).

The table gives the median seconds and throughput of ``--runs`` runs, the ratios of
each method to the bare transposed copy and to the transposed copy with its checksum
(target for the C-layout write: at least 0.7), and the median CPU
seconds (user + system, all threads) each method used: on a shared machine the wall
clock waits for other jobs, the CPU seconds much less so.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import arraystore
from arraystore._fsutil import evict_from_page_cache
from arraystore.checksums import checksum
from arraystore.conversion._plan import parse_size


def _drop(path: Path) -> None:
    evict_from_page_cache(path)


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


def _transposed_checksum(src: Path, dst: Path, shape: tuple[int, ...]) -> None:
    _transposed(src, dst, shape)
    with arraystore.open(str(src)) as s:
        checksum(s, workers=os.cpu_count() or 1)


def _c_layout(src: Path, dst: Path, shape: tuple[int, ...]) -> None:
    arraystore.convert(str(src), str(dst), max_memory="256MiB")


_TIMED_CONVERT = (
    "import os, sys, time; import arraystore; t = time.perf_counter(); "
    "arraystore.convert(sys.argv[1], sys.argv[2], max_memory='256MiB'); os.sync(); "
    "print(time.perf_counter() - t)"
)


def _before(tree: Path, src: Path, dst: Path) -> tuple[float, float]:
    """Seconds (convert and sync, after the import) and CPU seconds of ``arraystore.convert`` from the checkout ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, "-c", _TIMED_CONVERT, str(src), str(dst)], env=env, check=True,
                         capture_output=True, text=True)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return float(out.stdout.split()[-1]), (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512MiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default="/tmp/bench-forder")
    parser.add_argument("--before-tree", type=Path, default=None,
                        help="another arraystore checkout whose convert() is timed too (row 'before')")
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
            for name, op in (("cp", _cp), ("transposed", _transposed), ("transposed+checksum", _transposed_checksum),
                             ("c-layout", _c_layout)):
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
            if args.before_tree is not None:
                _drop(src)
                seconds, used = _before(args.before_tree, src, folder / "out.h5")
                results.setdefault("before", []).append(seconds)
                cpu.setdefault("before", []).append(used)
                (folder / "out.h5").unlink()
        print(f"source: float64 {shape} Fortran order, {nbytes / 2**20:.0f} MiB; median of {args.runs} runs\n")
        print("| method | seconds | MiB/s | vs transposed | vs transposed+checksum | CPU seconds |")
        print("|---|---|---|---|---|---|")
        base = statistics.median(results["transposed"])
        checked = statistics.median(results["transposed+checksum"])
        for name, times in results.items():
            t = statistics.median(times)
            print(f"| {name} | {t:.2f} | {nbytes / 2**20 / t:.0f} | {base / t:.2f}x | {checked / t:.2f}x "
                  f"| {statistics.median(cpu[name]):.2f} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
