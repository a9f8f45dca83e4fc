"""Dask schedulers for ``convert(scheduler=...)`` and ``migrate(scheduler=...)``.

``scheduler`` is a scheduler address (``"tcp://host:8786"``), a ``distributed.Client``,
or ``"local"`` for a temporary ``LocalCluster`` of single-threaded worker processes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import ConversionError, MissingDependencyError

__all__ = ["check_scheduler", "client_for", "describe_scheduler", "distributed_module"]


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


@contextmanager
def client_for(scheduler: Any, workers: int | None) -> Iterator[Any]:
    """A client for ``scheduler``; ``"local"`` starts ``workers`` (default 2) single-threaded processes.

    Processes, one thread each: decoding, encoding and conversion hold the GIL between
    codec and I/O calls, and one thread keeps one block's memory budget per process.
    A caller's own ``Client`` is used as it is and left open.
    """
    check_scheduler(scheduler)
    distributed = distributed_module()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if scheduler == "local":
        with _workers_ignore_sigint():  # the worker processes (and their nannies) inherit SIG_IGN
            cluster = distributed.LocalCluster(
                n_workers=workers or 2, threads_per_worker=1, processes=True, dashboard_address=None
            )
        with cluster, distributed.Client(cluster, set_as_default=False) as client:
            yield client
        return
    with distributed.Client(scheduler, set_as_default=False) as client:
        yield client
