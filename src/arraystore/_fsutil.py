"""Small file-system helpers: atomic replace, fsync of folders, space errors."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import Any

from .errors import MetadataError, ReadOnlyError, StorageFullError

__all__ = [
    "apply_mode_like",
    "atomic_write_bytes",
    "clear_path",
    "file_mode",
    "fsync_dir",
    "kept_mode",
    "match_tree_modes",
    "partial_path",
    "raise_if_full",
    "remove_path",
    "replace_path",
    "set_mode",
    "umask",
]

_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """fsync a folder so that a rename or creation inside it is durable."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems (e.g. certain FUSE ones) refuse fsync on folders
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def raise_if_full(exc: OSError, path: str | os.PathLike[str], what: str) -> None:
    """Re-raise ENOSPC/EDQUOT as :class:`StorageFullError`; do nothing for other errors."""
    if exc.errno in _SPACE_ERRNOS:
        raise StorageFullError(
            exc.errno,
            f"no space left while {what} {os.fspath(path)!r}: free space on that file system "
            "or write somewhere else; nothing complete-looking was left behind",
        ) from exc


def writable(path: str | os.PathLike[str]) -> bool:
    """False for a read-only file or file system (``os.access`` sees ``EROFS`` even as root)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return os.access(p, os.W_OK)


def raise_if_readonly(exc: OSError, path: str | os.PathLike[str], what: str) -> None:
    """Re-raise EROFS/EACCES/EPERM as :class:`ReadOnlyError`; do nothing for other errors."""
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        raise ReadOnlyError(
            f"cannot write while {what} {os.fspath(path)!r}: {exc.strerror} (read-only file system or "
            "permissions); write somewhere else, or open read-only with mode='r'"
        ) from exc


# -- permissions: a file arraystore writes or replaces never gets wider permissions ---------------


def umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # elsewhere: the classic read, restored at once
    os.umask(old)
    return old


def file_mode(path: str | os.PathLike[str]) -> int | None:
    """Permission bits of ``path`` (following symlinks), or None when it does not exist."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return None


def kept_mode(
    path: str | os.PathLike[str], like: str | os.PathLike[str] | None = None, *, mask: int | None = None
) -> int | None:
    """The mode a rewrite of ``path`` must have: its own if it exists, else that of ``like``; within the umask.

    None when neither exists (the OS default, which already honours the umask, applies).
    ``mask`` is the umask when the caller already knows it (hot paths).
    """
    mode = file_mode(path)
    if mode is None and like is not None:
        try:
            st = os.stat(like)
        except OSError:
            return None
        mode = st.st_mode & 0o7777
        if stat.S_ISDIR(st.st_mode):
            mode &= 0o666  # a file made like a folder: the folder's read/write bits, no execute
    if mode is None:
        return None
    return mode & ~(umask() if mask is None else mask) & 0o7777


def set_mode(fd_or_path: int | str | os.PathLike[str], mode: int | None) -> None:
    """Apply ``mode`` (from :func:`kept_mode`); None leaves the OS default."""
    if mode is None:
        return
    if isinstance(fd_or_path, int):
        os.fchmod(fd_or_path, mode)
    else:
        os.chmod(fd_or_path, mode)


def match_tree_modes(new: str | os.PathLike[str], old: str | os.PathLike[str]) -> None:
    """Give a new folder tree the modes of the one it replaces: same path, same mode; new files
    take the mode of the old tree's ``zarr.json`` (else its first file), folders the old root's."""
    new, old = Path(new), Path(old)
    root = kept_mode(old)
    if root is None:
        return
    sample = old / "zarr.json" if (old / "zarr.json").is_file() else next((p for p in old.rglob("*") if p.is_file()), None)
    file_default = kept_mode(sample) if sample is not None else root & 0o666
    set_mode(new, root)
    for p in new.rglob("*"):
        if p.is_symlink():
            continue
        twin = kept_mode(old / p.relative_to(new))
        set_mode(p, twin if twin is not None else root if p.is_dir() else file_default)


def apply_mode_like(paths: list[str | os.PathLike[str]], source: str | os.PathLike[str]) -> None:
    """Give new outputs (files or folder trees) the permissions of the ``source`` they were made from.

    Within the umask; folders also get search (x) bits where the mode has read bits.
    Missing paths are skipped.
    """
    mode = kept_mode(source)
    if mode is None:
        return
    dir_mode = mode | ((mode & 0o444) >> 2)
    for path in map(Path, paths):
        if path.is_symlink() or not path.exists():
            continue
        if path.is_dir():
            for p in path.rglob("*"):
                if not p.is_symlink():
                    set_mode(p, dir_mode if p.is_dir() else mode)
            set_mode(path, dir_mode)
        else:
            set_mode(path, mode)


def atomic_write_bytes(
    path: str | os.PathLike[str],
    data: bytes | memoryview,
    *,
    durable: bool = True,
    like: str | os.PathLike[str] | None = None,
    mask: int | None = None,
) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename.

    With ``durable=True`` the file is fsynced before the rename and the folder after.
    The new file keeps the permissions of the one it replaces (else of ``like``, e.g. a
    sidecar's data file), within the umask; it is never readable by more people.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    mode = kept_mode(path, like, mask=mask)
    try:
        with open(tmp, "wb") as f:
            set_mode(f.fileno(), mode)  # before the data: never a moment with wider permissions
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise_if_full(exc, path, "writing")
        raise_if_readonly(exc, path, "writing")
        raise
    if durable:
        fsync_dir(path.parent)


def partial_path(final: str | os.PathLike[str]) -> Path:
    """Where a new file or folder is built before it is renamed to ``final``."""
    final = Path(final)
    return final.with_name(f"{final.name}.partial")


def remove_path(path: str | os.PathLike[str]) -> None:
    """Remove a file or a folder tree; missing is fine."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def read_json_file(path: str | os.PathLike[str], max_bytes: int, what: str) -> Any:
    """Parse a small JSON file; ``None`` when it does not exist.

    Raises
    ------
    MetadataError
        A folder, a file over ``max_bytes``, or invalid JSON; the message names ``what``
        the file was expected to be.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise MetadataError(f"{p}: expected a {what} file, found a folder") from None
    if len(raw) > max_bytes:
        raise MetadataError(f"{p}: over {max_bytes:,} bytes, not a {what}")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MetadataError(f"{p}: expected a {what} in JSON, found invalid JSON ({exc})") from None


def nonempty(path: str | os.PathLike[str]) -> bool:
    """True for a non-empty file or a folder with children."""
    p = Path(path)
    if p.is_dir():
        return any(p.iterdir())
    return p.exists() and p.stat().st_size > 0


def clear_path(path: str | os.PathLike[str]) -> None:
    """Empty a file (truncate) or a folder (remove its children), keeping the inode."""
    p = Path(path)
    if p.is_dir():
        for child in p.iterdir():
            remove_path(child)
    else:
        os.truncate(p, 0)


def replace_path(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, durable: bool = False) -> None:
    """Move ``src`` onto ``dst``, replacing what is there.

    Files are replaced atomically (``os.replace``). A folder that already exists at
    ``dst`` is first renamed aside and removed after the new one is in place, so
    ``dst`` is never missing for longer than between two renames and never holds a
    mixture of old and new.
    """
    src, dst = Path(src), Path(dst)
    if dst.is_dir() and not dst.is_symlink():
        match_tree_modes(src, dst)  # the replacement is readable by no more people than the original
        aside = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(dst, aside)
        os.replace(src, dst)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        set_mode(src, kept_mode(dst))
        os.replace(src, dst)
    if durable:
        fsync_dir(dst.parent)
