"""Zarr destinations: chunks encoded on a thread pool, written as whole chunk (or shard) objects.

zarr-python encodes a slab's chunks through its asyncio pipeline, where the
uncompressed steps (transpose, bytes, the shard index) hold the GIL and chunk
writes go one event-loop hop at a time; a slab written with ``arr[sel] = block``
uses well under two cores. Here zarr-python keeps the metadata (the array is
created, staged, published and read by it) and we do the chunk writes:

* each chunk's key comes from the array's own chunk key encoding;
* each chunk is encoded by the array's own codecs, called synchronously
  (``codec._encode_sync``: transpose, bytes, gzip, zstd, blosc, crc32c, the very
  code zarr-python runs), so the bytes are zarr-python's, by construction; except
  that an unsharded local chunk whose only compressor is zstd is compressed straight
  into a buffer each thread uses again by numcodecs' own libzstd call (:class:`_ZstdInto`): the same
  bytes (without that entry point, streamed into its file by ``zstandard``, :class:`_ZstdFiles`: the
  same decoded bytes, a standard frame); and one whose only
  compressor is blosc is compressed by numcodecs' own c-blosc call into a buffer each thread uses
  again (:class:`_BloscFiles`): the same bytes;
* shards are assembled as the sharding codec does: inner chunks in Morton order,
  the index (offset, length per inner chunk, ``2**64 - 1`` for an absent one)
  encoded by the index codecs, at the end or the start;
* a chunk whose bytes equal the fill value's is not written (and an old one at its
  key is deleted: a resumed run's, or a stale chunk of the array an object-store
  destination replaces in place), zarr's ``write_empty_chunks=False``, compared bit for bit so a
  chunk of ``-0.0`` under a fill value of ``0.0`` is kept;
* ``workers`` threads encode and put chunks in parallel: numcodecs' zstd, blosc
  and zlib release the GIL while they compress; for object storage up to
  ``FETCH_CONCURRENCY`` threads (at most one block of chunks in flight), since a PUT
  mostly waits for the network, and the store's ``_keep_writing()`` (the lease) before
  each block.

Where the chunks go is the zarr store's business: a store with ``put_stream``
(arraystore's local store writes a temporary file and renames it; the chunks of an array
being built aside, a staging copy published whole, straight into their files:
:attr:`ZarrChunkWriter.in_place`) is written directly from the threads, the file's write-back started at once when
:attr:`ZarrChunkWriter.writeback` (the conversion's write-through and drop-behind
regimes); a store with a synchronous ``set_sync`` is called from the threads; a zarr
``ObjectStore`` through obstore's blocking ``put`` / ``delete`` (which release the GIL
while the request runs); any other zarr store through its async ``set`` / ``delete`` on
zarr's event loop. Destinations qualify through
their capabilities (``parallel_chunk_writers`` and ``thread_safe_writes``) and a
``zarr_array`` whose codecs are all ones with a synchronous encoder; anything else
(variable-length types, a codec without ``_encode_sync``) keeps ``dst[sel] = block``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..location import parse_location
from ..store import ArrayStore
from ._fastpath import start_writeback

__all__ = ["ZarrChunkReader", "ZarrChunkWriter", "zarr_direct_array", "zarr_readable_array"]

#: Requests in flight at once when a block's chunks are fetched from object storage.
FETCH_CONCURRENCY = 32
#: Rounds of a block's chunk requests in flight while the round before is checked and decoded.
ROUNDS_AHEAD = 2
_FETCH: Any = object()  # "fetch the chunk yourself" (a buffer argument of None means an absent chunk)
_ABSENT = np.uint64(2**64 - 1)
#: Bytes of a chunk looked at first when checking it against a zero fill value.
_PROBE = 4096
#: Compressed bytes handed to the file at once by :class:`_ZstdFiles` (its reused output buffer).
ZSTD_PIECE = 128 * 1024
#: Bytes of a compressed chunk handed to its file at once by :class:`_ZstdInto` and :class:`_BloscFiles`: 1 GiB of
#: smooth float32 into zstd:3 chunks on the 2-core VM, three alternated runs, cost 0.50-0.63 system CPU s written in
#: 128 KiB pieces against 1.15-1.66 written whole (1-4 MiB per write()), the page cache's work per byte.
WRITE_PIECE = 128 * 1024


def _write_pieces(f: BinaryIO, out: np.ndarray[Any, Any], size: int) -> None:
    """Write ``out[:size]`` to ``f`` in :data:`WRITE_PIECE` pieces."""
    for lo in range(0, size, WRITE_PIECE):
        f.write(out[lo : min(size, lo + WRITE_PIECE)].data)


def zarr_direct_array(store: ArrayStore) -> Any | None:
    """The zarr array behind ``store`` when its chunks can be encoded and written here, else None."""
    cls = type(store)
    # Chunk objects of an array published by its metadata (object stores) are independent objects too.
    if not (cls.thread_safe_writes and (cls.parallel_chunk_writers or cls.publishes == "metadata-last")):
        return None
    return zarr_readable_array(store)


def zarr_readable_array(store: ArrayStore, direction: str = "_encode_sync") -> Any | None:
    """The zarr array behind ``store`` when its codecs all run synchronously here (``direction``), else None."""
    from ..backends._zarr_read import readable_array

    arr = getattr(store, "zarr_array", None)
    return arr if readable_array(arr, getattr(store, "stored_dtype", None), direction) else None


def _split(codecs: Any, direction: str = "_encode_sync") -> tuple[Any, tuple[Any, ...], tuple[Any, ...],
                                                                  tuple[Any, ...]]:
    """``(sharding codec or None, array->array, (array->bytes,), bytes->bytes)``; ValueError when not ours to run."""
    from ..backends._zarr_read import split_codecs

    return split_codecs(codecs, direction)


class _Encoder:
    """Encodes one chunk (a numpy array of the chunk's shape, storage dtype) with a codec chain."""

    def __init__(self, codecs: tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]], spec: Any) -> None:
        self.aa, (self.ab,), self.bb = codecs
        self.spec = spec

    def serialized(self, chunk: np.ndarray[Any, Any]) -> tuple[Any, Any]:
        """``(buffer, spec)``: the chunk through the array->array and array->bytes codecs (bytes: a view)."""
        from zarr.core.buffer.cpu import NDBuffer

        spec = self.spec
        nd: Any = NDBuffer.from_numpy_array(chunk)
        for codec in self.aa:
            nd = codec._encode_sync(nd, spec)
            spec = codec.resolve_metadata(spec)
        buf = self.ab._encode_sync(nd, spec)
        return buf, self.ab.resolve_metadata(spec)

    def __call__(self, chunk: np.ndarray[Any, Any]) -> Any:
        buf, spec = self.serialized(chunk)
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

    def __init__(self, store: ArrayStore, workers: int, *, may_exist: bool = True, put_bytes: int = 64 << 20) -> None:
        from zarr.core.array_spec import ArrayConfig
        from zarr.core.buffer import default_buffer_prototype

        arr = zarr_direct_array(store)
        assert arr is not None
        self.arr = arr
        self.store = store
        md = arr.metadata
        self.stored: np.dtype[Any] = np.dtype(store.stored_dtype)  # type: ignore[attr-defined]
        self.encoding: str = store.encoding  # type: ignore[attr-defined]
        self.shape: tuple[int, ...] = tuple(md.shape)
        self.fortran = False
        sharding, aa, ab, bb = _split(md.codecs)
        self.sharding = sharding
        self.unit: tuple[int, ...] = tuple(md.chunk_grid.chunk_shape)  # the shard shape when sharded
        spec = md.get_chunk_spec((0,) * len(self.shape), ArrayConfig(order="C", write_empty_chunks=False),
                                 default_buffer_prototype())
        if sharding is not None:
            self.inner: tuple[int, ...] = tuple(sharding.chunk_shape)
            spec = sharding._get_chunk_spec(spec)
            self._index_spec = sharding._get_index_chunk_spec(self._per_shard)
            self._index_encoder = _Encoder(_split_plain(sharding.index_codecs), self._index_spec)
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
        # A local store: chunk files written here (put_stream); unsharded zstd and blosc chunks compressed here.
        self._open: Callable[..., contextlib.AbstractContextManager[BinaryIO]] | None = getattr(
            zstore, "put_stream", None)
        #: Chunk files written where they belong, not beside them and renamed: the array is a staging copy, published
        #: whole, and a block is journaled once its files are written (a file a kill cut short is written again).
        self.in_place = self._open is not None and getattr(store, "_staged", None) is not None
        here = sharding is None and self._open is not None
        self._zstd_files: _ZstdInto | _ZstdFiles | None = None
        if here and _zstd_into_available(bb) and math.prod(self.unit) * self.stored.itemsize <= ZSTD_INTO_MAX:
            self._zstd_files = _ZstdInto(bb[0])
        elif here and _zstd_only(bb):
            self._zstd_files = _ZstdFiles(bb[0])
        self._blosc_files = _BloscFiles(bb[0]) if here and _blosc_only(bb) else None
        #: Start each chunk file's write-back as soon as it is written (the conversion's write-through regime).
        self.writeback = False
        self.may_exist = may_exist
        self._key = md.encode_chunk_key
        threads = max(1, workers)
        if parse_location(store.path).remote:
            # Object storage: a PUT mostly waits for the network; more of them in flight, as many as
            # one block of encoded chunks allows (the budget counts a block for the writer's copies).
            unit_bytes = max(1, math.prod(self.unit) * self.stored.itemsize)
            threads = max(threads, min(FETCH_CONCURRENCY, max(1, put_bytes) // unit_bytes))
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="arraystore-zarr-chunks")
        self._lookahead = threads + max(1, workers)

    @property
    def _per_shard(self) -> tuple[int, ...]:
        return tuple(u // c for u, c in zip(self.unit, self.inner))

    # -- writing -------------------------------------------------------------

    def write(self, sel: tuple[slice, ...], block: np.ndarray[Any, Any]) -> None:
        """Encode and write every chunk (shard) of ``block``, which covers ``sel`` (whole units)."""
        from ..backends._zarr_layout import encode

        block = encode(block, self.stored, self.encoding)
        origins = itertools.product(*(range(s.start, s.stop, u) for s, u in zip(sel, self.unit)))
        job = self._write_shard if self.sharding is not None else self._write_chunk

        def task(origin: tuple[int, ...]) -> Callable[[], None]:
            return lambda: job(origin, block, sel)

        with self.store._client_errors():
            self.store._keep_writing()
            _run_bounded(self._pool, (task(o) for o in origins), self._lookahead)

    @property
    def takes_bands(self) -> bool:
        """True when :meth:`submit` may be given bands of chunk rows: unsharded chunks written into local files."""
        return self.sharding is None and self._open is not None

    def submit(self, sel: tuple[slice, ...], block: np.ndarray[Any, Any], done: Callable[[], None]) -> Future[None]:
        """Encode and write every chunk of ``block`` (covering ``sel``, whole units) on one of the threads, in turn.

        Returns at once; ``done()`` is called once the chunks are written or the first failed, or when the task is
        cancelled unrun (:meth:`close` after a failure): the block's buffer is free again then, so that a reader
        waiting for it is not left waiting. The future holds the failure.
        """
        from ..backends._zarr_layout import encode

        def task() -> None:
            try:
                values = encode(block, self.stored, self.encoding)
                with self.store._client_errors():
                    for origin in itertools.product(*(range(s.start, s.stop, u) for s, u in zip(sel, self.unit))):
                        self._write_chunk(origin, values, sel)
            finally:
                done()

        future = self._pool.submit(task)
        future.add_done_callback(lambda f: done() if f.cancelled() else None)
        return future

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
            if raw[:_PROBE].any() or raw.any():  # most chunks differ from zero early: no full pass over them
                return chunk
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
            self._absent(key)
            return
        files = self._zstd_files or self._blosc_files
        if files is not None:
            self._write_file(key, lambda f: files(f, self._encode.serialized(chunk)[0]))
        else:
            self._write_parts(key, [self._encode(chunk)])

    def _absent(self, key: str) -> None:
        """A chunk (shard) all fill: not written; an object at its key deleted (resume, or a replaced array's)."""
        stale = getattr(self.store, "stale_chunks", None)
        if self.may_exist or (stale is not None and key in stale):
            self._delete(key)
            self._overwritten(key)

    def _overwritten(self, key: str) -> None:
        """The object at ``key`` is this array's now: no longer a stale chunk of the array it replaced."""
        stale = getattr(self.store, "stale_chunks", None)
        if stale is not None:
            stale.discard(key)

    def _write_parts(self, key: str, parts: list[Any]) -> None:
        """Put the concatenation of ``parts`` (zarr buffers) at ``key``."""
        if self._open is None:
            self._put(key, parts[0].combine(parts[1:]) if len(parts) > 1 else parts[0])
            self._overwritten(key)
            return

        def write(f: BinaryIO) -> None:
            for part in parts:
                f.write(part.as_buffer_like())

        self._write_file(key, write)

    def _write_file(self, key: str, write: Callable[[BinaryIO], None]) -> None:
        """Write the file at ``key`` with ``write(file)`` (a local store), its write-back started when asked."""
        assert self._open is not None
        with self._open(key, in_place=True) if self.in_place else self._open(key) as f:
            write(f)
            if self.writeback:
                f.flush()
                start_writeback(f.fileno())

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
            self._absent(key)
            return
        at_start = self.sharding.index_location == ShardingCodecIndexLocation.start
        if at_start:
            present = index[..., 0] != _ABSENT
            index[present, 0] += np.uint64(self._index_bytes)
        index_buf = self._index_encoder(index)
        self._write_parts(key, [index_buf, *parts] if at_start else [*parts, index_buf])

    def close(self) -> None:
        """Stop the threads (chunks submitted and not started, after a failure, are not written)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        if isinstance(self._zstd_files, _ZstdInto):
            self._zstd_files.close()


def _zstd_only(bb: tuple[Any, ...]) -> bool:
    """True when the bytes->bytes codecs are exactly one zarr ``ZstdCodec`` and ``zstandard`` is installed."""
    from zarr.codecs import ZstdCodec

    if len(bb) != 1 or type(bb[0]) is not ZstdCodec:
        return False
    try:  # the `zarr` extra brings it; an environment without it keeps numcodecs' encoder
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


class _ZstdFiles:
    """Compresses a chunk's bytes with zstd straight into its file, in :data:`ZSTD_PIECE` pieces.

    numcodecs' ``Zstd.encode`` makes a compression context and a chunk-sized output
    buffer for every chunk: the fresh buffer's pages cost a page fault each (a third of
    the codec's CPU time), and its bytes are copied once more into the file. Here each
    thread keeps one ``zstandard.ZstdCompressor`` (its context reused) and the output
    goes to the file through one small buffer. The frame is standard zstd with the
    content size in its header and the codec's level and checksum flag: any zstd decoder
    (numcodecs, TensorStore) reads it; its bytes need not equal numcodecs' one-shot output.
    """

    def __init__(self, codec: Any) -> None:
        self.level = int(codec.level)
        self.checksum = bool(codec.checksum)
        self._local = threading.local()

    def __call__(self, f: BinaryIO, data: Any) -> None:
        """Write ``data`` (a zarr buffer: the chunk's serialized bytes) to ``f`` as one zstd frame."""
        import zstandard

        cctx = getattr(self._local, "cctx", None)
        if cctx is None:
            cctx = self._local.cctx = zstandard.ZstdCompressor(level=self.level, write_checksum=self.checksum,
                                                               write_content_size=True)
        raw = data.as_numpy_array()
        writer = cctx.stream_writer(f, size=raw.nbytes, write_size=ZSTD_PIECE, closefd=False)
        writer.write(raw)
        writer.flush(zstandard.FLUSH_FRAME)


#: The largest chunk compressed by :class:`_ZstdInto` (one output buffer of its size per thread); larger ones stream.
ZSTD_INTO_MAX = 64 * 1024 * 1024
_ZSTD_C_COMPRESSION_LEVEL = 100
_ZSTD_C_CHECKSUM_FLAG = 201


def _zstd_lib() -> Any | None:
    """libzstd's ``ZSTD_*`` functions in numcodecs' Zstd extension (ctypes releases the GIL while they run), or None
    where that build does not export them."""
    global _ZSTD_LIB
    if _ZSTD_LIB is None:
        import ctypes

        lib: Any = False
        try:
            import numcodecs.zstd

            lib = ctypes.CDLL(numcodecs.zstd.__file__)
            lib.ZSTD_createCCtx.restype = ctypes.c_void_p
            lib.ZSTD_createCCtx.argtypes = []
            lib.ZSTD_freeCCtx.restype = ctypes.c_size_t
            lib.ZSTD_freeCCtx.argtypes = [ctypes.c_void_p]
            lib.ZSTD_CCtx_setParameter.restype = ctypes.c_size_t
            lib.ZSTD_CCtx_setParameter.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
            lib.ZSTD_compress2.restype = ctypes.c_size_t
            lib.ZSTD_compress2.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                                           ctypes.c_size_t]
            lib.ZSTD_compressBound.restype = ctypes.c_size_t
            lib.ZSTD_compressBound.argtypes = [ctypes.c_size_t]
            lib.ZSTD_isError.restype = ctypes.c_uint
            lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
        except (ImportError, OSError, AttributeError):
            lib = False
        _ZSTD_LIB = lib
    return _ZSTD_LIB or None


_ZSTD_LIB: Any = None


def _zstd_into_available(bb: tuple[Any, ...]) -> bool:
    """True when the bytes->bytes codecs are exactly one zarr ``ZstdCodec`` and libzstd can be called here."""
    from zarr.codecs import ZstdCodec

    return len(bb) == 1 and type(bb[0]) is ZstdCodec and _zstd_lib() is not None


class _ZstdInto:
    """Compresses a chunk's bytes with zstd in one call into one buffer per thread (used again), then writes it.

    The very calls numcodecs' ``Zstd.encode`` makes (``ZSTD_compress2`` with the codec's level and
    checksum flag), so the bytes are numcodecs' own, byte for byte; but each thread keeps its
    compression context and its output buffer (numcodecs makes both for every chunk: a fresh
    chunk-sized output faulted in page by page), and the input is compressed where it lies, one
    pass with no window buffer (a streamed compression copies its input into one). On the 2-core
    VM this costs 0.88-0.93 CPU s per GiB of random float32 at level 3, ``zstandard`` streamed
    1.08. Contexts are freed by :meth:`close`.
    """

    def __init__(self, codec: Any) -> None:
        self.level = int(codec.level)
        self.checksum = bool(codec.checksum)
        self._lib: Any = _zstd_lib()
        self._local = threading.local()
        self._contexts: list[int] = []
        self._lock = threading.Lock()

    def _context(self) -> int:
        cctx = getattr(self._local, "cctx", None)
        if cctx is None:
            lib = self._lib
            cctx = lib.ZSTD_createCCtx()
            if not cctx:
                raise MemoryError("ZSTD_createCCtx failed")
            with self._lock:
                self._contexts.append(cctx)
            for param, value in ((_ZSTD_C_COMPRESSION_LEVEL, self.level), (_ZSTD_C_CHECKSUM_FLAG, int(self.checksum))):
                if lib.ZSTD_isError(lib.ZSTD_CCtx_setParameter(cctx, param, value)):
                    raise ValueError(f"zstd refused parameter {param} = {value}")
            self._local.cctx = cctx
        return int(cctx)

    def __call__(self, f: BinaryIO, data: Any) -> None:
        """Write ``data`` (a zarr buffer: the chunk's serialized bytes) to ``f`` as one zstd frame."""
        lib = self._lib
        raw = np.ascontiguousarray(data.as_numpy_array()).view(np.uint8).reshape(-1)
        bound = int(lib.ZSTD_compressBound(raw.nbytes))
        out = getattr(self._local, "out", None)
        if out is None or out.size < bound:
            out = self._local.out = np.empty(bound, np.uint8)
        size = int(lib.ZSTD_compress2(self._context(), out.ctypes.data, out.size, raw.ctypes.data, raw.nbytes))
        if lib.ZSTD_isError(size):
            raise RuntimeError(f"error during zstd compression: {size}")
        _write_pieces(f, out, size)

    def close(self) -> None:
        """Free the threads' compression contexts (the threads have ended)."""
        with self._lock:
            contexts, self._contexts = self._contexts, []
        for cctx in contexts:
            self._lib.ZSTD_freeCCtx(cctx)


def _blosc_compress_ctx() -> Any | None:
    """c-blosc's ``blosc_compress_ctx`` in numcodecs' Blosc extension (ctypes releases the GIL while it runs), or
    None where that build does not export it."""
    global _BLOSC_CTX
    if _BLOSC_CTX is None:
        import ctypes

        fn: Any = False
        try:
            import numcodecs.blosc

            fn = ctypes.CDLL(numcodecs.blosc.__file__).blosc_compress_ctx
        except (ImportError, OSError, AttributeError):
            pass
        else:
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p,
                           ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        _BLOSC_CTX = fn
    return _BLOSC_CTX or None


_BLOSC_CTX: Any = None
#: Bytes c-blosc adds to a chunk at most (its header), and the largest chunk it compresses.
BLOSC_MAX_OVERHEAD = 16
BLOSC_MAX_BUFFERSIZE = 2**31 - 1 - BLOSC_MAX_OVERHEAD


def _blosc_only(bb: tuple[Any, ...]) -> bool:
    """True when the bytes->bytes codecs are exactly one zarr ``BloscCodec`` and c-blosc can be called here."""
    from zarr.codecs import BloscCodec

    return len(bb) == 1 and type(bb[0]) is BloscCodec and _blosc_compress_ctx() is not None


class _BloscFiles:
    """Compresses a chunk's bytes with blosc into one buffer per thread (used again), then writes it to the file.

    numcodecs' ``Blosc.encode`` (zarr's ``BloscCodec``) returns a fresh chunk-sized ``bytes`` for every
    chunk: its pages are faulted in and zeroed by the kernel each time (a fifth of a cached conversion's
    CPU time on the 2-core VM). Here the same c-blosc call numcodecs makes from a thread other than
    the main one (``blosc_compress_ctx``, one internal thread, the codec's level, shuffle, typesize,
    compressor and block size) writes into a buffer each thread keeps: the bytes are numcodecs'
    own, byte for byte. Chunks too large for c-blosc go through numcodecs (its error).
    """

    def __init__(self, codec: Any) -> None:
        from zarr.codecs.blosc import BloscShuffle

        shuffles = {BloscShuffle.noshuffle: 0, BloscShuffle.shuffle: 1, BloscShuffle.bitshuffle: 2}
        self.codec = codec
        self.args = (int(codec.clevel), shuffles[codec.shuffle], int(codec.typesize))
        self.cname = codec.cname.value.encode("ascii")
        self.blocksize = int(codec.blocksize)
        self._compress: Any = _blosc_compress_ctx()
        self._local = threading.local()

    def __call__(self, f: BinaryIO, data: Any) -> None:
        """Write ``data`` (a zarr buffer: the chunk's serialized bytes) to ``f`` as one blosc chunk."""
        raw = np.ascontiguousarray(data.as_numpy_array()).view(np.uint8).reshape(-1)
        n = raw.nbytes
        if n > BLOSC_MAX_BUFFERSIZE:
            f.write(self.codec._blosc_codec.encode(raw))
            return
        out = getattr(self._local, "out", None)
        if out is None or out.size < n + BLOSC_MAX_OVERHEAD:
            out = self._local.out = np.empty(n + BLOSC_MAX_OVERHEAD, np.uint8)
        clevel, shuffle, typesize = self.args
        size = self._compress(clevel, shuffle, typesize, n, raw.ctypes.data, out.ctypes.data, n + BLOSC_MAX_OVERHEAD,
                              self.cname, self.blocksize, 1)
        if size <= 0:
            raise RuntimeError(f"error during blosc compression: {size}")
        _write_pieces(f, out, size)


def _split_plain(codecs: Any) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]:
    from ..backends._zarr_read import plain_codecs

    return plain_codecs(codecs)


def _run_bounded(pool: ThreadPoolExecutor, tasks: Iterator[Callable[[], None]], lookahead: int) -> None:
    """Run ``tasks`` on ``pool`` with at most ``lookahead`` queued (the Zarr backend's ``run_bounded``)."""
    from ..backends._zarr_read import run_bounded

    run_bounded(pool, tasks, lookahead)


def _object_store(zstore: Any) -> Any | None:
    """The obstore store under a zarr ``ObjectStore`` (through wrapper stores such as the bounded one), else None."""
    import zarr.storage

    while isinstance(zstore, zarr.storage.WrapperStore):
        zstore = zstore._store
    return zstore.store if isinstance(zstore, zarr.storage.ObjectStore) else None


def _sink(zstore: Any) -> tuple[Callable[[str, Any], None], Callable[[str], None]]:
    """``(put, delete)`` for a zarr store: synchronous calls where it has them, else its async API on zarr's loop.

    An object store is called synchronously too, through obstore: its blocking calls release the
    GIL while the request runs, so the writing threads need no hop through zarr's event loop.
    """
    from zarr.core.sync import sync

    put_sync = getattr(zstore, "set_sync", None)
    root = getattr(zstore, "root", None)
    ostore = _object_store(zstore)

    def put(key: str, buf: Any) -> None:
        if ostore is not None:
            import obstore

            obstore.put(ostore, key, buf.as_buffer_like())
        elif put_sync is not None:
            put_sync(key, buf)
        else:
            sync(zstore.set(key, buf))

    def delete(key: str) -> None:
        if ostore is not None:
            import obstore

            obstore.delete(ostore, key)
        elif root is not None and type(zstore).__module__.startswith(("zarr.storage", "arraystore")):
            try:
                (Path(root) / key).unlink()
            except FileNotFoundError:
                pass
        else:
            sync(zstore.delete(key))

    return put, delete


def _decoder(codecs: tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]], spec: Any) -> Any:
    """One chunk's bytes to a numpy chunk with a codec chain (the Zarr backend's reader's decoder)."""
    from ..backends._zarr_read import _ZarrSteps

    return _ZarrSteps(codecs, spec)


class _RemoteChunkReader:
    """Reads blocks of a Zarr v3 array on object storage: chunks (shards) fetched in concurrent rounds, decoded on threads.

    The bytes come through the zarr store the array was opened on (for arraystore's
    own stores, the bounded store that checks each chunk before it is decoded); the
    codecs are the array's, called synchronously (``codec._decode_sync``), so the
    values are zarr-python's. An absent chunk (or inner chunk) is the fill value.
    """

    def __init__(self, store: ArrayStore, workers: int, fetch_bytes: int = 64 << 20,
                 blocks: Iterable[tuple[slice, ...]] | None = None) -> None:
        from zarr.core.array_spec import ArrayConfig
        from zarr.core.buffer import default_buffer_prototype

        arr = zarr_readable_array(store, "_decode_sync")
        assert arr is not None
        drop_stale = getattr(store, "drop_stale_chunks", None)
        if drop_stale is not None:  # chunks of a replaced array read as absent
            drop_stale()
        md = arr.metadata
        self.store = store
        self.dtype = store.dtype
        self.stored: np.dtype[Any] = np.dtype(store.stored_dtype)  # type: ignore[attr-defined]
        self.encoding: str = store.encoding  # type: ignore[attr-defined]
        self.shape: tuple[int, ...] = tuple(md.shape)
        self.unit: tuple[int, ...] = tuple(md.chunk_grid.chunk_shape)
        self._prototype = default_buffer_prototype()
        sharding, aa, ab, bb = _split(md.codecs, "_decode_sync")
        self.sharding = sharding
        spec = md.get_chunk_spec((0,) * len(self.shape), ArrayConfig(order="C", write_empty_chunks=False),
                                 self._prototype)
        if sharding is not None:
            from zarr.codecs.sharding import ShardingCodecIndexLocation

            self.inner: tuple[int, ...] = tuple(sharding.chunk_shape)
            self._per = tuple(u // c for u, c in zip(self.unit, self.inner))
            spec = sharding._get_chunk_spec(spec)
            self._index_decode = _decoder(_split_plain(sharding.index_codecs),
                                          sharding._get_index_chunk_spec(self._per))
            self._index_size = int(sharding._shard_index_size(self._per))
            self._index_at_start = sharding.index_location == ShardingCodecIndexLocation.start
        else:
            self.inner = self.unit
        self._decode = _decoder((aa, ab, bb), spec)
        self._fill = np.asarray(md.fill_value, dtype=self.stored)
        self._zstore = arr.store_path.store
        prefix = arr.store_path.path
        self._prefix = f"{prefix}/" if prefix else ""
        self._key = md.encode_chunk_key
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="arraystore-zarr-read")
        self._lookahead = 2 * max(1, workers)
        # Object storage: a block's chunks are fetched as concurrent requests, in rounds of at most a
        # quarter of ``fetch_bytes``, ROUNDS_AHEAD of them in flight while one is decoded (the in-flight
        # buffers: at most one block, counted in the budget).
        self._remote = parse_location(store.path).remote
        self._fetcher = ThreadPoolExecutor(ROUNDS_AHEAD, thread_name_prefix="arraystore-zarr-fetch")
        self._fetch_bytes = max(1, fetch_bytes)
        self._unit_bytes = max(1, math.prod(self.unit) * self.stored.itemsize)
        # The blocks' order, when known: the first round of the next block is fetched while this one ends.
        self._order: Iterator[tuple[slice, ...]] = iter(blocks if blocks is not None else ())
        self._cursor: tuple[slice, ...] | None = next(self._order, None)
        self._prefetched: tuple[list[str], Future[list[Any]]] | None = None
        self._reading = threading.Lock()

    def _get(self, key: str) -> Any:
        from zarr.core.sync import sync

        return sync(self._zstore.get(self._prefix + key, self._prototype))

    def _get_many(self, keys: list[str]) -> list[Any]:
        """Fetch the objects at ``keys`` as up to :data:`FETCH_CONCURRENCY` concurrent requests (one round)."""
        import asyncio

        from zarr.core.sync import sync

        async def fetch() -> list[Any]:
            gate = asyncio.Semaphore(FETCH_CONCURRENCY)

            async def one(key: str) -> Any:
                async with gate:
                    return await self._zstore.get(self._prefix + key, self._prototype)

            return list(await asyncio.gather(*(one(k) for k in keys)))

        return sync(fetch())

    def read(self, sel: tuple[slice, ...], out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        """The values at ``sel`` (slices with steps of 1), as the array's dtype.

        ``out``: assemble the block in this C-contiguous array of the stored dtype (a buffer used
        again, whose pages are not faulted in and zeroed for every block) instead of a new one.
        """
        with self._reading:  # one block at a time: the prefetched round is this reader's state
            return self._read(sel, out)

    def _read(self, sel: tuple[slice, ...], out: np.ndarray[Any, Any] | None) -> np.ndarray[Any, Any]:
        from ..backends._zarr_layout import decode

        box = tuple(s.stop - s.start for s in sel)
        if out is None:
            out = np.empty(box, self.stored)
        elif out.shape != box or out.dtype != self.stored or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {self.stored} array of shape {box}, "
                             f"found {out.dtype} {out.shape}")
        if out.size:
            ranges = [range(s.start // u, (s.stop - 1) // u + 1) for s, u in zip(sel, self.unit)]
            if self._remote:
                self._read_rounds(sel, out)
            else:
                def task(coords: tuple[int, ...]) -> Callable[[], None]:
                    return lambda: self._fill_unit(coords, sel, out)

                _run_bounded(self._pool, (task(c) for c in itertools.product(*ranges)), self._lookahead)
        return decode(out, self.dtype, self.encoding)

    def _groups(self, sel: tuple[slice, ...]) -> list[list[tuple[int, ...]]]:
        """The chunk (shard) coordinates under ``sel``, in rounds of at most a quarter of ``fetch_bytes``."""
        ranges = [range(s.start // u, (s.stop - 1) // u + 1) for s, u in zip(sel, self.unit)]
        coords = list(itertools.product(*ranges))
        per_round = max(1, self._fetch_bytes // 4 // self._unit_bytes)
        return [coords[i : i + per_round] for i in range(0, len(coords), per_round)]

    def _fetch(self, group: list[tuple[int, ...]]) -> tuple[list[str], Future[list[Any]]]:
        keys = [self._key(c) for c in group]
        return keys, self._fetcher.submit(self._get_many, keys)

    def _following(self, sel: tuple[slice, ...]) -> tuple[slice, ...] | None:
        """The block after ``sel`` in the blocks' order (None: the last, or not known)."""
        want = _bounds(sel)
        while self._cursor is not None and _bounds(self._cursor) != want:
            self._cursor = next(self._order, None)  # blocks skipped (resumed), or a read out of order
        if self._cursor is None:
            return None
        self._cursor = next(self._order, None)
        return self._cursor

    def _read_rounds(self, sel: tuple[slice, ...], out: np.ndarray[Any, Any]) -> None:
        """Fetch the chunks in rounds of concurrent requests, check the generation after each, decode on threads.

        :data:`ROUNDS_AHEAD` rounds are in flight while the one before is checked and decoded, so
        that the server always has requests queued (and the first round of the next block, when
        the blocks' order is known, while this block's last rounds end). The store's generation
        check (``_check_generation``: a HEAD of the array's metadata) runs once per round, after
        all of the round's requests returned and before any of their bytes is used: every chunk
        of the round was fetched after the array was opened and before that check, and a
        generation, once replaced, never comes back, so an overwrite (a new generation) or a
        writer that began changing the array and had not finished is detected, and nothing of
        the round is returned. At most ``ROUNDS_AHEAD + 1`` rounds of a quarter of
        ``fetch_bytes`` each are alive: the in-flight buffers stay within one block.
        """
        groups = self._groups(sel)
        pending: deque[tuple[list[str], Future[list[Any]]]] = deque()
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None:
            if prefetched[0] == [self._key(c) for c in groups[0]]:
                pending.append(prefetched)
            else:  # not the block that was expected next
                _settle(prefetched[1])
        then = self._following(sel)
        submitted = len(pending)
        try:
            for j, group in enumerate(groups):
                while submitted < len(groups) and len(pending) < ROUNDS_AHEAD:
                    pending.append(self._fetch(groups[submitted]))
                    submitted += 1
                with self.store._client_errors():
                    bufs = pending.popleft()[1].result()
                if submitted < len(groups):
                    pending.append(self._fetch(groups[submitted]))  # before the check: no gap for the server
                    submitted += 1
                elif j + 1 == len(groups) and then is not None and (first := self._groups(then)):
                    self._prefetched = self._fetch(first[0])
                self.store._check_generation()

                def task(c: tuple[int, ...], buf: Any) -> Callable[[], None]:
                    return lambda: self._fill_unit(c, sel, out, buf)

                _run_bounded(self._pool, (task(c, b) for c, b in zip(group, bufs)), self._lookahead)
                del bufs
        except BaseException:
            for _, fut in pending:
                _settle(fut)
            if self._prefetched is not None:
                _settle(self._prefetched[1])
                self._prefetched = None
            raise

    def _place(self, origin: tuple[int, ...], shape: tuple[int, ...], chunk: np.ndarray[Any, Any] | None,
               sel: tuple[slice, ...], out: np.ndarray[Any, Any]) -> None:
        """Copy the part of a chunk at ``origin`` that lies in ``sel`` into ``out`` (fill when ``chunk`` is None)."""
        lo = [max(o, s.start) for o, s in zip(origin, sel)]
        hi = [min(o + c, s.stop, n) for o, c, s, n in zip(origin, shape, sel, self.shape)]
        if any(a >= b for a, b in zip(lo, hi)):
            return
        dst = tuple(slice(a - s.start, b - s.start) for a, b, s in zip(lo, hi, sel))
        if chunk is None:
            out[dst] = self._fill
        else:
            out[dst] = chunk.reshape(shape)[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, origin))]

    def _fill_unit(self, coords: tuple[int, ...], sel: tuple[slice, ...], out: np.ndarray[Any, Any],
                   buf: Any = _FETCH) -> None:
        origin = tuple(c * u for c, u in zip(coords, self.unit))
        if buf is _FETCH:
            buf = self._get(self._key(coords))
        if self.sharding is None:
            self._place(origin, self.unit, None if buf is None else self._decode(buf), sel, out)
            return
        if buf is None:
            self._place(origin, self.unit, None, sel, out)
            return
        raw = buf.as_numpy_array().view(np.uint8).reshape(-1)
        n = raw.size
        index_bytes = raw[: self._index_size] if self._index_at_start else raw[n - self._index_size:]
        from zarr.core.buffer.cpu import Buffer

        index = self._index_decode(Buffer.from_array_like(np.ascontiguousarray(index_bytes))).reshape(*self._per, 2)
        for inner in itertools.product(*(range(p) for p in self._per)):
            at = tuple(o + i * c for o, i, c in zip(origin, inner, self.inner))
            if any(a >= s.stop or a + c <= s.start for a, c, s in zip(at, self.inner, sel)):
                continue  # outside the block: not decoded
            offset, length = (int(v) for v in index[inner])
            if offset == int(_ABSENT):
                self._place(at, self.inner, None, sel, out)
                continue
            if offset + length > n:
                from ..errors import MetadataError

                raise MetadataError(f"{self.store.path}: the shard index of chunk {coords} points past its end; "
                                    "the shard is damaged: rewrite the array from its source")
            piece = Buffer.from_array_like(raw[offset: offset + length])
            self._place(at, self.inner, self._decode(piece), sel, out)

    def close(self) -> None:
        """Stop the threads (a round fetched for a block never read is dropped)."""
        if self._prefetched is not None:
            _settle(self._prefetched[1])
            self._prefetched = None
        self._fetcher.shutdown(wait=True)
        self._pool.shutdown(wait=True)


def _bounds(sel: tuple[slice, ...]) -> tuple[tuple[int, int], ...]:
    return tuple((int(s.start), int(s.stop)) for s in sel)


def _settle(fut: Future[Any]) -> None:
    """Cancel ``fut``, or wait for it and drop its result or failure (another error matters more)."""
    if not fut.cancel():
        try:
            fut.result()
        except BaseException:
            pass


class ZarrChunkReader:
    """Reads blocks of a Zarr v3 array: chunks (shards) read and decoded on threads here.

    Local arrays use the Zarr backend's own reader
    (:class:`arraystore.backends._zarr_read.ChunkReader`, also behind ``store[sel]``):
    chunk files read directly, every chunk checked against decompression bombs before it
    is decoded, numcodecs ``zstd``/``blosc`` decoded straight into the block. Arrays on
    object storage are fetched in rounds of concurrent requests with a generation check
    per round (:class:`_RemoteChunkReader`). An absent chunk (or inner chunk) is the fill value.

    ``blocks``: the selections that will be read, in order (a conversion's block plan); an
    array on object storage then fetches the next block's first round while a block ends.
    """

    def __init__(self, store: ArrayStore, workers: int, fetch_bytes: int = 64 << 20,
                 blocks: Iterable[tuple[slice, ...]] | None = None) -> None:
        from ..backends._zarr_read import ChunkReader

        self.store = store
        self._remote: _RemoteChunkReader | None = None
        self._reader: ChunkReader | None = None
        if parse_location(store.path).remote:
            self._remote = _RemoteChunkReader(store, workers, fetch_bytes, blocks)
            return
        arr = zarr_readable_array(store, "_decode_sync")
        assert arr is not None
        self._reader = ChunkReader(arr, store.dtype, store.stored_dtype, store.encoding,  # type: ignore[attr-defined]
                                   store.path, workers)

    @property
    def local(self) -> bool:
        """True when the array's chunk files are read here (a local array), not fetched from object storage."""
        return self._reader is not None

    @property
    def out_dtype(self) -> np.dtype[Any] | None:
        """The dtype :meth:`read` decodes (or assembles) a block in when given an ``out`` array."""
        if self._remote is not None:
            return self._remote.stored
        return self._reader.out_dtype if self._reader is not None else None

    def read(self, sel: tuple[slice, ...], out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        """The values at ``sel`` (slices with steps of 1), as the array's dtype.

        ``out``: decode into this C-contiguous array (the selection's shape, :attr:`out_dtype`); the
        result is a view of it unless the values needed converting to the array's dtype.
        """
        from ..backends._zarr_safety import zarr_errors

        if self._remote is not None:
            return self._remote.read(sel, out=out)
        assert self._reader is not None
        with zarr_errors(self.store.path, reading_chunks=True):
            return self._reader.read(sel, out=out)

    def drop_behind(self) -> None:
        """Drop the source's pages from the page cache behind the reads (local arrays)."""
        if self._reader is not None:
            self._reader.drop_behind()

    def sample_files(self, n: int) -> list[str]:
        """Paths of up to ``n`` chunk (shard) files spread over the grid (local arrays; absent chunks included)."""
        return self._reader.sample_files(n) if self._reader is not None else []

    def close(self) -> None:
        """Stop the threads."""
        if self._remote is not None:
            self._remote.close()
        if self._reader is not None:
            self._reader.close()
