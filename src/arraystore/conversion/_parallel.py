"""A bounded pipeline: the reader keeps reading while up to ``workers`` threads write (and compress).

Threads, not processes: the codecs under h5py and zarr (zlib, zstd, blosc, lz4)
release the GIL while they compress, and threads share the block without a copy
through a pipe. Zarr chunks are independent files, so writers of distinct blocks
(hence distinct chunks) never touch the same chunk. HDF5 writes are serialised by
h5py's global lock; its destinations get one writer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

__all__ = ["BlockPipeline", "ReadAhead"]


class BlockPipeline:
    """Run ``write`` calls on ``workers`` threads with at most ``workers`` in flight, in submission order.

    ``on_done(result)`` is called in the submitting thread, in submission order, when a
    write has finished (the conversion journals the block there). ``workers=0`` runs
    every write inline.
    """

    def __init__(self, workers: int, on_done: Callable[[Any], None]) -> None:
        self.workers = workers
        self.on_done = on_done
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="arraystore-convert") if workers > 0 else None
        self._inflight: deque[Future[Any]] = deque()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue one write; blocks while ``workers`` writes are in flight."""
        if self._pool is None:
            self.on_done(fn(*args))
            return
        while len(self._inflight) >= self.workers:
            self._collect_one()
        self._inflight.append(self._pool.submit(fn, *args))

    def _collect_one(self) -> None:
        fut = self._inflight.popleft()
        self.on_done(fut.result())

    def drain(self) -> None:
        """Wait for every queued write (re-raising the first failure)."""
        while self._inflight:
            self._collect_one()

    def close(self) -> None:
        """Wait for running writes (without reporting them) and stop the threads."""
        if self._pool is not None:
            for fut in self._inflight:
                fut.cancel()
            self._pool.shutdown(wait=True)
            self._inflight.clear()

    def __enter__(self) -> BlockPipeline:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self.drain()
        finally:
            self.close()


class ReadAhead:
    """Reads one block ahead on a thread of its own: :meth:`start` block ``i + 1`` once block ``i`` is taken.

    ``read(sel)`` must be safe to call from that thread while the caller works on the
    block before (the chunk readers are: each read has its own output and the decoding
    pool takes tasks from any thread). At most one read is in flight, so at most one
    block more than without it is alive; :meth:`take` of any other block reads it inline.
    """

    def __init__(self, read: Callable[[Any], Any]) -> None:
        self._read = read
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="arraystore-read-ahead")
        self._pending: tuple[int, Future[Any]] | None = None

    def start(self, i: int, sel: Any) -> None:
        """Begin reading block ``i`` (at ``sel``); a read already in flight is waited for and dropped first."""
        self._drop()
        self._pending = (i, self._pool.submit(self._read, sel))

    def take(self, i: int, sel: Any) -> Any:
        """Block ``i``'s read: the one started ahead, else read now (re-raising the read's failure)."""
        if self._pending is not None and self._pending[0] == i:
            fut = self._pending[1]
            self._pending = None
            return fut.result()
        self._drop()
        return self._read(sel)

    def _drop(self) -> None:
        if self._pending is not None:
            fut = self._pending[1]
            self._pending = None
            if not fut.cancel():
                try:
                    fut.result()
                except BaseException:  # a read nobody takes: its failure is not this one's
                    pass

    def close(self) -> None:
        """Wait for a read in flight (its result dropped) and stop the thread."""
        try:
            self._drop()
        finally:
            self._pool.shutdown(wait=True)
