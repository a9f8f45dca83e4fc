"""exists() and share_staged(): the documented way into staging, instead of a backend's private hooks."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import arraystore
from arraystore._open import exists, share_staged
from arraystore.errors import ArrayChangedError, BackendError


def test_exists_asks_the_backend(tmp_path: Path) -> None:
    h5 = tmp_path / "a.h5"
    with h5py.File(h5, "w") as f:
        f["x"] = np.arange(3)
    assert exists(f"{h5}::/x") and not exists(f"{h5}::/y")
    assert not exists(tmp_path / "none.npy")
    np.save(tmp_path / "b.npy", np.arange(3))
    assert exists(tmp_path / "b.npy") and exists(str(tmp_path / "b.npy"), "npy")


def test_other_processes_write_chunks_of_a_staged_zarr_array(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    data = np.arange(40, dtype="<i4").reshape(4, 10)
    with arraystore.create(path, data.shape, data.dtype, chunks=(1, 10)) as s:
        ref = share_staged(s)
        assert not path.exists()  # still staged
        blob = pickle.dumps(ref)
        code = (
            "import pickle, sys, numpy as np\n"
            "ref = pickle.loads(sys.stdin.buffer.read())\n"
            "h = ref.open()\n"
            "h[2:4] = np.arange(20, 40, dtype='<i4').reshape(2, 10)\n"
            "h.abandon()\n"
        )
        subprocess.run([sys.executable, "-c", code], input=blob, check=True)
        s[0:2] = data[0:2]
    with arraystore.open(path) as s:
        np.testing.assert_array_equal(s[...], data)


def test_share_staged_refuses_what_cannot_be_shared(tmp_path: Path) -> None:
    with arraystore.create(tmp_path / "a.h5", (4,), "f4") as s, pytest.raises(BackendError, match="one writing process"):
        share_staged(s)
    with arraystore.create(tmp_path / "b.zarr", (4,), "f4") as s:
        pass
    with arraystore.open(tmp_path / "b.zarr", "r+") as s, pytest.raises(BackendError, match="not an array being created"):
        share_staged(s)


def test_a_staged_array_changed_under_the_reference_is_refused(tmp_path: Path) -> None:
    s = arraystore.create(tmp_path / "c.zarr", (4, 4), "f4", chunks=(2, 4))
    ref = share_staged(s)
    s.discard()  # the staged array is gone
    with pytest.raises(ArrayChangedError):
        ref.open()
