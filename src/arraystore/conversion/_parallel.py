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

__all__ = ["BlockPipeline"]


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
