"""Replacing an HDF5 dataset: the old one stays readable until the new one is complete, and readers
of the old one never read a mixture. Writers and killers are real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import arraystore
from arraystore.errors import ArrayChangedError

OLD = np.arange(64 * 1024, dtype="<i8").reshape(64, 1024)  # 512 KiB


def _run(code: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env)


def _wait_for(marker: Path, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, f"the writer exited with {proc.returncode} before reaching the marker"
        assert time.monotonic() < deadline, "the writer never reached the marker"
        time.sleep(0.05)


def _file_with_old(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f["a"] = OLD
        f["other"] = np.arange(3)


@pytest.mark.parametrize("how", ["convert", "create"])
def test_kill_while_replacing_keeps_the_old_dataset(tmp_path: Path, how: str) -> None:
    path = tmp_path / "run.h5"
    _file_with_old(path)
    src = tmp_path / "new.npy"
    np.save(src, -OLD.astype("<f8"))  # another dtype, so a mixture could not go unnoticed
    marker = tmp_path / "marker"
    if how == "convert":
        code = f"""
            import os, time, arraystore
            def progress(done, total):
                if done and not os.path.exists({str(marker)!r}):
                    open({str(marker)!r}, "w").close()
                    time.sleep(600)
            arraystore.convert({str(src)!r}, {str(path) + "::/a"!r}, overwrite=True, max_memory="64KiB",
                               progress=progress)
        """
    else:
        code = f"""
            import time, numpy as np, arraystore
            s = arraystore.create({str(path) + "::/a"!r}, (64, 1024), "<f8", overwrite=True)
            s[:32] = -1.0
            s.flush()
            open({str(marker)!r}, "w").close()
            time.sleep(600)
        """
    proc = _run(code)
    try:
        _wait_for(marker, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with arraystore.open(f"{path}::/a") as s:  # the old array, complete and unchanged
        assert s.dtype == OLD.dtype and s[...].tolist() == OLD.tolist()
    with h5py.File(path, "r") as f:
        assert f["a"][...].tolist() == OLD.tolist()
    arraystore.convert(src, f"{path}::/a", overwrite=True, max_memory="64KiB")  # a rerun replaces it
    with arraystore.open(f"{path}::/a") as s:
        assert s.dtype == np.dtype("<f8") and s[...].tolist() == (-OLD.astype("<f8")).tolist()
    with h5py.File(path, "r") as f:  # and leaves no temporary dataset behind
        assert sorted(n for n in f if not h5py.h5ds.is_scale(f[n].id)) == ["a", "other"]


def test_replacement_is_published_at_close(tmp_path: Path) -> None:
    path = tmp_path / "run.h5"
    _file_with_old(path)
    with arraystore.create(f"{path}::/a", (2,), "<f4", overwrite=True) as s:
        s[...] = [1.5, 2.5]
        with h5py.File(path, "r", locking=False) as f:
            assert f["a"][...].tolist() == OLD.tolist()  # the old one until the new one is complete
    with arraystore.open(f"{path}::/a") as s:
        assert s[...].tolist() == [1.5, 2.5]
    with pytest.raises(RuntimeError), arraystore.create(f"{path}::/a", (2,), "<i2", overwrite=True) as s:
        raise RuntimeError("the writer fails")
    with arraystore.open(f"{path}::/a") as s, h5py.File(path, "r", locking=False) as f:
        assert s[...].tolist() == [1.5, 2.5]
        assert sorted(n for n in f if not h5py.h5ds.is_scale(f[n].id)) == ["a", "other"]


@pytest.mark.parametrize("how", ["create-dataset", "convert-dataset", "create-chunked", "other-dataset"])
def test_reader_of_a_replaced_dataset_never_reads_a_mixture(tmp_path: Path, how: str) -> None:
    path = tmp_path / "run.h5"
    _file_with_old(path)
    src = tmp_path / "new.npy"
    np.save(src, np.full((64, 1024), -1.0, "<f8"))
    code = {
        "create-dataset": f"""
            import numpy as np, arraystore
            with arraystore.create({str(path) + "::/a"!r}, (64, 1024), "<f8", overwrite=True) as s:
                s[...] = -1.0
        """,
        "convert-dataset": f"""
            import arraystore
            arraystore.convert({str(src)!r}, {str(path) + "::/a"!r}, overwrite=True)
        """,
        "create-chunked": f"""
            import numpy as np, arraystore
            with arraystore.create({str(path) + "::/a"!r}, (64, 1024), "<i8", overwrite=True, chunks=(8, 1024),
                                   compression="gzip") as s:
                s[...] = -5
        """,
        "other-dataset": f"""
            import arraystore
            with arraystore.open({str(path) + "::/other"!r}, mode="r+") as s:
                s[0] = 7
        """,
    }[how]
    with arraystore.open(f"{path}::/a") as reader:
        assert reader[:2].tolist() == OLD[:2].tolist()
        proc = _run(code)
        assert proc.wait() == 0
        for sel in (np.s_[...], np.s_[5:9], np.s_[63]):
            try:
                got = reader[sel]
            except ArrayChangedError as exc:
                message = str(exc)
                got = None
            if got is None:  # a typed error saying what to do
                assert "Open it again" in message and how != "other-dataset"
            else:  # the generation it opened, never a mixture nor new bytes read with the old dtype
                assert got.dtype == OLD.dtype and got.tolist() == OLD[sel].tolist()
    with arraystore.open(f"{path}::/a") as again:  # opening again reads the new generation
        assert again[0, 0] == {"other-dataset": 0, "create-chunked": -5}.get(how, -1.0)


def test_reader_of_a_replaced_file_keeps_its_generation(tmp_path: Path) -> None:
    path = tmp_path / "one.h5"
    with arraystore.create(path, OLD.shape, OLD.dtype) as s:
        s[...] = OLD
    with arraystore.open(path) as reader:
        assert reader[0, :3].tolist() == [0, 1, 2]
        proc = _run(f"""
            import arraystore
            with arraystore.create({str(path)!r}, (64, 1024), "<f8", overwrite=True) as s:
                s[...] = -1.0
        """)
        assert proc.wait() == 0
        assert reader.dtype == OLD.dtype and reader[...].tolist() == OLD.tolist()
    with arraystore.open(path) as s:
        assert s.dtype == np.dtype("<f8") and float(s[0, 0]) == -1.0
