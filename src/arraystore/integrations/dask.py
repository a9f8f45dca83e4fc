"""Dask: ``to_dask`` (a lazy dask array over a store) and ``store_dask`` (a dask array into any backend).

``to_dask`` builds its graph from the store's metadata alone: no byte is read or
hashed (``dask.array.from_array`` on a ``numpy.memmap`` hashes or loads the data to
name it, dask#11850). The graph holds one small :class:`StoreSource`, which pickles as
the store's path, backend and read options, so tasks shipped to other processes or
machines carry a reference, never data.

``store_dask`` writes from the process that calls it: dask computes blocks wherever
its scheduler runs them (threads, processes, a distributed cluster) and hands them
back; the caller's process writes them into the array being created, a few at a time,
each destination chunk exactly once. That makes every backend safe (HDF5 allows one
writer per file: writes go through one lock; Zarr, raw and npy take aligned blocks in
parallel without one), and keeps the array staged under a temporary name until it is
complete, verified by checksum and published.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import numpy as np

from .._optional import missing

try:
    import dask.array as da
    from dask.base import compute, tokenize
except ImportError as _exc:
    raise missing(_exc, "arraystore.to_dask and store_dask (Dask arrays)") from _exc

from .._open import create
from .._open import open as open_store
from ..errors import AccessError, ArrayStoreError
from ..parallel import block_plan
from ..store import ArrayStore

__all__ = ["StoreSource", "default_chunks", "store_dask", "to_dask"]

# dask's public functions are untyped
_from_array: Any = da.from_array
_compute: Any = compute

#: Target bytes of one dask chunk when the storage does not impose one (dask's own default is 128 MiB).
DEFAULT_DASK_BYTES = 64 * 1024 * 1024
#: Bytes of computed blocks ``store_dask`` holds in memory at once.
DEFAULT_WRITE_BYTES = 512 * 1024 * 1024


class StoreSource:
    """What a dask graph holds: a store reference, read by basic selections.

    Pickles as the store's reference (path, backend, options); the store is reopened
    read-only, once, in the process that unpickles it.
    """

    def __init__(self, store: ArrayStore):
        self._store = store
        self.shape = store.shape
        self.dtype = store.dtype
        self.ndim = store.ndim
        self._token = _store_token(store)

    def __getitem__(self, key: Any) -> np.ndarray[Any, Any]:
        return self._store[key]

    def __reduce__(self) -> tuple[Any, ...]:
        return (StoreSource, (self._store,))

    def __dask_tokenize__(self) -> Any:
        return self._token

    def __repr__(self) -> str:
        return f"StoreSource({self._store.path!r})"


def _store_token(store: ArrayStore) -> tuple[Any, ...]:
    """Identity of the data without reading it: path, backend, shape, dtype, and the files' sizes and mtimes."""
    root = store.path.split("::", 1)[0]
    try:
        st = os.stat(root)
        stamp: tuple[int, int] = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (0, 0)
    return ("arraystore", store.path, store.backend, store.shape, store.dtype.str, stamp)


def default_chunks(store: ArrayStore, max_bytes: int = DEFAULT_DASK_BYTES) -> tuple[int, ...]:
    """Dask chunk shape for a store: whole storage chunks (or rows, for contiguous data) up to ``max_bytes``.

    The grid is that of :meth:`ArrayStore.block_plan`: one chunk extent on the axes
    before the plan's axis, a run of chunks on it, the full extent after it (in storage
    order), so every dask chunk is a union of whole storage chunks and a contiguous
    byte range for contiguous stores.
    """
    if store.ndim == 0:
        return ()
    plan = block_plan(store, max_bytes)
    shape = list(plan.shape[::-1] if plan.order == "F" else plan.shape)
    unit = list(plan.chunks[::-1] if plan.order == "F" else plan.chunks)
    k = plan.axis
    out = (
        [max(u, 1) for u in unit[:k]]
        + [max(1, min(plan.run * unit[k], shape[k]))]
        + [max(n, 1) for n in shape[k + 1 :]]
    )
    return tuple(out[::-1] if plan.order == "F" else out)


def to_dask(
    store_or_path: ArrayStore | str | os.PathLike[str],
    chunks: Any = None,
    *,
    backend: str | None = None,
    max_bytes: int = DEFAULT_DASK_BYTES,
    name: str | None = None,
) -> da.Array:
    """A lazy ``dask.array`` over a store, built without reading the data.

    Parameters
    ----------
    store_or_path
        An open store (kept open by the graph while it lives) or a path (opened read-only).
    chunks
        Dask chunks, in any form ``dask.array.from_array`` accepts; default
        :func:`default_chunks` (aligned to storage chunks, about ``max_bytes`` each).
    backend
        Backend name when a path does not tell.
    max_bytes
        Target chunk size for the default chunks.
    name
        Graph key prefix; default: derived from the path, the files' size and mtime.

    Returns
    -------
    dask.array.Array
    """
    store = (
        store_or_path
        if isinstance(store_or_path, ArrayStore)
        else open_store(store_or_path, "r", backend=backend)
    )
    store._check_open()
    source = StoreSource(store)
    chunks = default_chunks(store, max_bytes) if chunks is None else _checked_chunks(chunks, store)
    if name is None:
        name = "arraystore-" + tokenize(source, chunks)
    meta = np.empty((0,) * store.ndim, dtype=store.dtype)
    arr: da.Array = _from_array(
        source, chunks=chunks, name=name, lock=False, asarray=False, fancy=False, meta=meta
    )
    return arr


def _checked_chunks(chunks: Any, store: ArrayStore) -> tuple[tuple[int, ...], ...]:
    """``chunks`` normalised by dask, refused when dask cannot take them or makes chunks that are not the shape's."""
    why = ""
    if isinstance(chunks, Mapping) and not all(isinstance(k, int) and -store.ndim <= k < store.ndim for k in chunks):
        why = f"axes {sorted(map(repr, chunks))} for {store.ndim} axes"
    else:
        try:
            out: tuple[tuple[int, ...], ...] = da.core.normalize_chunks(  # type: ignore[no-untyped-call]
                chunks, store.shape, dtype=store.dtype)
        except (ValueError, TypeError) as exc:
            why = str(exc)
        else:
            if all(sum(c) == n and all(x > 0 or n == 0 for x in c) for c, n in zip(out, store.shape)):
                return out
            why = f"chunks {out}"
    raise AccessError(
        f"{store.path}: expected chunks as dask.array accepts them for shape {store.shape} (a positive int, a tuple "
        f"per axis, 'auto', a dict by axis, or None for arraystore's default), found {chunks!r} ({why})"
    )


def _aligned_chunks(darr: da.Array, storage: Sequence[int] | None) -> tuple[tuple[int, ...], ...] | None:
    """Chunks of ``darr`` rounded to whole storage chunks, or None when already aligned."""
    if storage is None:
        return None
    aligned = True
    for dim_chunks, c in zip(darr.chunks, storage):
        edges = np.cumsum(dim_chunks)[:-1]
        if np.any(edges % c):
            aligned = False
    if aligned:
        return None
    out = []
    for dim_chunks, c, n in zip(darr.chunks, storage, darr.shape):
        size = max(c, round(max(dim_chunks) / c) * c)
        out.append(tuple([size] * (n // size) + ([n % size] if n % size else [])) or (0,))
    return tuple(out)


def store_dask(
    darr: da.Array,
    path_or_store: ArrayStore | str | os.PathLike[str],
    *,
    backend: str | None = None,
    chunks: Any = None,
    compression: str | None = None,
    attrs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    durable: bool = False,
    checksum: bool = True,
    lock: bool | None = None,
    scheduler: Any = None,
    max_bytes: int = DEFAULT_WRITE_BYTES,
    threads: int = 4,
    dimension_names: Any = None,
) -> str:
    """Write a dask array into a new array of any backend, in parallel, atomically, with a checksum.

    The blocks are computed by dask's scheduler (``scheduler=``, the active
    ``distributed.Client``, or dask's default) and written by the calling process as
    they arrive, at most ``max_bytes`` of them in memory at a time. The dask array is
    first rechunked to whole storage chunks when its chunks do not align, so that each
    destination chunk is written exactly once and chunked backends need no lock. The
    new array is staged under a temporary name and published by rename when complete;
    its content checksum (see :mod:`arraystore.checksums`) is recorded where the backend
    records one.

    Parameters
    ----------
    darr
        The dask array.
    path_or_store
        Destination path (created like :func:`arraystore.create`), or a store being created
        (``arraystore.create(...)``; ``store_dask`` closes it, which publishes it).
    backend, chunks, compression, attrs, overwrite, durable
        As in :func:`arraystore.create`; ignored for a store.
    checksum
        Compute the content checksum of what was written and record it.
    lock
        Serialise writes; default: only for HDF5 (one writer per file).
    scheduler
        Dask scheduler for computing blocks (``"threads"``, ``"processes"``, a client).
    max_bytes
        Bytes of computed blocks held at once.
    threads
        Threads writing blocks in parallel (without ``lock``).
    dimension_names
        One name per axis, as in :func:`arraystore.create` (HDF5, Zarr); ignored for a store.

    Returns
    -------
    str
        The published path.

    Raises
    ------
    ArrayStoreError
        From :func:`arraystore.create`; a store passed in that is not open for writing,
        or whose shape or dtype differ from ``darr``'s.
    """
    if isinstance(path_or_store, ArrayStore):
        store = path_or_store
        store._check_writable()
        if store.shape != darr.shape or store.dtype != darr.dtype:
            raise ArrayStoreError(
                f"{store.path}: expected a store of shape {darr.shape} and dtype {darr.dtype} to hold the dask "
                f"array, found shape {store.shape} dtype {store.dtype}; create it with those"
            )
    else:
        store = create(
            path_or_store, darr.shape, darr.dtype, backend=backend, chunks=chunks, compression=compression,
            attrs=attrs, overwrite=overwrite, durable=durable, dimension_names=dimension_names,
        )  # fmt: skip
    with store:  # on an error, a new array is discarded (never published) and an existing one closed
        _write(darr, store, lock, scheduler, max_bytes, threads)
        if checksum:
            _record_checksum(store)
    return store.path


def _write(
    darr: da.Array, store: ArrayStore, lock: bool | None, scheduler: Any, max_bytes: int, threads: int
) -> None:
    if darr.size == 0:
        return
    aligned = _aligned_chunks(darr, store.chunks)
    if aligned is not None:
        darr = darr.rechunk(aligned)  # type: ignore[no-untyped-call]
    use_lock = not type(store).thread_safe_writes if lock is None else lock
    guard: Any = threading.Lock() if use_lock else nullcontext()
    blocks = darr.to_delayed().ravel()  # type: ignore[no-untyped-call]
    offsets = [np.cumsum((0, *c)) for c in darr.chunks]
    sels = []
    for index in np.ndindex(*darr.numblocks):
        sels.append(tuple(slice(int(o[i]), int(o[i + 1])) for o, i in zip(offsets, index)))
    block_bytes = int(np.prod([max(c) for c in darr.chunks])) * darr.dtype.itemsize
    # Two windows in memory: one being written while the next is computed.
    window = max(1, max_bytes // 2 // max(block_bytes, 1))

    def put(sel: tuple[slice, ...], value: np.ndarray[Any, Any]) -> None:
        with guard:
            store[sel] = value

    with ThreadPoolExecutor(1 if use_lock else threads) as pool:
        writing: list[Future[None]] = []
        for a in range(0, len(blocks), window):
            values = _compute(*blocks[a : a + window], scheduler=scheduler)
            for f in writing:
                f.result()
            writing = [pool.submit(put, sel, v) for sel, v in zip(sels[a : a + window], values)]
        for f in writing:
            f.result()


def _record_checksum(store: ArrayStore) -> None:
    try:
        from ..checksums import checksum as content_checksum
    except ImportError:  # pragma: no cover - checksum ships with arraystore
        return
    value = content_checksum(store)
    try:
        store.set_checksum(value)
    except NotImplementedError:
        pass
