"""Ctrl-C (a real SIGINT to the process group) or SIGTERM stops ``arraystore migrate`` and ``map_blocks`` at once:
queued work cancelled, work in flight abandoned, the manifest of what was done written, exit 130."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

import arraystore
from arraystore.migration._manifest import Manifest

REPO = Path(__file__).resolve().parents[2]
NFILES = 24


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))


def _command() -> list[str]:
    script = Path(sys.executable).with_name("arraystore")  # the installed console script
    return [str(script)] if script.exists() else [sys.executable, "-m", "arraystore"]


@pytest.fixture
def group() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:  # nothing this test started keeps running
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _wait_for(predicate, proc: subprocess.Popen[bytes]) -> None:  # type: ignore[no-untyped-def]
    """Poll until ``predicate()``; fail if the process ends first (bounded by the process itself)."""
    while not predicate():
        assert proc.poll() is None, "the command ended before the condition was reached"
        try:
            proc.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            pass


def _running(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE  # a zombie has exited; only its parent has not reaped it
    except psutil.Error:
        return False


def _group_alive(pgid: int) -> list[psutil.Process]:
    """Members of the process group still running, after a bounded wait for them to exit."""
    members = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                members.append(p)
        except (ProcessLookupError, psutil.Error):
            pass
    for _ in range(600):  # each round waits up to 0.1 s for the next one to exit
        members = [p for p in members if _running(p)]
        if not members:
            break
        psutil.wait_procs(members, timeout=0.1)
    return members


#: The command, with one file that never finishes (its conversion sleeps, in a worker or in the command's process:
#: the workers import this script too): the run cannot end before the signal, however fast it goes.
GATED_COMMAND = (
    "import sys, time\n"
    "from arraystore.migration import _job\n"
    "run = _job._run_job\n"
    "def gated(job):\n"
    "    if job.source == 'f00_f4.dat':\n"
    "        time.sleep(3600)\n"
    "    return run(job)\n"
    "_job._run_job = gated\n"
    "if __name__ == '__main__':\n"
    "    from arraystore.cli import main\n"
    "    sys.exit(main())\n"
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_migrate_stops_writes_manifest_exits_130(
    tmp_path: Path, group: list[subprocess.Popen[bytes]], sig: signal.Signals
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    arrays = {}
    for i in range(NFILES):
        a = np.random.default_rng(i).standard_normal(256 * 1024).astype("<f4")  # 1 MiB each
        a.tofile(src / f"f{i:02d}_f4.dat")
        arrays[f"f{i:02d}_f4.dat"] = a
    dst = tmp_path / "dst"
    script = tmp_path / "arraystore_command.py"
    script.write_text(GATED_COMMAND)
    proc = subprocess.Popen(
        [sys.executable, str(script), "migrate", str(src), str(dst), "--workers", "2", "--compression", "zstd"],
        env=_env(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    group.append(proc)
    manifest = dst / "migration.jsonl"
    _wait_for(lambda: manifest.exists() and manifest.stat().st_size > 0, proc)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # what a terminal does on Ctrl-C: the whole foreground group
    else:
        os.kill(proc.pid, sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr.decode()
    assert b"Traceback" not in stderr
    records = Manifest(manifest).read()
    converted = {n for n, r in records.items() if r.status == "converted"}
    detail = f"{stderr.decode()}\n{manifest.read_text()[:3000]}"
    # The file in flight was abandoned (waiting for its hour-long conversion would outlast the 120 s above).
    assert converted and "f00_f4.dat" not in converted, detail
    for name in converted:
        with arraystore.open(dst / records[name].destination) as s:  # type: ignore[operator]
            np.testing.assert_array_equal(s[...], arrays[name])
    assert _group_alive(proc.pid) == []  # no worker, forkserver or tracker left behind
    # a rerun finishes the job from there
    rerun = subprocess.run([*_command(), "migrate", str(src), str(dst), "--workers", "2"], env=_env(),
                           capture_output=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert {r.status for r in Manifest(manifest).read().values()} <= {"converted", "skipped"}
    assert len(Manifest(manifest).read()) == NFILES
    shutil.rmtree(dst)


MAP_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import numpy as np
    import arraystore
    from arraystore.parallel import map_blocks

    def slow(block, sel):
        Path(os.environ["MARK"]).touch()
        time.sleep(3600)  # a block that never ends: only abandoning it lets the caller stop
        return 0

    if __name__ == "__main__":
        with arraystore.create(sys.argv[1], (64, 1024), "f4") as s:
            s[...] = 1
        try:
            map_blocks(slow, sys.argv[1], workers=2, max_bytes=4096)
        except KeyboardInterrupt:
            sys.exit(130)
    """
)


def test_interrupted_map_blocks_abandons_running_blocks(tmp_path: Path, group: list[subprocess.Popen[bytes]]) -> None:
    script = tmp_path / "job.py"
    script.write_text(MAP_SCRIPT)
    mark = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "a.npy")],
        env=dict(_env(), MARK=str(mark)), start_new_session=True, stderr=subprocess.PIPE,
    )
    group.append(proc)
    _wait_for(mark.exists, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr.decode()
    assert _group_alive(proc.pid) == []
