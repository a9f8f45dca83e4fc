"""Running migration jobs on a Dask cluster (``scheduler=``): an address, a ``Client``, or ``"local"``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..integrations.scheduler import client_for, describe_scheduler
from ._job import Job, run_job
from ._manifest import FileRecord

__all__ = ["describe_scheduler", "run_on_dask"]


def run_on_dask(
    jobs: Sequence[Job], scheduler: Any, workers: int | None, on_result: Callable[[FileRecord], None]
) -> None:
    """Run every job on the cluster, calling ``on_result`` in this process as each finishes.

    The workers must see the source and destination paths (a shared file system): each
    job carries paths, never data. ``workers`` sizes a ``"local"`` cluster only.
    """
    if not jobs:
        return
    with client_for(scheduler, workers) as (client, completions):
        for future in client.map(run_job, list(jobs), pure=False):
            completions.watch(future)
        for _ in range(len(jobs)):
            future = completions.next()
            record = future.result()  # a job that raised raises here, as it would locally
            future.release()
            on_result(record)
