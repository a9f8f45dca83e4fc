"""Small file-system helpers: atomic replace, fsync of folders, space errors."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .errors import MetadataError, ReadOnlyError, StorageFullError, UnsafeInputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "apply_mode_like",
    "aside_path",
    "atomic_write_bytes",
    "can_sync_filesystem",
    "clear_path",
    "evict_from_page_cache",
    "file_mode",
    "fsync_dir",
    "kept_mode",
    "loads_json",
    "match_tree_modes",
    "partial_path",
    "raise_if_full",
    "read_json_file",
    "recover_replace",
    "remove_path",
    "replace_path",
    "set_mode",
    "sync_filesystem",
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


def evict_from_page_cache(*paths: str | os.PathLike[str]) -> None:
    """Write back, then drop from the page cache, every file at ``paths`` (folders: every file below them).

    The next read of them comes from the disk: what benchmarks and tests of cold reads need. Pages that
    a process still maps stay resident (the kernel skips them). A no-op where ``posix_fadvise`` is missing.
    """
    if not hasattr(os, "posix_fadvise"):  # pragma: no cover - macOS, Windows
        return
    for path in map(Path, paths):
        files = [path] if not path.is_dir() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def can_sync_filesystem() -> bool:
    """Whether :func:`sync_filesystem` can flush a whole file system here (Linux ``syncfs``, else ``os.sync``)."""
    return sys.platform.startswith("linux") or hasattr(os, "sync")


def sync_filesystem(folder: str | os.PathLike[str]) -> None:
    """Make every write to the file system holding ``folder`` durable, in one call.

    ``syncfs`` on Linux (that file system only), else ``os.sync`` (all of them). Cheaper
    than an fsync per file for many small files written in a row: one journal commit.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs: {os.strerror(err)}", os.fspath(folder))
            return
        except AttributeError:  # pragma: no cover - a libc without syncfs: os.sync below
            pass
        finally:
            os.close(fd)
    os.sync()


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
    with atomic_writer(path, durable=durable, like=like, mask=mask) as f:
        f.write(data)


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str],
    *,
    durable: bool = True,
    like: str | os.PathLike[str] | None = None,
    mask: int | None = None,
) -> Iterator[BinaryIO]:
    """A file to write ``path``'s new content into, piece by piece; :func:`atomic_write_bytes`'s guarantees.

    The file is a temporary sibling, renamed to ``path`` when the ``with`` block ends
    without an error; on an error it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    mode = kept_mode(path, like, mask=mask)
    try:
        with open(tmp, "wb") as f:
            set_mode(f.fileno(), mode)  # before the data: never a moment with wider permissions
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise_if_full(exc, path, "writing")
            raise_if_readonly(exc, path, "writing")
        raise
    if durable:
        fsync_dir(path.parent)


def tree_bytes(path: str | os.PathLike[str]) -> int | None:
    """Bytes of a file, or of every file under a folder; None when nothing is there."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    if not os.path.isdir(path):
        return None
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # removed while walking
                total += os.path.getsize(os.path.join(folder, name))
    return total


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


#: Most JSON values (objects, arrays, strings, numbers...) parsed from one document arraystore did not write.
MAX_JSON_ITEMS = 1_000_000
#: Deepest nesting of objects and arrays accepted in such a document.
MAX_JSON_DEPTH = 100

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_JSON_NOT_BRACKET = re.compile(rb"[^\[\]{}]")


def check_json_size(raw: bytes, where: str, what: str) -> None:
    """Refuse JSON text that would parse into too many values or too deep a nesting.

    Parsing amplifies: ``{}`` is 2 bytes of text and about 70 bytes as a Python dict,
    so a document within any byte cap can still take 50 times its size in memory.
    Values are counted from the separators and brackets outside strings (``,`` ``:``
    ``[`` ``{``), without parsing, in time and memory linear in the text.

    Raises
    ------
    UnsafeInputError
        Over :data:`MAX_JSON_ITEMS` values or :data:`MAX_JSON_DEPTH` levels.
    """
    def count(text: bytes) -> tuple[int, int]:
        opens = text.count(b"[") + text.count(b"{")
        return opens + text.count(b",") + text.count(b":"), opens

    items, opens = count(raw)
    if items <= MAX_JSON_ITEMS and opens <= MAX_JSON_DEPTH:
        return
    bare = _JSON_STRING.sub(b'""', raw)  # brackets and commas inside strings do not count
    items, opens = count(bare)
    if items > MAX_JSON_ITEMS:
        raise UnsafeInputError(
            f"{where}: expected a {what} of at most {MAX_JSON_ITEMS:,} JSON values, found about {items:,}; parsing "
            "it would take many times its size in memory: the file is damaged or hostile. Keep large data in "
            "arrays, not in metadata"
        )
    if opens > MAX_JSON_DEPTH:
        brackets = np.frombuffer(_JSON_NOT_BRACKET.sub(b"", bare), dtype=np.uint8)
        steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1).astype(np.int32)
        depth = int(np.cumsum(steps).max(initial=0))
        if depth > MAX_JSON_DEPTH:
            raise UnsafeInputError(
                f"{where}: expected a {what} nested at most {MAX_JSON_DEPTH} levels deep, found {depth}: the "
                "file is damaged or hostile; flatten the metadata"
            )


def loads_json(raw: bytes | str, where: str, what: str) -> Any:
    """Parse JSON text arraystore did not just write, with bounded memory.

    Raises
    ------
    UnsafeInputError
        Too many values or too deep (:func:`check_json_size`).
    MetadataError
        Not valid JSON (including numbers of more digits than Python converts).
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    check_json_size(data, where, what)
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MetadataError(f"{where}: expected a {what} in JSON, found invalid JSON ({exc})") from None


def read_at_most(path: str | os.PathLike[str], limit: int) -> bytes:
    """The first ``limit`` bytes of a file (all of a shorter one), read into buffers of its size.

    ``open(path, "rb").read(limit)`` allocates ``limit`` bytes before reading: tens of
    microseconds for a small file read with a cap of megabytes. Raises what ``open`` and
    ``read`` raise (``FileNotFoundError``, ``IsADirectoryError``, ...).
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        parts: list[bytes] = []
        total = 0
        while total < limit:
            chunk = os.read(fd, min(limit - total, max(size + 1 - total, 1 << 16)))
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_json_file(path: str | os.PathLike[str], max_bytes: int, what: str) -> Any:
    """Parse a small JSON file with bounded memory (:func:`loads_json`); ``None`` when it does not exist.

    Raises
    ------
    MetadataError
        A folder, a file over ``max_bytes``, or invalid JSON; the message names ``what``
        the file was expected to be.
    UnsafeInputError
        JSON that would parse into too many values or too deep a nesting.
    """
    p = Path(path)
    try:
        raw = read_at_most(p, max_bytes + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise MetadataError(f"{p}: expected a {what} file, found a folder") from None
    if len(raw) > max_bytes:
        raise MetadataError(f"{p}: over {max_bytes:,} bytes, not a {what}")
    return loads_json(raw, str(p), what)


def nonempty(path: str | os.PathLike[str]) -> bool:
    """True for a non-empty file or a folder with children."""
    p = Path(path)
    if p.is_dir():
        return any(p.iterdir())
    return p.exists() and p.stat().st_size > 0


def holds_links(folder: str | os.PathLike[str]) -> bool:
    """True when anything inside ``folder`` (at any depth) is a symbolic link."""
    pending = [os.fspath(folder)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    return True
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
    return False


def clear_path(path: str | os.PathLike[str]) -> None:
    """Empty a file (truncate) or a folder (remove its children), keeping the inode."""
    p = Path(path)
    if p.is_dir():
        for child in p.iterdir():
            remove_path(child)
    else:
        os.truncate(p, 0)


def aside_path(dst: str | os.PathLike[str]) -> Path:
    """Where :func:`replace_path` keeps the old folder between its two renames."""
    dst = Path(dst)
    return dst.with_name(f".{dst.name}.old")


#: Test hook: called with ``"aside"`` after the old folder is renamed aside and ``"placed"``
#: after the new one is in place (kill tests stop a real process there).
_replace_hook: Callable[[str], None] | None = None


def _try_flock(fd: int) -> bool:
    """Take an exclusive ``flock`` on ``fd`` without waiting; False when another holder has it."""
    if fcntl is None:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        # Without a working flock (ENOLCK...) there is nothing better to go by than "free".
        return exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    return True


def replace_path(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, durable: bool = False) -> None:
    """Move ``src`` onto ``dst``, replacing what is there.

    Files are replaced atomically (``os.replace``). A folder that already exists at
    ``dst`` is first renamed aside (:func:`aside_path`) and removed after the new one is
    in place, so ``dst`` never holds a mixture of old and new. The old folder stays
    ``flock``-ed while it is aside, which tells :func:`recover_replace` (run by the next
    open or create) that a replace is under way; a kill drops the lock, and
    :func:`recover_replace` then puts the old folder back (killed between the renames)
    or removes it (killed after).
    """
    try:
        st: os.stat_result | None = os.lstat(dst)
    except FileNotFoundError:
        st = None
    if st is None or stat.S_ISREG(st.st_mode):  # a new name, or a file replaced: keep its mode (one lstat)
        if st is not None:
            set_mode(src, st.st_mode & 0o7777 & ~umask() & 0o7777)
        os.replace(src, dst)
        if durable:
            fsync_dir(Path(dst).parent)
        return
    src, dst = Path(src), Path(dst)
    if dst.is_dir() and not dst.is_symlink():
        recover_replace(dst)
        match_tree_modes(src, dst)  # the replacement is readable by no more people than the original
        aside = aside_path(dst)
        fd = os.open(dst, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            # Usually the caller's writer lock already holds this folder: both ways it stays locked.
            _try_flock(fd)
            os.replace(dst, aside)
            if durable:
                fsync_dir(dst.parent)
            if _replace_hook is not None:
                _replace_hook("aside")
            os.replace(src, dst)
            if durable:
                fsync_dir(dst.parent)
            if _replace_hook is not None:
                _replace_hook("placed")
            shutil.rmtree(aside, ignore_errors=True)
        finally:
            os.close(fd)
    else:
        set_mode(src, kept_mode(dst))
        os.replace(src, dst)
    if durable:
        fsync_dir(dst.parent)


def recover_replace(dst: str | os.PathLike[str]) -> None:
    """Finish a folder replace that a kill interrupted; do nothing when none was.

    When the old folder is still aside and nobody holds its lock: if ``dst`` exists the
    replace had finished and the old folder is removed; if ``dst`` is missing the kill
    came between the two renames and the old folder is renamed back, so the array is
    never lost.
    """
    dst = Path(dst)
    aside = aside_path(dst)
    try:
        fd = os.open(aside, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return  # none there (or not a folder we made)
    try:
        if not _try_flock(fd):
            return  # a replace is under way in another process
        if os.path.lexists(dst):
            shutil.rmtree(aside, ignore_errors=True)
        else:
            try:
                os.rename(aside, dst)
            except OSError:
                return  # raced with another recovery or a new create: leave it for the next run
            fsync_dir(dst.parent)
    finally:
        os.close(fd)

