"""How memory-mapped files (raw, npy) serve :meth:`~arraystore.ArrayStore.take` and ``advise``.

:class:`~arraystore.backends._mapped.MappedFileStore` overrides the store's access hooks
(``_take_sorted``, ``_advise``) with these: gathers along the outermost storage axis read
in the cheapest of three ways by the cost model of :mod:`arraystore._iocost` (one
sequential pass; the runs advised to the kernel ahead of a copy from the map, or threads
of ``preadv`` for buffered I/O; a sorted gather from the map), from a calibration measured
on the file's device; and ``madvise`` on the map plus ``posix_fadvise`` on the data range.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .._iocost import (
    Calibration,
    GatherStats,
    cached_calibration,
    calibration_for,
    choose_gather,
    gather_costs,
    memory_calibration,
    merge_gap_bytes,
    resident_fraction,
    sampled_residency,
)
from ..access import _FADV, _MADV, _axis_sel, _fadvise_file, _row_block_shape, _runs
from ..errors import ArrayStoreError

__all__ = ["ADVISE_AHEAD", "LAST_CHOICE", "PREAD_THREADS", "WARM_SAMPLES", "advise_mapped", "gather_contiguous",
           "gather_stats", "take_in_memory"]

PAGE = mmap.PAGESIZE
#: Pages probed to decide that rows are all in the page cache (then copied from the map in the order asked).
WARM_SAMPLES = 256
#: The last choice of ``mode="auto"`` in this process: [mode, the model's seconds per mode, GatherStats] (a
#: diagnostic for benchmarks: tools/bench_access.py prints it).
LAST_CHOICE: list[Any] = []
#: Runs advised to the kernel ahead of the one being copied (bounds the read-ahead in flight).
ADVISE_AHEAD = 4096
#: Threads of ``preadv`` for sparse gathers on stores read with buffered I/O (network file systems).
PREAD_THREADS = 8


def take_in_memory(store: Any, indices: np.ndarray[Any, Any], axis: int) -> np.ndarray[Any, Any] | None:
    """Rows ``indices`` (in range, any order, repeats allowed) along the outermost storage axis, copied from the
    map in the order asked when they are in memory: always for a copy-on-write store (its private changes live
    in the map), else when every probed page of a sample of the rows (:data:`WARM_SAMPLES` pages, spread over
    the request; the first and last page of rows longer than a page) is in the page cache (probing stops at
    the first page out of it). None otherwise.

    With the rows in memory no device is read, so neither sorting them nor a second copy back into the order
    asked pays: one gather from the map, as numpy's fancy indexing does it."""
    outer = 0 if store.order == "C" else store.ndim - 1
    if axis != outer or not store.nbytes:
        return None
    if store.mode == "c":
        return np.take(np.asarray(store._get_map()), indices, axis=axis)
    if store.io != "mmap":
        return None
    row_bytes = store.nbytes // store.shape[axis]
    pick = indices[np.linspace(0, indices.size - 1, min(indices.size, WARM_SAMPLES)).astype(np.intp)]
    offsets = store.offset + pick * row_bytes
    if row_bytes > PAGE:
        offsets[1::2] += row_bytes - 1  # half the probes on the rows' last pages
    fd = os.open(store.data_file, os.O_RDONLY)
    try:  # probes, not mincore: cheaper when the rows are in memory, and they stop at the first page out of it
        resident = resident_fraction(fd, offsets // PAGE * PAGE, limit=WARM_SAMPLES, all_or_none=True)
    finally:
        os.close(fd)
    if resident is None or resident < 1.0:
        return None
    LAST_CHOICE[:] = ["in memory", {}, None]
    return np.take(np.asarray(store._get_map()), indices, axis=axis)


def gather_stats(store: Any, uniq: np.ndarray[Any, Any], row_bytes: int, max_bytes: int,
                 cal: Calibration) -> GatherStats:
    """Where rows ``uniq`` lie in the store's file (read-around windows of ``cal``'s size), and how much of it is
    in the page cache (sampled)."""
    base = store.offset
    lo = (base + uniq * row_bytes) // PAGE
    hi = (base + (uniq + 1) * row_bytes - 1) // PAGE
    touched = int(np.sum(hi - lo + 1)) - int(np.sum(lo[1:] == hi[:-1]))
    windows = _windows(store, uniq, row_bytes, cal)
    starts, _ = _runs(uniq)
    sample = lo[np.linspace(0, uniq.size - 1, min(uniq.size, 64)).astype(np.intp)] * PAGE
    resident = sampled_residency(store.data_file, sample)
    return GatherStats(span_bytes=int(hi[-1] - lo[0] + 1) * PAGE, touched_pages=touched, runs=int(starts.size),
                       resident=0.0 if resident is None else resident, block_bytes=max_bytes,
                       row_bytes=int(uniq.size) * row_bytes, **windows, **_advised(store, uniq, row_bytes, cal))


def _advised(store: Any, uniq: np.ndarray[Any, Any], row_bytes: int, cal: Calibration) -> dict[str, int]:
    """The ranges the ``"gather"`` mode advises for rows ``uniq`` (runs closer than ``cal``'s
    :func:`~arraystore._iocost.merge_gap_bytes` merged) and the pages they cover."""
    starts, stops = _runs(uniq, merge_gap_bytes(cal) // row_bytes)
    lo = (store.offset + starts * row_bytes) // PAGE
    hi = (store.offset + stops * row_bytes - 1) // PAGE
    pages = int(np.sum(hi - lo + 1)) - int(np.sum(lo[1:] == hi[:-1]))
    return {"advised_runs": int(starts.size), "advised_pages": pages}


def _windows(store: Any, uniq: np.ndarray[Any, Any], row_bytes: int, cal: Calibration) -> dict[str, int]:
    """Read-around windows of the device (``cal.fault_window_bytes``) that rows ``uniq`` touch, and the runs of
    consecutive windows among them."""
    per_window = max(1, cal.fault_window_bytes // PAGE) * PAGE
    lo = (store.offset + uniq * row_bytes) // per_window
    hi = (store.offset + (uniq + 1) * row_bytes - 1) // per_window
    windows = int(np.sum(hi - lo + 1)) - int(np.sum(lo[1:] == hi[:-1]))
    runs = 1 + int(np.sum(lo[1:] > hi[:-1] + 1))  # a gap of a whole window or more between rows starts a run
    return {"windows": windows, "window_runs": runs}


def gather_contiguous(
    store: Any, uniq: np.ndarray[Any, Any], axis: int, max_bytes: int, mode: str = "auto",
    calibration: Calibration | None = None,
) -> np.ndarray[Any, Any]:
    """Rows ``uniq`` (sorted, unique) along the outermost storage axis, read the way ``mode`` says
    (``"auto"``: the cheapest by the cost model, with ``calibration`` or the device's)."""
    row_bytes = store.nbytes // store.shape[axis]
    if store.mode == "c":  # private copy-on-write changes live only in the map
        return np.take(np.asarray(store._get_map()), uniq, axis=axis)
    cal = calibration if calibration is not None else cached_calibration(store.data_file)
    if mode == "auto":
        if cal is None:
            # Rows all in the page cache cost copies only: the device need not be measured (yet).
            cal = memory_calibration(store.data_file)
            stats = gather_stats(store, uniq, row_bytes, max_bytes, cal)
            if stats.resident < 1.0:
                cal = calibration_for(store.data_file)
                stats = dataclasses.replace(stats, **_windows(store, uniq, row_bytes, cal),
                                            **_advised(store, uniq, row_bytes, cal))
        else:
            stats = gather_stats(store, uniq, row_bytes, max_bytes, cal)
        mode = choose_gather(stats, cal, store.io)
        LAST_CHOICE[:] = [mode, gather_costs(stats, cal, store.io), stats]
    if mode == "sequential":
        return _gather_sequential(store, uniq, axis, row_bytes, max_bytes)
    if mode == "mapped":
        return np.take(np.asarray(store._get_map()), uniq, axis=axis)
    if store.io == "mmap":
        # Runs closer than the calibration's break-even gap are advised as one range (forced without a
        # calibration: each run alone).
        starts, stops = _runs(uniq, merge_gap_bytes(cal) // row_bytes)
        return _gather_advised(store, uniq, axis, starts, stops, row_bytes)
    starts, stops = _runs(uniq)
    return _gather_pread(store, uniq, axis, starts, stops, row_bytes)


def _pread_rows(fd: int, out: np.ndarray[Any, Any], pos: int) -> None:
    view = memoryview(out.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], pos + done)
        if got == 0:
            raise ArrayStoreError(
                f"fd {fd}: the file ended {len(view) - done:,} bytes early (truncated while reading?)"
            )
        done += got


def _gather_sequential(
    store: Any, uniq: np.ndarray[Any, Any], axis: int, row_bytes: int, max_bytes: int
) -> np.ndarray[Any, Any]:
    out = np.empty(_row_block_shape(store, axis, uniq.size), store.dtype, order=store.order)
    step = max(1, max_bytes // max(row_bytes, 1))
    lo, hi = int(uniq[0]), int(uniq[-1]) + 1
    fd = os.open(store.data_file, os.O_RDONLY)
    try:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(
                fd, store.offset + lo * row_bytes, (hi - lo) * row_bytes, os.POSIX_FADV_SEQUENTIAL
            )
        buf = np.empty(min(step, hi - lo) * row_bytes, np.uint8)
        pos = np.searchsorted(uniq, np.arange(lo, hi + step, step))
        for k, a in enumerate(range(lo, hi, step)):
            i, j = int(pos[k]), int(pos[k + 1])
            if i == j:
                continue
            b = min(a + step, hi, int(uniq[j - 1]) + 1)
            a = int(uniq[i])
            chunk = buf[: (b - a) * row_bytes]
            _pread_rows(fd, chunk, store.offset + a * row_bytes)
            rows = chunk.view(store.dtype).reshape(_row_block_shape(store, axis, b - a), order=store.order)
            out[_axis_sel(store.ndim, axis, slice(i, j))] = np.take(rows, uniq[i:j] - a, axis=axis)
    finally:
        os.close(fd)
    return out


def _gather_advised(
    store: Any,
    uniq: np.ndarray[Any, Any],
    axis: int,
    starts: np.ndarray[Any, Any],
    stops: np.ndarray[Any, Any],
    row_bytes: int,
) -> np.ndarray[Any, Any]:
    m = store._get_map()
    if not hasattr(os, "posix_fadvise"):
        return np.take(np.asarray(m), uniq, axis=axis)
    out = np.empty(_row_block_shape(store, axis, uniq.size), store.dtype, order=store.order)
    run_of_row = np.searchsorted(starts, uniq, side="right") - 1
    fd = os.open(store.data_file, os.O_RDONLY)
    try:
        advised = 0
        for w in range(0, starts.size, ADVISE_AHEAD):
            # Keep ADVISE_AHEAD runs queued beyond the window being copied.
            target = min(starts.size, w + 2 * ADVISE_AHEAD)
            for r in range(advised, target):
                a = store.offset + int(starts[r]) * row_bytes
                os.posix_fadvise(fd, a, (int(stops[r]) - int(starts[r])) * row_bytes, os.POSIX_FADV_WILLNEED)
            advised = target
            i, j = np.searchsorted(run_of_row, [w, w + ADVISE_AHEAD])
            out[_axis_sel(store.ndim, axis, slice(int(i), int(j)))] = np.take(m, uniq[i:j], axis=axis)
    finally:
        os.close(fd)
    return out


def _gather_pread(
    store: Any,
    uniq: np.ndarray[Any, Any],
    axis: int,
    starts: np.ndarray[Any, Any],
    stops: np.ndarray[Any, Any],
    row_bytes: int,
) -> np.ndarray[Any, Any]:
    out = np.empty(_row_block_shape(store, axis, uniq.size), store.dtype, order=store.order)
    first = np.searchsorted(uniq, starts)
    fd = os.open(store.data_file, os.O_RDONLY)

    def read(r: int) -> None:
        a, b = int(starts[r]), int(stops[r])
        i = int(first[r])
        rows = np.empty(_row_block_shape(store, axis, b - a), store.dtype, order=store.order)
        _pread_rows(fd, rows, store.offset + a * row_bytes)
        out[_axis_sel(store.ndim, axis, slice(i, i + b - a))] = rows

    try:
        with ThreadPoolExecutor(PREAD_THREADS) as pool:
            for f in [pool.submit(read, r) for r in range(starts.size)]:
                f.result()
    finally:
        os.close(fd)
    return out


def advise_mapped(store: Any, advice: str) -> bool:
    done = False
    if store.nbytes == 0:
        return False
    if store.io == "mmap" or store._map is not None:
        m = store._get_map() if store.io == "mmap" else store._map
        raw = getattr(m, "base", None)
        flag = getattr(mmap, _MADV[advice], None)
        if (
            isinstance(raw, mmap.mmap)
            and flag is not None
            and not (advice == "dontneed" and store.mode == "c")
        ):
            raw.madvise(flag)
            done = True
    fadv = getattr(os, _FADV[advice], None)
    if fadv is None or not hasattr(os, "posix_fadvise"):
        return done
    if advice in ("sequential", "random", "normal"):
        get_fd = getattr(store, "_get_fd", None)  # the descriptor buffered reads go through
        if store.io == "buffered" and get_fd is not None:
            os.posix_fadvise(get_fd(), store.offset, store.nbytes, fadv)
            done = True
        return done
    return _fadvise_file(Path(store.data_file), advice, store.offset, store.nbytes) or done
