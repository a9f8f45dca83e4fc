"""A script that ends right after an icechunk call exits cleanly.

Icechunk hands each result to the asyncio loop from a tokio thread, which lets go of the GIL
to wake the loop and takes it back after. A script whose last statement is such a call can
reach interpreter finalization in that gap; on Python 3.11 the thread is then ended with
``pthread_exit`` and the process aborts (SIGABRT, after every line ran). Once arraystore has
used icechunk in a process, an exit handler gives those threads the GIL until they are idle.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("icechunk", reason="icechunk is in arraystore[virtual]")

from arraystore.meta import ArrayMeta
from arraystore.virtual import VirtualArray
from arraystore.virtual import icechunk as ours

SCRIPT = r'''
import sys
import icechunk, zarr
from pathlib import Path
from arraystore.meta import ArrayMeta
from arraystore.virtual import VirtualArray
from arraystore.virtual.icechunk import container_prefix, write_icechunk

tmp, data = Path(sys.argv[1]), Path(sys.argv[2])
st = data.stat()
va = VirtualArray.from_meta(data.name, data.name, ArrayMeta((4, 3), "<f4"), 0, size=st.st_size,
                            mtime_ns=st.st_mtime_ns, chunk_bytes=16)
write_icechunk(tmp / "v.icechunk", [va], data.parent)
print("WRITTEN", flush=True)
repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(tmp / "v.icechunk")),
                                authorize_virtual_chunk_access={container_prefix(data.parent): None})
zarr.open_group(repo.readonly_session("main").store, mode="r")[va.path][...].sum()  # the last statement
'''


def _archive(tmp_path: Path) -> Path:
    archive = tmp_path / "archive"
    archive.mkdir()
    np.arange(12, dtype="<f4").tofile(archive / "a.dat")
    return archive / "a.dat"


def test_scripts_ending_in_an_icechunk_read_exit_cleanly(tmp_path: Path) -> None:
    data = _archive(tmp_path)
    for run in range(6):  # the gap is short: several runs, each a fresh interpreter
        work = tmp_path / f"run{run}"
        work.mkdir()
        out = subprocess.run([sys.executable, "-c", SCRIPT, str(work), str(data)], capture_output=True, text=True,
                             timeout=300, check=False)
        assert "WRITTEN" in out.stdout, out.stderr[-2000:]
        assert out.returncode == 0, (run, out.returncode, out.stderr[-2000:])


def test_exit_handler_waits_for_the_runtime_threads_only_while_they_run(tmp_path: Path) -> None:
    data = _archive(tmp_path)
    st = data.stat()
    va = VirtualArray.from_meta(data.name, data.name, ArrayMeta((4, 3), "<f4"), 0, size=st.st_size,
                                mtime_ns=st.st_mtime_ns, chunk_bytes=16)
    ours.write_icechunk(tmp_path / "v.icechunk", [va], data.parent)
    assert ours._AT_EXIT, "arraystore used icechunk: the exit handler is registered"
    running = ours.runtime_threads_running()
    if running is None:
        pytest.skip("/proc/self/task is not readable here: the handler only sleeps briefly")
    names = Path("/proc/self/task").glob("*/comm")
    assert any(p.read_text().startswith("tokio-runtime") for p in names), "icechunk's runtime threads are seen"
    begun = time.monotonic()
    ours._let_runtime_threads_return(limit_s=5.0)
    idle_wait = time.monotonic() - begun
    assert ours.runtime_threads_running() is False
    # A thread named like the runtime's and kept on a CPU (hashing, the GIL let go) holds the handler
    # until its limit.
    stop = threading.Event()
    block = bytes(8 << 20)

    def spin() -> None:
        while not stop.is_set():
            hashlib.sha256(block).digest()

    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    named = threading.Event()

    def named_then_spin() -> None:
        libc.prctl(15, b"tokio-runtime-x", 0, 0, 0)  # PR_SET_NAME
        named.set()
        spin()

    worker = threading.Thread(target=named_then_spin)
    worker.start()
    try:
        assert named.wait(60)  # the handler looks at thread names: this one must have its name first
        begun = time.monotonic()
        ours._let_runtime_threads_return(limit_s=0.3)
        held = time.monotonic() - begun
    finally:
        stop.set()
        worker.join()
    assert held >= 0.3, (held, idle_wait)
