"""Two writers on one store, from two processes: the second is refused with LockedError every time; readers proceed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.errors import LockedError

from .conftest import ROOT

BACKENDS = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}

HOLD = textwrap.dedent("""
    import sys, time, pathlib
    import numpy as np
    import arraystore
    path, backend, how, ready, stop = sys.argv[1:6]
    if how == "open":
        store = arraystore.open(path, "r+", backend=backend)
        store[0] = 7
    else:
        store = arraystore.create(path, (8, 8), "<f4", backend=backend)
    pathlib.Path(ready).touch()
    while not pathlib.Path(stop).exists():
        time.sleep(0.01)
    store.close()
""")


class Holder:
    """A child process holding a store open for writing until :meth:`stop`."""

    def __init__(self, tmp: Path, path: Path, backend: str, how: str) -> None:
        self.ready, self.stop_file = tmp / "ready", tmp / "stop"
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), backend, how, str(self.ready),
                                      str(self.stop_file)], env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"holder failed: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("holder did not get ready")
            time.sleep(0.01)

    def stop(self) -> None:
        self.stop_file.touch()
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err.decode()


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def existing(tmp_path: Path, backend: str) -> Path:
    path = tmp_path / f"a{BACKENDS[backend]}"
    with arraystore.create(path, (8, 8), "<f4", backend=backend) as s:
        s[...] = np.arange(64, dtype="<f4").reshape(8, 8)
    return path


def test_second_writer_is_refused_every_time_and_readers_proceed(tmp_path: Path, existing: Path, backend: str) -> None:
    holder = Holder(tmp_path, existing, backend, "open")
    try:
        for _ in range(5):
            with pytest.raises(LockedError):
                arraystore.open(existing, "r+", backend=backend)
        with pytest.raises(LockedError):
            arraystore.create(existing, (8, 8), "<f4", backend=backend, overwrite=True)
        # The holder has written, so the store is flagged incomplete while it is open (npy has no flag):
        # a reader proceeds when it says it accepts data in flux.
        with arraystore.open(existing, "r", backend=backend, allow_incomplete=True) as reader:
            assert reader.shape == (8, 8)
            assert reader[1:].sum() == sum(range(8, 64))
    finally:
        holder.stop()
    with arraystore.open(existing, "r+", backend=backend) as s:  # free again once the holder closed
        assert (s[0] == 7).all()


def test_reader_opened_before_the_writer_keeps_reading(tmp_path: Path, existing: Path, backend: str) -> None:
    with arraystore.open(existing, "r", backend=backend) as reader:
        holder = Holder(tmp_path, existing, backend, "open")
        try:
            assert reader[1:].sum() == sum(range(8, 64))
        finally:
            holder.stop()


def test_two_processes_creating_the_same_array(tmp_path: Path, backend: str) -> None:
    path = tmp_path / f"new{BACKENDS[backend]}"
    holder = Holder(tmp_path, path, backend, "create")
    try:
        for _ in range(3):
            with pytest.raises(LockedError):
                arraystore.create(path, (8, 8), "<f4", backend=backend)
    finally:
        holder.stop()
    with arraystore.open(path, backend=backend) as s:
        assert s.shape == (8, 8)


def test_lock_timeout_waits_for_the_other_writer(tmp_path: Path, existing: Path, backend: str) -> None:
    holder = Holder(tmp_path, existing, backend, "open")
    holder.stop_file.touch()  # the holder closes within moments; a waiting writer gets the lock then
    with arraystore.open(existing, "r+", backend=backend, lock_timeout=60) as s:
        s[1] = 1
    holder.stop()
