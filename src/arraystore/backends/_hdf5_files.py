"""HDF5 files as handles: opening, the generation a reader opened, and a full disk.

* :func:`open_file` opens with h5py, HDF5's own locking off, errors mapped.
* :func:`generation` is what changes when another process restructures an open file.
* :func:`raise_if_full` turns every ENOSPC symptom of HDF5 into
  :class:`~arraystore.errors.StorageFullError`; :func:`close_unwritable` releases a
  file whose flush failed for want of space without crashing the process.
* :func:`with_chunk_cache` reopens a dataset with a chunk cache that holds one chunk.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os

import h5py

from .. import _fsutil
from ..errors import ArrayNotFoundError, LockedError, MetadataError, ReadOnlyError, StorageFullError

__all__ = ["close_unwritable", "fsync", "generation", "is_full", "open_file", "raise_if_full", "with_chunk_cache"]


def _locking_mismatch(exc: OSError) -> bool:
    """HDF5 refused a file open already with other file-locking flags (``use`` or ``ignore disabled locks``)."""
    text = str(exc)
    return "file locking" in text and "values don't match" in text


def open_file(path: str, mode: str) -> h5py.File:
    """``h5py.File`` without HDF5's own locking, its errors mapped into arraystore's.

    A file this process has open already through h5py with HDF5's locking on (``h5py.File``'s
    default) cannot be opened again with other locking flags: it is opened with the flags of
    that handle (HDF5 shares the open file between the two).
    """
    try:
        try:
            return h5py.File(path, mode, locking=False)
        except OSError as exc:
            if not _locking_mismatch(exc):
                raise
        for locking in (True, "best-effort"):
            try:
                return h5py.File(path, mode, locking=locking)
            except OSError as exc:
                if not _locking_mismatch(exc):
                    raise
        raise LockedError(
            f"{path}: this process has the file open already (an h5py.File) with HDF5 file-locking flags that "
            "HDF5 refuses to open it with again; close that h5py.File first, or open it with "
            "h5py.File(path, locking=False)"
        )
    except FileNotFoundError:
        raise ArrayNotFoundError(f"{path}: no such file") from None
    except PermissionError as exc:
        raise ReadOnlyError(f"{path}: permission denied opening it with mode {mode!r}: {exc}") from None
    except OSError as exc:
        _fsutil.raise_if_full(exc, path, "opening")
        if mode != "r" and not _fsutil.writable(path):
            raise ReadOnlyError(
                f"{path}: cannot open it for writing (read-only file or file system); open with mode='r'"
            ) from None
        text = str(exc)
        if "already open" in text:
            raise LockedError(
                f"{path}: this process already has the file open read-only, and HDF5 cannot open it again for "
                "writing; close the other stores (or h5py.File objects) on it first"
            ) from None
        raise MetadataError(f"{path}: expected an HDF5 file, but HDF5 cannot open it ({text})") from None


def generation(f: h5py.File) -> tuple[int, ...] | None:
    """What changes when another process replaces a dataset of an open file, or the file in place.

    A replacement allocates the new dataset before the old one is unlinked, and HDF5
    does not reuse space freed in earlier sessions: the file grows. Data written in
    place into an existing dataset (``r+``) changes neither size nor inode: readers go
    on reading, as they do on the other backends. A file replaced by a rename keeps
    the old inode open: this reader keeps reading the generation it opened.
    """
    try:
        fd = f.id.get_vfd_handle()
        st = os.fstat(fd if isinstance(fd, int) else int(fd))
    except (OSError, RuntimeError, TypeError, ValueError):  # a driver without a file descriptor (fileobj)
        return None
    return (st.st_dev, st.st_ino, st.st_size)


def raise_if_full(exc: BaseException, path: str, what: str) -> None:
    """Re-raise HDF5's symptoms of a full disk as StorageFullError.

    HDF5 reports a failed write as ``OSError`` with or without errno, and a failed
    flush when closing as ``RuntimeError: Can't destroy cache``; its message keeps
    the errno of the system call (``errno = 28, error message = 'No space left on device'``).
    """
    if isinstance(exc, OSError):
        _fsutil.raise_if_full(exc, path, what)
    text = str(exc)
    full = "No space left" in text or "errno = 28" in text or "Disk quota exceeded" in text
    if not full and ("destroy cache" in text or "flush" in text or "write failed" in text):
        full = _nearly_full(path)
    if full:
        raise StorageFullError(
            errno.ENOSPC,
            f"no space left while {what} {path!r}: free space on that file system or write somewhere else "
            f"(HDF5: {text.splitlines()[0] if text else type(exc).__name__})",
        ) from exc


def is_full(exc: BaseException, path: str) -> bool:
    try:
        raise_if_full(exc, path, "")
    except StorageFullError:
        return True
    return False


def close_unwritable(f: h5py.File) -> None:
    """Close an HDF5 file whose flush failed for want of space, without crashing the process.

    HDF5 keeps a file whose close failed half-open, and h5py crashes (SIGSEGV) when
    it releases it later. Its descriptor is pointed at an in-memory file instead, so
    that HDF5 can write what it still holds there and finish closing; what reached the
    disk before the failure stays as it is (flagged incomplete, or a staged file that
    is then removed).
    """
    try:
        fd = f.id.get_vfd_handle()
        fd = fd if isinstance(fd, int) else int(fd)
        sink = os.memfd_create("arraystore-unwritable") if hasattr(os, "memfd_create") else None
    except (OSError, TypeError, ValueError):
        return
    if sink is None:  # pragma: no cover - Linux has memfd_create
        return
    try:
        os.dup2(sink, fd)
    finally:
        os.close(sink)
    with contextlib.suppress(OSError, RuntimeError):
        f.close()


def _nearly_full(path: str) -> bool:
    """True when the file system holding ``path`` has (almost) no space left: HDF5 lost the errno."""
    folder = os.path.dirname(os.path.abspath(path.split("::")[0])) or "."
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1 << 20


#: Chunk cache of a dataset whose chunks are larger than HDF5's default 1 MiB cache holds: one chunk.
_DEFAULT_CACHE_BYTES = 1 << 20


def with_chunk_cache(f: h5py.File, ds: h5py.Dataset) -> h5py.Dataset:
    """``ds`` reopened with a chunk cache that holds at least one whole chunk.

    HDF5's default cache (1 MiB) does not keep a larger chunk: every small read
    would decompress the whole chunk again. The chunk's size is already bounded by
    ``max_chunk_bytes``.
    """
    if ds.chunks is None:
        return ds
    chunk_bytes = math.prod(ds.chunks) * ds.id.get_type().get_size()
    if chunk_bytes <= _DEFAULT_CACHE_BYTES // 2:
        return ds
    if ds.file.id != f.id:  # reached through an external link (allow_external=True)
        return ds
    dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    dapl.set_chunk_cache(521, chunk_bytes + _DEFAULT_CACHE_BYTES, 0.75)
    name = ds.name.encode()
    ds.id._close()  # HDF5 shares an open dataset, and its cache, with every later open of it
    return h5py.Dataset(h5py.h5d.open(f.id, name, dapl=dapl))



def fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
