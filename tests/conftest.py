"""Shared test set-up.

Hypothesis profiles: ``ci`` (deterministic, the default) and ``dev`` (larger, randomised);
select with ``HYPOTHESIS_PROFILE=dev pytest`` (``.ci/run`` sets ``ci`` explicitly).

Fixtures ``case`` and ``make_store``: stores of every available backend filled with known
data, for the access, parallel and integration tests.

No test may leave a process running. On Linux the pytest process makes itself a child
subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so a grandchild orphaned by a test (the
forkserver, pool workers or resource tracker of a subprocess the test killed) is
re-parented to pytest instead of to init and stays visible. At the end of the session
:func:`pytest_sessionfinish` stops the multiprocessing helpers that pytest's own pools
started (the forkserver and the resource tracker are per-process singletons that Python
otherwise ends only at interpreter exit), then lists every remaining descendant; any
left after a minute (``ARRAYSTORE_LEFTOVER_WAIT`` seconds) is reported by pid and command
line, killed, and fails the session.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import arraystore
from arraystore.registry import BACKENDS


def _become_subreaper() -> None:
    """Orphaned descendants of pytest are re-parented to pytest (Linux), so leaks stay visible."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_child_subreaper = 36
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl: only direct children are checked
        pass


_become_subreaper()

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=300,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SUFFIX = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}


def _importable(name: str) -> bool:
    try:
        importlib.import_module(BACKENDS[name].target.partition(":")[0])
    except ImportError:
        return False
    return True


#: (backend, chunks) cases: contiguous for every backend, chunked where the backend chunks.
AVAILABLE = [b for b in SUFFIX if _importable(b)]
CASES = [(b, None) for b in AVAILABLE] + [(b, "chunked") for b in AVAILABLE if b in ("hdf5", "zarr")]


@pytest.fixture(params=CASES, ids=[f"{b}-{c or 'contiguous'}" for b, c in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    return request.param  # type: ignore[no-any-return]


def _make(
    tmp_path: Path, backend: str, data: np.ndarray[Any, Any], chunks: Any = None, name: str = "a", **kw: Any
) -> str:
    path = str(tmp_path / f"{name}{SUFFIX[backend]}")
    if chunks == "chunked":
        chunks = tuple(max(1, n // 3) for n in data.shape)
    with arraystore.create(path, data.shape, data.dtype, backend=backend, chunks=chunks, **kw) as store:
        store[...] = data
    return path


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[..., str]:
    """``make_store(backend, data, chunks=None, **create_kwargs)``: write ``data`` as a new array, return its path.

    ``chunks="chunked"`` picks chunks of about a third of each axis.
    """
    return lambda backend, data, chunks=None, **kw: _make(tmp_path, backend, data, chunks, **kw)


def _stop_multiprocessing_helpers() -> None:
    """Stop the forkserver and resource tracker this process started, as interpreter exit would.

    Both are singletons started on first use by ``ProcessPoolExecutor`` with the
    forkserver start method (arraystore's, see :func:`arraystore.parallel.mp_context`)
    and live until the interpreter exits. ``_stop`` is what CPython's own test suite
    uses to end them; it closes their pipe and waits for them.
    """
    import multiprocessing.forkserver
    import multiprocessing.resource_tracker

    for helper in (multiprocessing.forkserver._forkserver, multiprocessing.resource_tracker._resource_tracker):
        stop = getattr(helper, "_stop", None)
        if stop is not None:
            stop()


def leftover_processes(timeout: float = 5.0) -> list[str]:
    """Kill and describe every descendant of this process still running after ``timeout`` seconds."""
    import time

    import psutil

    me = psutil.Process()
    deadline = time.monotonic() + timeout
    alive = [c for c in me.children(recursive=True) if _alive(c)]
    while alive and time.monotonic() < deadline:  # re-listed: a process that exits may leave an orphan
        psutil.wait_procs(alive, timeout=min(0.5, max(0.0, deadline - time.monotonic())))
        alive = [c for c in me.children(recursive=True) if _alive(c)]
    found = []
    for proc in alive:
        try:
            found.append(f"pid {proc.pid}: {' '.join(proc.cmdline())[:200]}")
            proc.kill()
        except psutil.Error:
            continue
    _reap()
    return found


def _alive(proc: Any) -> bool:
    import psutil

    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _reap() -> None:
    """Collect the exit status of re-parented orphans (they are not ours to ``wait`` on otherwise)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when a test left a process running (see the module docstring)."""
    if hasattr(session.config, "workerinput"):  # a pytest-xdist worker: its controller checks
        return
    _stop_multiprocessing_helpers()
    # A process still exiting (a worker's watchdog, a cluster closing) on a loaded machine is given a minute;
    # the wait ends as soon as none is left. The self-test of this check shortens it (it leaks on purpose).
    found = leftover_processes(float(os.environ.get("ARRAYSTORE_LEFTOVER_WAIT", "60")))
    if found:
        sys.stderr.write(
            "\nerror: the tests left these processes running (now killed); every test must stop "
            "what it starts:\n  " + "\n  ".join(found) + "\n"
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
