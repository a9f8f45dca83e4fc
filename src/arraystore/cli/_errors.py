"""How the command line reports a failure: one line (or one JSON object), an exit code.

Every sub-command runs inside :func:`run_guarded`, the CLI's only error handler. It maps
exceptions to the exit codes of :data:`EXIT_CODES` (documented in docs/cli.md, which is
generated from this table), rewrites the library's Python phrasing of remedies
("pass overwrite=True") into the command line's ("pass --overwrite"), names paths as
the user gave them (normalised, without the ``.partial`` staging names), and with
``--json`` prints the error as JSON. ``--debug`` re-raises instead, for the traceback.
"""

from __future__ import annotations

import _thread
import contextlib
import errno
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import ArrayStoreError

__all__ = ["EXIT_CODES", "UsageError", "cli_message", "exit_code", "run_guarded"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141


class UsageError(Exception):
    """The command line itself is wrong (unknown option, bad value): exit code 2."""


#: Exit code -> meaning, in the order docs/cli.md lists them.
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "an error: arraystore's (the message says what was expected, what was found and what to do) "
    "or the operating system's (a missing folder, a permission)",
    2: "usage error: an unknown option or a malformed value",
    3: "`migrate` / `inspect`: some file is undetermined (no metadata; see the suggested rules)",
    4: "`migrate` / `inspect`: some file failed (or its metadata conflicts); the summary gives each reason",
    130: "interrupted (Ctrl-C)",
    141: "the output's reader stopped reading (e.g. `| head`): the output ends there, without an error message",
}

#: Python-keyword remedies in library messages -> the command line's words. Order matters:
#: longer phrases first. ``{cmd}``-specific spellings are in :data:`_PER_COMMAND`.
_PHRASES: tuple[tuple[str, str], ...] = (
    (r"open it with meta=ArrayMeta\(shape, dtype\) \(and write_sidecar=True to record it\)",
     "give its layout with --dtype and --shape (and --order, --offset; --write-sidecar records it)"),
    (r"meta=ArrayMeta\([^)]*\)", "--dtype and --shape"),
    (r"\bmeta= says", "--dtype and --shape say"),
    (r"\bmeta=(\.\.\.)?", "--dtype and --shape"),
    (r"write_sidecar=True", "--write-sidecar"),
    (r"overwrite=True", "--overwrite"),
    (r"resume=False", "--no-resume"),
    (r"resumes with resume=True", "resumes when the same command is run again"),
    # Object-store settings: the command line takes them from the environment only.
    (r"none in the environment or storage_options=, ", "none in the environment, "),
    (r", or pass storage_options= \(for a public bucket: \{'skip_signature': True\}\)",
     " (for a public bucket: AWS_SKIP_SIGNATURE=true)"),
    (r" or storage_options=;", ";"),
    (r"verify=False", "--no-verify"),
    (r"max_memory=?", "--max-memory"),
    (r"max_bytes=?", "--max-memory"),
    (r"against=(\.\.\.)?", "--against OTHER"),
    (r"\bchunks=", "--chunks "),
    (r"\bshards=", "--shards "),
    (r"\bcompression=", "--compression "),
    (r"\bscheduler=", "--scheduler "),
    (r"\bworkers=", "--workers "),
    (r"\bdurable=True", "--durable"),
    (r"\ballow_incomplete=True", "`arraystore info`"),
    (r"\bdtype=", "--dtype "),
    (r"\bshape=", "--shape "),
    (r"\boffset=", "--offset "),
)

#: Keywords whose option differs per sub-command: ``backend=`` is ``--to`` for the
#: destination of convert/migrate, ``--backend`` where a path is read.
_PER_COMMAND: dict[str, tuple[tuple[str, str], ...]] = {
    "convert": ((r"\bbackend=", "--to "), (r"\border=", "--order ")),
    "migrate": ((r"\bbackend=", "--to "), (r"\bto=", "--to ")),
    "info": ((r"\bbackend=", "--backend "),),
    "verify": ((r"\bbackend=", "--backend "),),
}


def cli_message(message: str, command: str | None) -> str:
    """A library message with its Python remedies phrased as options of ``command``."""
    for pattern, repl in (*_PER_COMMAND.get(command or "", ()), *_PHRASES):
        message = re.sub(pattern, repl.replace("\\", "\\\\"), message)
    message = re.sub(r"\s+", " ", message).strip()  # one line, always
    return re.sub(r" +([,;)])", r"\1", message)


#: Staging names (``x.zarr.partial``, ``x.zarr.partial.journal.jsonl``, ``f.h5.partial.key.journal.jsonl``).
_STAGING = re.compile(r"\.partial(\.[^/\\]*)?$")


def user_path(path: str | os.PathLike[str]) -> str:
    """The path as the user would name it: normalised, staging suffixes removed."""
    return _STAGING.sub("", os.path.normpath(os.fspath(path)))


def _os_message(exc: OSError) -> tuple[str, str | None]:
    name = exc.filename
    if name is None:
        return (exc.strerror or str(exc)), None
    path = user_path(name)
    parent = os.path.dirname(path) or "."
    if exc.errno == errno.ENOENT and not os.path.isdir(parent):
        return f"{path}: the folder {parent} does not exist; create it first (mkdir -p {parent})", path
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{path}: permission denied ({exc.strerror}); check the file's and its folder's permissions", path
    return f"{path}: {exc.strerror or exc}", path


#: A URL (kept as written: ``s3://b/../x`` is not ``s3://x``), or an absolute path.
_ABS_PATH = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]*)|(/[^\s:;,'\"()\[\]]+)")


def _normalise_paths(message: str) -> str:
    """Collapse ``a/../b`` and staging suffixes in the absolute paths a message names (not in its URLs)."""
    def one(m: re.Match[str]) -> str:
        path = m.group(2)
        if path is None or not ("/.." in path or "/./" in path or ".partial" in path):
            return m.group(0)
        return user_path(path)

    return _ABS_PATH.sub(one, message)


def exit_code(exc: BaseException) -> int:
    """The documented exit code for an exception that stopped a command."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    return EXIT_ERROR


def _named(message: str, paths: list[str]) -> str | None:
    """The command's path argument the message is about (the first one it names, else the first)."""
    for p in paths:
        file = p.partition("::")[0]
        if file and (file in message or os.path.abspath(file) in message):
            return p
    return paths[0] if paths else None


def describe(exc: BaseException, command: str | None, path: str | list[str] | None) -> dict[str, Any]:
    """``type``, ``message``, ``path`` and ``exit_code`` of a failure, as the CLI reports it."""
    found: str | None = None
    if isinstance(exc, KeyboardInterrupt):
        message = "interrupted"
    elif isinstance(exc, ArrayStoreError):
        message = _normalise_paths(cli_message(str(exc), command))
        found = getattr(exc, "path", None)
    elif isinstance(exc, OSError):
        message, found = _os_message(exc)
    else:
        message = cli_message(str(exc), command)
    if found is None and path is not None:
        found = _named(message, [path] if isinstance(path, str) else path)
    return {
        "type": type(exc).__name__,
        "message": message,
        "path": user_path(found) if found is not None else None,
        "exit_code": exit_code(exc),
    }


def report(exc: BaseException, *, command: str | None, path: str | list[str] | None, as_json: bool) -> int:
    """Print the failure on stderr (one line, or one JSON object) and return its exit code."""
    info = describe(exc, command, path)
    if as_json:
        print(json.dumps(info), file=sys.stderr)
    elif isinstance(exc, UsageError):
        prog = f"arraystore {command}" if command else "arraystore"
        print(f"{prog}: error: {info['message']} (see {prog} --help)", file=sys.stderr)
    elif isinstance(exc, KeyboardInterrupt):
        print("arraystore: interrupted", file=sys.stderr)
    else:
        print(f"arraystore: error: {info['message']} [{info['type']}]", file=sys.stderr)
    return int(info["exit_code"])


def _quiet_stdout() -> int:
    """After the reader of stdout went away: send what is still buffered nowhere, as a killed pipe would."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a file (captured in tests)
        pass
    return EXIT_PIPE


@contextlib.contextmanager
def _interrupts_kept() -> Iterator[None]:
    """Raise again an interrupt that Python swallowed.

    A Ctrl-C (or a SIGTERM turned into one) raises ``KeyboardInterrupt`` wherever the main
    thread is; inside a weakref callback or a finaliser Python ignores it ("Exception ignored
    in ...") and the command went on to the end. Such an interrupt is delivered again, from
    a timer thread a moment later, while the command runs (a signal's handler run inside the
    hook would be swallowed too; one swallowed again is delivered again).
    """
    previous = sys.unraisablehook
    running = [True]

    def deliver(signum: signal.Signals) -> None:
        if running[0]:  # not once the command is over
            _thread.interrupt_main(signum)

    def again() -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            if callable(signal.getsignal(signum)):
                timer = threading.Timer(0.01, deliver, (signum,))
                timer.daemon = True
                timer.start()
                return

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
            try:
                again()
            except KeyboardInterrupt:  # an earlier one, delivered while in here
                again()
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        running[0] = False
        sys.unraisablehook = previous


def run_guarded(func: Callable[[], int], *, command: str | None, path: str | list[str] | None, as_json: bool,
                debug: bool) -> int:
    """Run a command; map whatever stops it to one reported line and an exit code."""
    try:
        with _interrupts_kept():
            return int(func())
    except BrokenPipeError:
        return _quiet_stdout()
    except (ArrayStoreError, OSError, UsageError, KeyboardInterrupt) as exc:
        if debug:
            raise
        return report(exc, command=command, path=path, as_json=as_json)
    except Exception as exc:  # a bug: still one line, and the way to see more
        if debug:
            raise
        message = f"internal error: {exc}; rerun with --debug for the traceback and report it"
        first = path if isinstance(path, str) or path is None else (path[0] if path else None)
        info: dict[str, Any] = {"type": type(exc).__name__, "message": message, "path": first,
                                "exit_code": EXIT_ERROR}
        if as_json:
            print(json.dumps(info), file=sys.stderr)
        else:
            print(f"arraystore: error: {cli_message(message, command)} [{info['type']}]", file=sys.stderr)
        return EXIT_ERROR
