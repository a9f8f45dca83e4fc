"""The ``arraystore`` command line.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
``(args) -> int``. Modules are imported only when the CLI runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import ArrayStoreError

__all__ = ["main"]

#: Sub-command modules, in the order ``--help`` lists them.
COMMANDS = ("info", "convert", "verify", "migrate", "inspect", "locality")

#: Exit codes shared by every sub-command (documented in docs/cli.md).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="arraystore",
        description="Store, convert and migrate N-dimensional arrays: raw .dat + sidecar, .npy, HDF5, Zarr v3.",
    )
    parser.add_argument("--version", action="version", version=f"arraystore {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except ArrayStoreError as exc:
        if args.debug:
            raise
        print(f"arraystore: error: {exc} [{type(exc).__name__}]", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("arraystore: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
