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
from a clean single-threaded server process, which imports arraystore once
(:data:`PRELOAD`), so they start fast and safely; Python 3.14 made it the default on
Linux for these reasons.

The main module and worker processes: with ``forkserver`` and ``spawn`` every worker
re-imports the main script (as ``__mp_main__``) to find functions defined there. A
script that starts a pool from its top level without ``if __name__ == "__main__":``
would start pools again in every worker; :func:`check_main_guard` detects this before a
pool starts and raises :class:`UnguardedMainError`. Where the main module cannot be
re-imported at all (an interactive session, a Jupyter notebook, ``python -c``, a script
read from stdin) workers skip it and :func:`map_blocks` sends functions defined in it by
value with ``cloudpickle`` (see :func:`main_module_kind`).
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import math
import multiprocessing
import os
import pickle
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

import numpy as np

from ._open import open as open_store
from .blocks import BlockPlan
from .errors import ArrayStoreError, BlockError, FunctionNotPicklableError, UnguardedMainError
from .store import ArrayStore

__all__ = [
    "PRELOAD",
    "BlockError",
    "FunctionNotPicklableError",
    "UnguardedMainError",
    "abandon_pool",
    "check_main_guard",
    "main_module_kind",
    "map_blocks",
    "mp_context",
    "parent_identity",
    "pool_session",
    "process_pool",
    "start_forkserver",
    "worker_init",
]

R = TypeVar("R")
Block = tuple[slice, ...]

#: Default block size for :func:`map_blocks`: small enough to spread over workers, large
#: enough that per-task overhead (~100 µs) is noise next to reading the block.
DEFAULT_MAP_BYTES = 16 * 1024 * 1024


def main_module_kind() -> str:
    """How worker processes treat the main module, mirroring :mod:`multiprocessing.spawn`.

    Returns
    -------
    str
        ``"script"``: a script or ``python -m module`` that workers re-import (its
        functions travel by name; pools must be started under the ``__main__`` guard).
        ``"stdin"``: a script read from stdin (``python -``), which workers could not
        re-import: arraystore hides its ``<stdin>`` path while its pools start.
        ``"interactive"``: no file (the REPL, ``python -c``, Jupyter/IPython, a package's
        ``__main__``): workers do not re-import it. Functions defined in a ``"stdin"`` or
        ``"interactive"`` main module are sent to workers by value (cloudpickle).
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not isinstance(path, str) or os.path.splitext(os.path.basename(path))[0] == "ipython":
        return "interactive"  # no file: a notebook's or the prompt's namespace, whatever its __spec__
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        return "interactive" if name == "__main__" or name.endswith(".__main__") else "script"
    return "script" if os.path.isfile(path) else "stdin"


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1


def _guarded(path: str, line: int) -> bool:
    """Whether ``line`` of the script at ``path`` lies in the body of an ``if __name__ == "__main__":``."""
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return True  # cannot tell: do not refuse what may work
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.body:
            end = node.body[-1].end_lineno or node.body[-1].lineno
            if node.body[0].lineno <= line <= end:
                return True
    return False


def check_main_guard(what: str = "a process pool") -> None:
    """Raise :class:`UnguardedMainError` when called, directly or not, from a script's unguarded top level.

    The main module's top-level frame is looked for on the call stack; when it is there
    and the line it is executing is not inside ``if __name__ == "__main__":`` (read from
    the script's source), worker processes that re-import the script would run that
    line again. Interactive sessions, notebooks, ``python -c`` and stdin scripts are not
    re-imported by workers and always pass.
    """
    if main_module_kind() != "script":
        return
    main = sys.modules["__main__"]
    path = getattr(main, "__file__", None)
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_code.co_name == "<module>" and frame.f_globals is vars(main)):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None or not isinstance(path, str) or _guarded(path, frame.f_lineno):
        return
    raise UnguardedMainError(
        f"{path}, line {frame.f_lineno}: {what} starts worker processes, which re-import this script; its "
        "top level is not guarded, so every worker would run it again and the pool would break. "
        'Put the script\'s top-level code under `if __name__ == "__main__":` (define your functions above it), '
        "or move the function into a module you import",
        path,
        frame.f_lineno,
    )


_HIDE_LOCK = threading.Lock()
_HIDDEN: list[Any] = [0, {}]  # pools running, attributes of __main__ hidden from their workers


def _misleading_main_attrs() -> dict[str, Any]:
    """Attributes of ``__main__`` that would send workers after a main module they cannot import.

    ``__file__`` of a script read from stdin (``"<stdin>"``), and the ``__spec__`` of a
    main module without a file (an interactive namespace that a launcher's spec was left
    on): multiprocessing would re-run either in every worker, and fail.
    """
    main = sys.modules.get("__main__")
    if main is None:
        return {}
    kind = main_module_kind()
    if kind == "stdin":
        return {"__file__": main.__dict__.get("__file__")}
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if kind == "interactive" and name is not None and not (name == "__main__" or name.endswith(".__main__")):
        return {"__spec__": main.__dict__.get("__spec__")}
    return {}


@contextlib.contextmanager
def pool_session(what: str = "a process pool") -> Iterator[None]:
    """Around the life of a process pool: :func:`check_main_guard`, then keep workers off a main they cannot import.

    While the pool starts its workers, ``__main__``'s ``"<stdin>"`` file name (a script
    read from stdin) or leftover ``__spec__`` (an interactive namespace) is hidden, so the
    workers do not try to run it; it is restored when the last such pool ends.
    """
    check_main_guard(what)
    main = sys.modules.get("__main__")
    with _HIDE_LOCK:
        hide = _misleading_main_attrs()
        if main is not None:
            for key, value in hide.items():
                _HIDDEN[1][key] = value
                if key == "__spec__":
                    main.__spec__ = None
                else:
                    main.__dict__.pop(key, None)
        _HIDDEN[0] += 1
    try:
        yield
    finally:
        with _HIDE_LOCK:
            _HIDDEN[0] -= 1
            if _HIDDEN[0] == 0 and main is not None:
                for key, value in _HIDDEN[1].items():
                    setattr(main, key, value)
                _HIDDEN[1].clear()


class _ByValue:
    """A function sent to workers by value (cloudpickle); unpickled once per worker."""

    def __init__(self, func: Callable[..., Any]):
        import cloudpickle

        self.payload = cloudpickle.dumps(func)
        self.name = getattr(func, "__qualname__", repr(func))
        self._func: Callable[..., Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"payload": self.payload, "name": self.name, "_func": None}

    def __call__(self, *args: Any) -> Any:
        if self._func is None:
            self._func = pickle.loads(self.payload)
        return self._func(*args)


def _shippable(func: Callable[..., R]) -> Callable[..., R]:
    """``func``, or a by-value wrapper when it lives in a main module that workers do not import."""
    if main_module_kind() == "script":
        return func
    try:
        by_reference = pickle.dumps(func)
    except Exception:
        by_reference = None
    if by_reference is not None and b"__main__" not in by_reference:
        return func
    try:
        return _ByValue(func)
    except ImportError:
        raise FunctionNotPicklableError(
            f"map_blocks() must send {func!r}, defined in an interactive session or a script read from stdin, "
            "to worker processes by value, which needs cloudpickle: pip install 'arraystore[notebook]' "
            "(or the 'dask' extra, which brings it), or define the function in a module you import"
        ) from None


def mp_context() -> multiprocessing.context.BaseContext:
    """The start method arraystore's process pools use: forkserver where available, else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


#: Modules the forkserver imports once when it starts, so that each worker forks with them loaded
#: instead of importing them itself (CPython 3.11's forkserver never preloads the main script:
#: without this every worker imports arraystore, about 0.3 s of CPU each).
PRELOAD = ("arraystore.parallel", "psutil")


def _preload(ctx: multiprocessing.context.BaseContext, modules: Iterable[str]) -> None:
    """Add ``modules`` to the forkserver's preload list while it is not running yet (later, it has no effect)."""
    if ctx.get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    server = forkserver._forkserver  # type: ignore[attr-defined]
    if getattr(server, "_forkserver_pid", None) is not None:
        return
    current = list(getattr(server, "_preload_modules", ["__main__"]))
    wanted = [m for m in modules if m not in current]
    if wanted:
        ctx.set_forkserver_preload(current + wanted)  # type: ignore[attr-defined]


def process_pool(workers: int | None = None, *, preload: Iterable[str] = ()) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` with arraystore's start method, reusable across :func:`map_blocks` calls.

    Its workers exit when the process that made the pool dies, even by SIGKILL
    (see :func:`worker_init`), instead of running on as orphans. The forkserver, when it is
    started by this pool, imports :data:`PRELOAD` and ``preload`` (module names of the
    functions the pool will run) once, and every worker forks with them loaded.

    Raises
    ------
    UnguardedMainError
        When called from a script's top level outside ``if __name__ == "__main__":``.
    """
    check_main_guard("process_pool()")
    ctx = mp_context()
    _preload(ctx, [*PRELOAD, *preload])
    return ProcessPoolExecutor(
        max_workers=workers or default_workers(),
        mp_context=ctx,
        initializer=worker_init,
        initargs=parent_identity(),
    )


def start_forkserver(preload: Iterable[str] = ()) -> None:
    """Start the forkserver now, in the background, for a pool that is about to be needed.

    The server imports :data:`PRELOAD` and ``preload`` while this process goes on (finding
    the files a pool will work on, say), instead of while the pool's first workers wait for
    it. It is the one the pools of this process use anyway; nothing happens where the start
    method is not ``forkserver`` or the server already runs.

    Started from the main thread, the server starts with Ctrl-C (SIGINT) ignored, as it
    ignores it anyway once its imports are done (and as the workers do, see :func:`worker_init`):
    a Ctrl-C sent to the whole terminal's process group while it imports would otherwise print
    its traceback. This process ignores SIGINT only while it starts the server (a fork and an exec).
    """
    ctx = mp_context()
    if ctx.get_start_method() != "forkserver":
        return
    _preload(ctx, [*PRELOAD, *preload])
    import signal
    from multiprocessing import forkserver

    previous = signal.getsignal(signal.SIGINT)
    if previous is None or threading.current_thread() is not threading.main_thread():  # None: a handler set in C
        forkserver.ensure_running()
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited through the exec: Python keeps it
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


def abandon_pool(pool: ProcessPoolExecutor, timeout: float = 5.0) -> None:
    """Stop a pool now: cancel queued tasks and end running workers (their work is abandoned).

    For an interrupt (Ctrl-C, SIGTERM) or a fatal error in the process that owns the
    pool: ``shutdown(cancel_futures=True)`` alone would wait for every running task.
    Work a worker was doing is lost; arraystore's writers leave it as ``.partial``, which
    a rerun resumes or replaces.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)  # shutdown() forgets it
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
    # The pool's manager thread closes its wake-up pipe as it ends. At interpreter exit, CPython
    # before the fix of gh-125451 (3.10, 3.11) writes to that pipe without a lock: a close in between
    # prints an ignored "Bad file descriptor" traceback after an interrupt. Once the thread has ended,
    # the exit hook finds the pipe closed and writes nothing.
    if manager is not None:
        manager.join(timeout)


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
    UnguardedMainError
        Called from a script's top level outside ``if __name__ == "__main__":`` (workers
        re-import the script). Functions defined in an interactive session, a notebook or
        a script read from stdin are sent by value and need no guard.
    """
    with pool_session("map_blocks()"):
        return _map_blocks(_shippable(func), store_or_path, workers, max_bytes, ordered, backend, executor)


def _map_blocks(
    func: Callable[[np.ndarray[Any, Any], Block], R],
    store_or_path: ArrayStore | str | os.PathLike[str],
    workers: int | None,
    max_bytes: int,
    ordered: bool,
    backend: str | None,
    executor: Executor | None,
) -> list[R]:
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
                    label = func.name if isinstance(func, _ByValue) else getattr(func, "__qualname__", repr(func))
                    raise BlockError(
                        f"{label} raised "
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
