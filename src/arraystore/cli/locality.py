"""``arraystore locality PATH... [--json]``: what file system each path is on, and the advice for it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..filesystems import Locality, locality


def register(sub: Any) -> None:
    """Add the ``locality`` sub-command."""
    p = sub.add_parser(
        "locality",
        help="show each path's file-system type, network/local/memory, rotational hint and advice",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="file or folder (need not exist yet)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per path")
    p.set_defaults(func=run)


def _flag(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "unknown"}[value]


def format_line(loc: Locality) -> str:
    """One human-readable line for a path."""
    mount = f", mounted at {loc.mount_point}" if loc.mount_point else ""
    return (
        f"{loc.path}: {loc.fs_type} ({loc.kind}{mount}), rotational: {_flag(loc.is_rotational)}, "
        f"locks: {_flag(loc.locks_work)}; {loc.advice}"
    )


def run(args: argparse.Namespace) -> int:
    """Print one line (or one JSON object) per path."""
    results = [locality(p) for p in args.paths]
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for loc in results:
            print(format_line(loc))
    return 0
