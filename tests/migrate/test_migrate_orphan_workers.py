"""Pool workers (migrate's and map_blocks') exit when the process that owns the pool is killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from arraystore.parallel import mp_context, parent_identity, process_pool, worker_init

    if __name__ == "__main__":
        if sys.argv[1] == "pool":
            pool = process_pool(2)
        else:  # the fallback alone: no prctl, only the watchdog thread
            pool = ProcessPoolExecutor(
                2, mp_context=mp_context(), initializer=worker_init, initargs=(*parent_identity(), False)
            )
        futures = [pool.submit(time.sleep, 600) for _ in range(2)]
        while len(pool._processes) < 2:
            time.sleep(0.01)
        print(json.dumps(sorted(pool._processes)), flush=True)
        time.sleep(600)
    """
)


@pytest.fixture
def tree() -> Iterator[list[psutil.Process]]:
    started: list[psutil.Process] = []
    yield started
    for p in started:  # whatever the outcome, nothing this test started keeps running
        try:
            p.kill()
        except psutil.Error:
            pass


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and forkserver are POSIX")
@pytest.mark.parametrize("mode", ["pool", "watchdog-only"])
def test_workers_exit_when_the_owner_is_killed(tmp_path: Path, tree: list[psutil.Process], mode: str) -> None:
    script = tmp_path / "owner.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, env=env, text=True)
    owner = psutil.Process(proc.pid)
    tree.append(owner)
    assert proc.stdout is not None
    worker_pids = json.loads(proc.stdout.readline())
    workers = [psutil.Process(pid) for pid in worker_pids]
    descendants = owner.children(recursive=True)  # the workers, the forkserver, the resource tracker
    tree.extend(descendants)
    assert {w.pid for w in workers} <= {d.pid for d in descendants}
    assert all(w.is_running() for w in workers)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    _gone, alive = psutil.wait_procs(descendants, timeout=60)
    assert [p for p in alive if _running(p)] == []


#: The command, with one file whose conversion never ends (in a worker or in the command's process: the workers
#: import this script too): the pool cannot shut down, nor the command end, before the kill.
GATED_COMMAND = textwrap.dedent(
    """
    import sys, time
    from arraystore.migration import _job
    run = _job._run_job
    def gated(job):
        if job.source == "f000_f4.dat":
            time.sleep(3600)
        return run(job)
    _job._run_job = gated
    if __name__ == "__main__":
        from arraystore.cli import main
        sys.exit(main())
    """
)


def test_sigkill_of_the_migrate_command_leaves_no_worker(tmp_path: Path, tree: list[psutil.Process]) -> None:
    import numpy as np

    src = tmp_path / "src"
    src.mkdir()
    for i in range(48):
        np.random.default_rng(i).standard_normal(256 * 1024).astype("<f4").tofile(src / f"f{i:03d}_f4.dat")
    dst = tmp_path / "dst"
    script = tmp_path / "arraystore_command.py"
    script.write_text(GATED_COMMAND)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(
        [sys.executable, str(script), "migrate", str(src), str(dst), "--workers", "2", "--compression", "zstd"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    owner = psutil.Process(proc.pid)
    tree.append(owner)
    # Catch the owner with a worker (a child of the forkserver) alive, then freeze it (SIGSTOP): a frozen
    # owner starts no other process, so what is seen is what the SIGKILL below leaves behind.
    while not _workers(owner):
        assert proc.poll() is None, "migrate ended before its workers started"
        try:
            proc.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            pass
    owner.suspend()
    workers = _workers(owner)
    descendants = owner.children(recursive=True)
    tree.extend(descendants)
    assert {w.pid for w in workers} <= {d.pid for d in descendants}
    assert all(_running(w) for w in workers)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _gone, alive = psutil.wait_procs(descendants, timeout=60)
    assert [p for p in alive if _running(p)] == []


def _workers(owner: psutil.Process) -> list[psutil.Process]:
    """The worker processes of ``owner``'s pool: children of its children (the forkserver's)."""
    try:
        return [w for child in owner.children() for w in child.children()]
    except psutil.Error:
        return []


def _running(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE  # a zombie has exited; only its parent has not reaped it
    except psutil.Error:
        return False
