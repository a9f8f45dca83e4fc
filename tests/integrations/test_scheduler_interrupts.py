"""Ctrl-C while arraystore waits on a Dask client: noted, then raised from arraystore's code, never inside distributed's.

A ``KeyboardInterrupt`` that lands inside ``distributed.utils.sync`` (``Future.result``,
``Client.run``, ``wait``) can make distributed's clean-up callback fail with a logged
``NameError`` traceback, depending on the instant. These tests deliver the signal while
the main thread is inside such a call, which is where it used to land.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

distributed = pytest.importorskip("distributed", reason="client_for needs dask.distributed")

from arraystore.integrations.scheduler import client_for, raise_interrupt  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """An in-process cluster: its worker threads can signal this process while the main thread waits."""
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        yield c


def _signal_me(signum: int) -> str:
    os.kill(os.getpid(), signum)
    return "returned"


def _fail() -> None:
    raise ValueError("a job failed")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_a_blocking_call_is_raised_at_the_next_wait(client: Any, signum: int) -> None:
    previous_term = signal.signal(signal.SIGTERM, raise_interrupt)  # as the migrate command installs it
    try:
        with client_for(client, None) as (c, completions):
            # the signal arrives while this thread is inside distributed's sync(): it must not raise there
            assert c.run(_signal_me, signum) == {w: "returned" for w in c.scheduler_info()["workers"]}
            assert completions.interrupted
            future = completions.watch(c.submit(sum, [1, 2], pure=False))
            with pytest.raises(KeyboardInterrupt):
                completions.until_done(future)
            future.release()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGTERM) is raise_interrupt
    finally:
        signal.signal(signal.SIGTERM, previous_term)


def test_a_callers_own_handler_is_left_alone(client: Any) -> None:
    seen: list[int] = []

    def mine(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGINT, mine)
    try:
        with client_for(client, None) as (c, completions):
            assert signal.getsignal(signal.SIGINT) is mine
            c.run(_signal_me, signal.SIGINT)
            assert seen == [signal.SIGINT] and not completions.interrupted
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, previous)


def test_completions_come_out_once_each_and_errors_reraise(client: Any) -> None:
    with client_for(client, None) as (c, completions):
        futures = [completions.watch(c.submit(pow, 2, n, pure=False)) for n in range(8)]
        failing = completions.watch(c.submit(_fail, pure=False))
        done = [completions.next() for _ in range(9)]
        assert sorted(map(id, done)) == sorted(map(id, [*futures, failing]))
        assert sorted(f.result() for f in done if f is not failing) == [2**n for n in range(8)]
        with pytest.raises(ValueError, match="a job failed"):
            failing.result()
