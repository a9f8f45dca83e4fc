"""The stores act on what the locality detector finds: buffered reads and a warning on network mounts."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.errors import NetworkFilesystemError, NetworkFilesystemWarning
from arraystore.filesystems import set_network_fs_policy


@pytest.fixture
def remote_dir(sshfs_mount: Path) -> Path:
    d = sshfs_mount / f"stores-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    return d


@pytest.mark.parametrize("suffix", [".dat", ".npy"])
def test_auto_io_is_buffered_on_network_mount(remote_dir: Path, suffix: str) -> None:
    data = np.arange(5000, dtype="<f8").reshape(50, 100)
    path = remote_dir / f"a{suffix}"
    set_network_fs_policy("error")  # with io="auto" nothing may be memory-mapped there
    try:
        with arraystore.create(path, data.shape, data.dtype) as s:
            s[...] = data
            s[10:20, 5] = -1  # a partial-row write: read-modify-write with pread/pwrite
            data[10:20, 5] = -1
        with arraystore.open(path, "r+") as s:
            assert s.io == "buffered"
            assert np.array_equal(s[...], data)
            assert np.array_equal(s[3:7, ::3], data[3:7, ::3])
            with pytest.raises(NetworkFilesystemError):
                s.as_memmap()
    finally:
        set_network_fs_policy(None)


def test_memmap_on_network_mount_warns(remote_dir: Path) -> None:
    path = remote_dir / "m.dat"
    set_network_fs_policy("ignore")
    try:
        with arraystore.create(path, (10,), "<i4") as s:
            s[...] = 1
    finally:
        set_network_fs_policy(None)
    with arraystore.open(path) as s:
        with pytest.warns(NetworkFilesystemWarning, match="buffered"):
            m = s.as_memmap()
        assert m.sum() == 10


def test_local_store_maps(tmp_path: Path) -> None:
    with arraystore.create(tmp_path / "l.dat", (10,), "<i4") as s:
        s[...] = 2
    with arraystore.open(tmp_path / "l.dat") as s:
        assert s.io == "mmap"
