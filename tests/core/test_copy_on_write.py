"""Mode ``c`` never touches a file: every operation, every backend, a byte-and-stat snapshot before and after."""

from __future__ import annotations

import gc
import hashlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.errors import ArrayStoreError, ModeError, NotPersistedWarning, ReadOnlyError
from arraystore.meta import ArrayMeta
from arraystore.registry import backend_class

Snapshot = dict[str, tuple[int, str, int, int]]


def snapshot(folder: Path) -> Snapshot:
    """Every entry under ``folder``: size, sha256 of the bytes, mtime (ns) and permission bits."""
    out: Snapshot = {}
    for root, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            p = Path(root, name)
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            out[str(p.relative_to(folder))] = (st.st_size, digest, st.st_mtime_ns, st.st_mode)
    return out


SUFFIX = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}


def _make(folder: Path, backend: str) -> str:
    path = str(folder / f"a{SUFFIX[backend]}")
    attrs = {} if backend == "npy" else {"k": 1}
    with arraystore.create(path, (6, 4), "<f8", backend=backend, attrs=attrs) as s:
        s[...] = np.arange(24.0).reshape(6, 4)
    return path


def _write_everything(s: Any) -> None:
    s[0] = 5
    s[1:3, ::2] = -1.5
    s[...] = 7
    s[-1, -1] = np.float64(3)
    assert s[0, 0] == 7 and s[-1, -1] == 3


def _try_metadata(s: Any) -> None:
    with pytest.raises(ReadOnlyError):
        s.attrs["new"] = 1
    with pytest.raises(ReadOnlyError):
        s.attrs.update(k=2)
    if "k" in s.attrs:
        with pytest.raises(ReadOnlyError):
            del s.attrs["k"]
    with pytest.raises((ReadOnlyError, NotImplementedError)):
        s.set_checksum({"algorithm": "xxh3_128", "value": "0"})
    with pytest.raises(ModeError):
        s.writer(flush_every=1)


def op_close(path: str, **kw: Any) -> None:
    s = arraystore.open(path, "c", **kw)
    _write_everything(s)
    s.close()


def op_flush(path: str, **kw: Any) -> None:
    with arraystore.open(path, "c", **kw) as s:
        _write_everything(s)
        with pytest.warns(NotPersistedWarning):
            s.flush()
        with pytest.warns(NotPersistedWarning):
            s.flush(durable=True)


def op_metadata(path: str, **kw: Any) -> None:
    with arraystore.open(path, "c", **kw) as s:
        _write_everything(s)
        _try_metadata(s)


def op_memmap(path: str, **kw: Any) -> None:
    with arraystore.open(path, "c", **kw) as s:
        m = s.as_memmap()
        m[...] = 9
        m.flush()
        del m


def op_abandon(path: str, **kw: Any) -> None:
    s = arraystore.open(path, "c", **kw)
    _write_everything(s)
    s.abandon()


def op_discard(path: str, **kw: Any) -> None:
    s = arraystore.open(path, "c", **kw)
    _write_everything(s)
    s.discard()


def op_del_without_close(path: str, **kw: Any) -> None:
    s = arraystore.open(path, "c", **kw)
    _write_everything(s)
    del s
    gc.collect()


def op_exception_in_with(path: str, **kw: Any) -> None:
    def fail() -> None:
        with arraystore.open(path, "c", **kw) as s:
            _write_everything(s)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()


def op_refused_write(path: str, **kw: Any) -> None:
    with arraystore.open(path, "c", **kw) as s:
        with pytest.raises(ArrayStoreError):
            s[0] = "not a number"
        with pytest.raises(ValueError, match="shape"):
            s[0] = np.ones(99)


OPS: list[Callable[..., None]] = [
    op_close,
    op_flush,
    op_metadata,
    op_memmap,
    op_abandon,
    op_discard,
    op_del_without_close,
    op_exception_in_with,
    op_refused_write,
]


@pytest.mark.parametrize("io", ["mmap", "buffered"])
@pytest.mark.parametrize("op", OPS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("backend", ["raw", "npy", "hdf5", "zarr"])
def test_copy_on_write_touches_nothing(tmp_path: Path, backend: str, op: Callable[..., None], io: str) -> None:
    path = _make(tmp_path, backend)
    before = snapshot(tmp_path)
    expected = np.arange(24.0).reshape(6, 4)
    if not backend_class(backend).supports_copy_on_write:
        with pytest.raises(ModeError, match="copy-on-write"):
            arraystore.open(path, "c")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotPersistedWarning)
            op(path, io=io)
    assert snapshot(tmp_path) == before
    with arraystore.open(path) as s:  # and the array opens as it was, complete
        np.testing.assert_array_equal(s[...], expected)
        assert s.complete


def test_copy_on_write_refuses_to_record_a_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "bare.dat"
    np.arange(6, dtype="<i2").tofile(path)
    before = snapshot(tmp_path)
    meta = ArrayMeta((2, 3), "<i2")
    with pytest.raises(ModeError, match="write_sidecar"):
        arraystore.open(path, "c", meta=meta, write_sidecar=True)
    with arraystore.open(path, "c", meta=meta) as s:
        s[...] = 0
        _try_metadata(s)
    assert snapshot(tmp_path) == before


def test_copy_on_write_of_a_dialect_header(tmp_path: Path) -> None:
    data = tmp_path / "img.bin"
    np.arange(12, dtype="<u2").tofile(data)
    (tmp_path / "img.hdr").write_text(
        "ENVI\nsamples = 4\nlines = 3\nbands = 1\nheader offset = 0\nfile type = ENVI Standard\n"
        "data type = 12\ninterleave = bsq\nbyte order = 0\n"
    )
    before = snapshot(tmp_path)
    with arraystore.open(data, "c", backend="raw") as s:
        s[...] = np.uint16(1)
        _try_metadata(s)
    assert snapshot(tmp_path) == before
