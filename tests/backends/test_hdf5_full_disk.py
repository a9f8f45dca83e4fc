"""HDF5 on a full disk: every symptom (ENOSPC from a write, a failed flush, "Can't destroy cache" at
close) is StorageFullError, nothing complete-looking is left, other datasets stay readable, and the
process does not crash when h5py releases the file later. Runs on a 2 MiB tmpfs (root only)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

import arraystore
from arraystore.errors import StorageFullError


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 2 MiB tmpfs needs root (the CI container runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


SCENARIO = textwrap.dedent("""
    import sys, numpy as np, arraystore
    from arraystore.errors import StorageFullError
    target, chunks, how = sys.argv[1], eval(sys.argv[2]), sys.argv[3]
    try:
        if how == "create":
            with arraystore.create(target, (1 << 19,), "<f8", chunks=chunks) as s:
                s[...] = 1.0
        else:
            np.save(sys.argv[4], np.random.default_rng(0).random(1 << 19))
            arraystore.convert(sys.argv[4], target, chunks=chunks, compression="gzip:1" if how == "gzip" else None)
    except StorageFullError as exc:
        print("StorageFullError", exc.errno)
    else:
        print("no error")
""")


@pytest.mark.parametrize("how", ["create", "convert", "gzip"])
@pytest.mark.parametrize("chunks", [None, (1024,)], ids=["contiguous", "chunked"])
@pytest.mark.parametrize("in_file", [False, True], ids=["new-file", "existing-file"])
def test_full_disk_is_storage_full_error(small_fs: Path, tmp_path: Path, how: str, chunks: object,
                                         in_file: bool) -> None:
    path = small_fs / "x.h5"
    if in_file:
        with h5py.File(path, "w") as f:
            f["keep"] = np.arange(3)
    target = f"{path}::/a" if in_file else str(path)
    src = tmp_path / "src.npy"  # the source lives on the big disk
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", SCENARIO, target, repr(chunks), how, str(src)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]  # no crash when h5py releases the broken file
    assert out.stdout.strip() == "StorageFullError 28", out.stderr[-2000:]
    if in_file:
        with arraystore.open(f"{path}::/keep") as s:
            assert s[...].tolist() == [0, 1, 2]
        with pytest.raises(arraystore.errors.ArrayStoreError):  # never a complete-looking /a
            arraystore.open(f"{path}::/a").close()
    else:
        assert not path.exists() and not list(small_fs.glob("x.h5*"))


def test_full_disk_in_this_process(small_fs: Path) -> None:
    with pytest.raises(StorageFullError), arraystore.create(small_fs / "y.h5", (1 << 19,), "<f8",
                                                            chunks=(4096,)) as s:
        s[...] = 2.0
    assert not list(small_fs.iterdir())
    with arraystore.create(small_fs / "z.h5", (16,), "<f8") as s:  # the space was given back
        s[...] = 3.0
