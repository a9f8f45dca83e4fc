"""What the contract (:mod:`arraystore.store`) and the entry points (:mod:`arraystore._open`) share.

Modes, the default block size, and the set of stores open for writing (flushed at
interpreter exit). It sits below both so that neither imports the other's module.
"""

from __future__ import annotations

import atexit
import weakref
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .store import ArrayStore

__all__ = ["CREATE_MODES", "DEFAULT_BLOCK_BYTES", "MODES", "WRITABLE_MODES", "Mode"]

Mode = Literal["r", "r+", "a", "w", "w+", "w-", "x", "c"]
#: Modes ``open()`` accepts: numpy's (``r``, ``r+``, ``w+``, ``c``) and h5py/zarr's (``a``, ``w``, ``w-``, ``x``).
MODES: tuple[str, ...] = ("r", "r+", "a", "w", "w+", "w-", "x", "c")
#: Modes that create: ``w``/``w+`` create or truncate, ``w-``/``x`` fail if the array exists.
CREATE_MODES = frozenset({"w", "w+", "w-", "x"})
#: Modes an open store can have: ``a`` opens as ``r+`` or creates as ``w+``; creating modes give ``w+``.
WRITABLE_MODES = frozenset({"r+", "w+", "w-"})

#: Default block size for :meth:`ArrayStore.iter_blocks` and the access helpers.
DEFAULT_BLOCK_BYTES = 64 * 1024 * 1024

_open_writers: weakref.WeakSet[ArrayStore] = weakref.WeakSet()


@atexit.register
def _flush_open_writers() -> None:
    # Stores still open for writing at interpreter exit are flushed, not
    # published: a store that was never closed stays recognisably incomplete.
    for store in list(_open_writers):
        try:
            store.flush()
        except Exception:
            pass
