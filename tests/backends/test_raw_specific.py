"""What only the raw backend does: sidecars, size checks, completeness, foreign metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore import ArrayMeta
from arraystore.errors import (
    BackendError,
    IncompleteArrayError,
    MetadataError,
    SizeMismatchError,
)


def _make(path: Path, data: np.ndarray) -> None:
    with arraystore.create(path, data.shape, data.dtype) as s:
        s[...] = data


def test_wrong_dtype_is_loud(tmp_path: Path) -> None:
    """The article's disaster: float32 data read back as float64 cannot happen by accident."""
    path = tmp_path / "data.dat"
    np.arange(1000, dtype="<f8").tofile(path)  # the file was written as float64 ...
    meta = ArrayMeta((1000,), "<f4")  # ... the sidecar claims float32
    (tmp_path / "data.dat.json").write_text(
        json.dumps({"format": "arraystore.raw", "version": 1, **meta.to_dict(), "offset": 0, "nbytes": 4000})
    )
    with pytest.raises(SizeMismatchError) as info:
        arraystore.open(path)
    msg = str(info.value)
    assert "4,000" in msg and "8,000" in msg and "float64" in msg
    assert info.value.expected == 4000 and info.value.actual == 8000


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "t.dat"
    _make(path, np.zeros((10, 10), "<f4"))
    with open(path, "r+b") as f:
        f.truncate(123)
    with pytest.raises(SizeMismatchError, match="truncated"):
        arraystore.open(path)


def test_no_sidecar_needs_meta(tmp_path: Path) -> None:
    path = tmp_path / "bare.dat"
    np.arange(12, dtype=">i2").tofile(path)
    with pytest.raises(MetadataError, match="meta=ArrayMeta"):
        arraystore.open(path)
    with arraystore.open(path, meta=ArrayMeta((3, 4), ">i2")) as s:
        assert s[2, 3] == 11
    assert not (tmp_path / "bare.dat.json").exists()
    with arraystore.open(path, meta=ArrayMeta((3, 4), ">i2"), write_sidecar=True) as s:
        pass
    with arraystore.open(path) as s:
        assert s.dtype == np.dtype(">i2") and s.shape == (3, 4)


def test_meta_conflicting_with_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "a.dat"
    _make(path, np.zeros(4, "<f4"))
    with pytest.raises(MetadataError, match="sidecar says"):
        arraystore.open(path, meta=ArrayMeta((2,), "<f8"))


def test_offset(tmp_path: Path) -> None:
    path = tmp_path / "h.dat"
    path.write_bytes(b"HEADER!!" + np.arange(5, dtype="<u4").tobytes())
    with arraystore.open(path, meta=ArrayMeta((5,), "<u4"), offset=8) as s:
        assert s[...].tolist() == [0, 1, 2, 3, 4]
        assert s.as_memmap().offset == 8


def test_incomplete_after_crash(tmp_path: Path) -> None:
    path = tmp_path / "w.dat"
    _make(path, np.zeros(4, "<f4"))
    w = arraystore.open(path, "r+")
    w[0] = 1  # first write marks the sidecar incomplete
    side = json.loads((tmp_path / "w.dat.json").read_text())
    assert side["complete"] is False
    # a crash: the writer never closes (simulated by dropping its lock without close)
    w._release_locks()
    w._closed = True
    with pytest.raises(IncompleteArrayError, match="allow_incomplete"):
        arraystore.open(path)
    with arraystore.open(path, allow_incomplete=True) as s:
        assert not s.complete
        assert s[0] == 1


def test_durable_flush_marks_complete(tmp_path: Path) -> None:
    path = tmp_path / "d.dat"
    _make(path, np.zeros(4, "<f4"))
    with arraystore.open(path, "r+") as w:
        w[1] = 2
        w.flush(durable=True)
        assert json.loads((tmp_path / "d.dat.json").read_text())["complete"] is True
        w[2] = 3
        assert json.loads((tmp_path / "d.dat.json").read_text())["complete"] is False
    assert json.loads((tmp_path / "d.dat.json").read_text())["complete"] is True


def test_create_preallocates(tmp_path: Path) -> None:
    path = tmp_path / "big.dat"
    s = arraystore.create(path, (1024, 1024), "<f8")
    partial = tmp_path / "big.dat.partial"
    assert partial.stat().st_size == 8 * 1024 * 1024
    assert partial.stat().st_blocks * 512 >= 8 * 1024 * 1024  # really allocated, not sparse
    s.close()


def test_chunks_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="hdf5 or zarr"):
        arraystore.create(tmp_path / "c.dat", (4,), "f4", chunks=(2,))
    assert os.listdir(tmp_path) == []


def test_key_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError):
        arraystore.create(f"{tmp_path}/k.dat::/a", (4,), "f4")


@pytest.mark.parametrize("text", ["{", "[]", '{"format": "other"}', '{"format": "arraystore.raw", "version": 99}'])
def test_broken_sidecars(tmp_path: Path, text: str) -> None:
    path = tmp_path / "s.dat"
    path.write_bytes(b"\0" * 8)
    (tmp_path / "s.dat.json").write_text(text)
    with pytest.raises(MetadataError):
        arraystore.open(path)


def test_buffered_io_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "b.dat"
    data = np.arange(6 * 5 * 4, dtype="<i4").reshape(6, 5, 4)
    _make(path, data)
    with arraystore.open(path, io="buffered") as s:
        assert s.io == "buffered"
        for sel in [(slice(None),), (2,), (slice(1, 5, 2), 3), (Ellipsis, 1), (slice(None, None, -1),)]:
            assert np.array_equal(s[sel], data[sel])


def test_sidecar_is_human_readable(tmp_path: Path) -> None:
    path = tmp_path / "r.dat"
    _make(path, np.zeros((2, 3), ">f8"))
    side = json.loads((tmp_path / "r.dat.json").read_text())
    assert side["format"] == "arraystore.raw" and side["version"] == 1
    assert side["dtype"] == ">f8" and side["shape"] == [2, 3] and side["nbytes"] == 48


def test_incomplete_while_being_written(tmp_path: Path) -> None:
    path = tmp_path / "live.dat"
    _make(path, np.zeros(4, "<f4"))
    with arraystore.open(path, "r+") as w:
        w[0] = 1
        with pytest.raises(IncompleteArrayError, match="writing it right now"):
            arraystore.open(path)
    with arraystore.open(path) as s:  # closed: complete again
        assert s[0] == 1
