"""The checkpointed writer: flush policies, durable checkpoints, resume after a crash, atexit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.errors import (
    AccessError,
    AlreadyExistsError,
    BroadcastError,
    ClosedStoreError,
    IncompleteArrayError,
    MetadataError,
    ModeError,
    SelectionError,
)
from arraystore.writer import ArrayWriter, Checkpoint, checkpoint_path

from .conftest import ROOT

BACKENDS = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}
SHAPE = (40, 6)


def rows(a: int, b: int) -> np.ndarray:
    return np.arange(a * SHAPE[1], b * SHAPE[1], dtype="<f8").reshape(b - a, SHAPE[1])


@pytest.fixture(params=sorted(BACKENDS))
def path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return tmp_path / f"w{BACKENDS[request.param]}"


def test_flush_every_n_writes_records_a_checkpoint(path: Path) -> None:
    with ArrayWriter.create(path, SHAPE, "<f8", flush_every=4) as w:
        for i in range(10):
            w.append(rows(i, i + 1), user={"i": i})
        cp = ArrayWriter.resume(path)
        assert cp is not None and (cp.rows, cp.writes, cp.sequence, cp.complete) == (8, 8, 2, False)
        assert cp.user == {"i": 7}
        assert (cp.shape, cp.dtype) == (SHAPE, "<f8")
    final = ArrayWriter.resume(path)
    assert final is not None and final.complete and final.rows == 10


def test_flush_every_seconds_is_checked_at_each_write(tmp_path: Path) -> None:
    with ArrayWriter.create(tmp_path / "fast.dat", SHAPE, "<f8", flush_every_seconds=1e-9) as w:
        w.append(rows(0, 3))
        w.append(rows(3, 4))
        assert w.last_checkpoint is not None and w.last_checkpoint.sequence == 2
    with ArrayWriter.create(tmp_path / "slow.dat", SHAPE, "<f8", flush_every_seconds=1e9) as w:
        w.append(rows(0, 3))
        assert w.last_checkpoint is None
        assert ArrayWriter.resume(tmp_path / "slow.dat") is None


def test_at_close_only_and_explicit_checkpoint(tmp_path: Path) -> None:
    p = tmp_path / "a.dat"
    with ArrayWriter.create(p, SHAPE, "<f8", durable=True) as w:
        w.write(np.s_[5:7], rows(5, 7))
        assert ArrayWriter.resume(p) is None
        cp = w.checkpoint(user={"done": [5, 6]})
        assert cp.writes == 1 and cp.rows == 0 and cp.user == {"done": [5, 6]}
    with arraystore.open(p) as s:
        assert np.array_equal(s[5:7], rows(5, 7))


def test_resume_after_a_crash_continues_where_the_checkpoint_says(path: Path) -> None:
    w = ArrayWriter.create(path, SHAPE, "<f8", flush_every=5)
    for i in range(13):
        w.append(rows(i, i + 1), user={"next": i + 1})
    w.abandon()  # what a crash leaves: flushed data, a checkpoint, an unpublished array
    assert not path.exists()  # not published under its name
    cp = ArrayWriter.resume(path)
    assert cp is not None and cp.rows == 13 and not cp.complete
    w = ArrayWriter.create(path, SHAPE, "<f8", flush_every=5, resume=True)
    assert (w.rows, w.writes, w.user) == (13, 13, {"next": 13})
    assert np.array_equal(w.store[:13], rows(0, 13))
    with w:
        for i in range(w.rows, SHAPE[0]):
            w.append(rows(i, i + 1))
    with arraystore.open(path) as s:
        assert s.complete and np.array_equal(s[...], rows(0, SHAPE[0]))
    with pytest.raises(AlreadyExistsError):
        ArrayWriter.create(path, SHAPE, "<f8", resume=True)


def test_an_exception_keeps_what_was_written_for_a_rerun(tmp_path: Path) -> None:
    p = tmp_path / "a.dat"
    with pytest.raises(RuntimeError), ArrayWriter.create(p, SHAPE, "<f8", flush_every=100) as w:  # noqa: PT012
        w.append(rows(0, 3))
        raise RuntimeError("the instrument went away")
    cp = ArrayWriter.resume(p)
    assert cp is not None and cp.rows == 3
    assert not p.exists()  # never published
    w = ArrayWriter.create(p, SHAPE, "<f8", resume=True)
    assert np.array_equal(w.store[:3], rows(0, 3))
    w.abandon()


def test_resume_without_checkpoint_starts_afresh(tmp_path: Path) -> None:
    p = tmp_path / "a.dat"
    w = ArrayWriter.create(p, SHAPE, "<f8", resume=True)
    assert w.rows == 0 and w.last_checkpoint is None
    w.close()


def test_checkpoint_of_another_array_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "a.dat"
    ArrayWriter.create(p, SHAPE, "<f8", flush_every=1).abandon()
    with pytest.raises(MetadataError, match="shape"):
        ArrayWriter.create(p, (41, 6), "<f8", resume=True)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"format": "other"}', b'{"format": "arraystore.checkpoint"}',
                                  b'{"format": "arraystore.checkpoint", "version": 1, "rows": -1}',
                                  b'{"format": "arraystore.checkpoint", "version": 1, "shape": "x"}'])
def test_a_broken_checkpoint_file_is_a_metadata_error(tmp_path: Path, body: bytes) -> None:
    p = tmp_path / "a.dat"
    checkpoint_path(p).write_bytes(body)
    with pytest.raises(MetadataError):
        ArrayWriter.resume(p)


def test_checkpoint_round_trips_through_json() -> None:
    cp = Checkpoint("a.dat", 3, 4, {"k": [1]}, False, (5, 2), "<f4", 2, 1.5)
    assert Checkpoint.from_dict(json.loads(json.dumps(cp.to_dict()))) == cp


def test_checkpoint_paths_differ_per_array_in_a_hierarchy(tmp_path: Path) -> None:
    a, b = checkpoint_path(f"{tmp_path}/f.h5::/a"), checkpoint_path(f"{tmp_path}/f.h5::/b")
    assert a != b and a.parent == b.parent == tmp_path


def test_writer_on_an_existing_store_opened_r_plus(tmp_path: Path) -> None:
    p = tmp_path / "a.dat"
    with arraystore.create(p, SHAPE, "<f8") as s:
        s[...] = 0
    with ArrayWriter(arraystore.open(p, "r+"), flush_every=2, durable=True) as w:
        w.append(rows(0, 1))
        w.append(rows(1, 2))
        assert ArrayWriter.resume(p).rows == 2  # type: ignore[union-attr]
    with arraystore.open(p) as s:
        assert s.complete and np.array_equal(s[:2], rows(0, 2))


def test_writer_needs_a_writable_store_and_sane_options(tmp_path: Path) -> None:
    p = tmp_path / "a.dat"
    with arraystore.create(p, SHAPE, "<f8"):
        pass
    with arraystore.open(p) as s, pytest.raises(ModeError):
        ArrayWriter(s)
    with arraystore.open(p, "r+") as s:
        for bad in ({"flush_every": 0}, {"flush_every": "x"}, {"flush_every": 2.5}, {"flush_every": True},
                    {"flush_every_seconds": 0}, {"flush_every_seconds": "soon"}, {"flush_every_seconds": float("nan")}):
            with pytest.raises(AccessError, match="flush_every"):
                ArrayWriter(s, **bad)
        w = ArrayWriter(s)
        with pytest.raises(SelectionError, match="passes"):
            w.append(np.zeros((41, 6)))
        with pytest.raises(BroadcastError, match="2-d"):
            w.append(np.zeros(6))
        with pytest.raises(BroadcastError, match="2-d"):
            w.append(np.zeros((2, 5)))
        w.close()
        with pytest.raises(ClosedStoreError):
            w.append(rows(0, 1))


ATEXIT = textwrap.dedent("""
    import sys
    import numpy as np
    from arraystore.writer import ArrayWriter
    w = ArrayWriter.create(sys.argv[1], (40, 6), "<f8", flush_every=1000)
    w.append(np.arange(18, dtype="<f8").reshape(3, 6))
    # no close: the interpreter exits with the writer open
""")


def test_writers_open_at_exit_are_checkpointed_not_published(tmp_path: Path) -> None:
    p = tmp_path / "a.dat"
    subprocess.run([sys.executable, "-c", ATEXIT, str(p)], check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    cp = ArrayWriter.resume(p)
    assert cp is not None and cp.rows == 3 and not cp.complete
    assert not p.exists()
    w = ArrayWriter.create(p, SHAPE, "<f8", resume=True)
    assert np.array_equal(w.store[:3], rows(0, 3))
    w.abandon()


STORE_ATEXIT = textwrap.dedent("""
    import sys
    import arraystore
    s = arraystore.open(sys.argv[1], "r+")
    s[0] = 5.0
    # no close
""")


def test_a_store_never_closed_is_recognisably_incomplete(tmp_path: Path) -> None:
    p = tmp_path / "a.dat"
    with arraystore.create(p, SHAPE, "<f8") as s:
        s[...] = 1
    subprocess.run([sys.executable, "-c", STORE_ATEXIT, str(p)], check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    with pytest.raises(IncompleteArrayError):
        arraystore.open(p)
    with arraystore.open(p, allow_incomplete=True) as s:
        assert not s.complete and (s[0] == 5).all()  # flushed at exit, not marked complete


def test_store_writer_method_resumes(tmp_path: Path) -> None:
    """``ArrayStore.writer(resume=True)`` continues from a crashed writer's checkpoint."""
    import numpy as np

    import arraystore

    path = tmp_path / "w.dat"
    with arraystore.create(path, (8, 2), "<i4") as s:
        s[...] = 0
    w = arraystore.open(path, "r+").writer(flush_every=2)
    w.append(np.ones((2, 2), "<i4"))
    w.append(np.ones((2, 2), "<i4") * 2)
    w.abandon()  # as if killed after the last checkpoint
    with arraystore.open(path, "r+", allow_incomplete=True) as s:
        w2 = s.writer(resume=True)
        assert w2.rows == 4
        w2.append(np.full((4, 2), 3, "<i4"))
        w2.close()
    with arraystore.open(path) as s:
        assert s[:, 0].tolist() == [1, 1, 2, 2, 3, 3, 3, 3]


@pytest.mark.parametrize(("suffix", "kwargs"), [(".dat", {}), (".h5", {}), (".zarr", {"chunks": (2, 2)})])
def test_abandoned_r_plus_store_stays_incomplete(tmp_path: Path, suffix: str, kwargs: dict) -> None:
    """Closing without completing (as a crash would) must not mark the array complete."""
    import numpy as np

    import arraystore
    from arraystore.errors import IncompleteArrayError

    path = tmp_path / f"a{suffix}"
    with arraystore.create(path, (4, 2), "<i4", **kwargs) as s:
        s[...] = 0
    s = arraystore.open(path, "r+")
    s[0] = 1
    s.abandon()
    with pytest.raises(IncompleteArrayError):
        arraystore.open(path)
    with arraystore.open(path, allow_incomplete=True) as r:
        assert r[0].tolist() == [1, 1]
        assert not r.complete
    assert np.array_equal(arraystore.open(path, allow_incomplete=True)[1:], np.zeros((3, 2)))
