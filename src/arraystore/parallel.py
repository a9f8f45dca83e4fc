"""``map_blocks``: run a function over an array's blocks in a pool of worker processes.

Workers receive a *reference* to the store (a store pickles as its path, backend and
read options, never its data) and open it read-only themselves. For memory-mappable
stores (raw, npy, contiguous HDF5 read through a map) each worker is handed a read-only
view of its own map: the bytes live once in the kernel's page cache, shared by every
worker, whatever their number. Chunked stores (HDF5, Zarr) decode each block in the
worker that processes it. Nothing but block selections travels to the workers and
nothing but results travels back.

Process start method: ``"forkserver"`` where the platform has it (Linux, macOS with
Python >= 3.8), else ``"spawn"`` (Windows). Not ``"fork"``: forking a parent that runs
threads (zarr's event-loop thread, dask's thread pools, an HDF5 library with its
global lock held) can deadlock the child, and the child inherits every open file and
lock of the parent — including arraystore's writer locks. ``forkserver`` forks workers
from a clean single-threaded server process, so they start fast (no re-import of the
main script per worker beyond the function's module) and safely; Python 3.14 made it
the default on Linux for these reasons.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import multiprocessing
import os
import pickle
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

import numpy as np

from ._open import open as open_store
from .blocks import BlockPlan
from .errors import ArrayStoreError, BlockError, FunctionNotPicklableError
from .store import ArrayStore

__all__ = [
    "BlockError",
    "FunctionNotPicklableError",
    "abandon_pool",
    "map_blocks",
    "mp_context",
    "parent_identity",
    "process_pool",
    "worker_init",
]

R = TypeVar("R")
Block = tuple[slice, ...]

#: Default block size for :func:`map_blocks`: small enough to spread over workers, large
#: enough that per-task overhead (~100 µs) is noise next to reading the block.
DEFAULT_MAP_BYTES = 16 * 1024 * 1024


def mp_context() -> multiprocessing.context.BaseContext:
    """The start method arraystore's process pools use: forkserver where available, else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def process_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` with arraystore's start method, reusable across :func:`map_blocks` calls.

    Its workers exit when the process that made the pool dies, even by SIGKILL
    (see :func:`worker_init`), instead of running on as orphans.
    """
    return ProcessPoolExecutor(
        max_workers=workers or default_workers(),
        mp_context=mp_context(),
        initializer=worker_init,
        initargs=parent_identity(),
    )


def abandon_pool(pool: ProcessPoolExecutor, timeout: float = 5.0) -> None:
    """Stop a pool now: cancel queued tasks and end running workers (their work is abandoned).

    For an interrupt (Ctrl-C, SIGTERM) or a fatal error in the process that owns the
    pool: ``shutdown(cancel_futures=True)`` alone would wait for every running task.
    Work a worker was doing is lost; arraystore's writers leave it as ``.partial``, which
    a rerun resumes or replaces.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.terminate()
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout)


#: How often a worker's watchdog thread checks that its parent is alive (seconds).
WATCHDOG_INTERVAL = 0.5


def parent_identity() -> tuple[int, float]:
    """This process's pid and start time, which :func:`worker_init` watches."""
    import psutil

    return os.getpid(), psutil.Process().create_time()


def _parent_alive(pid: int, created: float) -> bool:
    import psutil

    try:
        return bool(psutil.Process(pid).create_time() == created)  # a reused pid starts later
    except psutil.Error:
        return False


def worker_init(parent_pid: int, parent_created: float, use_prctl: bool = True) -> None:
    """Make a pool worker exit when the pool's owner dies.

    On Linux the kernel kills the worker when its parent process exits
    (``prctl(PR_SET_PDEATHSIG, SIGKILL)``; the parent is the forkserver, which exits with
    the owner). On every platform, and as a second line on Linux, a daemon thread checks
    every :data:`WATCHDOG_INTERVAL` seconds that the owner (pid and start time) is alive
    and ends the worker with ``os._exit`` when it is not. A worker whose owner died
    before this ran exits at once.
    """
    import signal
    import sys
    import threading

    # Ctrl-C reaches the whole process group; the owner decides what stops (see abandon_pool).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if use_prctl and sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog remains
            pass
    if not _parent_alive(parent_pid, parent_created):
        os._exit(1)

    def watch() -> None:
        while _parent_alive(parent_pid, parent_created):
            threading.Event().wait(WATCHDOG_INTERVAL)
        os._exit(1)

    threading.Thread(target=watch, name="arraystore-parent-watchdog", daemon=True).start()


def default_workers() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def map_blocks(
    func: Callable[[np.ndarray[Any, Any], Block], R],
    store_or_path: ArrayStore | str | os.PathLike[str],
    *,
    workers: int | None = None,
    max_bytes: int = DEFAULT_MAP_BYTES,
    ordered: bool = True,
    backend: str | None = None,
    executor: Executor | None = None,
) -> list[R]:
    """Call ``func(block, selection)`` for every block of an array, in worker processes.

    Blocks follow :meth:`ArrayStore.block_plan` (storage order, aligned to chunks, at
    most ``max_bytes`` where the chunks allow). For memory-mappable stores the block is
    a read-only view of the worker's memory map, not a copy: copy it before modifying.

    Parameters
    ----------
    func
        A function defined at module level (worker processes import it by name);
        called as ``func(block, selection)``, where ``selection`` is the tuple of
        slices the block covers. Its result must pickle.
    store_or_path
        An open store (sent as a reference and reopened read-only in each worker) or a path.
    workers
        Worker processes; default: the CPUs this process may use. Ignored with ``executor``.
    max_bytes
        Block size budget; a storage chunk larger than this is one block.
    ordered
        True: results in block order. False: in completion order (for reductions that do
        not care; a slow block then never delays collecting the others).
    backend
        Backend name when ``store_or_path`` is a path that does not tell.
    executor
        An executor to reuse (e.g. :func:`process_pool`), left running afterwards.

    Returns
    -------
    list
        One result per block.

    Raises
    ------
    BlockError
        ``func`` raised on a block; the original exception is the ``__cause__``. Blocks not
        yet started are cancelled.
    FunctionNotPicklableError
        ``func`` is a lambda, a closure or a local function.
    """
    try:
        pickle.dumps(func)
    except Exception as exc:
        raise FunctionNotPicklableError(
            f"map_blocks() sends {func!r} to worker processes, which needs it to pickle; found: {exc}. "
            "Define it at module level (not a lambda or a nested function); bind arguments with functools.partial"
        ) from None
    if isinstance(store_or_path, ArrayStore):
        ref = pickle.dumps(store_or_path)
        plan = list(block_plan(store_or_path, max_bytes))
    else:
        with open_store(store_or_path, "r", backend=backend) as store:
            ref = pickle.dumps(store)
            plan = list(block_plan(store, max_bytes))
    if not plan:
        return []
    token = (uuid.uuid4().hex, ref)
    own = executor is None
    pool = executor if executor is not None else process_pool(min(workers or default_workers(), len(plan)))
    try:
        return _run(
            pool,
            func,
            token,
            plan,
            ordered,
            window=4 * (getattr(pool, "_max_workers", None) or default_workers()),
        )
    except KeyboardInterrupt:  # Ctrl-C: stop now rather than wait for the blocks in flight
        if own:
            assert isinstance(pool, ProcessPoolExecutor)
            abandon_pool(pool)
            own = False
        raise
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)


def block_plan(store: ArrayStore, max_bytes: int) -> BlockPlan:
    """The store's block plan for ``max_bytes``, raised to one whole chunk when a chunk is larger."""
    one_chunk = math.prod(store.chunks) * store.dtype.itemsize if store.chunks else store.dtype.itemsize
    return store.block_plan(max(max_bytes, one_chunk))


def _run(
    pool: Executor,
    func: Callable[..., R],
    token: tuple[str, bytes],
    plan: list[Block],
    ordered: bool,
    window: int,
) -> list[R]:
    """Keep ``window`` tasks in flight; results held by block index."""
    results: dict[int, R] = {}
    done_order: list[int] = []
    pending: dict[Future[R], int] = {}
    todo: Iterable[tuple[int, Block]] = iter(enumerate(plan))
    try:
        for i, sel in itertools.islice(todo, window):
            pending[pool.submit(_work, func, token, sel)] = i
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                i = pending.pop(fut)
                exc = fut.exception()
                if exc is not None:
                    raise BlockError(
                        f"{func.__qualname__ if hasattr(func, '__qualname__') else func!r} raised "
                        f"{type(exc).__name__}: {exc} on block {i} of {len(plan)} (selection {_fmt(plan[i])})",
                        i,
                        plan[i],
                    ) from exc
                results[i] = fut.result()
                done_order.append(i)
                nxt = next(iter(todo), None)
                if nxt is not None:
                    pending[pool.submit(_work, func, token, nxt[1])] = nxt[0]
    finally:
        for fut in pending:
            fut.cancel()
    keys = range(len(plan)) if ordered else done_order
    return [results[i] for i in keys]


def _fmt(sel: Block) -> str:
    return "[" + ", ".join(f"{s.start}:{s.stop}" for s in sel) + "]"


# -- in the worker --------------------------------------------------------------

_STORES: OrderedDict[str, tuple[ArrayStore, np.ndarray[Any, Any] | None]] = OrderedDict()
_MAX_STORES = 4


def _worker_store(token: tuple[str, bytes]) -> tuple[ArrayStore, np.ndarray[Any, Any] | None]:
    """The store of one map_blocks call, opened once per worker (and its map, when it reads through one)."""
    key, ref = token
    hit = _STORES.get(key)
    if hit is not None:
        _STORES.move_to_end(key)
        return hit
    store: ArrayStore = pickle.loads(ref)
    view = None
    if (
        store.supports_memmap
        and store.chunks is None
        and getattr(store, "io", "mmap") == "mmap"
        and store.nbytes
    ):
        try:
            view = store.as_memmap()
        except ArrayStoreError:  # chunked or compressed HDF5: read blocks instead
            view = None
    _STORES[key] = (store, view)
    while len(_STORES) > _MAX_STORES:
        old, _ = _STORES.popitem(last=False)[1]
        old.close()
    return store, view


def _work(func: Callable[[np.ndarray[Any, Any], Block], R], token: tuple[str, bytes], sel: Block) -> R:
    store, view = _worker_store(token)
    block = view[sel] if view is not None else store[sel]
    return func(block, sel)
