"""Ctrl-C of ``arraystore convert --scheduler local``: a real SIGINT to the real process group.

The command stops, exits 130 with one line (no worker tracebacks), leaves the staged
destination and its journal, publishes nothing and leaves no cluster process running;
a rerun resumes from the journal and gives the same array.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

import arraystore

pytest.importorskip("distributed", reason="convert --scheduler needs dask.distributed")

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))


@pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGINT are POSIX")
def test_ctrl_c_stops_leaves_a_resumable_state_and_no_processes(tmp_path: Path) -> None:
    exe = shutil.which("arraystore", path=os.path.dirname(sys.executable))
    assert exe is not None, "the arraystore command is not installed next to this Python"
    data = np.random.default_rng(0).random((4096, 2048), dtype=np.float32)
    src = tmp_path / "src.dat"
    with arraystore.create(src, data.shape, data.dtype) as store:
        store[...] = data
    dst = tmp_path / "dst.zarr"
    journal = tmp_path / "dst.zarr.partial.journal.jsonl"
    argv = [exe, "convert", str(src), str(dst), "--scheduler", "local", "--workers", "2",
            "--max-memory", "4MiB", "--compression", "zstd:3"]
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as a terminal's job is
    group: set[psutil.Process] = set()
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            group.update(psutil.Process(proc.pid).children(recursive=True))
            if journal.exists() and journal.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the conversion ended before it could be interrupted; make the array larger"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "arraystore: interrupted"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert not dst.exists()
    assert journal.exists() and (tmp_path / "dst.zarr.partial").exists()
    _, alive = psutil.wait_procs(list(group), timeout=60)  # returns when they are gone; generous under load
    assert [p.pid for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []

    rerun = subprocess.run([*argv, "--json"], env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["blocks_resumed"] > 0
    with arraystore.open(dst, "r") as store:
        np.testing.assert_array_equal(store[...], data)
    assert not journal.exists()
