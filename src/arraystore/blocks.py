"""Block plans: how to walk an array in storage order, aligned to chunks, within a byte budget."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import MemoryBudgetError

__all__ = ["BlockPlan", "contiguous_chunks", "plan_blocks"]


@dataclass(frozen=True)
class BlockPlan:
    """Blocks that cover an array exactly once, in storage order.

    Every block is a union of whole chunks (edge chunks clipped to the array), so a
    chunked destination has each chunk written exactly once. Blocks hold one chunk
    extent on the axes before ``axis``, a run of ``run`` chunks on ``axis``, and
    the full extent on the axes after it (``axis`` counted in storage order).
    """

    shape: tuple[int, ...]
    itemsize: int
    order: str
    chunks: tuple[int, ...]
    max_bytes: int
    axis: int
    run: int
    chunk_overhead: int = 0

    @property
    def block_bytes(self) -> int:
        """Bytes of the largest block."""
        if not self.shape:
            return self.itemsize
        shape, unit = self._storage_shape_unit()
        k = self.axis
        return math.prod(unit[:k]) * min(self.run * unit[k], shape[k]) * math.prod(shape[k + 1 :]) * self.itemsize

    @property
    def n_blocks(self) -> int:
        """Number of blocks."""
        if not self.shape:
            return 1
        if 0 in self.shape:
            return 0
        shape, unit = self._storage_shape_unit()
        k = self.axis
        outer = math.prod(math.ceil(n / u) for n, u in zip(shape[:k], unit[:k]))
        return outer * math.ceil(shape[k] / (self.run * unit[k]))

    @property
    def chunks_per_block(self) -> int:
        """Chunks in the largest block (what per-chunk overhead is counted on)."""
        if not self.shape or 0 in self.shape:
            return 1
        shape, unit = self._storage_shape_unit()
        k = self.axis
        return min(self.run, math.ceil(shape[k] / unit[k])) * math.prod(
            math.ceil(n / u) for n, u in zip(shape[k + 1 :], unit[k + 1 :])
        )

    @property
    def split(self) -> bool:
        """True when one row of chunks did not fit the budget and blocks split below it."""
        return self.axis > 0

    def _storage_shape_unit(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        if self.order == "F":
            return self.shape[::-1], self.chunks[::-1]
        return self.shape, self.chunks

    def __iter__(self) -> Iterator[tuple[slice, ...]]:
        if not self.shape:
            yield ()
            return
        if 0 in self.shape:
            return
        shape, unit = self._storage_shape_unit()
        k = self.axis
        step = self.run * unit[k]
        outer_ranges = [range(0, n, u) for n, u in zip(shape[:k], unit[:k])]
        for starts in itertools.product(*outer_ranges):
            head = tuple(slice(s, min(s + u, n)) for s, u, n in zip(starts, unit, shape))
            for a in range(0, shape[k], step):
                sel = head + (slice(a, min(a + step, shape[k])),) + tuple(slice(0, n) for n in shape[k + 1 :])
                yield sel[::-1] if self.order == "F" else sel

    def __len__(self) -> int:
        return self.n_blocks

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary for reports."""
        return {
            "chunks": list(self.chunks),
            "max_bytes": self.max_bytes,
            "axis": self.axis,
            "run": self.run,
            "n_blocks": self.n_blocks,
            "block_bytes": self.block_bytes,
            "chunks_per_block": self.chunks_per_block,
            "chunk_overhead": self.chunk_overhead,
            "split_below_chunk_rows": self.split,
        }


def plan_blocks(
    shape: Sequence[int],
    itemsize: int,
    max_bytes: int,
    *,
    chunks: Sequence[int] | None = None,
    order: str = "C",
    chunk_overhead: int = 0,
) -> BlockPlan:
    """Plan blocks of at most ``max_bytes`` (where the chunks allow), aligned to ``chunks``.

    Parameters
    ----------
    shape, itemsize
        The array.
    max_bytes
        The budget for one block.
    chunks
        Chunk shape to align to; ``None`` for contiguous data (any element boundary).
    order
        ``"C"`` or ``"F"``: the storage order to follow.
    chunk_overhead
        Bytes a reader holds per chunk besides its data (bookkeeping of a chunked
        library, e.g. zarr-python's ~2.5 KiB), counted against ``max_bytes``, so an
        array of tiny chunks gets blocks of fewer chunks.

    Raises
    ------
    MemoryBudgetError
        When even one chunk (or one element) is larger than ``max_bytes``.
    """
    shape = tuple(int(n) for n in shape)
    unit = (
        tuple(1 for _ in shape)
        if chunks is None
        else tuple(max(1, min(int(c), max(n, 1))) for c, n in zip(chunks, shape))
    )
    if len(unit) != len(shape):
        raise MemoryBudgetError(f"chunks {tuple(chunks or ())} do not match the array's {len(shape)} dimensions")
    if not shape or 0 in shape:
        return BlockPlan(shape, itemsize, order, unit, max_bytes, 0, 1, chunk_overhead)
    s, u = (shape[::-1], unit[::-1]) if order == "F" else (shape, unit)
    for k in range(len(s)):
        n_chunks = math.prod(math.ceil(n / c) for n, c in zip(s[k + 1 :], u[k + 1 :]))
        data = math.prod(u[:k]) * u[k] * math.prod(s[k + 1 :]) * itemsize
        one = data + n_chunks * chunk_overhead
        # The overhead shrinks blocks but never refuses one chunk whose data fits.
        if one <= max_bytes or (k == len(s) - 1 and data <= max_bytes):
            run = max(1, min(max_bytes // one, math.ceil(s[k] / u[k])))
            return BlockPlan(shape, itemsize, order, unit, max_bytes, k, run, chunk_overhead)
    need = math.prod(unit) * itemsize
    raise MemoryBudgetError(
        f"a memory budget of {max_bytes:,} bytes cannot hold one chunk of shape {unit} "
        f"({need:,} bytes); raise the budget to at least {need:,} bytes or choose smaller chunks"
    )


def contiguous_chunks(shape: Sequence[int], itemsize: int, order: str, target: int) -> tuple[int, ...]:
    """A chunk of about ``target`` bytes that is one contiguous run of the storage layout.

    Walking the axes from the innermost in storage order (last for C, first for F),
    each axis is taken whole while the chunk stays within ``target``; the first that
    does not fit gets as many elements as fit (at least one); outer axes get 1.
    Zero-length axes get an extent of 1.
    """
    chunk = [1] * len(shape)
    nbytes = max(itemsize, 1)
    for ax in range(len(shape) - 1, -1, -1) if order == "C" else range(len(shape)):
        n = max(int(shape[ax]), 1)
        if nbytes * n > target:
            chunk[ax] = max(1, target // nbytes)
            break
        chunk[ax] = n
        nbytes *= n
    return tuple(chunk)
