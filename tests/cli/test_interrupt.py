"""Ctrl-C (a real SIGINT to the command's process group) ends a command with one line and exit code 130."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import arraystore

from .conftest import SCRIPT


def _has_open(pid: int, path: Path) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def test_sigint_during_verify_exits_130_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "big.dat"
    with arraystore.create(path, (1 << 21,), "f4") as s:  # 8 MiB, read back in 16-byte slabs: slow
        s[...] = np.float32(1)
    proc = subprocess.Popen([str(SCRIPT), "verify", str(path), "--against", str(path), "--max-memory", "16"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _has_open(proc.pid, path):  # the command is running (past start-up) once it reads the file
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "verify never opened the file"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err == "arraystore: interrupted\n" and out == ""


def test_an_interrupt_raised_inside_a_weakref_callback_still_stops_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A signal's KeyboardInterrupt that lands in a weakref callback (Python ignores exceptions there) is raised
    again: the command stops with 130 rather than going on to the end (a SIGTERM'd migrate exited 0 once)."""
    import weakref

    from arraystore.cli._errors import EXIT_INTERRUPTED, run_guarded

    class Thing:
        pass

    def interrupted(_ref: object) -> None:
        raise KeyboardInterrupt  # as a signal handler does, wherever the main thread is

    def command() -> int:
        thing = Thing()
        ref = weakref.ref(thing, interrupted)
        del thing  # the callback runs here, and its KeyboardInterrupt is swallowed
        assert ref() is None
        deadline = time.monotonic() + 60  # a safety net: the work goes on unless the interrupt is raised again
        while time.monotonic() < deadline:
            time.sleep(0.001)
        return 0

    assert run_guarded(command, command="test", path=None, as_json=False, debug=False) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "arraystore: interrupted\n"
