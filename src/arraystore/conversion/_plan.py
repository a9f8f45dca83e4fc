"""Planning a conversion before any byte moves: sizes, the destination's layout, the method, the block plan.

Everything here is decided from the source store, the destination backend's
capabilities (:attr:`~arraystore.ArrayStore.layouts`,
:attr:`~arraystore.ArrayStore.thread_safe_writes`) and the options; nothing is
written, so every refusal (a layout the backend cannot make, a budget too small for
one chunk) comes before the first byte.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..blocks import BlockPlan, contiguous_chunks, plan_blocks
from ..errors import ConversionError, MemoryBudgetError
from . import _fastpath

if TYPE_CHECKING:
    from ..compression import Compression
    from ..store import ArrayStore

__all__ = [
    "OVERLAP_BLOCK_BYTES",
    "ConversionPlan",
    "choose_chunks",
    "choose_method",
    "destination_layout",
    "parse_size",
    "plan_conversion",
    "transposes",
    "writer_threads",
]

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}  # fmt: skip

#: Chunk sizes chosen when none are given: aim for TARGET, never above MAX.
TARGET_CHUNK_BYTES = 4 * 1024 * 1024
MAX_CHUNK_BYTES = 16 * 1024 * 1024
#: Largest block of a conversion that reorders its blocks (a Fortran-order source into C order): the read of
#: the next block overlaps the reordering and writing of this one, which a few large blocks would not allow.
OVERLAP_BLOCK_BYTES = 16 * 1024 * 1024


def parse_size(value: int | str) -> int:
    """``"256MiB"``, ``"1GB"``, ``"64k"``, ``1048576`` -> bytes (decimal for kB/MB/GB, binary for KiB/MiB/GiB).

    Raises
    ------
    ConversionError
        Not a positive size.
    """
    if isinstance(value, bool):
        raise ConversionError(f"expected a memory size such as '256MiB' or 268435456, found {value!r}")
    if isinstance(value, int):
        n = value
    else:
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", str(value))
        unit = m.group(2).lower() if m else ""
        if m is None or unit not in _UNITS:
            raise ConversionError(
                f"expected a memory size such as '256MiB', '1GB' or a number of bytes, found {value!r}"
            )
        n = int(float(m.group(1)) * _UNITS[unit])
    if n <= 0:
        raise ConversionError(f"expected a positive memory size, found {value!r}")
    return n


def choose_chunks(shape: Sequence[int], itemsize: int, order: str, target: int = TARGET_CHUNK_BYTES) -> tuple[int, ...]:
    """Default chunk shape: about ``target`` bytes, whole along the fastest-varying storage axes.

    Walking the axes from the innermost in storage order (last axis for C, first for
    F), take each axis whole while the chunk stays within ``target``; the first axis
    that does not fit gets as many elements as fit (at least one); outer axes get 1.
    A chunk is therefore one contiguous run of the source's layout, and reading it
    is sequential. Zero-length axes get a chunk extent of 1.
    """
    return contiguous_chunks(shape, itemsize, order, target)


def transposes(shape: Sequence[int], src_order: str, dst_order: str, src_chunks: Sequence[int] | None) -> bool:
    """True for a contiguous Fortran-order source written in C order (an HDF5 destination).

    Such a conversion reads the source in its own storage order (slabs along the last
    axis are contiguous runs of a column-major file) and writes each slab as whole
    destination chunks of that shape (:func:`choose_chunks` with the source's order), so
    reads and writes both stay sequential; a contiguous C-order destination would take
    each slab as many short strided pieces.
    """
    return (
        src_order == "F"
        and dst_order == "C"
        and src_chunks is None
        and sum(1 for n in shape if n > 1) > 1
        and math.prod(shape) > 0
    )


@dataclass(frozen=True)
class ConversionPlan:
    """Everything decided before the first byte moves; part of the report."""

    src_backend: str
    dst_backend: str
    shape: tuple[int, ...]
    dtype: str
    order: str
    nbytes: int
    chunks: tuple[int, ...] | None
    shards: tuple[int, ...] | None
    compression: str | None
    max_memory: int
    workers: int
    method: str  # "kernel-copy", "buffered-copy" or "blocks"
    blocks: BlockPlan
    notes: tuple[str, ...] = field(default=())

    @property
    def n_blocks(self) -> int:
        """Number of blocks."""
        return self.blocks.n_blocks

    def key(self) -> dict[str, Any]:
        """The options that a resume must match (the journal's key)."""
        return {
            "dst_backend": self.dst_backend,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "order": self.order,
            "chunks": list(self.chunks) if self.chunks is not None else None,
            "shards": list(self.shards) if self.shards is not None else None,
            "compression": self.compression,
            "method": self.method,
            "blocks": self.blocks.to_dict(),
            # Journaled digests are of the source's storage order (checksums.block_digest); older journals of
            # Fortran-order sources digested C order and restart instead of being compared.
            **({"digest_order": "F"} if self.order == "F" else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        d = self.key()
        d.update(src_backend=self.src_backend, nbytes=self.nbytes, max_memory=self.max_memory,
                 workers=self.workers, notes=list(self.notes))
        return d


def default_workers(workers: int | None) -> int:
    """``workers=None`` -> the CPUs this process may use (at least 1)."""
    if workers is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)
    if int(workers) < 1:
        raise ConversionError(f"expected workers >= 1 (or None for one per CPU), found {workers!r}")
    return int(workers)


def blocks_in_memory(method: str, compressed: bool, workers: int, read_ahead: bool = False) -> int:
    """How many block-sized buffers can be alive at once: the budget is divided by this.

    The reader holds one block while up to ``workers`` writers hold theirs; a writer
    may need about one more block-sized buffer (a codec's output, a transposed or
    byte-swapped copy inside the destination library). With ``read_ahead`` (a source
    whose chunks are decoded here) the next block is decoded while this one is hashed
    and handed to the writers: one block more. Kernel copies hold one buffer; buffered
    copies two (one read while the other is written).
    """
    if method == "buffered-copy":
        return 2
    if method != "blocks":
        return 1
    writers = workers if compressed else 1
    return 2 * (writers + 1) + (1 if read_ahead else 0)


def plan_conversion(
    *,
    src_backend: str,
    dst_backend: str,
    shape: tuple[int, ...],
    dtype: Any,
    order: str,
    chunks: tuple[int, ...] | None,
    shards: tuple[int, ...] | None,
    compression: str | None,
    max_memory: int,
    workers: int,
    method: str,
    notes: Sequence[str] = (),
    max_block: int | None = None,
    read_ahead: bool = False,
) -> ConversionPlan:
    """Make the block plan: storage order of the source, aligned to the destination's chunks (or shards).

    ``max_block`` caps a block's bytes below the budget's share (never below one chunk, or shard);
    ``read_ahead``: the next block is read while this one is written (:func:`blocks_in_memory`).

    Raises
    ------
    MemoryBudgetError
        The budget cannot hold one destination chunk (shard) in every buffer it needs.
    """
    import numpy as np

    dt = np.dtype(dtype)
    grid = shards if shards is not None else chunks
    parts = blocks_in_memory(method, compression is not None, workers, read_ahead)
    per_block = max_memory // parts
    if max_block is not None:
        unit = math.prod(grid) * dt.itemsize if grid is not None else dt.itemsize
        per_block = min(per_block, max(max_block, unit))
    try:
        blocks = plan_blocks(shape, dt.itemsize, per_block, chunks=grid, order=order)
    except MemoryBudgetError:
        unit = tuple(max(1, min(c, max(n, 1))) for c, n in zip(grid or (1,) * len(shape), shape))
        need = math.prod(unit) * dt.itemsize * parts
        raise MemoryBudgetError(
            f"a memory budget of {max_memory:,} bytes cannot hold one destination {'shard' if shards else 'chunk'} "
            f"of shape {unit} in the {parts} block buffers this conversion needs ({need:,} bytes); "
            f"raise max_memory to at least {need:,} bytes or choose smaller chunks"
        ) from None
    all_notes = list(notes)
    if blocks.split:
        all_notes.append(
            f"one row of destination chunks does not fit {per_block:,} bytes: blocks split on storage axis "
            f"{blocks.axis}"
        )
    return ConversionPlan(
        src_backend=src_backend,
        dst_backend=dst_backend,
        shape=tuple(shape),
        dtype=_dtype_text(dt),
        order=order,
        nbytes=math.prod(shape) * dt.itemsize,
        chunks=chunks,
        shards=shards,
        compression=compression,
        max_memory=max_memory,
        workers=workers,
        method=method,
        blocks=blocks,
        notes=tuple(all_notes),
    )


def _dtype_text(dt: np.dtype[Any]) -> str:
    """The dtype as text for the plan (numpy has no ``descr`` for out-of-order or overlapping fields)."""
    if dt.names is None:
        return str(dt.str)
    try:
        return str(dt.descr)
    except ValueError:  # out-of-order offsets, as HDF5 compounds written by h5py often have
        return str(dt)


# -- the destination's layout and the method ---------------------------------------------------------------------


def writer_threads(dst_cls: type[ArrayStore], compression: Compression | None, workers: int) -> int:
    """Threads writing (and compressing) blocks: ``workers`` for compressed destinations whose chunk
    writes need no lock, else one."""
    return workers if (dst_cls.thread_safe_writes and compression is not None) else 1


def destination_layout(
    src: ArrayStore,
    dst_cls: type[ArrayStore],
    *,
    chunks: tuple[int, ...] | None,
    shards: tuple[int, ...] | None,
    compression: Compression | None,
    order: str,
    budget: int,
    writers: int,
    read_ahead: bool = False,
) -> tuple[tuple[int, ...] | None, str | None]:
    """``(chunks to pass to create, note)``: None for contiguous destinations.

    Raises
    ------
    ConversionError
        Chunks, shards or compression asked of a backend that only stores one contiguous byte range.
    """
    if dst_cls.layouts == frozenset({"contiguous"}):
        if chunks is not None or shards is not None or compression is not None:
            raise ConversionError(
                f"the {dst_cls.backend} backend stores one contiguous uncompressed byte range: chunks=, "
                "shards= and compression= need a chunked backend (hdf5, zarr)"
            )
        return None, None
    if chunks is not None:
        return chunks, None
    per_block = budget // blocks_in_memory("blocks", compression is not None, writers, read_ahead)
    if transposes(src.shape, src.order, order, src.chunks) and shards is None:
        target = max(1, min(TARGET_CHUNK_BYTES, per_block))
        return (choose_chunks(src.shape, src.dtype.itemsize, src.order, target),
                "Fortran-order source into C order: chunks are contiguous runs of the source, each block read "
                "sequentially and written as whole chunks")
    if "contiguous" in dst_cls.layouts and compression is None and shards is None:
        return None, f"uncompressed {dst_cls.backend} without chunks: contiguous"
    if shards is not None:
        return None, "chunks inside shards chosen by the backend"
    if src.chunks is not None and order == src.order:
        nbytes = math.prod(src.chunks) * src.dtype.itemsize
        if nbytes <= min(MAX_CHUNK_BYTES, per_block):
            return tuple(src.chunks), "chunks taken from the source"
    target = max(1, min(TARGET_CHUNK_BYTES, per_block))
    return (choose_chunks(src.shape, src.dtype.itemsize, order, target),
            f"chunks chosen: about {target:,} bytes, whole along the fastest-varying axes")


def c_streamable_shape(shape: tuple[int, ...], order: str) -> bool:
    """True when storage order equals C order for this shape (C order, or at most one axis longer than 1)."""
    return order == "C" or sum(1 for n in shape if n > 1) <= 1


def choose_method(
    src: ArrayStore,
    dst_cls: type[ArrayStore],
    *,
    grid: tuple[int, ...] | None,
    order: str,
    compression: Compression | None,
    src_is_byte_range: bool,
) -> str:
    """``"kernel-copy"`` or ``"buffered-copy"`` when source and destination hold the same bytes in the same
    layout (a contiguous source byte range into a contiguous uncompressed destination), else ``"blocks"``.

    A kernel copy where the platform has ``copy_file_range`` (:data:`~._fastpath.KERNEL_COPY`), its
    source hashed through a map of its pages; elsewhere C-order data goes through two buffers
    (hashed as it is read) and other orders still to the kernel's ``sendfile`` or a buffered loop."""
    same_layout = grid is None and order == src.order and src.nbytes > 0
    if same_layout and src_is_byte_range and "contiguous" in dst_cls.layouts and compression is None:
        if _fastpath.KERNEL_COPY or not c_streamable_shape(src.shape, src.order):
            return "kernel-copy"
        return "buffered-copy"
    return "blocks"
