"""One writer per store: an advisory ``flock`` on a file the store already has.

Locking a file of the store itself (the data file, ``zarr.json``) leaves no lock
files behind. Where the file system has no working ``flock`` (some NFS and FUSE
mounts answer ``ENOLCK``/``EOPNOTSUPP``), we fall back, like ``filelock`` does, to
a lock file created with ``O_EXCL`` beside it, and say so with a
:class:`~arraystore.errors.LockFallbackWarning`.
"""

from __future__ import annotations

import errno
import os
import time
import warnings
from pathlib import Path

from .errors import LockedError, LockFallbackWarning

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriterLock", "lock_open_file", "writer_active"]

_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_POLL_SECONDS = 0.05


class WriterLock:
    """An exclusive advisory lock on ``path``, taken for the life of a writer.

    Parameters
    ----------
    path
        An existing file of the store.
    timeout
        Seconds to wait for another writer to finish; ``0`` fails at once.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 0.0, create: str | None = None) -> None:
        self.path = Path(path)
        if create == "file":
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o644))
        elif create == "dir":
            self.path.mkdir(exist_ok=True)
        self._fd: int | None = None
        self._soft: Path | None = None
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            if self._try_acquire():
                return
            if time.monotonic() >= deadline:
                raise LockedError(
                    f"{self.path}: another writer has this array open (an advisory lock is held); "
                    "wait for it to close, open read-only with mode='r', or pass lock_timeout=SECONDS to wait"
                )
            time.sleep(_POLL_SECONDS)

    def _try_acquire(self) -> bool:
        if self._soft is None and fcntl is not None:
            writable = not self.path.is_dir() and os.access(self.path, os.W_OK)
            fd = os.open(self.path, os.O_RDWR if writable else os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return False
                if exc.errno not in _NO_FLOCK:
                    raise
                warnings.warn(
                    f"{self.path}: the file system does not support flock ({errno.errorcode.get(exc.errno)}); "
                    "using a lock file beside it, which a crash can leave behind (delete it by hand then)",
                    LockFallbackWarning,
                    stacklevel=5,
                )
            else:
                self._fd = fd
                return True
        soft = self.path.with_name(self.path.name + ".lock")
        try:
            os.close(os.open(soft, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            self._soft = soft
            return False
        self._soft = soft
        self._owns_soft = True
        return True

    def release(self) -> None:
        """Release the lock; calling it twice is harmless."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None
        if self._soft is not None and getattr(self, "_owns_soft", False):
            try:
                self._soft.unlink()
            except FileNotFoundError:
                pass
            self._owns_soft = False


def writer_active(path: str | os.PathLike[str]) -> bool:
    """True when another writer holds the lock on ``path`` right now (False when unknown)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    finally:
        os.close(fd)  # also drops the shared lock if it was taken
    return False


def lock_open_file(fd: int, path: str | os.PathLike[str]) -> bool:
    """Take the writer lock on a file this process just opened (no lock file, no waiting).

    Returns False when the file system has no working ``flock`` (the file is then written
    unlocked: it is a staging file nobody else names).

    Raises
    ------
    LockedError
        Another writer holds the lock.
    """
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise LockedError(
                f"{path}: another writer is writing this array right now (an advisory lock is held); "
                "wait for it to finish"
            ) from None
        if exc.errno in _NO_FLOCK:
            return False
        raise
    return True
