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


def _vds(path: Path, source_file: str, source_dset: str, n: int = 6, name: str = "v") -> None:
    layout = h5py.VirtualLayout(shape=(n,), dtype="<i4")
    layout[:] = h5py.VirtualSource(source_file, source_dset, shape=(n,))
    with h5py.File(path, "a") as f:
        f.create_virtual_dataset(name, layout)


def test_virtual_dataset_inside_folder_needs_the_opt_in(inside: Path) -> None:
    with h5py.File(inside / "src.h5", "w") as f:
        f["data"] = np.arange(6, dtype="<i4")
    path = inside / "vds.h5"
    _vds(path, "src.h5", "data")
    with pytest.raises(UnsafeInputError, match="allow_virtual=True"):
        arraystore.open(path)
    with arraystore.open(path, allow_virtual=True) as s:
        assert s[...].tolist() == list(range(6))
        with pytest.raises(NotMemoryMappableError):
            s.as_memmap()


def test_virtual_source_dot_through_an_external_link_is_refused(inside: Path, secret: Path) -> None:
    other = secret.parent / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.arange(6, dtype="<i4")
    path = inside / "vds.h5"
    with h5py.File(path, "w") as f:
        f["ext"] = h5py.ExternalLink(str(other), "/data")
    _vds(path, ".", "/ext")
    with pytest.raises(UnsafeInputError, match="external link"):
        arraystore.open(f"{path}::/v", allow_virtual=True)


@pytest.mark.parametrize("kind", ["virtual", "external-link", "external-storage"])
def test_virtual_source_that_escapes_one_level_down_is_refused(inside: Path, secret: Path, kind: str) -> None:
    outside = secret.parent / "far.h5"
    with h5py.File(outside, "w") as f:
        f["data"] = np.arange(6, dtype="<i4")
    sibling = inside / "sibling.h5"
    if kind == "virtual":
        _vds(sibling, str(outside), "data", name="data")
    elif kind == "external-link":
        with h5py.File(sibling, "w") as f:
            f["data"] = h5py.ExternalLink(str(outside), "/data")
    else:
        raw = secret.parent / "far.bin"
        raw.write_bytes(np.arange(6, dtype="<i4").tobytes())
        with h5py.File(sibling, "w") as f:
            f.create_dataset("data", shape=(6,), dtype="<i4", external=[(str(raw), 0, 24)])
    path = inside / "vds.h5"
    _vds(path, "sibling.h5", "data")
    with h5py.File(path, "r") as f:  # what h5py itself does: reads the far file
        assert f["v"][...].tolist() == list(range(6))
    with pytest.raises(UnsafeInputError):
        arraystore.open(path, allow_virtual=True)
    with arraystore.open(path, allow_external=True) as s:
        assert s[...].tolist() == list(range(6))


def test_virtual_source_missing_beside_the_file_is_not_found_in_the_cwd(
    inside: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    with h5py.File(cwd / "src.h5", "w") as f:
        f["data"] = np.arange(6, dtype="<i4")
    path = inside / "vds.h5"
    _vds(path, "src.h5", "data")
    monkeypatch.chdir(cwd)
    with h5py.File(path, "r") as f:  # HDF5 finds it through the working directory
        assert f["v"][...].tolist() == list(range(6))
    with pytest.raises(UnsafeInputError, match="missing beside it"):
        arraystore.open(path, allow_virtual=True)


def test_virtual_source_symlinked_out_of_the_folder_is_refused(inside: Path, secret: Path) -> None:
    far = secret.parent / "far.h5"
    with h5py.File(far, "w") as f:
        f["data"] = np.arange(6, dtype="<i4")
    (inside / "src.h5").symlink_to(far)
    path = inside / "vds.h5"
    _vds(path, "src.h5", "data")
    with pytest.raises(UnsafeInputError, match="outside"):
        arraystore.open(path, allow_virtual=True)


def test_virtual_chain_inside_the_folder_reads_with_the_opt_in(inside: Path) -> None:
    with h5py.File(inside / "a.h5", "w") as f:
        f["data"] = np.arange(6, dtype="<i4")
    _vds(inside / "b.h5", "a.h5", "data", name="data")
    path = inside / "vds.h5"
    _vds(path, "b.h5", "data")
    _vds(path, ".", "/v", name="w")  # a source in the same file, itself virtual
    with arraystore.open(f"{path}::/w", allow_virtual=True) as s:
        assert s[...].tolist() == list(range(6))


def test_absurd_chunks_are_refused(inside: Path) -> None:
    path = inside / "bomb.h5"
    with h5py.File(path, "w") as f:  # a 2 GiB chunk, never written: the file stays tiny
        f.create_dataset("bomb", shape=(1 << 28,), chunks=(1 << 28,), dtype="<f8")
    assert path.stat().st_size < 1 << 16
    with pytest.raises(UnsafeInputError, match="chunk"):
        arraystore.open(path)
    with arraystore.open(path, max_chunk_bytes=1 << 32) as s:
        assert s.shape == (1 << 28,)
