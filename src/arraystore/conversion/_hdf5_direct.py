"""Chunked HDF5 destinations: chunks laid out (and compressed) on a thread pool, written with ``write_direct_chunk``.

h5py runs every call under one global lock, so a dataset written through
``dset[sel] = block`` compresses at one core's speed. When the destination's filter
pipeline is one we can reproduce byte for byte, we run it ourselves instead:

* ``deflate(level)`` (``compression="gzip:N"``): ``zlib.compress(chunk, level)``, the
  zlib stream that HDF5's deflate filter writes (``compress2``);
* ``shuffle`` then ``deflate``: numpy's byte transpose (byte ``j`` of every element,
  then byte ``j + 1``, ...: HDF5's shuffle filter) then ``zlib.compress``;
* no filter at all (an uncompressed chunked dataset, asked for with
  ``uncompressed=True``): the chunk's elements in C order, as HDF5 stores them.

Laying a chunk out in C order is where a Fortran-order source is reordered: each
chunk is a piece of a few MiB, copied tile by tile (:func:`arraystore._corder.copy_tiled`)
while it stays in the CPU cache, on the pool's threads (numpy releases the GIL for
the copy), while the conversion reads the next block.

``zlib`` releases the GIL while it compresses, so chunks of a block are compressed
by ``workers`` threads in parallel and written in order from the one writer thread
with ``DatasetID.write_direct_chunk(offsets, data, filter_mask=0)``. Edge chunks are
padded with zeros to the full chunk shape, as HDF5 stores them. Any other filter
(lzf, fletcher32, scale-offset, plugins) or a dtype whose bytes in the file differ
from the source's (``ds.dtype != src.dtype``, anything but bool, integers, floats
and complex), or whose file type is not byte for byte numpy's
(:func:`~arraystore.backends._hdf5_types.file_type_is_numpy_bytes`), keeps the
normal ``dst[sel] = block`` path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import itertools
import math
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .._corder import copy_tiled
from .._fsutil import raise_if_full
from ..errors import MetadataError
from ..store import ArrayStore

__all__ = ["DirectChunkReader", "DirectChunkWriter", "direct_pipeline"]

_FILTER_DEFLATE = 1  # h5py.h5z.FILTER_DEFLATE
_FILTER_SHUFFLE = 2  # h5py.h5z.FILTER_SHUFFLE
_KINDS = frozenset("biufc")


@functools.cache
def _uncompress() -> Any | None:
    """zlib's ``uncompress(dest, &destLen, source, sourceLen)`` (ctypes releases the GIL), or None without libz.

    Python's ``zlib.decompress`` returns a new ``bytes`` object per chunk, copied again into the block; this
    inflates a chunk straight into its place.
    """
    names = ("libz.so.1", "libz.dylib", None)  # None: ctypes.util.find_library, last (it forks ldconfig -p)
    for name in names:
        name = name or ctypes.util.find_library("z")
        if name is None:
            continue
        try:
            fn = ctypes.CDLL(name).uncompress
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong), ctypes.c_char_p, ctypes.c_ulong]
        return fn
    return None


def _dataset(store: ArrayStore) -> Any:
    """The h5py dataset behind an HDF5 store (``None`` for other stores)."""
    ds = getattr(store, "dataset", None)
    return ds if type(ds).__module__.startswith("h5py") else None


def direct_pipeline(store: ArrayStore, src_dtype: np.dtype[Any], *,
                    uncompressed: bool = False) -> tuple[bool, int | None] | None:
    """``(shuffle, deflate level)`` when the destination's chunks can be compressed here, else None.

    With ``uncompressed=True`` a chunked dataset without filters qualifies too, as
    ``(False, None)``: its chunks are written as their bytes.
    """
    ds = _dataset(store)
    if ds is None or ds.chunks is None:
        return None
    from ..backends._hdf5_types import file_type_is_numpy_bytes  # h5py is loaded: the store is HDF5

    if not file_type_is_numpy_bytes(ds):
        return None
    dtype = np.dtype(ds.dtype)
    if dtype != src_dtype or dtype.kind not in _KINDS or dtype.names is not None or dtype.subdtype is not None:
        return None
    dcpl = ds.id.get_create_plist()
    filters = [dcpl.get_filter(i)[:3] for i in range(dcpl.get_nfilters())]
    codes = [f[0] for f in filters]
    if not codes:
        return (False, None) if uncompressed else None
    if codes == [_FILTER_DEFLATE]:
        shuffle = False
    elif codes == [_FILTER_SHUFFLE, _FILTER_DEFLATE]:
        shuffle = True
    else:
        return None
    values = filters[-1][2]
    level = int(values[0]) if values else 6
    if not 0 <= level <= 9:
        return None
    return shuffle, level


class DirectChunkWriter:
    """Writes blocks (unions of whole chunks, in logical coordinates) to a chunked, deflated HDF5 dataset.

    Parameters
    ----------
    store
        The destination HDF5 store (open for writing).
    shuffle, level
        The dataset's pipeline, from :func:`direct_pipeline` (``level=None``: no filter).
    workers
        Compression threads.
    """

    def __init__(self, store: ArrayStore, shuffle: bool, level: int | None, workers: int) -> None:
        self.store = store
        self.ds = _dataset(store)
        self.shuffle = shuffle and np.dtype(self.ds.dtype).itemsize > 1  # HDF5 skips 1-byte shuffles
        self.level = level
        self.chunks: tuple[int, ...] = tuple(self.ds.chunks)
        self.shape: tuple[int, ...] = tuple(self.ds.shape)  # read once: h5py calls take its global lock
        self.dtype = np.dtype(self.ds.dtype)
        self.fortran = store.order == "F"  # the dataset holds the transpose
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="arraystore-deflate")
        self._lookahead = 2 * max(1, workers)

    def write(self, sel: tuple[slice, ...], block: np.ndarray[Any, Any]) -> None:
        """Compress the chunks of ``block`` (at ``sel``) on the pool and write them in order."""
        if self.fortran:
            sel, block = sel[::-1], block.T
        origins = list(self._origins(sel))
        pending: deque[Any] = deque()
        todo = iter(origins)
        for origin in itertools.islice(todo, self._lookahead):
            pending.append((origin, self._pool.submit(self._encode, block, sel, origin)))
        while pending:
            origin, fut = pending.popleft()
            data = fut.result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, self._pool.submit(self._encode, block, sel, nxt)))
            try:
                self.ds.id.write_direct_chunk(origin, data, filter_mask=0)
            except OSError as exc:
                raise_if_full(exc, self.store.path, "writing")
                raise MetadataError(f"{self.store.path}: HDF5 could not write the chunk at {origin}: {exc}") from None

    def _origins(self, sel: tuple[slice, ...]) -> Iterator[tuple[int, ...]]:
        ranges = [range(s.start, s.stop, c) for s, c in zip(sel, self.chunks)]
        return itertools.product(*ranges)

    def _encode(self, block: np.ndarray[Any, Any], sel: tuple[slice, ...],
                origin: tuple[int, ...]) -> bytes | np.ndarray[Any, Any]:
        local = tuple(slice(o - s.start, min(o + c, n) - s.start)
                      for o, s, c, n in zip(origin, sel, self.chunks, self.shape))
        piece = block[local]
        if piece.shape == self.chunks and piece.flags.c_contiguous and piece.dtype == self.dtype:
            chunk = piece
        else:  # an edge chunk is stored at full size (zeros beyond the dataset's edge)
            chunk = (np.empty if piece.shape == self.chunks else np.zeros)(self.chunks, self.dtype)
            copy_tiled(chunk[tuple(slice(0, n) for n in piece.shape)], piece.astype(self.dtype, copy=False))
        raw = chunk.reshape(-1).view(np.uint8)
        if self.level is None:
            return raw
        if self.shuffle:
            raw = np.ascontiguousarray(raw.reshape(-1, self.dtype.itemsize).T)
        return zlib.compress(raw.data, self.level)

    def close(self) -> None:
        """Stop the compression threads."""
        self._pool.shutdown(wait=True)


class DirectChunkReader:
    """Reads blocks of a chunked, deflated HDF5 dataset: chunks read raw (``read_direct_chunk``, under h5py's
    lock, in this thread), inflated and un-shuffled by ``workers`` threads (zlib releases the GIL).

    Only for the pipelines :func:`direct_pipeline` accepts; a chunk never written is the dataset's fill value,
    a chunk stored with its filters skipped (``filter_mask``) is taken as stored.
    """

    def __init__(self, store: ArrayStore, shuffle: bool, workers: int) -> None:
        self.store = store
        self.ds = _dataset(store)
        self.dtype = np.dtype(self.ds.dtype)
        self.shuffle = shuffle and self.dtype.itemsize > 1
        # filter_mask bit i: the pipeline's filter i was skipped for this chunk
        self._skip_shuffle, self._skip_deflate = (1, 2) if shuffle else (0, 1)
        self.chunks: tuple[int, ...] = tuple(self.ds.chunks)
        self.shape: tuple[int, ...] = tuple(self.ds.shape)
        self.fortran = store.order == "F"
        self._fill = np.asarray(self.ds.fillvalue, dtype=self.dtype)
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="arraystore-inflate")
        self._lookahead = 2 * max(1, workers)
        self._chunk_bytes = math.prod(self.chunks) * self.dtype.itemsize
        self._local = threading.local()

    def sample_files(self, n: int) -> list[str]:
        """The file holding the dataset (its chunks are all in it)."""
        return [str(self.ds.file.filename)] if n > 0 else []

    @property
    def out_dtype(self) -> np.dtype[Any] | None:
        """The dtype :meth:`read` assembles a block in when given an ``out`` array (None: it takes none)."""
        return None if self.fortran else self.dtype

    def read(self, sel: tuple[slice, ...], out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        """The values at ``sel`` (logical coordinates, steps of 1); ``out``: assembled in this C-contiguous array
        of the selection's shape and :attr:`out_dtype` (a C-order dataset only), returned."""
        dsel = sel[::-1] if self.fortran else sel
        box = tuple(s.stop - s.start for s in dsel)
        if out is None:
            out = np.empty(box, self.dtype)
        elif self.fortran or out.shape != box or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {self.dtype} array of shape {box}, found {out.dtype} "
                             f"{out.shape}")
        if out.size:
            ranges = [range(s.start // c * c, s.stop, c) for s, c in zip(dsel, self.chunks)]
            pending: deque[Any] = deque()
            for origin in itertools.product(*ranges):
                raw = self._raw(origin)
                pending.append(self._pool.submit(self._place, origin, raw, dsel, out))
                while len(pending) >= self._lookahead:
                    pending.popleft().result()
            while pending:
                pending.popleft().result()
        return out.T if self.fortran else out

    def _raw(self, origin: tuple[int, ...]) -> tuple[int, bytes] | None:
        try:
            mask, data = self.ds.id.read_direct_chunk(origin)
        except (OSError, KeyError, ValueError, RuntimeError):  # never written: the fill value
            if self.ds.id.get_chunk_info_by_coord(origin).byte_offset is None:
                return None
            raise
        return int(mask), bytes(data)

    def _place(self, origin: tuple[int, ...], raw: tuple[int, bytes] | None, sel: tuple[slice, ...],
               out: np.ndarray[Any, Any]) -> None:
        lo = [max(o, s.start) for o, s in zip(origin, sel)]
        hi = [min(o + c, s.stop) for o, c, s in zip(origin, self.chunks, sel)]
        dst = tuple(slice(a - s.start, b - s.start) for a, b, s in zip(lo, hi, sel))
        if raw is None:
            out[dst] = self._fill
            return
        mask, data = raw
        shuffled = self.shuffle and not mask & self._skip_shuffle
        if not mask & self._skip_deflate:
            target = out[dst]
            whole = not shuffled and target.shape == self.chunks and target.flags.c_contiguous
            into = target.reshape(-1).view(np.uint8) if whole else self._scratch()
            self._inflate(data, into, origin)
            if whole:
                return
            flat = into
        else:
            flat = np.frombuffer(data, np.uint8)
            if flat.size != self._chunk_bytes:
                raise MetadataError(f"{self.store.path}: the chunk at {origin} holds {flat.size} bytes, not the "
                                    f"{self._chunk_bytes} of its shape; the file is damaged: rewrite it")
        if shuffled:
            flat = np.ascontiguousarray(flat.reshape(self.dtype.itemsize, -1).T).reshape(-1)
        chunk = flat.view(self.dtype).reshape(self.chunks)
        out[dst] = chunk[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, origin))]

    def _scratch(self) -> np.ndarray[Any, Any]:
        """This thread's buffer of one chunk's bytes, used again (a fresh one costs a zeroed page per page)."""
        buf: np.ndarray[Any, Any] | None = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = np.empty(self._chunk_bytes, np.uint8)
        return buf

    def _inflate(self, data: bytes, into: np.ndarray[Any, Any], origin: tuple[int, ...]) -> None:
        """Inflate one chunk's zlib stream into ``into`` (exactly its bytes), or raise MetadataError."""
        why = None
        uncompress = _uncompress()
        if uncompress is not None:  # zlib's own uncompress(), straight into the buffer (the GIL released)
            size = ctypes.c_ulong(into.size)
            code = uncompress(into.ctypes.data, ctypes.byref(size), data, len(data))
            if code != 0 or size.value != into.size:
                why = f"zlib's uncompress returned {code}" if code != 0 else f"it inflates to {size.value} bytes"
        else:
            try:
                raw = zlib.decompress(data)
            except zlib.error as exc:
                raw, why = b"", str(exc)
            if why is None and len(raw) != into.size:
                why = f"it inflates to {len(raw)} bytes"
            if why is None:
                into[...] = np.frombuffer(raw, np.uint8)
        if why is not None:
            raise MetadataError(f"{self.store.path}: the deflated chunk at {origin} does not inflate to its "
                                f"{into.size} bytes ({why}); the file is damaged: rewrite it from its source")

    def close(self) -> None:
        """Stop the threads."""
        self._pool.shutdown(wait=True)
