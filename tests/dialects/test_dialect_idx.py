"""IDX (MNIST's format): files written from the published description, read back in place."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from arraystore.dialects import detect, get_dialect
from arraystore.errors import MetadataError, SizeMismatchError, UnsupportedDtypeError

TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def write_idx(path: Path, arr: np.ndarray, code: int) -> Path:
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(head + arr.astype(np.dtype(TYPES[code]).newbyteorder(">")).tobytes())
    return path


@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 4), (2, 1, 3, 2)])
@pytest.mark.parametrize("code", sorted(TYPES))
def test_every_type_and_rank(tmp_path, mapped, make_sample, code, shape):
    arr = make_sample(shape, TYPES[code].lstrip(">"), seed=code)
    path = write_idx(tmp_path / f"data-idx{len(shape)}-ubyte", arr, code)
    p = detect(path)
    assert p is not None
    assert p.dialect == "idx"
    assert p.header_path == p.data_path == path
    assert p.offset == 4 + 4 * len(shape)
    assert p.meta.shape == shape
    assert p.meta.dtype == np.dtype(TYPES[code]).newbyteorder(">")
    np.testing.assert_array_equal(mapped(p), arr)


@pytest.mark.parametrize("name", ["labels.idx", "t10k-labels-idx1-ubyte", "train-images.idx3-ubyte", "X.IDX"])
def test_idx_names(tmp_path, mapped, name):
    arr = np.arange(10, dtype="u1")
    p = detect(write_idx(tmp_path / name, arr, 0x08))
    assert p is not None
    np.testing.assert_array_equal(mapped(p), arr)


def test_mnist_like_images_and_zero_length(tmp_path, mapped):
    images = np.arange(3 * 28 * 28, dtype=np.uint32).astype("u1").reshape(3, 28, 28)
    p = detect(write_idx(tmp_path / "train-images-idx3-ubyte", images, 0x08))
    assert p is not None
    assert p.meta.shape == (3, 28, 28)
    np.testing.assert_array_equal(mapped(p), images)
    p = detect(write_idx(tmp_path / "empty.idx", np.zeros((0, 5), ">f4"), 0x0D))
    assert p is not None
    assert p.meta.shape == (0, 5)
    assert p.meta.nbytes == 0


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        (bytes([0, 0, 0x0A, 1]) + struct.pack(">I", 2) + b"\0\0", UnsupportedDtypeError, "0x0A"),
        (bytes([0, 0, 0x08, 3]) + struct.pack(">I", 2), MetadataError, "truncated"),
        (bytes([1, 0, 0x08, 1]) + struct.pack(">I", 2) + b"\0\0", MetadataError, "IDX magic"),
        (b"", MetadataError, "empty file"),
        (bytes([0, 0, 0x08, 200]) + b"\0" * 800, MetadataError, "at most 64"),
        (bytes([0, 0, 0x08, 1]) + struct.pack(">I", 5) + b"\0\0", SizeMismatchError, "expected 5 bytes"),
        (bytes([0, 0, 0x0E, 1]) + struct.pack(">I", 2) + b"\0" * 17, SizeMismatchError, "expected 16 bytes"),
        (bytes([0, 0, 0x0E, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1), MetadataError, r"2\*\*63"),
    ],
)
def test_malformed_files_raise_typed_errors(tmp_path, content, error, match):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(error, match=match):
        detect(path)


def test_gzip_and_foreign_data_path(tmp_path):
    gz = tmp_path / "train-labels-idx1-ubyte.gz"
    gz.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 1, 7])))
    with pytest.raises(MetadataError, match="gunzip"):
        detect(gz)
    path = write_idx(tmp_path / "a.idx", np.zeros(3, "u1"), 0x08)
    with pytest.raises(MetadataError, match="holds its own data"):
        get_dialect("idx").parse(path, tmp_path / "other.raw")


def test_header_is_read_without_the_data(tmp_path):
    """A sparse 4 GiB IDX parses instantly: only the 8-byte header is read."""
    path = tmp_path / "big.idx"
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 2**32 - 1))
        f.truncate(8 + 2**32 - 1)
    p = detect(path)
    assert p is not None
    assert p.meta.shape == (2**32 - 1,)
