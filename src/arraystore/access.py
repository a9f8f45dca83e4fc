"""Access-pattern helpers: gathers in storage order, kernel advice, and random batches without random I/O.

Random access to a file on disk costs a seek (or a flash read) per page, and a memory
map pays it on every page fault, one at a time. These helpers turn what callers ask for
into what the disk is good at:

* :func:`take` reads rows in sorted order, coalesced into runs, and picks by cost between
  one sequential pass, a gather that lets the kernel read all runs ahead in parallel, and a
  sorted gather from the memory map, with a cost model calibrated by measuring the file's
  device on first use (:func:`calibrate`, :mod:`arraystore._iocost`);
* :func:`advise` passes ``madvise``/``posix_fadvise`` hints to the kernel;
* :func:`sample_batches` draws random batches from random contiguous windows, so that a
  training loop gets shuffled data while the disk sees large sequential reads.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ._iocost import MODES, Calibration, cache_file, calibration_for, reset
from ._modes import DEFAULT_BLOCK_BYTES
from .errors import AccessError, SelectionError

if TYPE_CHECKING:
    from .store import ArrayStore

__all__ = [
    "ADVICE", "TAKE_MODES", "AccessError", "Advice", "Calibration", "advise", "advise_files", "calibrate",
    "calibration_cache_file", "gather_sorted", "reset_calibration", "sample_batches", "take",
]

#: What ``take(..., mode=...)`` accepts: ``"auto"`` and the three ways a memory-mappable file is read.
TAKE_MODES: tuple[str, ...] = ("auto", *MODES)

Advice = Literal["normal", "sequential", "random", "willneed", "dontneed"]
ADVICE: tuple[str, ...] = ("normal", "sequential", "random", "willneed", "dontneed")

#: Generic path: runs closer than this are read as one (a few wasted bytes beat one more call).
GAP_BYTES = 256 * 1024


# -- take ------------------------------------------------------------------


def take(
    store: ArrayStore, indices: Any, axis: int = 0, *, max_bytes: int = DEFAULT_BLOCK_BYTES, mode: str = "auto",
    calibration: Calibration | None = None,
) -> np.ndarray[Any, Any]:
    """``numpy.take(store, indices, axis)``, read in storage order.

    Indices are sorted and de-duplicated, adjacent ones coalesced into runs, the runs read
    in file order, and the rows returned in the order asked for (duplicates included).
    The strategy is picked by cost:

    * contiguous files (raw, npy) read through their memory map, along their outermost
      storage axis, with every probed page of a sample of the rows in the page cache: one
      gather from the map in the order asked (nothing to read from the device, so no sort);
    * contiguous files (raw, npy) along their outermost storage axis otherwise: the cheapest of
      ``"sequential"`` (one pass of ``preadv`` calls of ``max_bytes``), ``"gather"`` (the
      runs advised to the kernel ahead of time with ``posix_fadvise(WILLNEED)``, which
      queues their reads in parallel, then copied from the memory map; threads of
      ``preadv`` when the store uses buffered I/O) and ``"mapped"`` (a sorted gather from
      the memory map, each page fault reading the device's read-around window), by a cost
      model whose inputs are measured on the file's device on first use (see
      :func:`calibrate`) and on the page cache (how much of the rows is already in it);
    * chunked stores (HDF5, Zarr): indices grouped by chunk, each chunk row read once;
    * other axes: one pass of :meth:`~arraystore.ArrayStore.iter_blocks`.

    Parameters
    ----------
    store
        An open store.
    indices
        Integer indices (any shape; negative ones count from the end).
    axis
        The axis to index.
    max_bytes
        Bytes read per call in sequential passes.
    mode
        ``"auto"``, or one of ``"sequential"``, ``"gather"``, ``"mapped"`` to force that way
        (memory-mappable stores along their outermost storage axis only; ``"mapped"`` needs
        ``io="mmap"``).
    calibration
        A :class:`Calibration` to decide with instead of the measured one (tests, or a
        device measured elsewhere).

    Returns
    -------
    numpy.ndarray
        ``shape[:axis] + indices.shape + shape[axis + 1:]``.

    Raises
    ------
    SelectionError
        Non-integer or out-of-range indices, or an axis the array does not have.
    AccessError
        An unknown ``mode``, or one this store cannot be read with.
    """
    store._check_open()
    shape = store.shape
    if not -len(shape) <= axis < len(shape):
        raise SelectionError(
            f"axis {axis} is out of range for a {len(shape)}-dimensional array; expected 0..{len(shape) - 1}"
        )
    axis %= len(shape)
    _check_mode(store, axis, mode)
    idx = np.asarray(indices)
    if idx.size == 0:
        idx = idx.astype(np.intp)
    if idx.dtype.kind not in "iu":
        raise SelectionError(
            f"take() expects integer indices, found dtype {idx.dtype}; for masks use np.flatnonzero(mask)"
        )
    n = shape[axis]
    flat = idx.astype(np.int64, copy=False).ravel()
    lo, hi = (int(flat.min()), int(flat.max())) if flat.size else (0, 0)
    if lo < -n or hi >= n:
        bad = (flat < -n) | (flat >= n)
        raise SelectionError(f"index {int(flat[bad][0])} is out of bounds for axis {axis} with size {n}")
    if lo < 0:
        flat = np.where(flat < 0, flat + n, flat)
    if mode == "auto" and flat.size and math.prod(shape):
        direct = store._take_in_memory(flat, axis)
        if direct is not None:
            return direct.reshape(shape[:axis] + idx.shape + shape[axis + 1 :])
    uniq, inverse = np.unique(flat, return_inverse=True)
    out_shape = list(shape)
    out_shape[axis] = uniq.size
    if uniq.size == 0 or math.prod(out_shape) == 0:
        rows = np.empty(out_shape, store.dtype)
    else:
        rows = store._take_sorted(uniq, axis, max_bytes, mode, calibration)
    if not (uniq.size == flat.size and np.array_equal(uniq, flat)):
        rows = np.take(rows, inverse.ravel(), axis=axis)
    return rows.reshape(shape[:axis] + idx.shape + shape[axis + 1 :])


def _check_mode(store: ArrayStore, axis: int, mode: str) -> None:
    if mode not in TAKE_MODES:
        raise AccessError(f"expected take mode one of {', '.join(TAKE_MODES)}, found {mode!r}")
    if mode == "auto":
        return
    outer = 0 if store.order == "C" else store.ndim - 1
    if not (type(store).memory_mappable and axis == outer):
        raise AccessError(
            f"{store.path}: mode={mode!r} chooses how a memory-mappable file (raw, npy) is read along its outermost "
            f"storage axis ({outer}); this store (backend {store.backend}, axis {axis}) is read one way: use "
            "mode='auto'"
        )
    if mode == "mapped" and getattr(store, "io", "mmap") != "mmap":
        raise AccessError(
            f"{store.path}: mode='mapped' reads through a memory map, but this store reads with buffered I/O "
            "(io='buffered'); use mode='gather' or 'sequential', or open it with io='mmap'"
        )


def calibrate(store: ArrayStore, *, force: bool = False, persist: bool = False) -> Calibration:
    """The measured costs of reading the device that holds ``store``'s data, as :func:`take` uses them.

    Measured on first use per device and process on the store's own file: about 50 ``O_DIRECT``
    reads and up to 8 MiB read sequentially with ``O_DIRECT``, a gather of up to 1,024 pages
    out of the page cache advised with ``WILLNEED`` (as ``take``'s ``"gather"`` does it), up
    to 64 MiB out of the page cache read through the kernel's read-ahead and, where the file is
    large enough (about 300 MiB), a sorted gather from the map of rows at random places over
    32 MiB (as ``"mapped"`` reads, with the read-around window one fault reads) and a gather of
    64 ranges of 32 pages (what each further page of a range costs). What was read is evicted
    again: the page cache is left as found; later calls return the same. Nothing is ever
    written next to the data.

    Parameters
    ----------
    store
        An open store; its (first) data file is read.
    force
        Measure again (after the device or its load changed).
    persist
        Also write the calibration to the user cache file (``$XDG_CACHE_HOME/arraystore/io-calibration.json``,
        ``~/.cache/...`` by default), where later processes find it instead of measuring.

    Returns
    -------
    Calibration
    """
    store._check_open()
    files = _store_files(store)
    data_file = getattr(store, "data_file", None) if type(store).memory_mappable else None
    target = data_file or (max(files, key=lambda p: p.stat().st_size) if files else None)
    if target is None:
        raise AccessError(f"{store.path}: no local file to measure (an object store has no device here)")
    return calibration_for(target, force=force, persist=persist)


def reset_calibration(*, persisted: bool = False) -> None:
    """Forget this process's calibrations (the next :func:`take` measures again); ``persisted=True`` also
    removes the user cache file (:func:`calibrate` with ``persist=True`` writes it)."""
    reset(persisted=persisted)


def calibration_cache_file() -> Path:
    """Where :func:`calibrate` with ``persist=True`` keeps calibrations (one entry per host and device)."""
    return cache_file()


def gather_sorted(store: ArrayStore, uniq: np.ndarray[Any, Any], axis: int, max_bytes: int, mode: str = "auto",
                  calibration: Calibration | None = None) -> np.ndarray[Any, Any]:
    """The generic gather behind :meth:`ArrayStore._take_sorted`: rows ``uniq`` (sorted, unique) along ``axis``."""
    out_shape = list(store.shape)
    out_shape[axis] = uniq.size
    if uniq.size == 0 or math.prod(out_shape) == 0:
        return np.empty(out_shape, store.dtype)
    outer = 0 if store.order == "C" else store.ndim - 1
    if axis == outer:
        return _gather_runs(store, uniq, axis)
    return _gather_scan(store, uniq, axis, max_bytes)


def _runs(uniq: np.ndarray[Any, Any], max_gap: int = 0) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Start and stop (exclusive) of runs of sorted indices whose gaps are at most ``max_gap``."""
    breaks = np.flatnonzero(np.diff(uniq) > max_gap + 1) + 1
    starts = uniq[np.concatenate(([0], breaks))]
    stops = uniq[np.concatenate((breaks - 1, [uniq.size - 1]))] + 1
    return starts, stops


def _axis_sel(ndim: int, axis: int, key: Any) -> tuple[Any, ...]:
    return (slice(None),) * axis + (key,) + (slice(None),) * (ndim - axis - 1)


def _row_block_shape(store: Any, axis: int, nrows: int) -> list[int]:
    shape = list(store.shape)
    shape[axis] = nrows
    return shape


def _gather_runs(store: ArrayStore, uniq: np.ndarray[Any, Any], axis: int) -> np.ndarray[Any, Any]:
    """Chunked or non-mappable stores: one read per chunk row (or per run of close rows)."""
    out = np.empty(_row_block_shape(store, axis, uniq.size), store.dtype)
    chunks = store.chunks
    if chunks is not None:
        c = chunks[axis]
        ids = uniq // c
        breaks = np.flatnonzero(np.diff(ids)) + 1
        groups = np.split(np.arange(uniq.size), breaks)
        spans = [(int(ids[g[0]]) * c, min((int(ids[g[0]]) + 1) * c, store.shape[axis])) for g in groups]
    else:
        row_bytes = max(1, store.nbytes // max(store.shape[axis], 1))
        starts, stops = _runs(uniq, max_gap=GAP_BYTES // row_bytes)
        first = np.searchsorted(uniq, starts)
        bounds = np.append(first, uniq.size)
        groups = [np.arange(bounds[k], bounds[k + 1]) for k in range(starts.size)]
        spans = [(int(a), int(b)) for a, b in zip(starts, stops)]
    for g, (a, b) in zip(groups, spans):
        block = store[_axis_sel(store.ndim, axis, slice(a, b))]
        out[_axis_sel(store.ndim, axis, slice(int(g[0]), int(g[-1]) + 1))] = np.take(
            block, uniq[g] - a, axis=axis
        )
    return out


def _gather_scan(
    store: ArrayStore, uniq: np.ndarray[Any, Any], axis: int, max_bytes: int
) -> np.ndarray[Any, Any]:
    """Any axis: one pass over the store's blocks, picking the wanted indices from each."""
    out = np.empty(_row_block_shape(store, axis, uniq.size), store.dtype)
    for sel, block in store.iter_blocks(max_bytes):
        s = sel[axis]
        i, j = np.searchsorted(uniq, [s.start, s.stop])
        if i == j:
            continue
        dest = list(sel)
        dest[axis] = slice(int(i), int(j))
        out[tuple(dest)] = np.take(block, uniq[i:j] - s.start, axis=axis)
    return out


# -- advise ----------------------------------------------------------------

_MADV = {
    "normal": "MADV_NORMAL",
    "sequential": "MADV_SEQUENTIAL",
    "random": "MADV_RANDOM",
    "willneed": "MADV_WILLNEED",
    "dontneed": "MADV_DONTNEED",
}
_FADV = {
    "normal": "POSIX_FADV_NORMAL",
    "sequential": "POSIX_FADV_SEQUENTIAL",
    "random": "POSIX_FADV_RANDOM",
    "willneed": "POSIX_FADV_WILLNEED",
    "dontneed": "POSIX_FADV_DONTNEED",
}


def advise(store: ArrayStore, advice: str) -> bool:
    """Tell the kernel how the store will be read: ``madvise`` on its map, ``posix_fadvise`` on its file.

    ``"sequential"`` / ``"random"`` / ``"normal"`` change read-ahead; ``"willneed"`` starts
    reading the data into the page cache in the background; ``"dontneed"`` drops it from
    this process's map and asks the kernel to evict it from the page cache (clean pages only;
    dirty ones are written first).

    What reaches the kernel, by backend:

    * raw, npy: ``madvise`` on the store's memory map (when it reads through one; never
      ``dontneed`` in copy-on-write mode, which would discard its private changes), and
      ``posix_fadvise`` on the data range of the file (``willneed``/``dontneed`` act on
      the page cache whoever reads; ``sequential``/``random`` on the descriptor the store
      reads with when it uses buffered I/O);
    * HDF5, Zarr and other backends: ``willneed``/``dontneed`` through ``posix_fadvise``
      on every file the array lives in (the HDF5 file, the Zarr chunk files);
      ``sequential``/``random`` are no-ops, the library reads through descriptors of its own.

    On platforms without ``madvise``/``posix_fadvise`` (Windows, and macOS for
    ``posix_fadvise``) the missing call is skipped.

    Returns
    -------
    bool
        True when at least one hint reached the kernel.

    Raises
    ------
    AccessError
        An unknown advice.
    """
    if advice not in ADVICE:
        raise AccessError(f"expected advice one of {', '.join(ADVICE)}, found {advice!r}")
    store._check_open()
    return store._advise(advice)


def advise_files(store: ArrayStore, advice: str) -> bool:
    """The generic advice behind :meth:`ArrayStore._advise`: ``willneed``/``dontneed`` on the array's files."""
    if advice not in ("willneed", "dontneed"):
        return False
    return any([_fadvise_file(f, advice) for f in _store_files(store)])


def _store_files(store: ArrayStore) -> list[Path]:
    root = Path(store.path.split("::", 1)[0])
    if root.is_file():
        return [root]
    return [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []


def _fadvise_file(path: Path, advice: str, offset: int = 0, length: int = 0) -> bool:
    fadv = getattr(os, _FADV[advice], None)
    if fadv is None or not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        if advice == "dontneed":
            os.fdatasync(fd) if hasattr(os, "fdatasync") else os.fsync(fd)
        os.posix_fadvise(fd, offset, length, fadv)
    finally:
        os.close(fd)
    return True


# -- sample_batches ---------------------------------------------------------


def sample_batches(
    store: ArrayStore,
    batch_size: int,
    *,
    rng: np.random.Generator | int | None = None,
    window: int | None = None,
    drop_last: bool = False,
    prefetch: bool = True,
) -> Iterator[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    """One epoch of random batches along axis 0, read as large contiguous windows.

    The rows are cut into windows of ``window`` consecutive rows; windows are visited in
    random order, each is read with one sequential read, its rows shuffled and served as
    batches. Every row appears exactly once per epoch. Randomness is that of a shuffle
    within windows of a shuffled sequence of windows: rows from one window stay together
    in time, so choose ``window`` much larger than ``batch_size`` (the default holds
    about 32 MiB or 64 batches, whichever is more).

    Parameters
    ----------
    store
        An open store of at least one dimension.
    batch_size
        Rows per batch.
    rng
        A ``numpy.random.Generator``, a seed, or None for fresh entropy.
    window
        Rows per window; for chunked stores rounded up to whole chunks along axis 0.
    drop_last
        Drop the last, short batch of the epoch.
    prefetch
        Read the next window in a background thread while the current one is served.

    Yields
    ------
    indices, batch
        The rows' indices along axis 0 and their data (``store[indices]``).

    Raises
    ------
    AccessError
        A batch size or window below 1, or a 0-dimensional store.
    """
    store._check_open()
    if store.ndim == 0:
        raise AccessError("sample_batches() needs an array of at least one dimension; found a 0-d array")
    if batch_size < 1:
        raise AccessError(f"expected batch_size >= 1, found {batch_size}")
    n = store.shape[0]
    row_bytes = max(1, store.nbytes // max(n, 1))
    if window is None:
        window = max(64 * batch_size, (32 << 20) // row_bytes)
    if window < 1:
        raise AccessError(f"expected window >= 1 rows, found {window}")
    if store.chunks is not None:
        c = store.chunks[0]
        window = -(-window // c) * c
    window = min(window, max(n, 1))
    gen = np.random.default_rng(rng)
    starts = np.arange(0, n, window)
    gen.shuffle(starts)
    return _batches(store, [int(s) for s in starts], window, batch_size, gen, drop_last, prefetch)


def _batches(
    store: ArrayStore,
    starts: Sequence[int],
    window: int,
    batch_size: int,
    gen: np.random.Generator,
    drop_last: bool,
    prefetch: bool,
) -> Iterator[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    n = store.shape[0]

    def read(a: int) -> np.ndarray[Any, Any]:
        return store[a : min(a + window, n)]

    pool = ThreadPoolExecutor(1) if prefetch else None
    try:
        pending: Future[np.ndarray[Any, Any]] | None = None
        if pool is not None and starts:
            pending = pool.submit(read, starts[0])
        carry_idx: np.ndarray[Any, Any] = np.empty(0, np.int64)
        carry: np.ndarray[Any, Any] | None = None
        for k, a in enumerate(starts):
            data = pending.result() if pending is not None else read(a)
            if pool is not None and k + 1 < len(starts):
                pending = pool.submit(read, starts[k + 1])
            order = gen.permutation(data.shape[0])
            idx = a + order
            data = data[order]
            if carry is not None and carry.shape[0]:
                idx = np.concatenate((carry_idx, idx))
                data = np.concatenate((carry, data))
            full = data.shape[0] // batch_size * batch_size
            for b in range(0, full, batch_size):
                yield idx[b : b + batch_size], data[b : b + batch_size]
            carry_idx, carry = idx[full:], data[full:]
        if carry is not None and carry.shape[0] and not drop_last:
            yield carry_idx, carry
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
