"""Touch the machine's free memory once, so benchmarks run on memory the hypervisor has already backed.

On a virtual machine whose memory the host backs lazily (Firecracker, as on the project's
2-core VM), the first touch of each guest page costs a fault on the host: about 1.3 s per
GiB there, against 0.1 s for a page used before. The kernel hands such never-touched pages
to whatever allocates next (a page-cache page for a file being written, a fresh buffer), so
the same conversion of 512 MiB measured 0.7 or 6 GiB/s depending on which pages it got,
and so did ``cp`` and every peer. Running this once before a benchmark session removes
that lottery: it allocates and fills all but ``--keep`` of the available memory, then frees it.

    python tools/prefault_memory.py            # leaves 2 GiB untouched
    python tools/prefault_memory.py --keep 4GiB
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import psutil

GiB = 2**30


def parse_size(text: str) -> int:
    units = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", default="2GiB", help="available memory left untouched (default 2GiB)")
    args = ap.parse_args(argv)
    target = psutil.virtual_memory().available - parse_size(args.keep)
    if target <= 0:
        print("nothing to touch: available memory is below --keep")
        return 0
    t0 = time.perf_counter()
    blocks = []
    done = 0
    while done < target:
        n = min(GiB, target - done)
        block = np.empty(n, np.uint8)
        block.fill(1)  # every page written: the host backs it now
        blocks.append(block)
        done += n
    seconds = time.perf_counter() - t0
    del blocks
    print(f"touched {done / GiB:.1f} GiB in {seconds:.1f} s ({done / GiB / seconds:.2f} GiB/s; "
          "memory touched before runs at several GiB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
