"""The archive root's resolved path, computed once per migration instead of once per file.

Resolving a path (``Path.resolve``: one ``lstat`` per component) is done several times
per file to check that evidence and data stay inside the archive. The folders' resolutions
are remembered inside :func:`remembered` (a migration's planning or a worker's batch), so a
file that is no link costs one ``lstat`` (:func:`arraystore._listing.real_path`); so are the
umask (read from ``/proc`` otherwise at every output) and the source folders' listings
(:mod:`arraystore._listing`).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from .. import _fsutil
from .._listing import listed, real_folder

__all__ = ["fewer_collections", "real_root", "remembered", "umask"]

_UMASK: ContextVar[list[int] | None] = ContextVar("arraystore_migration_umask", default=None)
_MADE: ContextVar[set[Path] | None] = ContextVar("arraystore_migration_made_folders", default=None)


@contextmanager
def remembered(scope: str | None = None) -> Iterator[None]:
    """Within the block, :func:`real_root` resolves each root once and each folder is listed once.

    The folder listings (:func:`arraystore._listing.listed`) answer the checks for evidence
    files that are absent; the block covers a migration's planning or a worker's batch, during
    which the migration writes only into its destination, never into the source folders.
    ``scope`` (a run's identifier): a worker's blocks of one run share the listings.
    """
    mask = _UMASK.set([])
    made = _MADE.set(set())
    try:
        with listed(scope):
            yield
    finally:
        _MADE.reset(made)
        _UMASK.reset(mask)


def make_folder(folder: Path) -> None:
    """``folder.mkdir(parents=True, exist_ok=True)``, once per folder inside :func:`remembered` (a batch
    writes many files into each destination folder)."""
    made = _MADE.get()
    if made is not None and folder in made:
        return
    folder.mkdir(parents=True, exist_ok=True)
    if made is not None:
        made.add(folder)


def umask() -> int:
    """The process's umask (:func:`arraystore._fsutil.umask`), read once inside :func:`remembered`."""
    cache = _UMASK.get()
    if cache is None:
        return _fsutil.umask()
    if not cache:
        cache.append(_fsutil.umask())
    return cache[0]


def real_root(root: Path) -> Path:
    """``root.resolve()``, remembered inside :func:`remembered` (also for the source folders above each file:
    a migration does not move or relink them while it runs)."""
    return real_folder(root)


#: Objects allocated between two collections of the youngest generation inside :func:`fewer_collections`
#: (Python's default: 700), and collections of it between two of the middle one (default: 10).
GC_THRESHOLD = (20_000, 50)
_GC_LOCK = threading.Lock()


class _GcState:
    depth = 0
    """Blocks of :func:`fewer_collections` open."""
    before: tuple[int, int, int] = (700, 10, 10)
    """The thresholds when the outermost opened."""


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Inside the block (or a decorated function), Python's cyclic garbage collector runs about 30x less often.

    A migration allocates a handful of dicts and lists per file and keeps them (records, jobs,
    evidence) until it ends: with the default thresholds the collector walks them again and
    again, 10-15% of a virtual migration's time (measured on 10,000 files). The garbage of a
    migration holds no cycles to speak of; the collector still runs, rarely. The thresholds are
    the process's: they are restored when the outermost block ends.
    """
    with _GC_LOCK:
        if _GcState.depth == 0:
            _GcState.before = before = gc.get_threshold()
            if before[0] > 0:  # 0: the collector is off; leave it so
                gc.set_threshold(max(before[0], GC_THRESHOLD[0]), max(before[1], GC_THRESHOLD[1]), before[2])
        _GcState.depth += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GcState.depth -= 1
            if _GcState.depth == 0 and gc.get_threshold()[0] > 0:
                gc.set_threshold(*_GcState.before)
