"""False-alarm and miss rates of the migration data check on real-looking data.

Usage::

    python tools/bench_evidence.py [--seeds 20] [--values 50000] [--markdown]

For every signal kind of :mod:`arraystore.testing.signals` (smooth sensor traces, images,
noise, counts, sparse, constant, random bits), every multi-byte numeric dtype and both
byte orders, ``--seeds`` files are written and checked with
:func:`arraystore.migration.evidence_data.check_reading` (byte order and dtype both weak,
as for a file name that states them):

* **false alarm**: the correct reading is reported as contradicted;
* **miss (byte order)**: the file read in the other byte order is *not* reported;
* **miss (kind)**: a float file read as the integer of the same size, or the other way
  round, is not reported (4- and 8-byte types only).

Seeds are fixed: the table is reproducible.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

import numpy as np

from arraystore.migration.evidence_data import check_reading
from arraystore.testing.signals import KINDS, make

DTYPES = ("int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64")


def _flagged(path: str, dtype: np.dtype[Any]) -> bool:
    check = check_reading(path, dtype, 0, os.path.getsize(path), byteorder_weak=True, dtype_weak=True)
    return check is not None and check.contradicted


def _other_kind(dtype: np.dtype[Any]) -> np.dtype[Any] | None:
    if dtype.itemsize not in (4, 8):
        return None
    return np.dtype(f"{dtype.str[0]}{'i' if dtype.kind == 'f' else 'f'}{dtype.itemsize}")


def run(seeds: int, values: int) -> dict[tuple[str, str], list[int]]:
    """``{(kind, dtype): [files, false alarms, swapped misses, kind checks, kind misses]}``."""
    out: dict[tuple[str, str], list[int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.dat")
        for kind in KINDS:
            for name in DTYPES:
                row = out.setdefault((kind, name), [0, 0, 0, 0, 0])
                for seed in range(seeds):
                    for order in "<>":
                        dtype = np.dtype(name).newbyteorder(order)
                        make(kind, dtype, values, seed).astype(dtype).tofile(path)
                        row[0] += 1
                        row[1] += _flagged(path, dtype)
                        row[2] += not _flagged(path, dtype.newbyteorder())
                        other = _other_kind(dtype)
                        if other is not None:
                            row[3] += 1
                            row[4] += not _flagged(path, other)
    return out


def _pct(n: int, d: int) -> str:
    return "–" if d == 0 else f"{100 * n / d:.0f}%"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--values", type=int, default=50_000)
    ap.add_argument("--markdown", action="store_true", help="one row per signal kind (dtypes pooled)")
    args = ap.parse_args(argv)
    table = run(args.seeds, args.values)
    print("| signal | files | false alarms | byte order missed | kind missed |")
    print("| --- | ---: | ---: | ---: | ---: |")
    total = [0, 0, 0, 0, 0]
    for kind in KINDS:
        rows = [table[(kind, d)] for d in DTYPES]
        s = [sum(r[i] for r in rows) for i in range(5)]
        total = [a + b for a, b in zip(total, s, strict=True)]
        print(f"| {kind} | {s[0]} | {s[1]} ({_pct(s[1], s[0])}) | {_pct(s[2], s[0])} | {_pct(s[4], s[3])} |")
    print(f"| **all** | {total[0]} | {total[1]} ({_pct(total[1], total[0])}) | {_pct(total[2], total[0])} "
          f"| {_pct(total[4], total[3])} |")
    if not args.markdown:
        print()
        for (kind, name), r in table.items():
            if r[1]:
                print(f"false alarms: {kind} {name}: {r[1]} of {r[0]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
