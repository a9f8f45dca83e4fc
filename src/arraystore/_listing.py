"""Folder listings shared by the files of a folder: "is there a ``scene.hdr`` beside it?" without a ``stat``.

Resolving a legacy file's metadata looks for a dozen files that are usually absent (headers
of three dialects in two spellings, legacy sidecars, folder manifests). Inside :func:`listed`
each folder is listed once (``os.listdir``), and a name absent from its folder's listing is
answered "absent" without a system call. A name that is listed is always checked by the
file system itself (:meth:`pathlib.Path.is_file`: links followed, the file type checked), so
the listing can only save the check of a missing file, never decide that a file is there.

Assumptions, which :func:`listed` blocks keep:

* **The folders do not gain files during the block.** A migration lists source folders and
  writes only into its destination; a file created in a source folder after its listing
  (by another program, while the migration runs) may be missed, as it would have been had
  the migration resolved that folder a moment earlier. Nothing removed is ever reported
  present (positive answers are checked).
* **Spelling.** Names are compared case-folded and Unicode-normalised (NFKD), so that on a
  case-insensitive or normalising file system (macOS, SMB, ext4 casefold) ``scene.hdr`` is
  still checked when the folder lists ``scene.HDR``: a listing may send more names to the
  file system, never fewer.
* A folder that cannot be listed (no read permission, gone), or that holds more than
  :data:`MAX_LISTED` entries, is not used: every check in it goes to the file system, as
  without a listing (a huge folder listed again for every batch of files would cost more
  than the checks it saves).

A worker process that resolves a run's files batch after batch passes the run's ``scope`` to
:func:`listed`: its listings then last from one batch to the next (at most
:data:`MAX_FOLDERS` folders, the oldest dropped), instead of one listing per folder per batch.

The same blocks remember where each folder resolves to (:func:`real_folder`, its symbolic links
followed), so that :func:`real_path` of a file that is not itself a link costs one ``lstat``
instead of one per component of its path: the folders are not moved or relinked during the block.
"""

from __future__ import annotations

import functools
import os
import stat
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

__all__ = ["MAX_FOLDERS", "MAX_LISTED", "is_file", "listed", "may_exist", "may_exist_in", "may_exist_with_suffix", "name_key", "real_folder", "real_path"]

#: Folders with more entries than this are not listed (their checks go to the file system).
MAX_LISTED = 4096
#: Folders whose listings and resolved paths a block keeps; beyond, the oldest are dropped.
MAX_FOLDERS = 256

class _Names(frozenset[str]):
    """A folder's listing (spelling-insensitive names), with the answers of :func:`may_exist_with_suffix` given."""

    __slots__ = ("ends",)

    def __init__(self, names: object = ()) -> None:
        self.ends: dict[str, bool] = {}


_LISTINGS: ContextVar[dict[str, _Names | None] | None] = ContextVar("arraystore_listings", default=None)
_REAL: ContextVar[dict[str, Path] | None] = ContextVar("arraystore_real_folders", default=None)
#: The caches of the last scope (see :func:`listed`): (scope, listings, resolved folders).
_scope: tuple[str, dict[str, _Names | None], dict[str, Path]] | None = None


@contextmanager
def listed(scope: str | None = None) -> Iterator[None]:
    """Within the block, :func:`is_file` and :func:`may_exist` list each folder once (nestable).

    ``scope``: blocks of one scope (one run's batches in a worker process) share their caches.
    """
    global _scope
    if _LISTINGS.get() is not None:
        yield
        return
    if scope is None:
        listings: dict[str, _Names | None] = {}
        real: dict[str, Path] = {}
    else:
        if _scope is None or _scope[0] != scope:
            _scope = (scope, {}, {})
        _, listings, real = _scope
    token, real_token = _LISTINGS.set(listings), _REAL.set(real)
    try:
        yield
    finally:
        _REAL.reset(real_token)
        _LISTINGS.reset(token)


def _remember(cache: dict[str, T], key: str, value: T) -> T:
    if len(cache) >= MAX_FOLDERS:
        cache.pop(next(iter(cache)), None)  # the oldest
    cache[key] = value
    return value


def name_key(name: str) -> str:
    """The spelling-insensitive form of a file name under which listings are compared."""
    if name.isascii():
        return name.lower()
    return unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", name).casefold())


def _listing(folder: str, cache: dict[str, _Names | None]) -> _Names | None:
    try:
        return cache[folder]
    except KeyError:
        pass
    try:
        entries = os.listdir(folder or ".")
    except (OSError, ValueError):
        entries = None
    names = _Names(name_key(n) for n in entries) if entries is not None and len(entries) <= MAX_LISTED else None
    return _remember(cache, folder, names)


def may_exist(path: str | os.PathLike[str]) -> bool:
    """False when ``path`` is certainly absent (its folder's listing lacks the name), else True.

    Outside :func:`listed`, always True.
    """
    if _LISTINGS.get() is None:
        return True
    folder, name = os.path.split(os.fspath(path))
    return may_exist_in(folder, name)


def may_exist_in(folder: str, name: str) -> bool:
    """:func:`may_exist` of the entry ``name`` (no ``/``) of ``folder``."""
    cache = _LISTINGS.get()
    if cache is None or not name or name in (".", ".."):
        return True
    names = _listing(folder, cache)
    return names is None or name_key(name) in names


def may_exist_with_suffix(folder: str, suffix: str) -> bool:
    """False when no entry of ``folder`` can end with ``suffix`` (no name of its listing does), else True.

    Outside :func:`listed`, or for a folder that is not listed, always True.
    """
    cache = _LISTINGS.get()
    if cache is None:
        return True
    names = _listing(folder, cache)
    if names is None:
        return True
    try:
        return names.ends[suffix]
    except KeyError:
        answer = names.ends[suffix] = _ends_with(names, name_key(suffix))
        return answer


@functools.lru_cache(maxsize=1024)
def _ends_with(names: frozenset[str], key: str) -> bool:
    """Whether a name of ``names`` ends with ``key``; remembered by the listing's content (equal
    listings give equal answers), so a folder's names are scanned once per suffix. Asked once per
    listing and suffix (:attr:`_Names.ends` keeps the answer): a hit compares the listings whole."""
    return any(n.endswith(key) for n in names)


def is_file(path: Path) -> bool:
    """``path.is_file()``, answered from the folder's listing when the name is absent from it."""
    return may_exist(path) and path.is_file()


def real_folder(folder: Path) -> Path:
    """``folder.resolve()``, remembered inside :func:`listed`."""
    cache = _REAL.get()
    if cache is None:
        return folder.resolve()
    key = os.fspath(folder)
    hit = cache.get(key)
    if hit is None:
        hit = _remember(cache, key, folder.resolve())
    return hit


def real_path(path: Path) -> Path:
    """``path.resolve()``: inside :func:`listed`, the remembered folder's plus the name when ``path`` is no link."""
    if _REAL.get() is None or path.name in ("", ".", ".."):
        return path.resolve()
    try:
        link = stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        link = True  # missing or unreadable: resolved the usual way
    return path.resolve() if link else real_folder(path.parent) / path.name
