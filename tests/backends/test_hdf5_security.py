"""Hostile HDF5 files: external links, external raw storage, virtual datasets, absurd chunks."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import arraystore
from arraystore.errors import NotMemoryMappableError, UnsafeInputError


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "secret.bin"
    path.write_bytes(b"root:x:0:0:secret\n" * 4)
    return path


@pytest.fixture
def inside(tmp_path: Path) -> Path:
    folder = tmp_path / "inside"
    folder.mkdir()
    return folder


def test_external_link_is_refused(inside: Path, secret: Path) -> None:
    other = secret.parent / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.arange(4)
    path = inside / "hostile.h5"
    with h5py.File(path, "w") as f:
        f["link"] = h5py.ExternalLink(str(other), "/data")
    with pytest.raises(UnsafeInputError, match="external link"):
        arraystore.open(f"{path}::/link")
    with h5py.File(path, "a") as f:
        f["soft"] = h5py.SoftLink("/link")
    with pytest.raises(UnsafeInputError):  # also through a soft link to it
        arraystore.open(f"{path}::/soft")
    with arraystore.open(f"{path}::/link", allow_external=True) as s:
        assert s[...].tolist() == [0, 1, 2, 3]


def test_external_storage_is_refused(inside: Path, secret: Path) -> None:
    path = inside / "hostile.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("passwd", shape=(16,), dtype="S1", external=[(str(secret), 0, 16)])
    with pytest.raises(UnsafeInputError, match="external raw file"):
        arraystore.open(path)
    with arraystore.open(path, allow_external=True) as s:
        assert b"".join(s[...].tolist()) == secret.read_bytes()[:16]
    with arraystore.open(path, allow_external=True) as s, pytest.raises(NotMemoryMappableError):
        s.as_memmap()


def test_virtual_dataset_outside_folder_is_refused(inside: Path, secret: Path) -> None:
    src = secret.parent / "src.h5"
    with h5py.File(src, "w") as f:
        f["data"] = np.arange(6, dtype="<i4")
    layout = h5py.VirtualLayout(shape=(6,), dtype="<i4")
    layout[:] = h5py.VirtualSource(str(src), "data", shape=(6,))
    path = inside / "vds.h5"
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("v", layout)
    with pytest.raises(UnsafeInputError, match="virtual dataset"):
        arraystore.open(path)
    with arraystore.open(path, allow_external=True) as s:
        assert s[...].tolist() == list(range(6))


def test_virtual_dataset_inside_folder_is_allowed(inside: Path) -> None:
    src = inside / "src.h5"
    with h5py.File(src, "w") as f:
        f["data"] = np.arange(6, dtype="<i4")
    layout = h5py.VirtualLayout(shape=(6,), dtype="<i4")
    layout[:] = h5py.VirtualSource("src.h5", "data", shape=(6,))
    path = inside / "vds.h5"
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("v", layout)
    with arraystore.open(path) as s:
        assert s[...].tolist() == list(range(6))
        with pytest.raises(NotMemoryMappableError):
            s.as_memmap()


def test_absurd_chunks_are_refused(inside: Path) -> None:
    path = inside / "bomb.h5"
    with h5py.File(path, "w") as f:  # a 2 GiB chunk, never written: the file stays tiny
        f.create_dataset("bomb", shape=(1 << 28,), chunks=(1 << 28,), dtype="<f8")
    assert path.stat().st_size < 1 << 16
    with pytest.raises(UnsafeInputError, match="chunk"):
        arraystore.open(path)
    with arraystore.open(path, max_chunk_bytes=1 << 32) as s:
        assert s.shape == (1 << 28,)
