"""``file_checksum`` (a virtual migration's content checksum) equals the checksum of the file's bytes at every size:
one read for small files, reads overlapped with hashing for large ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arraystore.checksums import StreamHasher
from arraystore.virtual._migrate import _READ, file_checksum


@pytest.mark.parametrize("size", [0, 1, 4096, _READ - 1, _READ, _READ + 1, 2 * _READ, 3 * _READ + 7])
def test_file_checksum_is_the_checksum_of_the_bytes(tmp_path: Path, size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    path = tmp_path / "f.dat"
    data.tofile(path)
    assert file_checksum(path) == StreamHasher.of(data)
    flipped = data.copy()
    if size:
        flipped[size // 2] ^= 1  # one bit changed anywhere changes it
        flipped.tofile(path)
        assert file_checksum(path) != StreamHasher.of(data)
