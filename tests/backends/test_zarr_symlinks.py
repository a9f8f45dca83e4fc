"""Nothing is read or written through a symlink that leads outside the Zarr store (real symlinks)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

import arraystore
from arraystore.errors import UnsafeInputError


def write_zarr(path: Path, data: np.ndarray, chunks: tuple[int, ...], shards: tuple[int, ...] | None = None) -> None:
    """An array written by zarr-python itself."""
    arr = zarr.create_array(
        str(path), shape=data.shape, dtype=data.dtype, chunks=chunks, shards=shards, compressors=None,
        config={"write_empty_chunks": True},
    )
    arr[...] = data


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """An array outside the store, written by zarr-python, whose chunks an attacker points at."""
    path = tmp_path / "outside" / "secret.zarr"
    path.parent.mkdir()
    write_zarr(path, np.full((4, 4), 99, dtype="<i4"), (2, 2))
    return path


def test_chunk_file_symlink_outside(tmp_path: Path, victim: Path) -> None:
    store = tmp_path / "x.zarr"
    write_zarr(store, np.zeros((4, 4), "<i4"), (2, 2))
    (store / "c" / "0" / "0").unlink()
    (store / "c" / "0" / "0").symlink_to(victim / "c" / "0" / "0")
    with arraystore.open(store) as s:
        assert np.array_equal(s[2:, 2:], np.zeros((2, 2)))  # chunks not behind the link read fine
        with pytest.raises(UnsafeInputError, match="outside the store"):
            s[...]  # before the fix: the victim's 99s


def test_directory_symlink_in_the_middle_of_the_chunk_key(tmp_path: Path, victim: Path) -> None:
    store = tmp_path / "x.zarr"
    write_zarr(store, np.zeros((4, 4), "<i4"), (2, 2))
    shutil.rmtree(store / "c" / "1")
    (store / "c" / "1").symlink_to(victim / "c" / "1", target_is_directory=True)
    with arraystore.open(store) as s, pytest.raises(UnsafeInputError):
        list(s.iter_blocks(16))


def test_symlink_to_a_parent_folder(tmp_path: Path) -> None:
    store = tmp_path / "x.zarr"
    write_zarr(store, np.zeros((4, 4), "<i4"), (2, 2))
    planted = np.full((2, 2), 7, "<i4")
    (tmp_path / "0").write_bytes(planted.tobytes())  # uncompressed chunks: the bytes themselves
    shutil.rmtree(store / "c" / "0")
    (store / "c" / "0").symlink_to("../..", target_is_directory=True)  # c/0/0 is tmp_path/0
    with arraystore.open(store) as s, pytest.raises(UnsafeInputError):
        s[:2, :2]


def test_shard_file_symlink_outside(tmp_path: Path) -> None:
    victim = tmp_path / "outside.zarr"
    write_zarr(victim, np.full((8,), 5, "<i4"), (2,), shards=(4,))
    store = tmp_path / "x.zarr"
    write_zarr(store, np.zeros((8,), "<i4"), (2,), shards=(4,))
    (store / "c" / "1").unlink()
    (store / "c" / "1").symlink_to(victim / "c" / "1")
    with arraystore.open(store) as s:
        assert np.array_equal(s[:4], np.zeros(4))
        with pytest.raises(UnsafeInputError):
            s[4:]


def test_nested_array_folder_symlink_outside(tmp_path: Path, victim: Path) -> None:
    store = tmp_path / "x.zarr"
    zarr.open_group(str(store), mode="w").create_group("grp")
    (store / "grp" / "arr").symlink_to(victim, target_is_directory=True)
    with pytest.raises(UnsafeInputError):
        arraystore.open(f"{store}::/grp/arr")  # its zarr.json is outside


def test_nested_zarr_json_symlink_outside(tmp_path: Path, victim: Path) -> None:
    store = tmp_path / "x.zarr"
    root = zarr.open_group(str(store), mode="w")
    root.create_array("arr", shape=(4, 4), dtype="<i4", chunks=(2, 2))
    (store / "arr" / "zarr.json").unlink()
    (store / "arr" / "zarr.json").symlink_to(victim / "zarr.json")
    with pytest.raises(UnsafeInputError):
        arraystore.open(f"{store}::/arr")


def test_no_write_through_a_symlink_outside(tmp_path: Path, victim: Path) -> None:
    store = tmp_path / "x.zarr"
    write_zarr(store, np.zeros((4, 4), "<i4"), (2, 2))
    (store / "c" / "0" / "0").unlink()
    (store / "c" / "0" / "0").symlink_to(victim / "c" / "0" / "0")
    before = (victim / "c" / "0" / "0").read_bytes()
    with arraystore.open(store, "r+") as s, pytest.raises(UnsafeInputError):
        s[:2, :2] = np.ones((2, 2), "<i4")
    assert (victim / "c" / "0" / "0").read_bytes() == before


def test_symlinks_inside_the_store_and_a_symlinked_store_are_fine(tmp_path: Path) -> None:
    data = np.arange(16, dtype="<i4").reshape(4, 4)
    real = tmp_path / "real.zarr"
    write_zarr(real, data, (2, 2))
    (real / "c" / "1" / "1").unlink()
    os.symlink("../0/0", real / "c" / "1" / "1")  # inside the store
    link = tmp_path / "link.zarr"
    link.symlink_to(real, target_is_directory=True)
    expected = data.copy()
    expected[2:, 2:] = data[:2, :2]
    with arraystore.open(link) as s:
        assert np.array_equal(s[...], expected)


def test_no_array_created_through_a_group_symlink_outside(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    store = tmp_path / "x.zarr"
    zarr.open_group(str(store), mode="w")
    (store / "g").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeInputError):
        arraystore.create(f"{store}::/g/a", (4,), "u1")
    assert list(outside.iterdir()) == []
