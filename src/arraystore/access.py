"""Access-pattern helpers: gathers in storage order, kernel advice, and random batches without random I/O.

Random access to a file on disk costs a seek (or a flash read) per page, and a memory
map pays it on every page fault, one at a time. These helpers turn what callers ask for
into what the disk is good at:

* :func:`take` reads rows in sorted order, coalesced into runs, and picks by cost between
  one sequential pass (many rows) and a gather that lets the kernel read all runs ahead in
  parallel (few rows);
* :func:`advise` passes ``madvise``/``posix_fadvise`` hints to the kernel;
* :func:`sample_batches` draws random batches from random contiguous windows, so that a
  training loop gets shuffled data while the disk sees large sequential reads.
"""

from __future__ import annotations

import math
import mmap
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import ArrayStoreError, SelectionError
from .store import DEFAULT_BLOCK_BYTES, ArrayStore

__all__ = ["ADVICE", "Advice", "advise", "sample_batches", "take"]

Advice = Literal["normal", "sequential", "random", "willneed", "dontneed"]
ADVICE: tuple[str, ...] = ("normal", "sequential", "random", "willneed", "dontneed")

PAGE = mmap.PAGESIZE
#: Above this share of the pages in the gathered span, one sequential pass is cheaper than a gather.
DENSE_FRACTION = 0.25
#: Runs advised to the kernel ahead of the one being copied (bounds the read-ahead in flight).
ADVISE_AHEAD = 4096
#: Generic path: runs closer than this are read as one (a few wasted bytes beat one more call).
GAP_BYTES = 256 * 1024
#: Threads of ``preadv`` for sparse gathers on stores read with buffered I/O (network file systems).
PREAD_THREADS = 8


class AccessError(ArrayStoreError, ValueError):
    """A bad argument to an access helper (unknown advice, batch size, window)."""


# -- take ------------------------------------------------------------------


def take(
    store: ArrayStore, indices: Any, axis: int = 0, *, max_bytes: int = DEFAULT_BLOCK_BYTES
) -> np.ndarray[Any, Any]:
    """``numpy.take(store, indices, axis)``, read in storage order.

    Indices are sorted and de-duplicated, adjacent ones coalesced into runs, the runs read
    in file order, and the rows returned in the order asked for (duplicates included).
    The strategy is picked by cost:

    * contiguous files (raw, npy) along their outermost storage axis: when the rows touch
      at least :data:`DENSE_FRACTION` of the pages between the first and the last one,
      one sequential pass of ``preadv`` calls of ``max_bytes``; otherwise the kernel is
      told about the runs ahead of time (``posix_fadvise(WILLNEED)``, which queues their
      reads in parallel) and the rows are copied from the memory map (or read with a few
      threads of ``preadv`` when the store uses buffered I/O);
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

    Returns
    -------
    numpy.ndarray
        ``shape[:axis] + indices.shape + shape[axis + 1:]``.

    Raises
    ------
    SelectionError
        Non-integer or out-of-range indices, or an axis the array does not have.
    """
    store._check_open()
    shape = store.shape
    if not -len(shape) <= axis < len(shape):
        raise SelectionError(
            f"axis {axis} is out of range for a {len(shape)}-dimensional array; expected 0..{len(shape) - 1}"
        )
    axis %= len(shape)
    idx = np.asarray(indices)
    if idx.size == 0:
        idx = idx.astype(np.intp)
    if idx.dtype.kind not in "iu":
        raise SelectionError(
            f"take() expects integer indices, found dtype {idx.dtype}; for masks use np.flatnonzero(mask)"
        )
    n = shape[axis]
    flat = idx.astype(np.int64, copy=False).ravel()
    bad = (flat < -n) | (flat >= n)
    if bad.any():
        raise SelectionError(f"index {int(flat[bad][0])} is out of bounds for axis {axis} with size {n}")
    flat = np.where(flat < 0, flat + n, flat)
    uniq, inverse = np.unique(flat, return_inverse=True)
    rows = _gather_sorted(store, uniq, axis, max_bytes)
    if not (uniq.size == flat.size and np.array_equal(uniq, flat)):
        rows = np.take(rows, inverse.ravel(), axis=axis)
    return rows.reshape(shape[:axis] + idx.shape + shape[axis + 1 :])


def _gather_sorted(
    store: ArrayStore, uniq: np.ndarray[Any, Any], axis: int, max_bytes: int
) -> np.ndarray[Any, Any]:
    """Rows ``uniq`` (sorted, unique) along ``axis``, as one array."""
    out_shape = list(store.shape)
    out_shape[axis] = uniq.size
    if uniq.size == 0 or math.prod(out_shape) == 0:
        return np.empty(out_shape, store.dtype)
    outer = 0 if store.order == "C" else store.ndim - 1
    from .backends._mapped import MappedFileStore

    if isinstance(store, MappedFileStore) and axis == outer and store.nbytes:
        return _gather_contiguous(store, uniq, axis, max_bytes)
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


def _gather_contiguous(
    store: Any, uniq: np.ndarray[Any, Any], axis: int, max_bytes: int
) -> np.ndarray[Any, Any]:
    row_bytes = store.nbytes // store.shape[axis]
    base = store.offset
    first = (base + int(uniq[0]) * row_bytes) // PAGE
    last = (base + (int(uniq[-1]) + 1) * row_bytes - 1) // PAGE
    # Pages touched: each row's pages, de-duplicated where neighbouring rows share one.
    lo_pages = (base + uniq * row_bytes) // PAGE
    hi_pages = (base + (uniq + 1) * row_bytes - 1) // PAGE
    touched = int(np.sum(hi_pages - lo_pages + 1)) - int(np.sum(lo_pages[1:] == hi_pages[:-1]))
    if store.mode == "c":  # private copy-on-write changes live only in the map
        return np.take(store._get_map(), uniq, axis=axis)
    if touched >= DENSE_FRACTION * (last - first + 1):
        return _gather_sequential(store, uniq, axis, row_bytes, max_bytes)
    starts, stops = _runs(uniq)
    if store.io == "mmap":
        return _gather_advised(store, uniq, axis, starts, stops, row_bytes)
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


def _row_block_shape(store: Any, axis: int, nrows: int) -> list[int]:
    shape = list(store.shape)
    shape[axis] = nrows
    return shape


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
        return np.take(m, uniq, axis=axis)
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
    from .backends._mapped import MappedFileStore

    if isinstance(store, MappedFileStore):
        return _advise_mapped(store, advice)
    if advice not in ("willneed", "dontneed"):
        return False
    return any([_fadvise_file(f, advice) for f in _store_files(store)])


def _advise_mapped(store: Any, advice: str) -> bool:
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
