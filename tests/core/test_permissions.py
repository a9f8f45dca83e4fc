"""Permissions never widen: every file arraystore writes or replaces keeps the existing (or source) mode, within the umask."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.migration import migrate

SUFFIX = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def modes(folder: Path) -> dict[str, int]:
    out = {}
    for p in [folder, *folder.rglob("*")]:
        out[str(p.relative_to(folder))] = stat.S_IMODE(p.stat().st_mode)
    return out


def restrict(folder: Path, file_mode: int = 0o600, dir_mode: int = 0o700) -> None:
    for p in folder.rglob("*"):
        os.chmod(p, dir_mode if p.is_dir() else file_mode)


def _make(folder: Path, backend: str, shape: tuple[int, ...] = (6,), value: float = 1.0) -> Path:
    path = folder / f"a{SUFFIX[backend]}"
    kw = {"chunks": (2,)} if backend == "zarr" else {}
    with arraystore.create(path, shape, "<f4", backend=backend, overwrite=True, **kw) as s:
        s[...] = value
    return path


def _assert_private(folder: Path, file_mode: int = 0o600, dir_mode: int = 0o700) -> None:
    found = modes(folder)
    wrong = {k: oct(v) for k, v in found.items() if k != "." and v != (dir_mode if (folder / k).is_dir() else file_mode)}
    assert not wrong, wrong


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("backend", list(SUFFIX))
def test_writes_attrs_and_overwrite_keep_a_private_mode(tmp_path: Path, backend: str) -> None:
    path = _make(tmp_path, backend)
    restrict(tmp_path)
    with arraystore.open(path, "r+") as s:  # r+ writes (and the npy marker while it exists)
        s[0] = 5
        s.flush()
        _assert_private(tmp_path)
    _assert_private(tmp_path)
    if backend != "npy":
        with arraystore.open(path, "r+") as s:
            s.attrs["k"] = 1
        _assert_private(tmp_path)
    kw = {"chunks": (3,)} if backend == "zarr" else {}
    s = arraystore.create(path, (9,), "<f4", backend=backend, overwrite=True, **kw)
    s[...] = 2
    _assert_private(tmp_path)  # the staging place, while it is being built
    s.close()
    _assert_private(tmp_path)
    with arraystore.open(path, "r+") as s:  # new chunks of the new array
        s[...] = 3
    _assert_private(tmp_path)
    with arraystore.open(path) as s:
        assert (s[...] == 3).all()


@pytest.mark.usefixtures("umask_022")
def test_group_readable_stays_group_readable_and_umask_still_applies(tmp_path: Path) -> None:
    path = _make(tmp_path, "raw")
    os.chmod(path, 0o640)
    os.chmod(f"{path}.json", 0o640)
    with arraystore.open(path, "r+") as s:
        s[0] = 1
    assert stat.S_IMODE(os.stat(f"{path}.json").st_mode) == 0o640
    os.chmod(f"{path}.json", 0o666)  # wider than the umask allows: narrowed, never kept wider
    with arraystore.open(path, "r+") as s:
        s.attrs["x"] = 1
    assert stat.S_IMODE(os.stat(f"{path}.json").st_mode) == 0o644


def test_new_arrays_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        for backend in SUFFIX:
            folder = tmp_path / backend
            folder.mkdir(mode=0o700)
            _make(folder, backend)
            _assert_private(folder)
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("to", ["raw", "npy", "hdf5", "zarr"])
def test_migrated_outputs_keep_the_source_mode(tmp_path: Path, to: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = src / "x.dat"
    np.arange(12, dtype="<i2").tofile(data)
    (src / "x.json").write_text(json.dumps({"dtype": "int16", "shape": [3, 4]}))
    os.chmod(data, 0o600)
    dst = tmp_path / "dst"
    report = migrate(src, dst, to=to)
    outputs = [p for p in dst.iterdir() if p.name.startswith("x.")]
    assert outputs, (report.summary(), list(dst.iterdir()))
    for out in outputs:
        for p in [out, *out.rglob("*")]:
            want = 0o700 if p.is_dir() else 0o600
            assert stat.S_IMODE(p.stat().st_mode) == want, (p, oct(p.stat().st_mode))


@pytest.mark.usefixtures("umask_022")
def test_writer_checkpoints_take_the_array_mode(tmp_path: Path) -> None:
    path = _make(tmp_path, "raw", shape=(8, 2))
    restrict(tmp_path)
    with arraystore.open(path, "r+") as s:
        w = s.writer(flush_every=1)
        w.append(np.ones((2, 2), "<f4"))
        _assert_private(tmp_path)
        w.close()
    _assert_private(tmp_path)


@pytest.mark.usefixtures("umask_022")
def test_zip_store_overwrite_keeps_its_mode_and_stages_in_a_searchable_folder(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr.zip"
    with arraystore.create(path, (8,), "<f4", chunks=(2,)) as s:
        s[...] = 1
    os.chmod(path, 0o600)
    s = arraystore.create(path, (8,), "<f4", chunks=(2,), overwrite=True)
    staging = tmp_path / "a.zarr.zip.partial"
    assert staging.is_dir() and stat.S_IMODE(staging.stat().st_mode) == 0o700
    s[...] = 2
    s.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with arraystore.open(path) as s:
        assert (s[...] == 2).all()


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("shape", [(12, 5), (6, 4, 3)])
@pytest.mark.parametrize("how", ["convert", "write"])
def test_new_chunk_folders_of_a_private_array_stay_private(tmp_path: Path, shape: tuple[int, ...], how: str) -> None:
    """Chunk files in folders made for them (``c/i/j``, one or more levels) take the array's mode, whether written
    by the store or by a conversion replacing the array (its chunk files written straight into the staged copy)."""
    data = np.arange(int(np.prod(shape)), dtype="<f4").reshape(shape)
    chunks = (2,) + shape[1:-1] + (2,)
    path = tmp_path / "a.zarr"
    with arraystore.create(path, shape, "<f4", chunks=chunks) as s:
        s[...] = 1
    restrict(tmp_path)
    os.chmod(tmp_path, 0o700)
    if how == "convert":
        src = tmp_path / "src.npy"
        np.save(src, data)
        os.chmod(src, 0o600)
        arraystore.convert(str(src), str(path), chunks=chunks, compression="zstd:1", overwrite=True,
                           max_memory="64KiB")
    else:
        with arraystore.open(path, "r+") as s:
            s[...] = data
    assert len(list((path / "c").rglob("*"))) > 6
    _assert_private(tmp_path)
    with arraystore.open(path) as s:
        np.testing.assert_array_equal(s[...], data)
