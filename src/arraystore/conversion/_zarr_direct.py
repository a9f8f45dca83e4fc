"""Zarr destinations: chunks encoded on a thread pool, written as whole chunk (or shard) objects.

zarr-python encodes a slab's chunks through its asyncio pipeline, where the
uncompressed steps (transpose, bytes, the shard index) hold the GIL and chunk
writes go one event-loop hop at a time; a slab written with ``arr[sel] = block``
uses well under two cores. Here zarr-python keeps the metadata (the array is
created, staged, published and read by it) and we do the chunk writes:

* each chunk's key comes from the array's own chunk key encoding;
* each chunk is encoded by the array's own codecs, called synchronously
  (``codec._encode_sync``: transpose, bytes, gzip, zstd, blosc, crc32c, the very
  code zarr-python runs), so the bytes are zarr-python's, by construction;
* shards are assembled as the sharding codec does: inner chunks in Morton order,
  the index (offset, length per inner chunk, ``2**64 - 1`` for an absent one)
  encoded by the index codecs, at the end or the start;
* a chunk whose bytes equal the fill value's is not written (and an old one at its
  key is deleted), zarr's ``write_empty_chunks=False``, compared bit for bit so a
  chunk of ``-0.0`` under a fill value of ``0.0`` is kept;
* ``workers`` threads encode and put chunks in parallel: numcodecs' zstd, blosc
  and zlib release the GIL while they compress.

Where the chunks go is the zarr store's business: a store with a synchronous
``set_sync`` (arraystore's local store writes a temporary file and renames it) is
called directly from the threads; any other zarr store (object storage) through
its async ``set`` / ``delete`` on zarr's event loop. Destinations qualify through
their capabilities (``parallel_chunk_writers`` and ``thread_safe_writes``) and a
``zarr_array`` whose codecs are all ones with a synchronous encoder; anything else
(variable-length types, a codec without ``_encode_sync``) keeps ``dst[sel] = block``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..store import ArrayStore

__all__ = ["ZarrChunkReader", "ZarrChunkWriter", "zarr_direct_array", "zarr_readable_array"]

_ABSENT = np.uint64(2**64 - 1)


def zarr_direct_array(store: ArrayStore) -> Any | None:
    """The zarr array behind ``store`` when its chunks can be encoded and written here, else None."""
    cls = type(store)
    if not (cls.parallel_chunk_writers and cls.thread_safe_writes):
        return None
    return zarr_readable_array(store)


def zarr_readable_array(store: ArrayStore, direction: str = "_encode_sync") -> Any | None:
    """The zarr array behind ``store`` when its codecs all run synchronously here (``direction``), else None."""
    from ..backends._zarr_read import readable_array

    arr = getattr(store, "zarr_array", None)
    return arr if readable_array(arr, getattr(store, "stored_dtype", None), direction) else None


class _Encoder:
    """Encodes one chunk (a numpy array of the chunk's shape, storage dtype) with a codec chain."""

    def __init__(self, codecs: tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]], spec: Any) -> None:
        self.aa, (self.ab,), self.bb = codecs
        self.spec = spec

    def __call__(self, chunk: np.ndarray[Any, Any]) -> Any:
        from zarr.core.buffer.cpu import NDBuffer

        spec = self.spec
        nd: Any = NDBuffer.from_numpy_array(chunk)
        for codec in self.aa:
            nd = codec._encode_sync(nd, spec)
            spec = codec.resolve_metadata(spec)
        buf = self.ab._encode_sync(nd, spec)
        spec = self.ab.resolve_metadata(spec)
        for codec in self.bb:
            buf = codec._encode_sync(buf, spec)
            spec = codec.resolve_metadata(spec)
        return buf


class ZarrChunkWriter:
    """Writes blocks (unions of whole chunks or shards, in logical coordinates) to a Zarr v3 array.

    Parameters
    ----------
    store
        The destination store (open for writing); :func:`zarr_direct_array` said yes.
    workers
        Threads encoding and putting chunks.
    may_exist
        True when chunks of an earlier run may be at the keys (resume): a chunk now
        equal to the fill value then deletes the old one.
    """

    def __init__(self, store: ArrayStore, workers: int, *, may_exist: bool = True) -> None:
        from zarr.core.array_spec import ArrayConfig
        from zarr.core.buffer import default_buffer_prototype

        from ..backends._zarr_read import plain_codecs, split_codecs

        arr = zarr_direct_array(store)
        assert arr is not None
        self.arr = arr
        self.store = store
        md = arr.metadata
        self.stored: np.dtype[Any] = np.dtype(store.stored_dtype)  # type: ignore[attr-defined]
        self.encoding: str = store.encoding  # type: ignore[attr-defined]
        self.shape: tuple[int, ...] = tuple(md.shape)
        self.fortran = False
        sharding, aa, ab, bb = split_codecs(md.codecs, "_encode_sync")
        self.sharding = sharding
        self.unit: tuple[int, ...] = tuple(md.chunk_grid.chunk_shape)  # the shard shape when sharded
        spec = md.get_chunk_spec((0,) * len(self.shape), ArrayConfig(order="C", write_empty_chunks=False),
                                 default_buffer_prototype())
        if sharding is not None:
            self.inner: tuple[int, ...] = tuple(sharding.chunk_shape)
            spec = sharding._get_chunk_spec(spec)
            self._index_spec = sharding._get_index_chunk_spec(self._per_shard)
            self._index_encoder = _Encoder(plain_codecs(sharding.index_codecs), self._index_spec)
            self._index_bytes = len(self._index_encoder(np.full((*self._per_shard, 2), _ABSENT, np.uint64)))
        else:
            self.inner = self.unit
        self._encode = _Encoder((aa, ab, bb), spec)
        fill = np.asarray(md.fill_value, dtype=self.stored)
        self._fill = fill
        self._fill_bytes = np.full(1, fill, self.stored).view(np.uint8)
        self._fill_zero = not self._fill_bytes.any()
        zstore = arr.store_path.store
        prefix = arr.store_path.path
        self._prefix = f"{prefix}/" if prefix else ""
        self._put, self._delete = _sink(zstore)
        self.may_exist = may_exist
        self._key = md.encode_chunk_key
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="arraystore-zarr-chunks")
        self._lookahead = 2 * max(1, workers)

    @property
    def _per_shard(self) -> tuple[int, ...]:
        return tuple(u // c for u, c in zip(self.unit, self.inner))

    # -- writing -------------------------------------------------------------

    def write(self, sel: tuple[slice, ...], block: np.ndarray[Any, Any]) -> None:
        """Encode and write every chunk (shard) of ``block``, which covers ``sel`` (whole units)."""
        from ..backends._zarr_layout import encode
        from ..backends._zarr_read import run_bounded

        block = encode(block, self.stored, self.encoding)
        origins = itertools.product(*(range(s.start, s.stop, u) for s, u in zip(sel, self.unit)))
        job = self._write_shard if self.sharding is not None else self._write_chunk

        def task(origin: tuple[int, ...]) -> Callable[[], None]:
            return lambda: job(origin, block, sel)

        run_bounded(self._pool, (task(o) for o in origins), self._lookahead)

    def _piece(self, block: np.ndarray[Any, Any], sel: tuple[slice, ...], origin: tuple[int, ...],
               shape: tuple[int, ...]) -> np.ndarray[Any, Any] | None:
        """The chunk at ``origin`` (shape ``shape``), padded with the fill value; None when all fill, bit for bit."""
        local = tuple(slice(o - s.start, min(o + c, n) - s.start) for o, s, c, n in zip(origin, sel, shape, self.shape))
        if any(sl.start >= sl.stop for sl in local):
            return None  # wholly outside the array (inside an edge shard)
        piece = block[local]
        if piece.shape == shape:
            chunk = np.ascontiguousarray(piece)
        else:
            chunk = np.full(shape, self._fill, self.stored)
            chunk[tuple(slice(0, n) for n in piece.shape)] = piece
        raw = chunk.reshape(-1).view(np.uint8)
        if self._fill_zero:
            if not raw.any():
                return None
        elif np.array_equal(raw.reshape(-1, self.stored.itemsize),
                            np.broadcast_to(self._fill_bytes, (raw.size // self.stored.itemsize, self.stored.itemsize))):
            return None
        return chunk

    def _write_chunk(self, origin: tuple[int, ...], block: np.ndarray[Any, Any], sel: tuple[slice, ...]) -> None:
        coords = tuple(o // u for o, u in zip(origin, self.unit))
        key = self._prefix + self._key(coords)
        chunk = self._piece(block, sel, origin, self.unit)
        if chunk is None:
            if self.may_exist:
                self._delete(key)
            return
        self._put(key, self._encode(chunk))

    def _write_shard(self, origin: tuple[int, ...], block: np.ndarray[Any, Any], sel: tuple[slice, ...]) -> None:
        from zarr.codecs.sharding import ShardingCodecIndexLocation
        from zarr.core.indexing import morton_order_iter

        assert self.sharding is not None
        coords = tuple(o // u for o, u in zip(origin, self.unit))
        key = self._prefix + self._key(coords)
        per = self._per_shard
        index = np.full((*per, 2), _ABSENT, np.uint64)
        parts: list[Any] = []
        at = 0
        for inner in morton_order_iter(per):
            chunk = self._piece(block, sel, tuple(o + i * c for o, i, c in zip(origin, inner, self.inner)), self.inner)
            if chunk is None:
                continue
            buf = self._encode(chunk)
            index[inner] = (at, len(buf))
            at += len(buf)
            parts.append(buf)
        if not parts:
            if self.may_exist:
                self._delete(key)
            return
        at_start = self.sharding.index_location == ShardingCodecIndexLocation.start
        if at_start:
            present = index[..., 0] != _ABSENT
            index[present, 0] += np.uint64(self._index_bytes)
        index_buf = self._index_encoder(index)
        bufs = [index_buf, *parts] if at_start else [*parts, index_buf]
        self._put(key, bufs[0].combine(bufs[1:]))

    def close(self) -> None:
        """Stop the threads."""
        self._pool.shutdown(wait=True)


def _sink(zstore: Any) -> tuple[Callable[[str, Any], None], Callable[[str], None]]:
    """``(put, delete)`` for a zarr store: synchronous calls where it has them, else its async API on zarr's loop."""
    from zarr.core.sync import sync

    put_sync = getattr(zstore, "set_sync", None)
    root = getattr(zstore, "root", None)

    def put(key: str, buf: Any) -> None:
        if put_sync is not None:
            put_sync(key, buf)
        else:
            sync(zstore.set(key, buf))

    def delete(key: str) -> None:
        if root is not None and type(zstore).__module__.startswith(("zarr.storage", "arraystore")):
            try:
                (Path(root) / key).unlink()
            except FileNotFoundError:
                pass
        else:
            sync(zstore.delete(key))

    return put, delete



class ZarrChunkReader:
    """Reads blocks of a Zarr v3 array: chunks (shards) read and decoded on threads here.

    The reader is the Zarr backend's own (:class:`arraystore.backends._zarr_read.ChunkReader`,
    also behind ``store[sel]``): chunk files of a local directory store read directly, any
    other store's chunks fetched through the zarr store the array was opened on, every
    chunk checked against decompression bombs before it is decoded, codecs the
    array's own (numcodecs ``zstd``/``blosc`` straight into the block). An absent
    chunk (or inner chunk) is the fill value.
    """

    def __init__(self, store: ArrayStore, workers: int) -> None:
        from ..backends._zarr_read import ChunkReader

        arr = zarr_readable_array(store, "_decode_sync")
        assert arr is not None
        self.store = store
        self._reader = ChunkReader(arr, store.dtype, store.stored_dtype, store.encoding,  # type: ignore[attr-defined]
                                   store.path, workers)

    def read(self, sel: tuple[slice, ...]) -> np.ndarray[Any, Any]:
        """The values at ``sel`` (slices with steps of 1), as the array's dtype."""
        from ..backends._zarr_safety import zarr_errors

        with zarr_errors(self.store.path, reading_chunks=True):
            return self._reader.read(sel)

    def close(self) -> None:
        """Stop the threads."""
        self._reader.close()
