"""Faults: a full disk, a read-only file system, a source that shrinks mid-conversion.

The disk-full and read-only tests mount a small tmpfs inside ``tmp_path`` (root is
needed; CI runs as root). Where mounting is not permitted they skip with the reason —
except under ``CI``, where a skip would hide a missing guarantee, so they fail.

Tests run as root, and permission bits do not stop root (``chmod 0444`` is ignored), so
"read-only" is a read-only *mount*: the tmpfs is remounted ``ro`` and every write gets
``EROFS`` whoever asks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.errors import ArrayStoreError, ReadOnlyError, StorageFullError

from .conftest import ROOT

BACKENDS = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        reason = f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode}); needs root and CAP_SYS_ADMIN"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — CI must be able to run the disk-full and read-only tests")
        pytest.skip(reason)


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs."""
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt, "2m")
    try:
        yield mnt
    finally:
        _umount(mnt)


@pytest.fixture
def readonly_fs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs holding one array of every backend, then remounted read-only."""
    mnt = tmp_path / "ro"
    _mount_tmpfs(mnt, "16m")
    try:
        for backend, suffix in BACKENDS.items():
            with arraystore.create(mnt / f"a{suffix}", (8, 8), "<f4", backend=backend) as s:
                s[...] = np.arange(64, dtype="<f4").reshape(8, 8)
        proc = subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot remount the tmpfs read-only: {proc.stderr.strip()}")
        yield mnt
    finally:
        _umount(mnt)


def _leftovers(folder: Path, keep: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# -- disk full -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_create_on_a_full_disk_is_a_typed_error_and_leaves_nothing(small_fs: Path, backend: str) -> None:
    path = small_fs / f"big{BACKENDS[backend]}"
    data = np.random.default_rng(0).random((1024, 512))  # 4 MiB of incompressible data on a 2 MiB disk
    with pytest.raises(StorageFullError), arraystore.create(path, data.shape, data.dtype, backend=backend) as s:  # noqa: PT012
        for i in range(0, 1024, 64):
            s[i:i + 64] = data[i:i + 64]
    assert _leftovers(small_fs) == []


def test_sidecar_update_on_a_full_disk_is_a_typed_error(small_fs: Path) -> None:
    path = small_fs / "a.dat"
    with arraystore.create(path, (16,), "<f8", backend="raw") as s:
        s[...] = 1.0
    filler = small_fs / "filler"
    with open(filler, "wb") as f:
        try:
            while True:  # fill until the disk says no
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    with arraystore.open(path, "r+") as s, pytest.raises(StorageFullError):
        s.attrs["note"] = "x" * 10000
    filler.unlink()
    with arraystore.open(path) as s:
        assert s.complete
        assert (s[...] == 1.0).all()


@pytest.mark.parametrize("dst_backend", ["npy", "hdf5", "zarr", "raw"])
def test_convert_onto_a_full_disk_fails_typed_and_cleans_up(small_fs: Path, tmp_path: Path, dst_backend: str) -> None:
    from arraystore.conversion import convert

    src = tmp_path / "src.dat"
    data = np.random.default_rng(1).random((1024, 512))
    with arraystore.create(src, data.shape, data.dtype) as s:
        s[...] = data
    dst = small_fs / f"dst{BACKENDS[dst_backend]}"
    with pytest.raises(StorageFullError):
        convert(src, dst, max_memory="1MiB")
    assert _leftovers(small_fs) == [], "a failed conversion must not leave temporary files on a full disk"


def test_writer_checkpoint_on_a_full_disk_is_a_typed_error(small_fs: Path) -> None:
    from arraystore.writer import ArrayWriter

    path = small_fs / "w.zarr"
    rng = np.random.default_rng(2)
    with (pytest.raises(StorageFullError),  # noqa: PT012 - whichever write or checkpoint hits the limit
          ArrayWriter.create(path, (4096, 256), "<f8", flush_every=4, chunks=(16, 256)) as w):
        for _ in range(256):
            w.append(rng.random((16, 256)))
    cp = ArrayWriter.resume(path)
    assert cp is None or not cp.complete


# -- read-only -------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_readonly_mount_readers_proceed(readonly_fs: Path, backend: str) -> None:
    with arraystore.open(readonly_fs / f"a{BACKENDS[backend]}") as s:
        assert s[...].sum() == sum(range(64))


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_readonly_mount_writers_get_a_typed_error(readonly_fs: Path, backend: str) -> None:
    with pytest.raises(ArrayStoreError) as info:
        arraystore.open(readonly_fs / f"a{BACKENDS[backend]}", "r+")
    assert isinstance(info.value, ReadOnlyError), f"expected ReadOnlyError, got {type(info.value).__name__}"


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_readonly_mount_create_gets_a_typed_error(readonly_fs: Path, backend: str) -> None:
    with pytest.raises(ReadOnlyError):
        arraystore.create(readonly_fs / f"new{BACKENDS[backend]}", (4,), "<f4", backend=backend)


# -- a source that shrinks or disappears mid-conversion ------------------------------------------

SHRINK = textwrap.dedent("""
    import os, sys
    import numpy as np
    import arraystore
    from arraystore.conversion import convert
    from arraystore.errors import ArrayStoreError
    src, dst, how = sys.argv[1], sys.argv[2], sys.argv[3]
    done = []
    def hit(n, total):
        if not done and n > 0:
            done.append(n)
            if how == "shrink":
                os.truncate(src, 4096)
            else:
                os.unlink(src)
    try:
        convert(src, dst, max_memory="256KiB", progress=hit)
        print("OK")
    except ArrayStoreError as exc:
        print("TYPED", type(exc).__name__, exc)
""")


@pytest.mark.parametrize("how", ["shrink", "vanish"])
@pytest.mark.parametrize("dst_backend", ["npy", "zarr", "hdf5"])
def test_source_changing_mid_conversion(tmp_path: Path, how: str, dst_backend: str) -> None:
    src = tmp_path / "src.dat"
    data = np.arange(256 * 1024, dtype="<f8").reshape(256, 1024)
    with arraystore.create(src, data.shape, data.dtype) as s:
        s[...] = data
    dst = tmp_path / f"dst{BACKENDS[dst_backend]}"
    proc = subprocess.run([sys.executable, "-c", SHRINK, str(src), str(dst), how], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=120)
    assert proc.returncode == 0, f"the conversion died with status {proc.returncode}: {proc.stderr[-1500:]}"
    out = proc.stdout.strip()
    if how == "shrink":
        assert out.startswith("TYPED"), f"a source truncated mid-conversion must be a typed error, got {out!r}"
        assert not dst.exists()
    else:  # an unlinked file stays readable through open descriptors: success is fine if the copy is right
        if out == "OK":
            with arraystore.open(dst) as d:
                assert np.array_equal(d[...], data)
        else:
            assert out.startswith("TYPED"), out


@pytest.mark.parametrize("to", ["raw", "npy", "hdf5", "zarr"])
def test_migrate_onto_a_full_disk_records_storage_full_and_cleans_up(small_fs: Path, tmp_path: Path, to: str) -> None:
    # Issue 12: h5py's "Can't destroy cache" on a nearly full disk aborted migrate to HDF5 untyped.
    import json

    from arraystore.migration import migrate

    archive = tmp_path / "archive"
    archive.mkdir()
    rng = np.random.default_rng(3)
    arrays = {}
    for i in range(3):
        arrays[f"s{i}"] = rng.random((256, 512))
        (archive / f"s{i}.dat").write_bytes(arrays[f"s{i}"].tobytes())  # 1 MiB each, 3 MiB on a 2 MiB disk
        (archive / f"s{i}_meta.json").write_text(json.dumps({"dtype": "<f8", "shape": [256, 512]}))
    try:
        report = migrate(archive, small_fs / "out", to=to, workers=1)
    except StorageFullError:
        report = None  # the manifest itself could not be written: a typed error is fine too
    for out in (small_fs / "out").glob("s*.*"):  # whatever was published is complete and right
        if ".partial" not in out.name and ".tmp" not in out.name and not out.name.endswith(".json"):
            with arraystore.open(out) as s:
                assert np.array_equal(s[...], arrays[out.name.split(".")[0]])
    if report is not None:
        failed = report.by_status("failed")
        assert failed, "3 MiB cannot fit on a 2 MiB disk"
        assert {r.error["type"] for r in failed if r.error} == {"StorageFullError"}
    leftovers = [p.name for p in (small_fs / "out").rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]
    assert leftovers == [], f"temporary files left on the full disk: {leftovers}"


# -- stores never truncate a mapped file -------------------------------------------------------

MAPPED_READER = textwrap.dedent("""
    import sys, numpy as np, arraystore
    path, backend = sys.argv[1], sys.argv[2]
    r = arraystore.open(path, backend=backend, io="mmap")
    m = r.as_memmap()
    first = float(m[-1].sum())
    w = arraystore.create(path, (4, 4), "<f8", backend=backend, overwrite=True)  # smaller, same name
    w[...] = 0
    w.close()
    again = float(m[-1].sum())  # the old mapping must still be valid: no SIGBUS
    print("SAME" if first == again else "CHANGED")
""")


@pytest.mark.parametrize("backend", ["raw", "npy"])
def test_overwriting_a_mapped_array_never_truncates_it(tmp_path: Path, backend: str) -> None:
    path = tmp_path / f"m{BACKENDS[backend]}"
    with arraystore.create(path, (512, 512), "<f8", backend=backend) as s:
        s[...] = 1.0
    proc = subprocess.run([sys.executable, "-c", MAPPED_READER, str(path), backend], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=120)
    assert proc.returncode == 0, f"the reader died with status {proc.returncode}: {proc.stderr[-1500:]}"
    assert proc.stdout.strip() == "SAME"


def test_buffered_read_of_a_file_truncated_behind_the_store_is_typed(tmp_path: Path) -> None:
    path = tmp_path / "t.dat"
    with arraystore.create(path, (256, 256), "<f8") as s:
        s[...] = 1.0
    with arraystore.open(path, io="buffered") as s:
        os.truncate(path, 4096)
        with pytest.raises(ArrayStoreError) as info:
            s[...]
        assert str(path) in str(info.value), f"the error should name the file: {info.value}"
