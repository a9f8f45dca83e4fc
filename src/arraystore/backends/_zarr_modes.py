"""A zarr ``LocalStore`` whose writes keep file permissions.

zarr-python writes every chunk and metadata document through a temporary file and a
rename, so a rewritten chunk of a 0600 array came back 0644. This store writes through
:func:`arraystore._fsutil.atomic_write_bytes` instead: a rewritten file keeps its mode,
a new one takes the mode of the array's ``zarr.json`` (else of its folder, without
execute bits; new folders that of their parent), always within the umask.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from zarr.core.buffer import Buffer
from zarr.storage import LocalStore

from .. import _fsutil

__all__ = ["ModeKeepingLocalStore"]


def _makedirs_like(folder: Path, root: Path, mask: int) -> Path:
    """Create missing folders down to ``folder``, each with its parent's mode (within the umask); returns the
    nearest folder above them that was there."""
    missing: list[Path] = []
    p = folder
    while not p.exists() and p != root and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d, _fsutil.kept_mode(d.parent, mask=mask) or 0o777)
    return p


class ModeKeepingLocalStore(LocalStore):
    """``zarr.storage.LocalStore`` with permission-keeping writes (see the module docstring)."""

    _mask: int | None = None

    def _like(self, folder: Path) -> Path:
        """The file new files in ``folder`` take their mode from: the nearest ``zarr.json`` above, else the folder."""
        likes: dict[Path, Path] = self.__dict__.setdefault("_likes", {})
        if folder not in likes:
            found = folder
            for d in (folder, *folder.parents):
                if (d / "zarr.json").is_file():
                    found = d / "zarr.json"
                    break
                if d == self.root or self.root not in d.parents:
                    break
            likes[folder] = found
        return likes[folder]

    def _target(self, key: str) -> tuple[Path, Path, int]:
        """``(file, the file new files there take their mode from, umask)`` for ``key``; missing folders made."""
        if self._mask is None:
            self._mask = _fsutil.umask()  # once per store: a umask read costs a file read
        path = self.root / key
        if not path.parent.is_dir():
            made_in = _makedirs_like(path.parent, self.root, self._mask)
            if made_in != path.parent:  # folders made here hold no zarr.json: what the first one was made in gives
                likes: dict[Path, Path] = self.__dict__.setdefault("_likes", {})
                likes.setdefault(path.parent, self._like(made_in))
        return path, self._like(path.parent), self._mask

    def _put(self, key: str, value: Buffer, exclusive: bool = False) -> None:
        path, like, mask = self._target(key)
        data: Any = value.as_buffer_like()
        if not exclusive:
            _fsutil.atomic_write_bytes(path, data, durable=False, like=like, mask=mask)
            return
        # Create-if-missing (zarr's exclusive write): build aside, then link, which fails if the name exists.
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            _fsutil.atomic_write_bytes(tmp, data, durable=False, like=like, mask=mask)
            os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def put_stream(self, key: str, *, in_place: bool = False) -> Iterator[BinaryIO]:
        """A synchronous :meth:`set` written piece by piece: the value's bytes go into the file this yields.

        The file replaces the one at ``key`` (keeping its mode, as :meth:`set` does) when the
        ``with`` block ends without an error; on an error nothing at ``key`` changes.

        ``in_place``: the file at ``key`` itself is written (created with the mode a new file
        takes here, or emptied keeping its own), not a temporary sibling renamed over it; on an
        error it is removed. For the chunks of an array built aside (a staging copy that nobody
        reads, published whole by a rename) whose writer counts a chunk as written only once its
        ``with`` block ended: a file cut short by a kill belongs to a block not yet journaled, which
        a resumed run writes again. It saves, per file, a random name, two ``stat`` calls, a
        ``chmod`` and a ``rename``.
        """
        self._ensure_open_sync()
        self._check_writable()
        if not in_place:
            path, like, mask = self._target(key)
            with _fsutil.atomic_writer(path, durable=False, like=like, mask=mask) as f:
                yield f
            return
        path = self.root / key
        try:
            fd = self._open_in_place(key)
            with open(fd, "wb", closefd=True) as f:
                yield f
        except BaseException as exc:
            if not isinstance(exc, FileExistsError):  # anything opened (or half made) is removed
                with contextlib.suppress(OSError):
                    path.unlink()
            if isinstance(exc, OSError):
                _fsutil.raise_if_full(exc, path, "writing")
                _fsutil.raise_if_readonly(exc, path, "writing")
            raise

    def _open_in_place(self, key: str) -> int:
        """The file at ``key`` opened for writing and emptied (created, and its folders, when missing: with the mode
        of the file new files there take theirs from, looked up once per store)."""
        path, like, mask = self._target(key)
        modes: dict[Path, int] = self.__dict__.setdefault("_new_modes", {})
        mode = modes.get(like)
        if mode is None:
            found = _fsutil.kept_mode(path.parent / f".{uuid.uuid4().hex}.absent", like, mask=mask)
            mode = modes[like] = 0o666 & ~mask if found is None else found
        # An existing file keeps its own mode (a resumed run's chunk); a new one gets ``mode`` (within the umask).
        # Never written through: a link at the key (symbolic: O_NOFOLLOW fails; hard: a second name) is replaced by a
        # file of its own, as a rename would, not followed into the file it names (another chunk of the array).
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(path, flags | os.O_NOFOLLOW, mode)
        except OSError:
            if not os.path.islink(path):
                raise
            path.unlink()
            return os.open(path, flags | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            st = os.fstat(fd)
            shared = st.st_nlink > 1
            if st.st_size and not shared:
                os.ftruncate(fd, 0)
        except BaseException:
            os.close(fd)
            raise
        if not shared:
            return fd
        os.close(fd)
        path.unlink()
        return os.open(path, flags | os.O_EXCL | os.O_NOFOLLOW, mode)

    async def _set(self, key: str, value: Buffer, exclusive: bool = False) -> None:
        if not self._is_open:
            await self._open()
        self._check_writable()
        if not isinstance(value, Buffer):
            raise TypeError(f"LocalStore.set(): `value` must be a Buffer instance, found {type(value)}")
        await asyncio.to_thread(self._put, key, value, exclusive)

    def set_sync(self, key: str, value: Buffer) -> None:
        """Synchronous :meth:`set` (zarr uses it for metadata)."""
        self._ensure_open_sync()
        self._check_writable()
        if not isinstance(value, Buffer):
            raise TypeError(f"LocalStore.set(): `value` must be a Buffer instance, found {type(value)}")
        self._put(key, value)
