"""Reads and writes of many small chunks, cut into calls of a bounded number of chunks.

zarr-python schedules one coroutine (with its index tuples, byte buffers and codec
pipeline state) per chunk a selection touches, all at once: about 2.5 KiB per chunk,
so a 1 MiB read of an array with chunk shape ``(1,)`` held 2.4 GiB. arraystore
therefore hands zarr at most :data:`MAX_CHUNKS_PER_CALL` chunks per call: a selection
touching more is cut along its outermost axis (in storage order) at chunk
boundaries, so no chunk is split between two calls and the extra memory stays near
``MAX_CHUNKS_PER_CALL`` times the per-chunk cost whatever the selection. Block plans
also count :data:`CHUNK_OVERHEAD_BYTES` per chunk against their budget.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from .._selection import Selection

__all__ = ["CHUNK_OVERHEAD_BYTES", "MAX_CHUNKS_PER_CALL", "chunks_touched", "pieces"]

#: Most chunks handed to zarr-python in one read or write call.
MAX_CHUNKS_PER_CALL = 4096
#: What zarr-python holds per chunk while reading it, besides the chunk's data (measured ~2.5 KiB).
CHUNK_OVERHEAD_BYTES = 4096

#: Where a piece's values go in the whole selection's result: one slice per kept (slice) axis.
Dest = tuple[slice, ...]


def _touched(s: int | slice, chunk: int) -> int:
    if isinstance(s, int):
        return 1
    n = len(range(s.start, s.stop, s.step))
    if n == 0:
        return 0
    last = s.start + (n - 1) * s.step
    return min(n, int(last) // chunk - int(s.start) // chunk + 1)


def chunks_touched(sel: Selection, chunks: tuple[int, ...]) -> int:
    """How many chunks of shape ``chunks`` a normalised selection touches (at most)."""
    return math.prod(_touched(s, c) for s, c in zip(sel, chunks))


def _split_slice(s: slice, chunk: int, per: int) -> Iterator[tuple[int, int, slice]]:
    """Runs of ``s`` spanning at most ``per`` chunks: (first, end) positions in ``s`` and the sub-slice."""
    start, stop, step = s.start, s.stop, s.step
    n = len(range(start, stop, step))
    window = per * chunk
    k = 0
    while k < n:
        first = start + k * step
        edge = (first // chunk) * chunk + window  # the run ends before this chunk boundary
        k_end = min(n, -(-(edge - start) // step))
        yield k, k_end, slice(first, start + (k_end - 1) * step + 1, step)
        k = k_end


def pieces(
    sel: Selection, chunks: tuple[int, ...], order: str, limit: int = MAX_CHUNKS_PER_CALL
) -> Iterator[tuple[Dest, Selection]]:
    """Cut ``sel`` into selections touching at most ``limit`` chunks each, aligned to chunk boundaries.

    Yields ``(dest, piece)``: ``dest`` places the piece's result within the whole
    selection's result (one slice per slice axis of ``sel``).
    """
    dest = tuple(slice(0, len(range(s.start, s.stop, s.step))) for s in sel if isinstance(s, slice))
    yield from _pieces(sel, dest, chunks, order, max(1, limit))


def _pieces(
    sel: Selection, dest: Dest, chunks: tuple[int, ...], order: str, limit: int
) -> Iterator[tuple[Dest, Selection]]:
    counts = [_touched(s, c) for s, c in zip(sel, chunks)]
    if math.prod(counts) <= limit:
        yield dest, sel
        return
    axes = range(len(sel)) if order == "C" else range(len(sel) - 1, -1, -1)
    ax = next(a for a in axes if counts[a] > 1)
    s = sel[ax]
    assert isinstance(s, slice)
    rest = math.prod(counts) // counts[ax]
    per = max(1, limit // rest)
    j = sum(1 for x in sel[:ax] if isinstance(x, slice))  # the result axis of ``ax``
    base = dest[j].start
    for k0, k1, sub in _split_slice(s, chunks[ax], per):
        sub_dest = (*dest[:j], slice(base + k0, base + k1), *dest[j + 1 :])
        yield from _pieces((*sel[:ax], sub, *sel[ax + 1 :]), sub_dest, chunks, order, limit)
