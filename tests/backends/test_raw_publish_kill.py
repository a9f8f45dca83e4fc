"""A raw array's publish killed between its two renames (data into place, then its sidecar) is finished later.

``RawStore._publish`` writes the complete sidecar beside the staged data, renames the
data into place, then the sidecar. A SIGKILL between the two renames used to leave a
``.dat`` without a sidecar (or under an "incomplete" one): unreadable, and a rerun of the
migration that wrote it failed. The next open, create or conversion now finishes the
publish, and leaves a publish in progress alone.
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
from arraystore._open import exists
from arraystore.errors import ArrayStoreError

SRC = str(Path(__file__).resolve().parents[2] / "src")

KILL_AT = """
import os, signal, numpy as np, arraystore
from arraystore import _fsutil
def hook(step):
    if step == "raw data placed":
        {action}
_fsutil._replace_hook = hook
with arraystore.create({path!r}, (8, 8), "<f8", overwrite=True{header}) as s:
    s[...] = np.full((8, 8), -1.5)
"""

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


def _run(code: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.parametrize("before", ["nothing", "an old array"])
@pytest.mark.parametrize("header", ["", ", header='envi'"])
@pytest.mark.parametrize("next_run", ["open", "exists", "create", "convert"])
def test_a_kill_between_the_renames_is_finished_by_the_next_run(
    tmp_path: Path, before: str, header: str, next_run: str
) -> None:
    path = tmp_path / "x.dat"
    if before == "an old array":
        with arraystore.create(path, (8, 8), "<f8") as s:
            s[...] = np.arange(64.0).reshape(8, 8)
    proc = _run(KILL_AT.format(action="os.kill(os.getpid(), signal.SIGKILL)", path=str(path), header=header))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (tmp_path / "x.dat.partial.json").exists()  # the kill really landed between the renames
    assert not (tmp_path / "x.dat.partial").exists()
    if next_run == "exists":
        assert exists(path)  # what create(overwrite=False), conversions and migrations ask first
    if next_run in ("open", "exists"):
        with arraystore.open(path) as s:
            assert s.complete and np.array_equal(s[...], np.full((8, 8), -1.5))
        assert (tmp_path / "x.dat.hdr").exists() == bool(header)
    elif next_run == "create":
        with arraystore.create(path, (4,), "<i8", overwrite=True) as s:
            s[...] = 7
        with arraystore.open(path) as s:
            assert np.array_equal(s[...], np.full(4, 7))
    else:
        src = tmp_path / "n.npy"
        np.save(src, np.arange(5.0))
        arraystore.convert(src, path, overwrite=True)
        with arraystore.open(path) as s:
            assert np.array_equal(s[...], np.arange(5.0))
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


def test_a_publish_in_progress_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "x.dat"
    code = KILL_AT.format(action="print('placed', flush=True); input()", path=str(path), header="")
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "placed"
        with pytest.raises(ArrayStoreError):
            arraystore.open(path)  # between the renames of a live writer: not finished behind its back
        assert (tmp_path / "x.dat.partial.json").exists()
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with arraystore.open(path) as s:
        assert np.array_equal(s[...], np.full((8, 8), -1.5))


def test_a_staged_sidecar_that_does_not_fit_the_data_is_left_alone(tmp_path: Path) -> None:
    """The data is not the size the staged sidecar describes: not a killed publish; nothing is renamed."""
    path = tmp_path / "x.dat"
    proc = _run(KILL_AT.format(action="os.kill(os.getpid(), signal.SIGKILL)", path=str(path), header=""))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with open(path, "ab") as f:
        f.write(b"\\0" * 8)
    with pytest.raises(ArrayStoreError, match="sidecar"):
        arraystore.open(path)
    assert (tmp_path / "x.dat.partial.json").exists()
