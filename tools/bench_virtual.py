"""Virtual migration vs copying migration, and reading a virtual array vs the original.

Usage::

    python tools/bench_virtual.py [--files 1000] [--big-mib 512] [--repeat 3]

Four measurements (median of ``--repeat`` runs, in one process, side by side):

1. ``--files`` small raw files (4 KiB each, arraystore sidecar): copying ``migrate(to="zarr")``
   vs ``migrate(virtual=True)`` (kerchunk, with checksums) vs ``--no-checksum`` (metadata only).
2. A ``--big-mib`` archive (8 files): cold sequential read of every byte (page cache evicted
   with ``posix_fadvise(DONTNEED)``) vs a cold virtual migration (one checksum read per file).
3. Reading one 64 MiB virtual array whole through zarr-python (kerchunk + fsspec), xarray, and
   icechunk vs ``arraystore.open(original)[...]``, warm (page cache) and cold (evicted before each read).

The files are written under a temporary folder and removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

import arraystore
from arraystore.migration import migrate


def evict(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def median(fn: Callable[[], object], repeat: int, before: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--big-mib", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench_virtual_"))
    rows: list[tuple[str, str, float]] = []
    try:
        small = tmp / "small"
        small_archive(small, args.files)
        out = tmp / "out"

        def fresh() -> None:
            shutil.rmtree(out, ignore_errors=True)

        scale = f"{args.files:,} files x 4 KiB"
        rows.append((scale, "copying migrate (to zarr, default: 2 workers)", median(lambda: migrate(small, out), args.repeat, fresh)))
        rows.append((scale, "virtual migrate (kerchunk, checksums, default: in process)", median(lambda: migrate(small, out, virtual=True), args.repeat, fresh)))
        rows.append((scale, "virtual migrate --no-checksum", median(lambda: migrate(small, out, virtual=True, checksum=False), args.repeat, fresh)))
        rows.append((scale, "virtual migrate (icechunk, checksums)", median(lambda: migrate(small, out, virtual=True, format="icechunk"), args.repeat, fresh)))

        big = tmp / "big"
        big_archive(big, args.big_mib)
        scale = f"{args.big_mib} MiB in 8 files"
        rows.append((scale, "cold sequential read (8 MiB reads)", median(lambda: cold_read(big), args.repeat, lambda: evict(big))))

        def fresh_cold() -> None:
            fresh()
            evict(big)

        rows.append((scale, "cold virtual migrate (checksums)", median(lambda: migrate(big, out, virtual=True), args.repeat, fresh_cold)))
        rows.append((scale, "virtual migrate --no-checksum", median(lambda: migrate(big, out, virtual=True, checksum=False), args.repeat, fresh)))

        one = tmp / "one"
        one.mkdir()
        with arraystore.create(one / "a.dat", shape=(64, 1 << 17), dtype="<f8", backend="raw") as st:
            st[...] = 1.5
        fresh()
        migrate(one, out, virtual=True, workers=1)
        migrate(one, tmp / "ice", virtual=True, format="icechunk", workers=1)
        from arraystore.virtual import open_virtual

        def with_xarray() -> None:
            import xarray as xr

            g = open_virtual(out / "virtual.json")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                xr.open_zarr(g.store, zarr_format=3)["a.dat"].values  # noqa: B018

        reads: list[tuple[str, Callable[[], object]]] = [
            ("arraystore.open(original)[...]", lambda: arraystore.open(one / "a.dat")[...]),
            ("zarr-python over kerchunk refs [...]", lambda: open_virtual(out / "virtual.json")["a.dat"][...]),
            ("zarr-python over icechunk [...]", lambda: open_virtual(tmp / "ice" / "virtual.icechunk")["a.dat"][...]),
            ("xarray.open_zarr over kerchunk refs .values", with_xarray),
        ]
        for regime, before in (("warm", None), ("cold", lambda: evict(one))):
            scale = f"64 MiB array, {regime}"
            for op, fn in reads:
                rows.append((scale, op, median(fn, args.repeat + 2, before)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average before/after: {load:.2f} / "
          f"{os.getloadavg()[0]:.2f}; command: python tools/bench_virtual.py {' '.join(sys.argv[1:])}")
    print("| scale | operation | median seconds |\n| --- | --- | ---: |")
    for scale, op, sec in rows:
        print(f"| {scale} | {op} | {sec:.3f} |")
    t: dict[str, float] = {}
    for scale, op, sec in rows:
        t.setdefault(op, sec)  # the first row of an operation: "--no-checksum" is the small-file one
        t[f"{op} ({scale.rsplit(', ', 1)[-1]})"] = sec
    copy = t["copying migrate (to zarr, default: 2 workers)"]
    ratios = [
        ("virtual (checksums) vs copying, small files: times faster", copy / t["virtual migrate (kerchunk, checksums, default: in process)"], ">= 5"),
        ("virtual --no-checksum vs copying, small files: times faster", copy / t["virtual migrate --no-checksum"], ">= 20"),
        ("cold virtual migrate vs cold sequential read: speed", t["cold sequential read (8 MiB reads)"] / t["cold virtual migrate (checksums)"], ">= 0.9"),
    ]
    for regime in ("warm", "cold"):
        mine = t[f"arraystore.open(original)[...] ({regime})"]
        for reader, op in (("zarr-python over kerchunk", "zarr-python over kerchunk refs [...]"),
                           ("zarr-python over icechunk", "zarr-python over icechunk [...]"),
                           ("xarray over kerchunk", "xarray.open_zarr over kerchunk refs .values")):
            ratios.append((f"{reader} vs arraystore.open, {regime}: read speed", mine / t[f"{op} ({regime})"], ">= 0.8"))
    print("\n| ratio (same run) | measured | target |\n| --- | ---: | ---: |")
    for name, value, target in ratios:
        print(f"| {name} | {value:.2f} | {target} |")


if __name__ == "__main__":
    main()
