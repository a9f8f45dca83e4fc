"""Running migration jobs on a Dask cluster (``scheduler=``): an address, a ``Client``, or ``"local"``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import MissingDependencyError
from ._job import Job, run_job
from ._manifest import FileRecord

__all__ = ["describe_scheduler", "run_on_dask"]


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError(
            "scheduler= needs dask.distributed, which is not installed; install arraystore[dask] "
            "(pip install 'dask[distributed]'), or run without scheduler= to use a local process pool"
        ) from None
    return distributed


def describe_scheduler(scheduler: Any) -> str:
    """A label for reports: ``"local"``, the address, or the client's scheduler address."""
    if isinstance(scheduler, str):
        return scheduler
    info = getattr(scheduler, "scheduler", None)
    return str(getattr(info, "address", None) or scheduler)


@contextmanager
def _client(scheduler: Any, workers: int | None) -> Iterator[Any]:
    distributed = _distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if scheduler == "local":
        # processes: conversions hold the GIL between I/O calls; one thread each keeps the memory budget per worker.
        with (
            distributed.LocalCluster(
                n_workers=workers or 2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
        return
    if not isinstance(scheduler, str):
        raise TypeError(
            f"expected scheduler= as an address, 'local' or a distributed.Client, found {scheduler!r}"
        )
    with distributed.Client(scheduler) as client:
        yield client


def run_on_dask(
    jobs: Sequence[Job], scheduler: Any, workers: int | None, on_result: Callable[[FileRecord], None]
) -> None:
    """Run every job on the cluster, calling ``on_result`` in this process as each finishes.

    The workers must see the source and destination paths (a shared file system): each
    job carries paths, never data. ``workers`` sizes a ``"local"`` cluster only.
    """
    if not jobs:
        return
    distributed = _distributed()
    with _client(scheduler, workers) as client:
        futures = client.map(run_job, list(jobs), pure=False)
        for _future, record in distributed.as_completed(futures, with_results=True):
            on_result(record)
