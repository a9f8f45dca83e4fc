"""Opening an array while it is being written, and after its writer was killed, says which (all backends).

Writers are real processes; "killed" is ``SIGKILL``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.errors import ArrayNotFoundError, IncompleteArrayError

from .conftest import run_cli

CREATE = """
import sys, time, numpy as np, arraystore
s = arraystore.create(sys.argv[1], (64, 64), "f4")
s[:32] = 1.0
s.flush()
print("READY", flush=True)
time.sleep(300)
"""

MODIFY = """
import sys, time, arraystore
s = arraystore.open(sys.argv[1], "r+")
s[0] = 5.0
s.flush()
print("READY", flush=True)
time.sleep(300)
"""


def _writer(code: str, path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.stdout is not None
    proc.stdout.close()


@pytest.mark.parametrize("name", ["a.dat", "a.npy", "a.h5", "a.zarr"])
def test_open_during_create_then_after_kill(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    proc = _writer(CREATE, path)
    try:
        with pytest.raises(ArrayNotFoundError, match=r"being written there right now .*\.partial"):
            arraystore.open(path)
        cli = run_cli("info", str(path))
        assert cli.returncode == 1 and "being written" in cli.stderr and cli.stderr.count("\n") == 1
    finally:
        _kill(proc)
    with pytest.raises(ArrayNotFoundError, match=r"its writer is gone") as info:
        arraystore.open(path)
    assert "right now" not in str(info.value)
    # and the leftover does not stop a new create
    with arraystore.create(path, (2,), "f4") as s:
        s[...] = 1
    assert arraystore.open(path)[...].tolist() == [1.0, 1.0]


def test_raw_r_plus_after_kill_says_the_writer_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "a.dat"
    with arraystore.create(path, (4, 4), "f4") as s:
        s[...] = 0
    proc = _writer(MODIFY, path)
    try:
        with pytest.raises(IncompleteArrayError, match="another process is writing it right now"):
            arraystore.open(path)
    finally:
        _kill(proc)
    for mode in ("r", "r+"):
        with pytest.raises(IncompleteArrayError) as info:
            arraystore.open(path, mode)
        assert "right now" not in str(info.value) and "writer lock" in str(info.value), mode
        assert "gone" in str(info.value)
    with arraystore.open(path, "r", allow_incomplete=True) as s:
        assert s[0].tolist() == [5.0] * 4 and s[1].tolist() == [0.0] * 4
    np.testing.assert_array_equal(np.fromfile(path, "<f4")[:4], 5.0)
