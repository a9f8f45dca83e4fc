"""Full-scan throughput of np.memmap versus buffered ``readinto``, on sshfs (loopback) and on local disk.

Run as root on Linux with sshfs and openssh-server installed::

    python tools/bench_locality.py --size 256 --repeat 3

Each scan starts cold: the file is fsync'ed and ``posix_fadvise(DONTNEED)`` drops
its cached pages, on the backing file and (for sshfs) through the mount. Prints a
markdown table of MiB/s (median of ``--repeat`` runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from arraystore._fsutil import evict_from_page_cache

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sshfs_loopback import sshfs_loopback

MiB = 1 << 20


def make_file(path: Path, size: int) -> None:
    rng = np.random.default_rng(0)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 16 * MiB)
            fh.write(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            left -= n
        fh.flush()
        os.fsync(fh.fileno())


def drop_cache(*paths: Path) -> None:
    evict_from_page_cache(*paths)


def scan_memmap(path: Path, block: int) -> int:
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    total = 0
    for start in range(0, mm.size, block):
        total += int(mm[start:start + block].view(np.uint64).sum(dtype=np.uint64))
    del mm
    return total & 0xFFFFFFFFFFFFFFFF


def scan_buffered(path: Path, block: int) -> int:
    buf = bytearray(block)
    view = memoryview(buf)
    total = 0
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(view):
            total += int(np.frombuffer(buf, dtype=np.uint64, count=n // 8).sum(dtype=np.uint64))
    return total & 0xFFFFFFFFFFFFFFFF


def measure(scan: Callable[[Path, int], int], path: Path, backing: Path, block: int, repeat: int) -> tuple[float, int]:
    times, checks = [], set()
    for _ in range(repeat):
        drop_cache(backing, path)
        t0 = time.perf_counter()
        checks.add(scan(path, block))
        times.append(time.perf_counter() - t0)
    if len(checks) != 1:
        raise SystemExit(f"scans of {path} disagree: {checks}")
    return statistics.median(times), checks.pop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="np.memmap versus buffered readinto, on sshfs and local disk")
    parser.add_argument("--size", type=int, default=256, help="file size in MiB (default 256)")
    parser.add_argument("--block", type=int, default=8, help="block size in MiB (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="cold scans per cell; the median is shown")
    parser.add_argument("--local-dir", default="/var/tmp", help="folder on a local disk (default /var/tmp)")
    args = parser.parse_args(argv)
    size, block = args.size * MiB, args.block * MiB
    if size % 8 or block % 8:
        parser.error("sizes must be multiples of 8 bytes")

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from arraystore.filesystems import locality

    rows = []
    with tempfile.TemporaryDirectory(dir=args.local_dir) as local_dir, sshfs_loopback(args.local_dir) as mount:
        local_file = Path(local_dir) / "bench.bin"
        make_file(local_file, size)
        backing_file = mount.backing / "bench.bin"
        make_file(backing_file, size)
        cases = [("local disk", local_file, local_file), ("sshfs (loopback)", mount.mount_point / "bench.bin",
                                                         backing_file)]
        for label, path, backing in cases:
            loc = locality(path)
            results = {}
            for method, scan in (("np.memmap + sum", scan_memmap), ("buffered readinto", scan_buffered)):
                seconds, check = measure(scan, path, backing, block, args.repeat)
                results[method] = (size / MiB / seconds, check)
            if len({c for _, c in results.values()}) != 1:
                raise SystemExit(f"memmap and buffered scans of {path} disagree")
            buffered = results["buffered readinto"][0]
            for method, (rate, _) in results.items():
                rows.append((label, loc.fs_type, loc.kind, method, rate, rate / buffered))
    print(f"Cold full scan of a {args.size} MiB file in {args.block} MiB blocks, median of {args.repeat} runs.\n")
    print("| location | fs type | kind | method | MiB/s | vs buffered |")
    print("| --- | --- | --- | --- | ---: | ---: |")
    for label, fs_type, kind, method, rate, rel in rows:
        print(f"| {label} | {fs_type} | {kind} | {method} | {rate:,.0f} | {rel:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
