"""``arraystore verify PATH [--against OTHER]``: recompute the content checksum and compare."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._layout import add_layout_options, open_source


def register(sub: Any) -> None:
    """Add the ``verify`` sub-command."""
    p = sub.add_parser(
        "verify",
        help="recompute an array's content checksum and compare it with the recorded one or another array's",
        description="Recompute PATH's content checksum and compare it with the one recorded when it was written, "
        "or with OTHER's. A progress bar shows on a terminal (not with --quiet, --json or when piped).",
    )
    p.add_argument("path", help="array to check (file, folder, or file::/key)")
    p.add_argument("--against", metavar="OTHER", help="another array (any format) that must hold the same values; it must "
                   "describe itself (sidecar, header or format): --dtype/--shape describe PATH only")
    p.add_argument("--max-memory", default="64MiB", help="largest slab read at once (default: 64MiB)")
    p.add_argument("--root", metavar="ARCHIVE", help="virtual store: the archive root, when it moved since the migration")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_layout_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when the checksums match; a mismatch raises VerificationError (exit 1)."""
    from ..checksums import verify
    from ..conversion import parse_size
    from ..virtual.verify import find_store

    if args.against is None and find_store(args.path) is not None:
        return _verify_virtual(args)
    show = sys.stderr.isatty() and not args.quiet and not args.json
    with open_source(args, args.path) as store:
        result = verify(store, args.against, max_bytes=parse_size(args.max_memory), progress=show)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['path']}: OK ({result['checksum']['algorithm']} {result['checksum']['value']}, "
              f"matches {result['expected_from']})")
    return 0


def _verify_virtual(args: argparse.Namespace) -> int:
    """A virtual store (``migrate --virtual``): every referenced file against its recorded size, time and checksum."""
    from ..virtual.verify import verify_virtual

    result = verify_virtual(args.path, args.root)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['path']}: OK ({result['arrays']} virtual arrays; {result['files_checked']} files match their "
            f"recorded size and time, {result['checksummed']} their content checksum)"
        )
    return 0
