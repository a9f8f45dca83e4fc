"""The ``arraystore`` command line.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
``(args) -> int``. Modules are imported only when the CLI runs. Every failure goes
through one handler (:mod:`._errors`): one line naming the user's path, or a JSON
object with ``--json``, and the documented exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ._errors import EXIT_CODES, EXIT_ERROR, EXIT_OK, EXIT_USAGE, UsageError, run_guarded

__all__ = ["EXIT_CODES", "EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

#: A URL (any scheme: parse_location accepts or refuses it), not a path to normalise.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

#: Sub-command modules, in the order ``--help`` lists them.
COMMANDS = ("info", "convert", "verify", "migrate", "inspect", "locality")

#: Arguments that name paths: normalised (``a/../b`` -> ``b``) before use, so messages name them so.
PATH_ARGS = ("path", "src", "dst", "file", "against", "root")


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors go through the CLI's one error handler."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    from .. import __version__

    parser = Parser(
        prog="arraystore",
        description="Store, convert and migrate N-dimensional arrays: raw .dat + sidecar, .npy, HDF5, Zarr v3.",
    )
    parser.add_argument("--version", action="version", version=f"arraystore {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    for command in sub.choices.values():  # also after the command: arraystore convert ... --debug
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _normalise(value: Any) -> Any:
    if not isinstance(value, str) or not value or _URL.match(value):
        return value  # URLs are not paths: s3://b/x must not become s3:/b/x, file:///x nor file:/x
    file, sep, key = value.partition("::")
    return os.path.normpath(os.path.expanduser(file)) + sep + key


def _command_of(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if a in COMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in argv
    parser = build_parser()
    holder: dict[str, argparse.Namespace] = {}

    def parse() -> int:
        holder["args"] = parser.parse_args(argv)
        return EXIT_OK

    code = run_guarded(parse, command=_command_of(argv), path=None, as_json=wants_json, debug="--debug" in argv)
    if code:
        return code
    args = holder["args"]
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    for name in PATH_ARGS:
        if hasattr(args, name):
            setattr(args, name, _normalise(getattr(args, name)))
    if hasattr(args, "paths"):
        args.paths = [_normalise(p) for p in args.paths]
    paths = [getattr(args, n) for n in ("path", "src", "file", "dst", "against") if getattr(args, n, None)]
    return run_guarded(lambda: args.func(args), command=args.command, path=paths,
                       as_json=bool(getattr(args, "json", False)), debug=args.debug)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
