"""Opening what is not there says which part is missing: the file, or the array inside an existing file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.errors import ArrayNotFoundError


@pytest.mark.parametrize("name", ["missing.dat", "missing.npy", "missing.h5", "missing.zarr"])
def test_missing_file_says_no_such_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(ArrayNotFoundError, match="no such file or folder; check the path"):
        arraystore.open(tmp_path / name)


def test_missing_key_in_existing_hdf5_names_the_key(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py", reason="needs h5py to write the HDF5 file")
    p = tmp_path / "exp.h5"
    with h5py.File(p, "w") as f:
        f["raw"] = np.zeros(4)
        f["meta/temps"] = np.arange(3)
    with pytest.raises(ArrayNotFoundError, match=r"exp.h5 exists, but holds no hdf5 array at 'nope'.*after '::'"):
        arraystore.open(f"{p}::nope")
    assert arraystore.open(f"{p}::/meta/temps").shape == (3,)
