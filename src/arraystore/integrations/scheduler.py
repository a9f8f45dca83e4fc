"""Dask schedulers for ``convert(scheduler=...)`` and ``migrate(scheduler=...)``.

``scheduler`` is a scheduler address (``"tcp://host:8786"``), a ``distributed.Client``,
or ``"local"`` for a temporary ``LocalCluster`` of single-threaded worker processes.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ..errors import ConversionError, MissingDependencyError

__all__ = [
    "Completions",
    "check_scheduler",
    "client_for",
    "describe_scheduler",
    "distributed_module",
    "raise_interrupt",
]


def distributed_module() -> Any:
    """``dask.distributed``, or a :class:`MissingDependencyError` saying what to install."""
    try:
        import distributed
    except ImportError as exc:
        name = (exc.name or "distributed").split(".")[0]
        raise MissingDependencyError(
            f"scheduler= needs {name} (dask.distributed), which is not installed; install it with: "
            "pip install 'arraystore[dask]', or run without scheduler= to use this machine's cores"
        ) from None
    return distributed


def check_scheduler(scheduler: Any) -> None:
    """Refuse anything that is not an address, ``"local"`` or a ``Client``, before work starts."""
    distributed = distributed_module()
    if not isinstance(scheduler, (str, distributed.Client)) or scheduler == "":
        raise ConversionError(
            f"expected scheduler= as a scheduler address ('tcp://host:8786'), 'local' or a distributed.Client, "
            f"found {scheduler!r}"
        )


def describe_scheduler(scheduler: Any) -> str:
    """A label for reports: ``"local"``, the address, or the client's scheduler address."""
    if isinstance(scheduler, str):
        return scheduler
    info = getattr(scheduler, "scheduler", None)
    return str(getattr(info, "address", None) or scheduler)


@contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """Ignore SIGINT while a local cluster starts its processes, which keep ignoring it.

    Ctrl-C reaches the terminal's whole process group: without this the nannies and
    workers would die with tracebacks mid-block while the client is still deciding what
    to do. The client alone handles the interrupt (cancels, then closes the cluster).
    A Ctrl-C during the cluster's start (about a second) is ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """A signal handler that stops like Ctrl-C (the CLI installs it for SIGTERM); :class:`Completions` defers it."""
    raise KeyboardInterrupt


_INTERRUPTED = object()


class Completions:
    """The client's futures as they finish, and Ctrl-C, raised between distributed's calls, never inside them.

    A ``KeyboardInterrupt`` that lands inside one of distributed's blocking calls
    (``Future.result``, ``wait``, ``cancel``: all run ``distributed.utils.sync``) can
    make its clean-up callback fail with a ``NameError`` that tornado logs with a
    traceback, depending on the instant the signal arrives. While the client is open,
    SIGINT (and SIGTERM where :func:`raise_interrupt` handles it) only puts a marker in
    this queue; :meth:`next` raises ``KeyboardInterrupt`` when it takes the marker out,
    from arraystore's own code. Signals with handlers of the caller's own are left alone.

    A future's done callback runs once. A finished future whose result was held by a
    worker that died is *lost* and computed again, finishing without a second callback:
    every :data:`POLL` seconds without news the watched futures are looked at directly.
    """

    #: Seconds between direct looks at the watched futures when no callback came.
    POLL = 0.1

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()  # put() may run in a signal handler
        self._watched: dict[Any, Any] = {}  # key -> future, until next() hands it out
        self.interrupted = False

    def watch(self, future: Any) -> Any:
        """Have ``future`` come out of :meth:`next` once it is done (finished, erred or cancelled)."""
        self._watched[future.key] = future
        future.add_done_callback(self._queue.put)
        return future

    def _take(self) -> Any:
        """A future whose callback ran (None after :data:`POLL` seconds of nothing); raise on an interrupt."""
        if self.interrupted:
            raise KeyboardInterrupt
        try:
            item = self._queue.get(timeout=self.POLL)
        except queue.Empty:
            return None
        if item is _INTERRUPTED:
            raise KeyboardInterrupt
        return item

    def next(self) -> Any:
        """The next watched future to be done; ``KeyboardInterrupt`` if an interrupt came first."""
        while True:
            item: Any = self._take()
            if item is None:  # no callback for a while: a recomputed (once lost) future may be done
                item = self._any_done()
            if item is None:
                continue
            key = item.key
            if not item.done() or self._watched.get(key) is not item:
                continue  # lost since its callback and being computed again, or handed out already
            del self._watched[key]
            return item

    def _any_done(self) -> Any:
        for future in self._watched.values():
            if future.done():
                return future
        return None

    def until_done(self, future: Any) -> None:
        """Block until ``future`` is done; ``KeyboardInterrupt`` if an interrupt comes first."""
        while not future.done():
            self._take()
        self._watched.pop(future.key, None)

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = True
        self._queue.put(_INTERRUPTED)

    @contextmanager
    def deferring(self) -> Iterator[None]:
        """Route SIGINT (and a :func:`raise_interrupt` SIGTERM) here for the block; restore the handlers after."""
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread receives signals; a caller's thread keeps its own arrangements
            return
        taken: dict[signal.Signals, Any] = {}
        for signum, ours in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, raise_interrupt)):
            if signal.getsignal(signum) is ours:
                taken[signum] = signal.signal(signum, self._interrupt)
        try:
            yield
        finally:
            for signum, previous in taken.items():
                signal.signal(signum, previous)


@contextmanager
def client_for(scheduler: Any, workers: int | None) -> Iterator[tuple[Any, Completions]]:
    """A client for ``scheduler`` and the :class:`Completions` to wait on its futures with.

    ``"local"`` starts ``workers`` (default 2) single-threaded processes. Processes, one
    thread each: decoding, encoding and conversion hold the GIL between codec and I/O
    calls, and one thread keeps one block's memory budget per process. A caller's own
    ``Client`` is used as it is and left open. Ctrl-C is deferred to
    :meth:`Completions.next` until the client (and a local cluster) is closed.
    """
    check_scheduler(scheduler)
    distributed = distributed_module()
    completions = Completions()
    if isinstance(scheduler, distributed.Client):
        with completions.deferring():
            yield scheduler, completions
        return
    if scheduler == "local":
        with _workers_ignore_sigint():  # the worker processes (and their nannies) inherit SIG_IGN
            # ":0", not None: with None the scheduler's web server still binds the default 8787, and warns when
            # another cluster (or a notebook's dashboard) has it.
            cluster = distributed.LocalCluster(
                n_workers=workers or 2, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
        with completions.deferring(), cluster, distributed.Client(cluster, set_as_default=False) as client:
            yield client, completions
        return
    with completions.deferring(), distributed.Client(scheduler, set_as_default=False) as client:
        yield client, completions
