"""A real process killed in the middle of an ``r+`` session leaves an array that says so, on every backend.

``.npy`` has no completeness flag of its own: the store writes ``<name>.npy.incomplete``
before its first write and removes it at a clean close (see ``arraystore.backends.npy``).
A live writer (holding the lock) and a dead one are told apart in the message.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.errors import IncompleteArrayError

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}
SHAPE = (64, 1024)

CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import arraystore
    path, progress, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    s = arraystore.open(path, "r+")
    if mode == "memmap":
        m = s.as_memmap()
    i = 0
    while True:  # rewrite rows forever, reporting progress; the parent kills us
        row = i % s.shape[0]
        if mode == "memmap":
            m[row] = i
        else:
            s[row] = np.full(s.shape[1], i, s.dtype)
        i += 1
        with open(progress, "w") as f:
            f.write(str(i))
        if mode == "hold" and i == 3:
            s.flush()
            with open(progress, "w") as f:
                f.write("holding")
            import time
            time.sleep(600)
""")


def _start(path: Path, mode: str) -> tuple[subprocess.Popen[bytes], Path]:
    progress = path.with_name("progress")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(progress), mode],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    return proc, progress


def _wait_for(progress: Path, proc: subprocess.Popen[bytes], ready: object) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = progress.read_text() if progress.exists() else ""
        if text and ready(text):  # type: ignore[operator]
            return
        assert proc.poll() is None, "the writer died on its own"
        time.sleep(0.01)
    raise AssertionError("the writer made no progress in 60 s")


def _make(tmp_path: Path, backend: str) -> Path:
    path = tmp_path / f"a{SUFFIXES[backend]}"
    kw = {"chunks": (8, 1024)} if backend in ("hdf5", "zarr") else {}
    with arraystore.create(path, SHAPE, "<f8", **kw) as s:
        s[...] = -1
    return path


@pytest.mark.parametrize("backend", list(SUFFIXES))
def test_killed_r_plus_writer_leaves_an_incomplete_array(tmp_path: Path, backend: str) -> None:
    path = _make(tmp_path, backend)
    proc, progress = _start(path, "rows")
    try:
        _wait_for(progress, proc, lambda t: int(t) >= 200)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with pytest.raises(IncompleteArrayError, match="crash or kill"):
        arraystore.open(path)
    with pytest.raises(IncompleteArrayError):
        arraystore.open(path, "r+")
    with arraystore.open(path, allow_incomplete=True) as s:
        assert not s.complete
        if backend in ("raw", "npy"):  # mapped writes reach the page cache; HDF5/Zarr may still buffer them
            assert (s[...] != -1).any()
    with arraystore.open(path, "r+", allow_incomplete=True) as s:  # repair: rewrite, close cleanly
        s[...] = 7
    with arraystore.open(path) as s:
        assert s.complete and (s[...] == 7).all()


def test_killed_npy_memmap_writer_leaves_an_incomplete_array(tmp_path: Path) -> None:
    path = _make(tmp_path, "npy")
    proc, progress = _start(path, "memmap")
    try:
        _wait_for(progress, proc, lambda t: int(t) >= 50)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with pytest.raises(IncompleteArrayError):
        arraystore.open(path)


@pytest.mark.parametrize("backend", ["raw", "npy"])
def test_live_writer_is_told_from_a_dead_one(tmp_path: Path, backend: str) -> None:
    path = _make(tmp_path, backend)
    proc, progress = _start(path, "hold")
    try:
        _wait_for(progress, proc, lambda t: t == "holding")
        with pytest.raises(IncompleteArrayError, match="writing it right now"):
            arraystore.open(path)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with pytest.raises(IncompleteArrayError, match="crash or kill"):
        arraystore.open(path)


def test_npy_clean_sessions_leave_no_marker(tmp_path: Path) -> None:
    path = _make(tmp_path, "npy")
    with arraystore.open(path, "r+") as s:
        s[0] = 1
        assert (tmp_path / "a.npy.incomplete").exists()
        s.flush(durable=True)  # a durable flush is a completion point, as for raw sidecars
        assert not (tmp_path / "a.npy.incomplete").exists()
        s[1] = 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]
    with arraystore.open(path, "r+") as s:  # opened for writing, nothing written: nothing touched
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]
    assert np.load(path)[:2, 0].tolist() == [1, 2]
    # a stale marker of a replaced file does not survive overwrite
    (tmp_path / "a.npy.incomplete").write_text("{}")
    with arraystore.create(path, (2,), "<i2", overwrite=True) as s:
        s[...] = 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]
