"""map_blocks: same results as a serial loop, errors name the block, stores travel as references."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.parallel import BlockError, abandon_pool, map_blocks, process_pool

import parallel_funcs  # isort: skip  # beside this file; workers import it by name

DATA = np.random.default_rng(5).random((300, 40))


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    """One forkserver pool of 2 workers for the module (process start-up is the slow part)."""
    with process_pool(2) as p:
        yield p


def serial(path: str, max_bytes: int) -> list[tuple[tuple[tuple[int, int], ...], float]]:
    with arraystore.open(path) as store:
        return [parallel_funcs.block_sum(store[sel], sel) for sel in store.block_plan(max_bytes)]


def test_map_blocks_equals_serial_loop(
    case: tuple[str, str | None], make_store: Callable[..., str], pool: ProcessPoolExecutor
) -> None:
    backend, chunks = case
    path = make_store(backend, DATA, chunks)
    # zarr makes small arrays one chunk; the chunked cases have ~10 KB chunks
    budget = 1 << 20 if (backend, chunks) == ("zarr", None) else 16 * 1024
    got = map_blocks(parallel_funcs.block_sum, path, max_bytes=budget, executor=pool)
    assert got == serial(path, budget)


def test_map_blocks_unordered_same_multiset(
    make_store: Callable[..., str], pool: ProcessPoolExecutor
) -> None:
    path = make_store("raw", DATA)
    got = map_blocks(parallel_funcs.block_sum, path, max_bytes=8 * 1024, ordered=False, executor=pool)
    assert sorted(got) == sorted(serial(path, 8 * 1024))


def test_map_blocks_own_pool_and_open_store(make_store: Callable[..., str]) -> None:
    path = make_store("npy", DATA)
    with arraystore.open(path) as store:
        got = map_blocks(parallel_funcs.block_sum, store, workers=2, max_bytes=32 * 1024)
    assert got == serial(path, 32 * 1024)


def test_map_blocks_uses_several_processes(
    make_store: Callable[..., str], pool: ProcessPoolExecutor, tmp_path: Path
) -> None:
    # Each task waits until a second process has run one too: two workers take part however fast the first is.
    path = make_store("raw", DATA)
    met = tmp_path / "met"
    met.mkdir()
    pids = map_blocks(partial(parallel_funcs.pid_once_two_met, str(met)), path, max_bytes=4 * 1024, executor=pool)
    assert len(set(pids)) == 2 and not (met / "gave-up").exists()


def test_blocks_are_read_only_views_for_mapped_stores(
    make_store: Callable[..., str], pool: ProcessPoolExecutor
) -> None:
    path = make_store("raw", DATA)
    assert set(map_blocks(parallel_funcs.is_memmap_view, path, max_bytes=32 * 1024, executor=pool)) == {True}


def test_worker_error_names_the_block(make_store: Callable[..., str], pool: ProcessPoolExecutor) -> None:
    path = make_store("raw", DATA)
    with pytest.raises(
        BlockError, match=r"ZeroDivisionError: boom on block \d+ of \d+ \(selection \["
    ) as info:
        map_blocks(parallel_funcs.fail_after_first, path, max_bytes=8 * 1024, executor=pool)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert info.value.selection[0].start != 0


SCRIPT_WITH_A_LAMBDA = """
import sys
from arraystore.parallel import FunctionNotPicklableError, map_blocks
if __name__ == "__main__":
    try:
        map_blocks(lambda block, sel: 0, sys.argv[1])
    except FunctionNotPicklableError as exc:
        print("refused:", exc)
"""


def test_unpicklable_function_is_refused_before_any_work(make_store: Callable[..., str], tmp_path: Path) -> None:
    """In a script (which workers re-import, so functions travel by name) a lambda cannot reach them.

    Run as a real script: under ``python -m pytest`` this process's main module is interactive,
    where functions travel by value instead (tests/parallel/test_main_module.py).
    """
    path = make_store("raw", DATA)
    script = tmp_path / "job.py"
    script.write_text(SCRIPT_WITH_A_LAMBDA)
    src = str(Path(__file__).resolve().parents[2] / "src")
    proc = subprocess.run([sys.executable, str(script), path], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": src}, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("refused:") and "module level" in proc.stdout, proc.stdout


def test_empty_array_has_no_blocks(make_store: Callable[..., str]) -> None:
    assert map_blocks(parallel_funcs.block_sum, make_store("raw", np.empty((0, 3)))) == []


@pytest.mark.parametrize("rows", [10, 10_000])
def test_store_pickle_is_a_small_reference(
    case: tuple[str, str | None], make_store: Callable[..., str], rows: int
) -> None:
    backend, chunks = case
    data = np.ones((rows, 64))
    path = make_store(backend, data, chunks)
    with arraystore.open(path) as store:
        store[...]  # a store that has read (and mapped) its data still pickles as a reference
        blob = pickle.dumps(store)
    assert len(blob) < 1024
    again = pickle.loads(blob)
    assert again.mode == "r"
    np.testing.assert_array_equal(again[...], data)
    again.close()


def test_store_pickle_size_independent_of_array_size(
    make_store: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    sizes = []
    for rows in (1, 100_000):
        path = str(tmp_path_factory.mktemp("p") / "same.dat")
        with arraystore.create(path, (rows, 16), "f8") as new:
            new[...] = 1.0
        with arraystore.open(path) as store:
            sizes.append(len(pickle.dumps(store)))
    assert sizes[0] == sizes[1]


def test_an_abandoned_pool_s_manager_thread_has_ended() -> None:
    """After :func:`abandon_pool` (Ctrl-C, SIGTERM) the pool's manager thread has ended and closed its wake-up
    pipe: CPython 3.10 and 3.11 write to that pipe at interpreter exit without a lock, and a close racing with
    the write printed an ignored "Bad file descriptor" traceback after an interrupted migration."""
    import time

    pool = process_pool(2)
    futures = [pool.submit(time.sleep, 600) for _ in range(3)]
    manager = pool._executor_manager_thread  # type: ignore[attr-defined]
    assert manager is not None and manager.is_alive()
    abandon_pool(pool)
    assert not manager.is_alive()
    assert all(f.done() for f in futures)
