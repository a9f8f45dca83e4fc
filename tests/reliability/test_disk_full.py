"""A full disk at every stage of create, publish and write: StorageFullError, and nothing complete-looking.

Runs on a real 1 MiB tmpfs (``mount -t tmpfs``, root only), filled to a chosen number of
free pages with a filler file, so the disk fills exactly where each case wants it to.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.errors import StorageFullError

PAGE = 4096


def _mount(folder: Path) -> bool:
    if os.geteuid() != 0:
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    return proc.returncode == 0


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted afterwards."""
    folder = tmp_path / "small"
    folder.mkdir()
    if not _mount(folder):
        pytest.skip("needs root and tmpfs (mount -t tmpfs -o size=1m) to fill a real file system")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, free_pages: int = 0) -> Path:
    """Fill the file system of ``folder`` until exactly ``free_pages`` pages are free."""
    filler = folder / f"filler-{uuid.uuid4().hex[:6]}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (64 * PAGE, PAGE):
            while True:
                try:
                    os.write(fd, b"\xff" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - size % PAGE - free_pages * PAGE))
    return filler


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("filler-"))


# -- raw: the final sidecar is written before anything is published -------------------------


@pytest.mark.parametrize("free_pages", [0, 1, 2, 3])
def test_raw_new_destination(disk: Path, free_pages: int) -> None:
    path = disk / "a.dat"
    data = np.arange(16 * 1024, dtype="<i4")  # 64 KiB
    s = arraystore.create(path, data.shape, data.dtype, attrs={"note": "x" * 3000})
    s[...] = data
    filler = fill(disk, free_pages)
    try:
        s.close()
    except StorageFullError:
        # Nothing published: no data file and no sidecar at the destination.
        assert not path.exists() and not Path(f"{path}.json").exists(), leftovers(disk)
    else:
        with arraystore.open(path) as r:
            assert r.complete and np.array_equal(r[...], data)
    filler.unlink()
    # A rerun is never blocked (before: AlreadyExistsError after a published "complete": false).
    with arraystore.create(path, data.shape, data.dtype, overwrite=path.exists()) as s2:
        s2[...] = data
    with arraystore.open(path) as r:
        assert r.complete and np.array_equal(r[...], data)
    assert leftovers(disk) == ["a.dat", "a.dat.json"]


@pytest.mark.parametrize("free_pages", [0, 1, 2, 3])
def test_raw_overwrite_keeps_the_old_array_or_publishes_the_new(disk: Path, free_pages: int) -> None:
    path = disk / "a.dat"
    old = np.arange(1024, dtype="<i4")
    with arraystore.create(path, old.shape, old.dtype) as s:
        s[...] = old
    new = np.full(2048, 7, dtype="<i2")
    s = arraystore.create(path, new.shape, new.dtype, overwrite=True, attrs={"note": "y" * 3000})
    s[...] = new
    filler = fill(disk, free_pages)
    try:
        s.close()
        expected = new
    except StorageFullError:
        expected = old
    with arraystore.open(path) as r:  # never the new bytes under the old sidecar, never incomplete
        assert r.complete and r.dtype == expected.dtype and np.array_equal(r[...], expected)
    filler.unlink()


def test_raw_r_plus_write_on_a_full_disk(disk: Path) -> None:
    path = disk / "a.dat"
    data = np.arange(1024, dtype="<i4")
    with arraystore.create(path, data.shape, data.dtype) as s:
        s[...] = data
    filler = fill(disk)
    with arraystore.open(path, "r+") as s, pytest.raises(StorageFullError):
        s[0] = np.int32(5)  # the "incomplete" mark cannot be written: refuse before touching data
    with arraystore.open(path) as r:
        assert r.complete and np.array_equal(r[...], data)
    filler.unlink()


def test_raw_too_big_for_the_disk(disk: Path) -> None:
    with pytest.raises(StorageFullError):
        arraystore.create(disk / "a.dat", (2 * 1024 * 1024,), "u1")
    assert leftovers(disk) == []


# -- npy ---------------------------------------------------------------------------------------


def test_npy_too_big_for_the_disk(disk: Path) -> None:
    with pytest.raises(StorageFullError):
        arraystore.create(disk / "a.npy", (2 * 1024 * 1024,), "u1")
    assert leftovers(disk) == []


@pytest.mark.parametrize("free_pages", [0, 1])
def test_npy_publish_on_a_full_disk(disk: Path, free_pages: int) -> None:
    path = disk / "a.npy"
    data = np.arange(16 * 1024, dtype="<i4")
    s = arraystore.create(path, data.shape, data.dtype)
    s[...] = data
    filler = fill(disk, free_pages)
    s.close()  # the data was preallocated at create: publishing needs no space
    assert np.array_equal(np.load(path), data)
    filler.unlink()


# -- zarr --------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".zarr", ".zarr.zip"])
def test_zarr_chunks_fill_the_disk(disk: Path, suffix: str) -> None:
    path = disk / f"a{suffix}"
    data = np.arange(512 * 1024, dtype="<i4")  # 2 MiB uncompressed on a 1 MiB disk

    def write_all() -> None:
        with arraystore.create(path, data.shape, data.dtype, chunks=(16 * 1024,)) as s:
            for i in range(0, data.size, 16 * 1024):
                s[i : i + 16 * 1024] = data[i : i + 16 * 1024]

    with pytest.raises(StorageFullError):
        write_all()
    assert leftovers(disk) == []


def test_zarr_zip_packing_fills_the_disk(disk: Path) -> None:
    path = disk / "a.zarr.zip"
    data = np.arange(150 * 1024, dtype="<i4")  # 600 KiB: fits once, not twice
    s = arraystore.create(path, data.shape, data.dtype, chunks=(16 * 1024,))
    s[...] = data
    with pytest.raises(StorageFullError):
        s.close()
    assert not path.exists()
    assert not any(p.name.endswith(".zip") for p in disk.rglob("*")), leftovers(disk)
    with contextlib.suppress(Exception):
        s.discard()


@pytest.mark.parametrize("free_pages", [0, 1])
def test_zarr_r_plus_write_on_a_full_disk(disk: Path, free_pages: int) -> None:
    path = disk / "a.zarr"
    data = np.arange(1024, dtype="<i4")
    with arraystore.create(path, data.shape, data.dtype, chunks=(256,)) as s:
        s[...] = data
    filler = fill(disk, free_pages)
    try:
        with arraystore.open(path, "r+") as s:
            s[:256] = np.zeros(256, "<i4")
    except StorageFullError:
        pass
    filler.unlink()
    # Either the write landed and the array is complete, or it is reported incomplete: never wrong silently.
    try:
        with arraystore.open(path) as r:
            got = r[...]
        assert np.array_equal(got[256:], data[256:]) and got[:256].tolist() in (data[:256].tolist(), [0] * 256)
    except arraystore.errors.IncompleteArrayError:
        pass


def test_zarr_new_group_metadata_on_a_full_disk(disk: Path) -> None:
    root = disk / "h.zarr"
    filler = fill(disk)
    with pytest.raises(StorageFullError):
        arraystore.create(f"{root}::/g/a", (4,), "u1")
    filler.unlink()
    assert not any(p.name.endswith(".partial") for p in disk.rglob("*"))


@pytest.mark.parametrize("suffix", [".zarr", ".zarr.zip", ".dat", ".npy"])
def test_create_on_a_full_disk(disk: Path, suffix: str) -> None:
    filler = fill(disk)

    def write() -> None:
        with arraystore.create(disk / f"a{suffix}", (4096,), "<i4") as s:
            s[...] = np.arange(4096, dtype="<i4")

    with pytest.raises(StorageFullError):
        write()
    assert leftovers(disk) == []
    filler.unlink()


# -- same-layout copies: the destination's byte range is reserved before the first byte ----------


@pytest.mark.parametrize("suffix", [".dat", ".npy", ".h5"])
def test_byte_copy_too_big_for_the_disk(disk: Path, tmp_path: Path, suffix: str) -> None:
    """A kernel or buffered copy into a disk too small: StorageFullError, and the staged destination removed."""
    if suffix == ".h5":
        pytest.importorskip("h5py")
    src = tmp_path / "src.dat"
    with arraystore.create(src, (2 * 1024 * 1024,), "u1") as s:
        s[...] = 7
    with pytest.raises(StorageFullError):
        arraystore.convert(str(src), str(disk / f"a{suffix}"), max_memory="64KiB")
    assert leftovers(disk) == []
