"""Integer-array and mask selections as sorted gathers over a store's basic ``_read``/``_write``.

:func:`arraystore._selection.plan_selection` turns the key into a :class:`GatherPlan`;
these functions read its rows in sorted spans (rows closer than :data:`GAP_BYTES` or one
chunk share a read, a span with gaps stays within the store's block size), and write
them back the same way, so every backend gets numpy's advanced indexing for one array.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ._selection import GatherPlan

if TYPE_CHECKING:
    from .store import ArrayStore

__all__ = ["GAP_BYTES", "gather", "masked", "scatter", "spans"]

#: Rows of a gather closer than this are read in one call.
GAP_BYTES = 256 * 1024
#: A span with gaps stays within this many bytes (bounded memory).
SPAN_BYTES = 64 * 1024 * 1024


def spans(store: ArrayStore, plan: GatherPlan) -> list[tuple[int, int, int]]:
    """The spans ``plan``'s rows are read (and written back) in: rows closer than a small gap
    share one (a few wasted bytes beat one more call, and a chunk is decoded once, not once per
    run), and a span with gaps stays within SPAN_BYTES."""
    block_shape = plan.block_shape()
    row_bytes = max(math.prod(n for i, n in enumerate(block_shape) if i != plan.axis) * store.dtype.itemsize, 1)
    gap = GAP_BYTES // row_bytes
    if store.chunks:
        gap = max(gap, store.chunks[plan.axis])
    return plan.runs(max_gap=gap, max_rows=max(1, SPAN_BYTES // row_bytes))


def gather(store: ArrayStore, plan: GatherPlan) -> np.ndarray[Any, Any]:
    """Read the block of ``plan``: its rows in sorted spans, in storage order."""
    block_shape = plan.block_shape()
    runs = spans(store, plan)
    if math.prod(block_shape) == 0 or not runs:
        return np.empty(block_shape, store.dtype)
    whole = all(
        i == plan.axis or (s.start, s.stop, s.step) == (0, n, 1) for i, (s, n) in enumerate(zip(plan.sel, store.shape))
    )
    if whole and len(runs) > 1:
        return np.asarray(store.take(plan.rows, axis=plan.axis))  # whole rows: take()'s storage-order strategies
    parts = []
    ends = [at for _, _, at in runs[1:]] + [len(plan.rows)]
    for (lo, hi, at), end in zip(runs, ends):
        part = np.asarray(store._read(plan.run_selection(lo, hi)))
        wanted = plan.rows[at:end] - lo
        parts.append(part if len(wanted) == hi - lo else np.take(part, wanted, axis=plan.axis))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=plan.axis)


def masked(store: ArrayStore, plan: GatherPlan, value: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
    """Read (``value`` None) or write a full-shape mask one span of rows at a time (bounded memory).

    numpy orders the picked elements as the array's C order: span after span, row-major in each."""
    mask = plan.local[0]
    parts = []
    done = 0
    runs = spans(store, plan)
    ends = [at for _, _, at in runs[1:]] + [len(plan.rows)]
    for (lo, hi, at), end in zip(runs, ends):
        span_mask = np.zeros((hi - lo,) + mask.shape[1:], bool)
        span_mask[plan.rows[at:end] - lo] = mask[at:end]
        part = np.array(store._read(plan.run_selection(lo, hi)), copy=True)
        if value is None:
            parts.append(part[span_mask])
            continue
        n = int(span_mask.sum())
        part[span_mask] = value[done : done + n]
        done += n
        store._write(plan.run_selection(lo, hi), part)
    if value is not None or not parts:
        return np.empty((0,), store.dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def scatter(store: ArrayStore, plan: GatherPlan, value: np.ndarray[Any, Any]) -> None:
    """Write ``value`` through ``plan``: fill the block (numpy's last-wins for repeated indices),
    then write it back in sorted spans; a span with gaps is read, patched and written whole."""
    if plan.partial:
        masked(store, plan, value)
        return
    block = np.empty(plan.block_shape(), store.dtype)
    block[plan.local] = value
    if block.size == 0:
        return
    runs = spans(store, plan)
    ends = [at for _, _, at in runs[1:]] + [len(plan.rows)]
    index: list[Any] = [slice(None)] * block.ndim
    for (lo, hi, at), end in zip(runs, ends):
        index[plan.axis] = slice(at, end)
        part = block[tuple(index)]
        if end - at != hi - lo:  # gaps: keep the rows between as they are
            span = np.array(store._read(plan.run_selection(lo, hi)), copy=True)
            index[plan.axis] = plan.rows[at:end] - lo
            span[tuple(index)] = part
            part = span
        store._write(plan.run_selection(lo, hi), part)
