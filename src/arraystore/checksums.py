"""Content checksums of the logical array, and ``verify``.

The checksum of an array is the ``xxh3_128`` digest of its elements' bytes **in C
order, in the stored dtype** (byte order included); the padding bytes of structured
items (no field covers them: docs/fidelity.md says they are not kept) count as zeros. It depends on the logical
array only, never on the format, chunking or storage order, so a raw file, a
``.npy``, an HDF5 dataset and a Zarr array holding the same values in the same
dtype have the same checksum.

Why ``xxh3_128``: measured on the 2-core build machine over 256 MiB in memory
(best of 3), ``xxhash.xxh3_128`` hashes at 27 GiB/s, ``hashlib.blake2b`` at
0.87 GiB/s and ``sha256`` at 1.7 GiB/s. At disk speed (~1 GB/s) blake2b would
double a conversion's CPU time; xxh3 costs about 4 % of one core. It is not a
cryptographic hash: it detects corruption and mistakes, not tampering.

Storage order and C order. Blocks read in storage order arrive as consecutive
C-order runs only for C-order arrays whose blocks are whole rows (or runs inside
single rows) — :func:`c_streamable` tells. Then :class:`StreamHasher` is fed the
blocks as they are converted, at no extra read. Otherwise (Fortran-order arrays
with more than one axis longer than 1, or blocks split below chunk rows) the
checksum is computed by a separate pass that reads the array in C-order slabs of at
most ``max_bytes`` (:func:`checksum`); for Fortran-order data each slab is a
strided read, which the page cache turns into sequential I/O when a slab covers a
few pages per column.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import numpy as np
import xxhash

from ._corder import c_contiguous
from ._open import open as open_store
from .blocks import BlockPlan, plan_blocks
from .errors import NotMemoryMappableError, VerificationError, known_options
from .store import ArrayStore

__all__ = ["ALGORITHM", "StreamHasher", "block_digest", "block_digester", "c_streamable", "checksum", "padding_mask",
           "verify"]

#: The algorithm recorded with every checksum.
ALGORITHM = "xxh3_128"

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def _c_bytes(block: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The block's bytes in C order, without a copy when it is already C-contiguous."""
    arr = c_contiguous(block)
    return arr.reshape(-1).view(np.uint8)


def padding_mask(dtype: np.dtype[Any]) -> np.ndarray[Any, Any] | None:
    """Per item, ``0xFF`` on the bytes a field covers and 0 on padding; None for a dtype without padding.

    numpy copies and assigns structured items field by field, so their padding holds whatever
    the buffer held before (``np.empty``'s garbage, zeros, another program's bytes): two
    stores with the same values differ there, and a checksum over it would too.
    """
    if dtype.names is None or dtype.itemsize == 0:
        return None
    covered = np.zeros(1, dtype)
    covered[...] = np.frombuffer(b"\xff" * dtype.itemsize, dtype)  # numpy's structured assignment: fields only
    mask = covered.view(np.uint8).copy()
    return None if bool(mask.all()) else mask


class StreamHasher:
    """Incremental content checksum: feed C-order consecutive blocks, in order.

    ``dtype`` (the array's) is needed when the blocks fed are bytes (``uint8`` pieces of a byte
    copy) of a structured dtype with padding; blocks of the structured dtype itself tell it.

    Examples
    --------
    >>> h = StreamHasher()
    >>> h.update(np.arange(3, dtype="<i4")); h.update(np.arange(3, 6, dtype="<i4"))
    >>> h.result() == StreamHasher.of(np.arange(6, dtype="<i4"))
    True
    """

    algorithm = ALGORITHM

    def __init__(self, dtype: np.dtype[Any] | None = None) -> None:
        self._h = xxhash.xxh3_128()
        self.nbytes = 0
        self._mask = padding_mask(dtype) if dtype is not None else None
        self._known = dtype is not None
        self._carry = np.empty(0, np.uint8)  # bytes of an item cut between two pieces

    def update(self, block: np.ndarray[Any, Any]) -> None:
        """Add the next block (its elements follow the previous block's in C order)."""
        if not self._known and block.dtype.names is not None:
            self._mask, self._known = padding_mask(block.dtype), True
        data = _c_bytes(block)
        self.nbytes += data.size
        if self._mask is None:
            self._h.update(data.data)
            return
        if self._carry.size:
            data = np.concatenate([self._carry, data])
        whole = data.size - data.size % self._mask.size
        if whole:
            self._h.update(np.bitwise_and(data[:whole].reshape(-1, self._mask.size), self._mask).data)
        self._carry = data[whole:].copy()

    def result(self) -> dict[str, str]:
        """``{"algorithm": "xxh3_128", "value": hex digest}``."""
        if self._carry.size:  # not a whole number of items: hashed as they are
            self._h.update(self._carry.data)
            self._carry = np.empty(0, np.uint8)
        return {"algorithm": ALGORITHM, "value": self._h.hexdigest()}

    @classmethod
    def of(cls, array: np.ndarray[Any, Any]) -> dict[str, str]:
        """The checksum of an in-memory array."""
        h = cls()
        h.update(np.asarray(array))
        return h.result()


def block_digest(block: Any, order: str = "C") -> str:
    """A short digest of one block's elements in ``order`` (for the conversion journal).

    A conversion digests blocks in its source's storage order (``order="F"`` for a
    Fortran-order source): the blocks it reads are already laid out that way, so the
    digest costs no reordering copy; a block read back from a destination of the other
    order is reordered for its digest (only when a conversion resumes).
    """
    if not isinstance(block, np.ndarray):
        return str(xxhash.xxh3_64(block).hexdigest())
    return str(xxhash.xxh3_64(_c_bytes(block.T if order == "F" else block).data).hexdigest())


def block_digester() -> Any:
    """:func:`block_digest` of C-order bytes fed in pieces: ``update(piece)`` in order, then ``hexdigest()``."""
    return xxhash.xxh3_64()


def c_streamable(plan: BlockPlan) -> bool:
    """True when the plan's blocks, in iteration order, are consecutive runs of the C-order stream."""
    nontrivial = sum(1 for n in plan.shape if n > 1)
    if nontrivial <= 1:
        return True
    if plan.order != "C":
        return False
    return all(u == 1 for u in plan.chunks[: plan.axis])


def c_order_plan(shape: tuple[int, ...], itemsize: int, max_bytes: int) -> BlockPlan:
    """C-order slabs of at most ``max_bytes`` (at least one element), consecutive in C order."""
    return plan_blocks(shape, itemsize, max(max_bytes, itemsize), chunks=None, order="C")


@known_options
def checksum(
    store_or_path: ArrayStore | str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES, *, decoded: bool = False,
    workers: int = 1,
) -> dict[str, str]:
    """Compute the content checksum of an array by reading it in C-order slabs.

    Parameters
    ----------
    store_or_path
        An open store or a path (opened read-only and closed again).
    max_bytes
        Largest slab read at once (the memory this takes).
    decoded
        Read through the store's own reads (``store[sel]``, the format library's
        decoding) instead of a memory map of its bytes: what a verification needs
        when the bytes being checked were copied by a map or a byte copy.
    workers
        Threads that lay slabs out in C order when the array is stored in Fortran
        order (the reordering copy is what such a checksum costs; hashing is one
        stream, in order).

    Returns
    -------
    dict
        ``{"algorithm": "xxh3_128", "value": hex digest}``.
    """
    if isinstance(store_or_path, ArrayStore):
        return _checksum_store(store_or_path, max_bytes, decoded=decoded, workers=workers)
    with open_store(store_or_path, "r") as store:
        return _checksum_store(store, max_bytes, decoded=decoded, workers=workers)


def _checksum_store(store: ArrayStore, max_bytes: int, tick: Any = None, decoded: bool = False,
                    workers: int = 1) -> dict[str, str]:
    if workers > 1 and store.nbytes > max_bytes // 4 and store.ndim > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="arraystore-checksum") as pool:
            return _checksum_slabs(store, max_bytes, tick, decoded, pool, workers)
    return _checksum_slabs(store, max_bytes, tick, decoded, None, 1)


def _checksum_slabs(store: ArrayStore, max_bytes: int, tick: Any, decoded: bool, pool: Executor | None,
                    parts: int) -> dict[str, str]:
    h = StreamHasher()
    mm: np.ndarray[Any, Any] | None = None
    if store.supports_memmap and store.nbytes and not decoded:
        try:
            mm = store.as_memmap()
        except NotMemoryMappableError:
            mm = None
    for sel in c_order_plan(store.shape, store.dtype.itemsize, max_bytes):
        # mm[()] would be a numpy scalar in native byte order; mm[...] keeps the stored dtype
        source: Any = mm if mm is not None else store
        block = np.asarray(source[sel] if sel else source[...], dtype=store.dtype)
        h.update(c_contiguous(block, pool, parts))
        if tick is not None:
            tick(block.nbytes)
    return h.result()


@known_options
def verify(
    path: ArrayStore | str | os.PathLike[str],
    against: ArrayStore | str | os.PathLike[str] | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: bool = False,
) -> dict[str, Any]:
    """Recompute an array's checksum and compare it with the recorded one or another array's.

    Parameters
    ----------
    path
        The array to check.
    against
        Another array (any format) that must hold the same dtype, shape and values;
        default: the checksum recorded with ``path`` when it was written.
    max_bytes
        Largest slab read at once.
    progress
        Show a tqdm bar on stderr over the bytes read (both arrays with ``against``).

    Returns
    -------
    dict
        ``path``, ``checksum`` (recomputed), ``expected`` and ``expected_from``
        (``"recorded"`` or the other array's path), ``match`` (always True: a
        mismatch raises).

    Raises
    ------
    VerificationError
        Checksums, shapes or dtypes differ, or nothing was recorded to compare with.
    """
    store = path if isinstance(path, ArrayStore) else open_store(path, "r")
    bar: Any = None
    tick = None
    if progress:
        from tqdm import tqdm

        total = store.nbytes * (2 if against is not None else 1)
        bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, dynamic_ncols=True, desc="verify")
        tick = bar.update
    try:
        if against is None:
            expected = store.recorded_checksum
            if not expected:
                raise VerificationError(
                    f"{store.path}: expected a checksum recorded with the array, found none; "
                    "verify it against another copy (against=...) or convert it with arraystore to record one"
                )
            expected_from = "recorded"
        else:
            other = against if isinstance(against, ArrayStore) else open_store(against, "r")
            try:
                if (other.shape, other.dtype) != (store.shape, store.dtype):
                    raise VerificationError(
                        f"{store.path} holds shape {store.shape} dtype {store.dtype}, but {other.path} holds "
                        f"shape {other.shape} dtype {other.dtype}: they cannot be the same array"
                    )
                expected = _checksum_store(other, max_bytes, tick)
                expected_from = other.path
            finally:
                if other is not against:
                    other.close()
        if expected.get("algorithm") != ALGORITHM:
            raise VerificationError(
                f"{store.path}: the recorded checksum uses {expected.get('algorithm')!r}; this arraystore "
                f"computes {ALGORITHM!r}: verify against another copy with against=..."
            )
        actual = _checksum_store(store, max_bytes, tick)
        if actual["value"] != expected["value"]:
            raise VerificationError(
                f"{store.path}: content checksum {actual['value']} ({ALGORITHM}) differs from "
                f"{expected['value']} ({expected_from}); the data was changed or corrupted: "
                "convert it again from the source"
            )
        return {"path": store.path, "checksum": actual, "expected": dict(expected), "expected_from": expected_from,
                "match": True}
    finally:
        if bar is not None:
            bar.close()
        if store is not path:
            store.close()
