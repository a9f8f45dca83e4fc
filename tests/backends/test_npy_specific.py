"""What only the npy backend does: header validation before mapping."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.errors import MetadataError, SizeMismatchError, UnsafeInputError


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_versions(tmp_path: Path, version: tuple[int, int]) -> None:
    path = tmp_path / "v.npy"
    data = np.arange(6, dtype="<i4")
    if version == (3, 0):  # 3.0 exists for non-latin-1 field names
        data = data.astype([("ü", "<i4")])
    with open(path, "wb") as f:
        np.lib.format.write_array(f, data, version=version)
    with arraystore.open(path) as s:
        assert s[...].tobytes() == data.tobytes()


def test_truncated(tmp_path: Path) -> None:
    path = tmp_path / "t.npy"
    np.save(path, np.zeros((100, 100)))
    with open(path, "r+b") as f:
        f.truncate(1000)
    with pytest.raises(SizeMismatchError, match="truncated"):
        arraystore.open(path)


def test_object_array_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafeInputError, match="unpickle"):
        arraystore.open(path)


def test_huge_header_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.npy"
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), " + " " * 20000 + "}"
    header_bytes = header.encode("latin1") + b"\n"
    path.write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header_bytes)) + header_bytes + b"\0" * 4)
    with pytest.raises(UnsafeInputError, match="cap"):
        arraystore.open(path)


@pytest.mark.parametrize(
    "blob",
    [b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'", b"\x93NUMPY\x09\x00", b"not a npy file at all", b""],
    ids=["truncated-header", "unknown-version", "no-magic", "empty"],
)
def test_malformed(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "m.npy"
    path.write_bytes(blob)
    with pytest.raises(MetadataError):
        arraystore.open(path)


def test_terabyte_shape_refused_without_allocating(tmp_path: Path) -> None:
    path = tmp_path / "tb.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (2**20, 2**20)})
    with pytest.raises(SizeMismatchError, match="8,796,093,022,208"):
        arraystore.open(path)


def test_attrs_refused(tmp_path: Path) -> None:
    with pytest.raises(arraystore.ArrayStoreError, match="attributes"):
        arraystore.create(tmp_path / "a.npy", (2,), "f4", attrs={"x": 1})
