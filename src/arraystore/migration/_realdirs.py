"""The archive root's resolved path, computed once per migration instead of once per file.

Resolving a path (``Path.resolve``: one ``lstat`` per component) is done several times
per file to check that evidence and data stay inside the archive. The files themselves
are resolved every time; only the root, which a migration fixes when it starts, is
remembered, and only inside :func:`remembered` (a migration's planning or a worker's batch).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

__all__ = ["real_root", "remembered"]

_CACHE: ContextVar[dict[str, Path] | None] = ContextVar("arraystore_migration_real_roots", default=None)


@contextmanager
def remembered() -> Iterator[None]:
    """Within the block, :func:`real_root` resolves each root once."""
    token = _CACHE.set({})
    try:
        yield
    finally:
        _CACHE.reset(token)


def real_root(root: Path) -> Path:
    """``root.resolve()``, remembered inside :func:`remembered`."""
    cache = _CACHE.get()
    if cache is None:
        return root.resolve()
    key = str(root)
    hit = cache.get(key)
    if hit is None:
        hit = cache[key] = root.resolve()
    return hit
