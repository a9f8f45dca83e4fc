"""The per-file fast paths of a migration: files resolved in the workers, small files copied in one write,
manifest lines written (and fsynced) per batch; each keeps the guarantees of the slow path."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.errors import MetadataError, VerificationError
from arraystore.location import Location
from arraystore.migration import FileRecord, _job, migrate
from arraystore.migration import run as migration_run
from arraystore.migration._manifest import Manifest
from arraystore.registry import backend_class

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "legacy"
RULES = REPO / "examples" / "rules.toml"


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))


def _outcome(rec: FileRecord) -> tuple[object, ...]:
    err = rec.error["type"] if rec.error else None
    return (rec.source, rec.status, rec.destination, rec.resolution, rec.source_checksum, rec.verified, err)


@pytest.mark.parametrize("to", ["npy", "zarr"])
def test_files_resolved_in_workers_give_the_same_report_as_in_this_process(
    tmp_path: Path, to: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migration_run, "IN_PROCESS_FILES", 0)  # the pool, even for one batch
    archive = tmp_path / "legacy"
    shutil.copytree(EXAMPLE, archive)
    unused = tmp_path / "more.toml"
    unused.write_text('[[rule]]\nglob = "nowhere/*.bin"\ndtype = "int16"\n')
    one = migrate(archive, tmp_path / "one", to=to, rules=[RULES, unused], workers=1)
    two = migrate(archive, tmp_path / "two", to=to, rules=[RULES, unused], workers=2)
    assert [_outcome(r) for r in two.records] == [_outcome(r) for r in one.records]
    assert {r.status for r in one.records} >= {"converted", "undetermined", "failed"}
    assert two.rules_unused == one.rules_unused == ["nowhere/*.bin"]
    suggested = [(tmp_path / d / "rules-suggested.toml").read_text() for d in ("one", "two")]
    assert suggested[0] == suggested[1] and "[[rule]]" in suggested[0]
    assert set(Manifest(tmp_path / "two" / "migration.jsonl").read()) == {r.source for r in one.records}


DTYPES = ["|u1", "<i2", ">i2", "<u4", ">f4", "<f8", ">c8", "|b1"]


@settings(max_examples=30, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(0, 6), min_size=1, max_size=3),
    order=st.sampled_from(["C", "F"]),
    offset=st.sampled_from([0, 16]),
    seed=st.integers(0, 2**16),
)
def test_a_small_file_is_written_byte_for_byte_as_a_conversion_writes_it(
    dtype: str, shape: list[int], order: str, offset: int, seed: int
) -> None:
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 256, size=int(np.prod(shape)) * dt.itemsize, dtype=np.uint8).tobytes()
    if dt.kind == "b":
        values = bytes(b & 1 for b in values)
    expected = np.ndarray(tuple(shape), dt, buffer=values, order=order)  # type: ignore[call-overload]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "src"
        src.mkdir()
        (src / "a.bin").write_bytes(b"h" * offset + values)
        (src / "rules.toml").write_text(
            f'[[rule]]\nglob = "a.bin"\ndtype = "{dt.newbyteorder("=").name}"\nshape = {shape}\norder = "{order}"\n'
            f'offset = {offset}\n' + (f'byteorder = "{"big" if dt.str[0] == ">" else "little"}"\n' if dt.itemsize > 1 else "")
        )
        fast = migrate(src, root / "fast", to="npy", rules=src / "rules.toml", include=["*.bin"], workers=1)
        whole, _job.WHOLE_FILE_BYTES = _job.WHOLE_FILE_BYTES, -1  # this run takes the staged conversion
        try:
            slow = migrate(src, root / "slow", to="npy", rules=src / "rules.toml", include=["*.bin"], workers=1)
        finally:
            _job.WHOLE_FILE_BYTES = whole
        assert [_outcome(r) for r in fast.records] == [_outcome(r) for r in slow.records]
        assert fast.records[0].status == "converted" and fast.records[0].verified
        assert (root / "fast" / "a.npy").read_bytes() == (root / "slow" / "a.npy").read_bytes()
        got = np.load(root / "fast" / "a.npy")
        assert got.dtype == dt
        np.testing.assert_array_equal(got, expected)
        assert sorted(p.name for p in (root / "fast").iterdir() if "partial" in p.name) == []


def _small_archive(root: Path, n: int, size: int = 4096) -> dict[str, np.ndarray]:
    arrays = {}
    for i in range(n):
        folder = root / f"d{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        a = np.random.default_rng(i).standard_normal(size // 4).astype("<f4")
        a.tofile(folder / f"s{i:04d}_float32.dat")
        arrays[f"d{i % 4}/s{i:04d}_float32.dat"] = a
    return arrays


def test_a_partial_file_left_by_a_kill_is_replaced(tmp_path: Path) -> None:
    arrays = _small_archive(tmp_path / "src", 2)
    stale = tmp_path / "dst" / "d0" / "s0000_float32.npy.partial"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a header")
    report = migrate(tmp_path / "src", tmp_path / "dst", to="npy", workers=1)
    assert report.counts["converted"] == 2
    np.testing.assert_array_equal(np.load(tmp_path / "dst" / "d0" / "s0000_float32.npy"), arrays["d0/s0000_float32.dat"])
    assert not stale.exists()


def test_a_staging_file_held_by_another_writer_fails_that_file_and_publishes_nothing(tmp_path: Path) -> None:
    _small_archive(tmp_path / "src", 2)
    held = tmp_path / "dst" / "d0" / "s0000_float32.npy.partial"
    held.parent.mkdir(parents=True)
    fd = os.open(held, os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        report = migrate(tmp_path / "src", tmp_path / "dst", to="npy", workers=1)
        rec = {r.source: r for r in report.records}["d0/s0000_float32.dat"]
        assert rec.status == "failed" and rec.error is not None and rec.error["type"] == "LockedError"
        assert not (tmp_path / "dst" / "d0" / "s0000_float32.npy").exists()
        assert held.exists()  # the other writer's staging file is left alone
    finally:
        os.close(fd)
    again = migrate(tmp_path / "src", tmp_path / "dst", to="npy", workers=1)
    assert {r.status for r in again.records} == {"converted", "skipped"}


def test_a_link_at_the_staging_name_is_not_followed(tmp_path: Path) -> None:
    _small_archive(tmp_path / "src", 1)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    link = tmp_path / "dst" / "d0" / "s0000_float32.npy.partial"
    link.parent.mkdir(parents=True)
    link.symlink_to(victim)
    report = migrate(tmp_path / "src", tmp_path / "dst", to="npy", workers=1)
    rec = report.records[0]
    assert rec.status == "failed" and rec.error is not None and rec.error["type"] == "UnsafeInputError"
    assert victim.read_bytes() == b"keep me"
    assert not (tmp_path / "dst" / "d0" / "s0000_float32.npy").exists()


def test_a_refused_check_publishes_nothing_and_keeps_what_was_there(tmp_path: Path) -> None:
    cls = backend_class("npy")
    final = tmp_path / "a.npy"
    np.save(final, np.arange(3))
    before = final.read_bytes()
    meta = arraystore.ArrayMeta((4,), np.dtype("<f8"))

    def refuse(back: arraystore.ArrayMeta, data: np.ndarray) -> None:
        assert back.shape == (4,) and data.tobytes() == np.ones(4).tobytes()
        raise VerificationError("refused by the test")

    with pytest.raises(VerificationError):
        cls._write_whole(Location(final), meta, np.ones(4).tobytes(), check=refuse)
    assert final.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]


def test_batched_manifest_lines_are_whole(tmp_path: Path) -> None:
    path = tmp_path / "migration.jsonl"
    m = Manifest(path, durable=True)
    m.append_many([FileRecord(source=f"f{i}.dat", status="converted", size=i) for i in range(5)])
    m.close()
    with open(path, "ab") as f:
        f.write(b'{"source": "torn.dat", "sta')  # a kill in the middle of the next batch's write
    assert sorted(Manifest(path).read()) == [f"f{i}.dat" for i in range(5)]
    m = Manifest(path)
    m.append_many([FileRecord(source="g.dat", status="failed"), FileRecord(source="h.dat", status="skipped")])
    m.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 8 and b"torn" not in path.read_bytes()


RUNNER = (
    "import sys\n"
    "from arraystore.migration import migrate\n"
    "if __name__ == '__main__':\n"
    "    migrate(sys.argv[1], sys.argv[2], to='npy', workers=2, durable=True)\n"
)


#: The process (this one or a worker: the script is imported in each) about to publish the first file stops
#: itself (SIGSTOP): that file is never published nor its batch's lines written, so the run cannot finish
#: before the kill, however fast it goes, and the others go on until the kill lands.
GATE = (
    "import os, signal\n"
    "from arraystore import _fsutil\n"
    "replace = _fsutil.replace_path\n"
    "def gated(staged, final, *args, **kwargs):\n"
    "    if str(final).endswith('s0000_float32.npy'):\n"
    "        os.kill(os.getpid(), signal.SIGSTOP)\n"
    "    return replace(staged, final, *args, **kwargs)\n"
    "_fsutil.replace_path = gated\n"
)


def _kill_when(runner: str, src: Path, dst: Path, ready: Callable[[], bool], poll: float) -> None:
    """Run ``runner`` (a migration of ``src`` into ``dst``, gated by :data:`GATE`) in its own session; SIGKILL
    it and its workers at once as soon as ``ready()``; fail if it ended first."""
    script = dst.with_name("runner.py")  # a file, not -c: the pool's workers import it, the gate with it
    script.write_text(GATE + runner)
    errors = dst.with_name("stderr.txt")
    with errors.open("wb") as err:
        proc = subprocess.Popen([sys.executable, str(script), str(src), str(dst)], env=_env(),
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 300  # a safety net: the gated run cannot end by itself
    try:
        while not ready():
            assert proc.poll() is None, f"the run ended before it could be killed: {errors.read_text()}"
            assert time.monotonic() < deadline, "not ready within 300 s"
            time.sleep(poll)
        os.killpg(proc.pid, signal.SIGKILL)  # the main process and its workers at once
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, errors.read_text()
    assert not list(dst.rglob("s0000_float32.npy")), "the gate let the first file through"


def _rerun_completes(src: Path, dst: Path, arrays: dict[str, np.ndarray]) -> None:
    """The rerun after a kill: every file converted or adopted, equal to its source, no ``.partial`` left."""
    report = migrate(src, dst, to="npy", workers=2)
    assert report.exit_code == 0
    done = Manifest(dst / "migration.jsonl").read()
    assert len(done) == len(arrays) and {r.status for r in done.values()} <= {"converted", "skipped"}
    for name, rec in done.items():
        np.testing.assert_array_equal(np.load(dst / str(rec.destination)), arrays[name])
    assert [p.name for p in dst.rglob("*") if "partial" in p.name] == []


def test_sigkill_during_batched_manifest_writes_then_rerun(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    arrays = _small_archive(src, 600)
    manifest = dst / "migration.jsonl"
    # a batch of lines has landed
    _kill_when(RUNNER, src, dst, lambda: manifest.exists() and manifest.read_bytes().count(b"\n") >= 2, 0.002)
    records = Manifest(manifest).read()  # every whole line is a record; at most the last is torn
    assert 0 < len(records) < len(arrays)
    for name, rec in records.items():
        assert rec.status == "converted", rec
        np.testing.assert_array_equal(np.load(dst / str(rec.destination)), arrays[name])
    _rerun_completes(src, dst, arrays)


def test_durable_small_outputs_are_synced_once_per_batch_not_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from arraystore import _fsutil

    arrays = _small_archive(tmp_path / "src", 100)
    syncs: list[Path] = []
    real_sync = _fsutil.sync_filesystem
    monkeypatch.setattr(_fsutil, "sync_filesystem", lambda folder: (syncs.append(Path(folder)), real_sync(folder))[1])
    fsyncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    report = migrate(tmp_path / "src", tmp_path / "dst", to="npy", workers=1, durable=True)
    assert report.counts["converted"] == 100
    assert len(syncs) == 2  # two batches of 50 files, each synced once before it is published
    assert len(fsyncs) < 30  # folders and manifest batches, not one per file
    for name, a in arrays.items():
        np.testing.assert_array_equal(np.load(tmp_path / "dst" / name.replace(".dat", ".npy")), a)
    assert [p for p in (tmp_path / "dst").rglob("*") if "partial" in p.name] == []


KILLER = (
    "import os, sys\n"
    "from arraystore import _fsutil\n"
    "from arraystore.migration import migrate\n"
    "from arraystore.migration._manifest import Manifest\n"
    "if sys.argv[3] == 'before-publishing':  # the batch's files are staged and checked, none renamed\n"
    "    _fsutil.sync_filesystem = lambda folder: os._exit(9)\n"
    "else:  # the batch's files are published, its manifest lines not written\n"
    "    append = Manifest.append_many\n"
    "    Manifest.append_many = lambda self, records: os._exit(9) if records else append(self, records)\n"
    "migrate(sys.argv[1], sys.argv[2], to='npy', workers=1, durable=True)\n"
)


@pytest.mark.parametrize("when", ["before-publishing", "before-the-manifest"])
def test_a_kill_inside_a_durable_batch_then_rerun(tmp_path: Path, when: str) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    arrays = _small_archive(src, 40)
    done = subprocess.run([sys.executable, "-c", KILLER, str(src), str(dst), when], env=_env(), capture_output=True)
    assert done.returncode == 9, done.stderr.decode()
    assert Manifest(dst / "migration.jsonl").read() == {}  # the batch's lines were never written
    published = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.npy"))
    staged = sorted(p for p in dst.rglob("*") if "partial" in p.name)
    batch = len(arrays) // 2  # the first of two batches was killed
    if when == "before-publishing":  # nothing looks complete: only staging files
        assert published == [] and len(staged) == batch
    else:  # every output of the batch complete under its name, none left staged
        assert len(published) == batch and staged == []
        for rel in published:
            np.testing.assert_array_equal(np.load(dst / rel), arrays[rel.replace(".npy", ".dat")])
    report = migrate(src, dst, to="npy", workers=1, durable=True)
    assert report.exit_code == 0 and report.counts["converted"] == len(arrays)
    if when == "before-the-manifest":  # the killed batch's outputs read back and adopted, not written again
        adopted = "found complete from an interrupted run; read back and matched the source"
        assert sum(r.note == adopted for r in report.records) == batch
    records = Manifest(dst / "migration.jsonl").read()
    assert sorted(records) == sorted(arrays) and {r.status for r in records.values()} == {"converted"}
    for name, a in arrays.items():
        np.testing.assert_array_equal(np.load(dst / name.replace(".dat", ".npy")), a)
    assert [p for p in dst.rglob("*") if "partial" in p.name] == []


def test_lines_encoded_in_the_workers_are_the_records_as_the_manifest_and_report_write_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    monkeypatch.setattr(migration_run, "IN_PROCESS_FILES", 0)  # the pool, even for one batch

    from arraystore.migration._manifest import record_line

    _small_archive(tmp_path / "src", 12)
    report = migrate(tmp_path / "src", tmp_path / "dst", to="npy", workers=2)
    lines = (tmp_path / "dst" / "migration.jsonl").read_bytes().splitlines()
    assert len(lines) == 12
    for line in lines:  # each line is the plain encoding of the record it parses to
        assert line == json.dumps(FileRecord.from_dict(json.loads(line)).to_dict(), default=str).encode()
    written = json.loads((tmp_path / "dst" / "migration-report.json").read_text())
    assert written == json.loads(report.to_json())
    assert [json.dumps(r) for r in written["records"]] == [line.decode() for line in lines]
    record = report.records[0]
    record_line(record)
    record.note = "changed"  # a changed record is encoded again
    assert json.loads(record_line(record))["note"] == "changed"


def test_the_read_back_parses_the_header_and_refuses_a_file_of_another_size(tmp_path: Path) -> None:
    from arraystore.backends.npy import _read_back

    path = tmp_path / "a.npy"
    for arr in (np.arange(12, dtype=">i2").reshape(3, 4), np.asfortranarray(np.ones((2, 3), "<c8")), np.zeros(0, "u1")):
        np.save(path, arr)
        size = path.stat().st_size
        fd = os.open(path, os.O_RDONLY)
        try:
            back, data = _read_back(fd, path, size)
            assert (back.shape, back.dtype, back.order) == (arr.shape, arr.dtype, "F" if arr.flags.f_contiguous
                                                                and arr.ndim > 1 else "C")
            assert np.array_equal(data, arr) and data.dtype == arr.dtype
            for wrong in (size - 1, size + 1):
                with pytest.raises(MetadataError, match="read back"):
                    _read_back(fd, path, wrong)
        finally:
            os.close(fd)
    path.write_bytes(b"not an npy file at all, not even close")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(MetadataError):
            _read_back(fd, path, path.stat().st_size)
    finally:
        os.close(fd)


def test_a_whole_file_replacing_a_file_keeps_its_mode_and_a_new_one_takes_the_given_mode(tmp_path: Path) -> None:
    cls = backend_class("npy")
    meta = arraystore.ArrayMeta((4,), np.dtype("<f8"))
    seen: list[tuple[tuple[int, ...], bytes]] = []

    def check(back: arraystore.ArrayMeta, data: np.ndarray) -> None:
        seen.append((back.shape, data.tobytes()))

    old = os.umask(0o022)
    try:
        new = tmp_path / "new.npy"
        cls._write_whole(Location(new), meta, np.ones(4).tobytes(), check=check, mode=0o600)
        assert stat.S_IMODE(new.stat().st_mode) == 0o600
        kept = tmp_path / "kept.npy"
        np.save(kept, np.arange(3))
        kept.chmod(0o640)
        cls._write_whole(Location(kept), meta, np.ones(4).tobytes(), check=check, mode=0o644)
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640  # a replaced file keeps its mode
        assert np.array_equal(np.load(kept), np.ones(4)) and np.array_equal(np.load(new), np.ones(4))
    finally:
        os.umask(old)
    assert seen == [((4,), np.ones(4).tobytes())] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.npy", "new.npy"]


def _pid_of(task: int) -> tuple[int, int]:
    time.sleep(0.002)
    return task, os.getpid()


def _fail_on(task: int) -> int:
    if task == 0:
        raise OSError(28, "No space left on device")
    time.sleep(0.002)
    return task


def test_the_pool_s_tasks_run_once_each_in_a_worker_or_in_this_process_while_the_workers_start() -> None:
    # This process takes tasks from the end of the list while a thread hands the others to the pool
    # (whose first submit waits for the workers to start): each task runs exactly once, somewhere.
    from arraystore.migration.run import _in_pool

    for count in (1, 2, 7, 200):
        got: list[tuple[int, int]] = []
        _in_pool([(_pid_of, i, 1 << 16) for i in range(count)], 2, got.append)
        assert sorted(t for t, _ in got) == list(range(count))
        pids = {p for _, p in got}
        assert len(pids - {os.getpid()}) <= 2  # this process and at most the two workers


def test_a_task_failing_in_this_process_stops_the_pool_and_leaves_no_worker() -> None:
    import psutil

    from arraystore.migration.run import _in_pool

    got: list[int] = []
    with pytest.raises(OSError, match="No space"):
        # The last tasks run here first; task 0, run here or in a worker, raises either way.
        _in_pool([(_fail_on, i, 1 << 16) for i in range(40)], 2, got.append)
    assert 0 not in got
    # The forkserver's children only: other tests leave unrelated children (the sshfs mount's ssh, servers).
    from multiprocessing import forkserver

    pid = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    workers = psutil.Process(pid).children() if pid is not None and psutil.pid_exists(pid) else []
    _gone, alive = psutil.wait_procs(workers, timeout=30)
    assert alive == []


def test_a_batch_of_large_files_never_runs_in_this_process() -> None:
    # This process takes part only with batches of small files: its memory stays one small batch.
    from arraystore.migration.run import BATCH_BYTES, _in_pool

    tasks = [(_pid_of, i, BATCH_BYTES + 1) for i in range(6)] + [(_pid_of, i, 1 << 16) for i in range(6, 40)]
    got: list[tuple[int, int]] = []
    _in_pool(tasks, 2, got.append)
    assert sorted(t for t, _ in got) == list(range(40))
    assert all(pid != os.getpid() for t, pid in got if t < 6)


def test_a_migration_of_one_batch_runs_in_this_process_without_a_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Starting the pool (a forkserver importing arraystore, then the workers) takes longer than one batch.
    from arraystore import parallel

    arrays = _small_archive(tmp_path / "src", 20)
    one = migrate(tmp_path / "src", tmp_path / "one", to="npy", workers=1)

    def no_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pool was started for one batch of files")

    monkeypatch.setattr(parallel, "process_pool", no_pool)
    monkeypatch.setattr(parallel, "start_forkserver", no_pool)
    two = migrate(tmp_path / "src", tmp_path / "two", to="npy", workers=2)
    assert two.workers == 2 and two.counts["converted"] == len(arrays)
    keep = ("source", "status", "destination", "resolution", "source_checksum")
    assert [{k: r.to_dict()[k] for k in keep} for r in two.records] == [
        {k: r.to_dict()[k] for k in keep} for r in one.records
    ]
    for name, a in arrays.items():
        np.testing.assert_array_equal(np.load(tmp_path / "two" / name.replace(".dat", ".npy")), a)


def _mixed_archive(root: Path) -> None:
    """Small files resolved on weak evidence (their data check reads all their data), one the data contradict,
    one larger than the check's window, one with a header offset, a broken header and an undetermined file."""
    rng = np.random.default_rng(5)
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for i in range(40):
        (rng.standard_normal(1000 + 37 * i).astype("<f4") + i).tofile(root / "a" / f"s{i:03d}_float32.dat")
    np.cumsum(rng.integers(-3, 4, 5000)).astype(">i2").tofile(root / "a" / "trace_int16_be.dat")
    np.cumsum(rng.integers(-3, 4, 5000)).astype(">i2").tofile(root / "a" / "swapped_int16_le.dat")  # contradicted
    (rng.standard_normal(40_000).astype("<f8")).tofile(root / "b" / "wide_float64.dat")  # several windows
    (root / "b" / "head.raw").write_bytes(b"H" * 32 + np.arange(3000, dtype="<u2").tobytes())
    (root / "b" / "rules.toml").write_text('[[rule]]\nglob = "b/head.raw"\ndtype = "uint16"\noffset = 32\n')
    (root / "b" / "mystery.bin").write_bytes(rng.bytes(4096))
    (root / "b" / "scene.hdr").write_text("ENVI\nsamples = 4\n")  # broken: no lines, bands, data type


@pytest.mark.parametrize("to", ["npy", "raw"])
def test_small_files_read_once_give_the_same_outputs_and_manifest_as_read_twice(
    tmp_path: Path, to: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool's batches hand a small file's checked bytes to its copy; the files, records and manifest lines
    are those of the migration that plans every file first and reads each again to copy it."""
    import json

    monkeypatch.setattr(migration_run, "IN_PROCESS_FILES", 0)  # the pool, even for one batch
    src = tmp_path / "src"
    _mixed_archive(src)
    rules = src / "b" / "rules.toml"
    planned = migrate(src, tmp_path / "one", to=to, rules=rules, workers=1)
    pooled = migrate(src, tmp_path / "two", to=to, rules=rules, workers=2)
    assert [_outcome(r) for r in pooled.records] == [_outcome(r) for r in planned.records]
    statuses = {r.source: r.status for r in planned.records}
    assert statuses["a/swapped_int16_le.dat"] == "undetermined" and statuses["b/mystery.bin"] == "undetermined"
    assert statuses["b/scene.hdr"] == "failed" and statuses["b/head.raw"] == "converted"
    assert sum(s == "converted" for s in statuses.values()) == 43, statuses

    def lines(folder: str) -> dict[str, dict[str, object]]:
        out = {}
        for line in (tmp_path / folder / "migration.jsonl").read_bytes().splitlines():
            rec = json.loads(line)
            rec.pop("seconds"), rec.pop("finished")
            out[rec["source"]] = rec
        return out

    assert lines("two") == lines("one")
    outputs = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*")
                     if p.is_file() and not p.name.startswith("migration"))
    assert outputs == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*")
                             if p.is_file() and not p.name.startswith("migration"))
    assert sum(p.suffix in (".npy", ".dat") for p in outputs) == 43
    for rel in outputs:  # the same bytes: data, sidecars with their provenance, the suggested rules
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel
    for i in (0, 39):
        with arraystore.open(tmp_path / "two" / "a" / f"s{i:03d}_float32.{'npy' if to == 'npy' else 'dat'}") as out:
            np.testing.assert_array_equal(out[...], np.fromfile(src / "a" / f"s{i:03d}_float32.dat", "<f4"))


def test_a_small_file_changed_after_its_check_is_not_converted_from_the_checked_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes read by the check are copied only if the file's size and modification time are still those of
    its resolution; a file rewritten in between fails with SourceChangedError and nothing is published."""
    src = tmp_path / "src"
    src.mkdir()
    path = src / "s_float32.dat"
    (np.arange(1000, dtype="<f4") + 1).tofile(path)
    real_run_job = _job._run_job

    def rewrite_first(job: _job.Job) -> FileRecord:
        assert job.data is not None  # the checked bytes travel with the job
        path.write_bytes(np.arange(2000, dtype="<f4").tobytes())
        return real_run_job(job)

    monkeypatch.setattr(_job, "_run_job", rewrite_first)
    report = migrate(src, tmp_path / "dst", to="npy", workers=2)  # one batch: resolved and run here, as in a worker
    rec = report.records[0]
    assert rec.status == "failed" and rec.error is not None and rec.error["type"] == "SourceChangedError"
    assert not (tmp_path / "dst" / "s_float32.npy").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_small_file_rewritten_with_its_size_and_mtime_put_back_is_not_converted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """A file rewritten after its check with bytes of the same size, its modification time put back with
    ``os.utime``: its status-change time differs from its resolution's, so it fails with SourceChangedError (the
    checked bytes were copied before, or the new unchecked ones) and nothing is published; a rerun converts the new
    bytes."""
    src = tmp_path / "src"
    src.mkdir()
    path = src / "s_float32.dat"
    (np.arange(1000, dtype="<f4") + 1).tofile(path)
    real_run_job = _job._run_job
    new = np.linspace(-1, 1, 1000, dtype="<f4")

    def rewrite_first(job: _job.Job) -> FileRecord:
        st = path.stat()
        time.sleep(0.02)  # a later status-change time on every file system clock (not an assertion on time)
        path.write_bytes(new.tobytes())
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert (path.stat().st_size, path.stat().st_mtime_ns) == (job.size, job.mtime_ns)
        return real_run_job(job)

    monkeypatch.setattr(_job, "_run_job", rewrite_first)
    report = migrate(src, tmp_path / "dst", to="npy", workers=workers)
    rec = report.records[0]
    assert rec.status == "failed" and rec.error is not None and rec.error["type"] == "SourceChangedError"
    assert not (tmp_path / "dst" / "s_float32.npy").exists()
    monkeypatch.setattr(_job, "_run_job", real_run_job)
    again = migrate(src, tmp_path / "dst", to="npy", workers=workers)
    assert again.records[0].status == "converted"
    np.testing.assert_array_equal(np.load(tmp_path / "dst" / "s_float32.npy"), new)


def test_discovery_lists_the_sizes_of_regular_data_files_only(tmp_path: Path) -> None:
    """The sizes the pool's batches are cut by come from discovery's lstat for regular files; a link is
    left out (its target's size is read when the files are sized)."""
    from arraystore.migration._discover import discover

    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "a_int16.dat").write_bytes(b"\0" * 100)
    (src / "b_int16.dat").write_bytes(b"\0" * 10)
    (src / "link_int16.dat").symlink_to(src / "d" / "a_int16.dat")
    found = discover(src)
    assert set(found.data) == {"d/a_int16.dat", "b_int16.dat", "link_int16.dat"}
    assert dict(found.sizes) == {"d/a_int16.dat": 100, "b_int16.dat": 10}
    sized = migration_run._sized(src, [(n, n) for n in found.data], found.sizes)
    assert {n: size for n, _d, size in sized} == {"d/a_int16.dat": 100, "b_int16.dat": 10, "link_int16.dat": 100}


FAST_RUNNER = RUNNER.replace(", durable=True", "")


@pytest.mark.parametrize("after_lines", [0, 3])
def test_sigkill_of_read_once_copies_leaves_only_complete_outputs_then_rerun(tmp_path: Path, after_lines: int) -> None:
    """Small files named with their dtype (checked on their data, whose bytes their copy reuses) in worker
    processes, killed with SIGKILL at once (before any manifest line, or after some): every published ``.npy``,
    with or without its manifest line, holds exactly its source; only ``.partial`` files may be incomplete, and
    the rerun replaces them, adopts what has no line and converts the rest."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    arrays = _small_archive(src, 800, size=16384)
    manifest = dst / "migration.jsonl"

    def ready() -> bool:
        published = any(dst.rglob("*.npy")) if dst.exists() else False
        return published and manifest.exists() and manifest.read_bytes().count(b"\n") >= after_lines

    _kill_when(FAST_RUNNER, src, dst, ready, 0.001)
    outputs = list(dst.rglob("*.npy"))
    assert 0 < len(outputs) < len(arrays)
    for out in outputs:  # published means complete and equal to its source, with or without a manifest line
        name = out.relative_to(dst).as_posix()[: -len(".npy")] + ".dat"
        np.testing.assert_array_equal(np.load(out), arrays[name])
    _rerun_completes(src, dst, arrays)
