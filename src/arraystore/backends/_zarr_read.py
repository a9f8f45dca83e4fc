"""Zarr v3 reads done here: chunk files read whole, decoded on threads, straight into the result.

zarr-python reads a selection through its asyncio codec pipeline: one coroutine per
chunk, the uncompressed steps under the GIL, each decoded chunk copied into the
result. :class:`ChunkReader` does the same work with fewer hops, for the arrays and
codecs it covers (:meth:`ChunkReader.for_store` says which; everything else stays
with zarr-python):

* **bytes.** In a local directory store a chunk file is read with one ``preadv`` into
  a buffer of its size (checked to resolve inside the store, as every key is); any
  other zarr store is asked through its own ``get``. A shard touched for at most half
  of its inner chunks has its index and those inner chunks read by byte range, else
  it is read whole, once.
* **safety.** Every chunk (inner chunk) passes the same decompression-bomb check as
  zarr's reads (:func:`~arraystore.backends._zarr_bounds.check_chunk`) before it is
  decoded.
* **decoding.** ``bytes`` followed by ``zstd`` or ``blosc`` (or nothing) is decoded by
  numcodecs with ``out=`` the chunk's place in the result when the chunk lies wholly
  in the selection and that place is contiguous, else into a scratch chunk copied
  from; the decoded size must be the one the stream declares (zstd checks a frame's
  content size itself). Any other chain (``transpose``, ``gzip``, ``crc32c``, ...)
  runs zarr-python's own codecs synchronously (``codec._decode_sync``), so the values
  are zarr-python's. Numcodecs releases the GIL while it decompresses, so
  ``workers`` threads decode in parallel.
* **values.** An absent chunk, or inner chunk, is the fill value; edge chunks are
  stored whole and cut; the result is built in the chunks' own byte order when that
  is the array's dtype, else converted on assignment.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .._selection import Selection
from ..errors import ArrayStoreError, MetadataError
from ._zarr_bounds import BoundedStore, ChunkRule, blosc_truncated, check_chunk, declared_size
from ._zarr_layout import decode

__all__ = ["ChunkReader", "cores", "decode_into", "numcodec_into", "readable_array", "run_bounded"]

_KINDS = frozenset("biufcmM")
_ABSENT = 2**64 - 1
#: Reads smaller than this are decoded on the calling thread.
_THREADED_BYTES = 1 << 20
#: Codecs whose decoder writes into a given buffer and whose stream declares its decoded size.
_INTO = frozenset({"zstd", "blosc"})
#: Stored bytes of chunk (shard) files asked of the kernel ahead of the one being decoded.
READAHEAD_BYTES = 16 << 20
#: Bytes per ``POSIX_FADV_WILLNEED`` call (the kernel reads at most its readahead window, often 128 KiB-8 MiB, per call).
_ADVISE_STEP = 2 << 20

#: Per axis: (unit index, first position, end position) of the selection's positions inside that unit.
Part = tuple[int, int, int]


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def readable_array(arr: Any, stored: np.dtype[Any] | None, direction: str = "_decode_sync") -> bool:
    """True when ``arr`` (a zarr v3 array of numbers, regular grid) has codecs that all run synchronously here."""
    if arr is None or not type(arr).__module__.startswith("zarr") or stored is None:
        return False
    if stored.kind not in _KINDS or stored.names is not None or stored.subdtype is not None:
        return False
    md = arr.metadata
    if getattr(md, "zarr_format", None) != 3 or type(md.chunk_grid).__name__ != "RegularChunkGrid":
        return False
    try:
        split_codecs(md.codecs, direction)
    except (TypeError, ValueError):
        return False
    return True


def split_codecs(codecs: Any, direction: str = "_decode_sync") -> tuple[Any, tuple[Any, ...], tuple[Any, ...],
                                                                        tuple[Any, ...]]:
    """``(sharding codec or None, array->array, (array->bytes,), bytes->bytes)``; ValueError when not ours to run."""
    from zarr.codecs import ShardingCodec
    from zarr.core.codec_pipeline import codecs_from_list

    codecs = tuple(codecs)
    sharding = None
    if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        sharding = codecs[0]
        for ic in sharding.index_codecs:
            if not hasattr(ic, direction):
                raise ValueError("index codec without a synchronous coder")
        codecs = tuple(sharding.codecs)
    aa, ab, bb = codecs_from_list(codecs)
    chain: tuple[Any, ...] = (*aa, ab, *bb)
    for c in chain:
        if isinstance(c, ShardingCodec) or not hasattr(c, direction):
            raise ValueError("codec without a synchronous coder")
    return sharding, tuple(aa), (ab,), tuple(bb)


def plain_codecs(codecs: Any) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]:
    """A codec list as ``(array->array, (array->bytes,), bytes->bytes)``."""
    from zarr.core.codec_pipeline import codecs_from_list

    aa, ab, bb = codecs_from_list(tuple(codecs))
    return tuple(aa), (ab,), tuple(bb)


def run_bounded(pool: ThreadPoolExecutor | None, tasks: Iterator[Callable[[], None]], lookahead: int) -> None:
    """Run ``tasks`` on ``pool`` (inline without one), at most ``lookahead`` queued; the first failure is re-raised."""
    if pool is None:
        for fn in tasks:
            fn()
        return
    pending: deque[Future[None]] = deque()
    try:
        for fn in tasks:
            while len(pending) >= lookahead:
                pending.popleft().result()
            pending.append(pool.submit(fn))
        while pending:
            pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()
        for fut in pending:
            if not fut.cancelled():
                try:
                    fut.result()
                except BaseException:  # the first failure is already propagating
                    pass


def axis_parts(start: int, n: int, step: int, unit: int) -> Iterator[Part]:
    """The units (of ``unit`` positions) holding positions ``start + k*step``, ``0 <= k < n``, with their k range."""
    k = 0
    while k < n:
        i = (start + k * step) // unit
        k_end = min(n, -(-((i + 1) * unit - start) // step))
        yield i, k, k_end
        k = k_end


def _axis(s: slice) -> tuple[int, int, int]:
    """``(start, count, step)`` of a slice with non-negative bounds and a positive (or no) step."""
    start, step = s.start or 0, s.step or 1
    return start, len(range(start, s.stop, step)), step


def numcodec_into(aa: tuple[Any, ...], ab: tuple[Any, ...], bb: tuple[Any, ...]) -> tuple[str, Any] | None:
    """``(name, numcodecs codec or None)`` when the chain is ``bytes`` [+ zstd | blosc]: a chunk decoded by
    :func:`decode_into`; else None."""
    if aa or type(ab[0]).__name__ != "BytesCodec" or len(bb) > 1:
        return None
    if not bb:
        return "bytes", None
    name = str(bb[0].to_dict().get("name", ""))
    inner = getattr(bb[0], "_zstd_codec", None) if name == "zstd" else getattr(bb[0], "_blosc_codec", None)
    if name not in _INTO or inner is None or not hasattr(inner, "decode"):
        return None
    return name, inner


def decode_into(into: tuple[str, Any], data: np.ndarray[Any, Any], flat: np.ndarray[Any, Any]) -> bool:
    """Decode a chunk's stored bytes ``data`` straight into ``flat`` (contiguous bytes of the decoded chunk's size);
    False, with nothing decoded, when the stream declares another size.

    Raises
    ------
    MetadataError
        A ``blosc`` buffer shorter than its header declares (its decoder would not notice).
    """
    name, codec = into
    if name == "bytes":
        if data.size != flat.size:
            return False
        flat[...] = data
        return True
    if name == "blosc":
        why = blosc_truncated(data.data)
        if why is not None:
            raise MetadataError(f"a blosc stream of {why}: the chunk is damaged: rewrite the array from its source")
    if declared_size(name, data.data) != flat.size:
        return False  # zarr's decoder reports what is wrong with it
    codec.decode(data, out=flat)
    return True


class _ZarrSteps:
    """zarr-python's codecs, called synchronously, one chunk's bytes to a numpy chunk (stored dtype)."""

    def __init__(self, codecs: tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]], spec: Any) -> None:
        aa, (ab,), bb = codecs
        self.steps: list[tuple[Any, Any]] = []
        for codec in (*aa, ab, *bb):
            self.steps.append((codec, spec))
            spec = codec.resolve_metadata(spec)

    def __call__(self, data: Any) -> np.ndarray[Any, Any]:
        from zarr.core.buffer.cpu import Buffer

        buf: Any = data if isinstance(data, Buffer) else Buffer.from_array_like(np.asarray(data).view(np.uint8))
        for codec, spec in reversed(self.steps):
            buf = codec._decode_sync(buf, spec)
        return np.asarray(buf.as_numpy_array())


class _Files:
    """Bytes of a local directory store's keys, read with ``preadv`` (checked inside the store)."""

    def __init__(self, bounded: BoundedStore) -> None:
        self.bounded = bounded
        self._scratch = threading.local()
        #: Ask the kernel to drop each range read from the page cache (``POSIX_FADV_DONTNEED``) once read.
        self.drop_behind = False

    def _buffer(self, n: int, reuse: bool) -> np.ndarray[Any, Any]:
        """A buffer of ``n`` bytes: with ``reuse``, this thread's own (valid until its next reuse), else new."""
        if not reuse:
            return np.empty(n, np.uint8)
        buf: np.ndarray[Any, Any] | None = getattr(self._scratch, "buf", None)
        if buf is None or buf.size < n:
            # An eighth more: the next chunk, a few bytes larger, finds it big enough (a new buffer costs the
            # kernel a zeroed page per page touched).
            buf = np.empty(max(n + n // 8, 1 << 16), np.uint8)
            self._scratch.buf = buf
        return buf[:n]

    def advise(self, key: str) -> None:
        """Have the kernel start reading ``key``'s file into the page cache (``POSIX_FADV_WILLNEED``), not waiting.

        Every problem (an absent file, a key outside the store) is left to :meth:`get`, which reports it.
        """
        try:
            path = self.bounded.local_path(key)
            if path is None:
                return
            fd = os.open(path, os.O_RDONLY)
        except (OSError, ArrayStoreError):
            return
        try:
            size = os.fstat(fd).st_size
            for off in range(0, size, _ADVISE_STEP):  # the kernel reads at most its readahead window per call
                os.posix_fadvise(fd, off, min(_ADVISE_STEP, size - off), os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)

    def get(self, key: str, start: int = 0, length: int | None = None, suffix: int | None = None,
            reuse: bool = False) -> np.ndarray[Any, Any] | None:
        """The bytes of ``key`` (a range, a suffix), or None when absent; ``reuse``: in a per-thread buffer."""
        path = self.bounded.local_path(key)
        assert path is not None
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        try:
            return self._read(fd, start, length, suffix, reuse)
        except IsADirectoryError:  # a folder at a chunk's key: absent, as zarr-python reads it
            return None
        finally:
            os.close(fd)

    def _read(self, fd: int, start: int, length: int | None, suffix: int | None, reuse: bool
              ) -> np.ndarray[Any, Any]:
        if length is None or suffix is not None:
            size = os.fstat(fd).st_size
            if suffix is not None:
                start, length = max(0, size - suffix), min(size, suffix)
            else:
                length = max(0, size - start)
        buf = self._buffer(length, reuse)
        got = 0
        while got < length:
            k = os.preadv(fd, [buf[got:].data], start + got)
            if k == 0:
                break
            got += k
        if self.drop_behind and got:
            with contextlib.suppress(OSError):  # advice only
                os.posix_fadvise(fd, start, got, os.POSIX_FADV_DONTNEED)
        return buf[:got]


class _Keys:
    """Bytes of any zarr store's keys, through its async ``get`` on zarr's event loop (checks included)."""

    def __init__(self, zstore: Any) -> None:
        from zarr.core.buffer import default_buffer_prototype

        self.zstore = zstore
        self.prototype = default_buffer_prototype()

    def get(self, key: str, start: int = 0, length: int | None = None, suffix: int | None = None,
            reuse: bool = False) -> np.ndarray[Any, Any] | None:
        """The bytes of ``key`` (a range, a suffix), or None when absent."""
        from zarr.abc.store import RangeByteRequest, SuffixByteRequest
        from zarr.core.sync import sync

        rng: Any = None
        if suffix is not None:
            rng = SuffixByteRequest(suffix)
        elif length is not None:
            rng = RangeByteRequest(start, start + length)
        buf = sync(self.zstore.get(key, self.prototype, rng))
        return None if buf is None else np.asarray(buf.as_numpy_array()).view(np.uint8).reshape(-1)


class ChunkReader:
    """Reads basic selections of a Zarr v3 array by reading and decoding its chunks here (module docstring).

    Parameters
    ----------
    arr
        The open ``zarr.Array``; :func:`readable_array` said yes.
    dtype, stored, encoding
        The array's dtype, the dtype zarr holds it as, and the encoding between them
        (:mod:`arraystore.backends._zarr_layout`).
    where
        How messages name the array.
    workers
        Decoding threads (the pool is made on first need and ended by :meth:`close`).
    local_files
        Read a local directory store's files directly (else through the zarr store).
    """

    def __init__(self, arr: Any, dtype: np.dtype[Any], stored: np.dtype[Any], encoding: str, where: str,
                 workers: int, *, local_files: bool = True) -> None:
        from zarr.codecs.sharding import ShardingCodecIndexLocation
        from zarr.core.array_spec import ArrayConfig
        from zarr.core.buffer import default_buffer_prototype

        md = arr.metadata
        self.where = where
        self.dtype, self.stored, self.encoding = np.dtype(dtype), np.dtype(stored), encoding
        self.shape: tuple[int, ...] = tuple(md.shape)
        self.unit: tuple[int, ...] = tuple(md.chunk_grid.chunk_shape)
        sharding, aa, ab, bb = split_codecs(md.codecs)
        self.sharding = sharding
        spec = md.get_chunk_spec((0,) * len(self.shape), ArrayConfig(order="C", write_empty_chunks=False),
                                 default_buffer_prototype())
        zstore = arr.store_path.store
        bounded = zstore if isinstance(zstore, BoundedStore) else None
        self._rule: ChunkRule | None = None
        self._source: _Files | _Keys
        if local_files and bounded is not None and bounded.local_path(bounded.prefix + "zarr.json") is not None:
            self._source = _Files(bounded)
            self._rule = bounded.rule  # checked here: the files bypass the bounded store's get
        else:
            self._source = _Keys(zstore)
        if sharding is not None:
            self.inner: tuple[int, ...] = tuple(sharding.chunk_shape)
            self._per = tuple(u // c for u, c in zip(self.unit, self.inner))
            spec = sharding._get_chunk_spec(spec)
            self._index = _ZarrSteps(plain_codecs(sharding.index_codecs), sharding._get_index_chunk_spec(self._per))
            self._index_size = int(sharding._shard_index_size(self._per))
            self._index_at_start = sharding.index_location == ShardingCodecIndexLocation.start
        else:
            self.inner = self.unit
        self._chunk_bytes = math.prod(self.inner) * self.stored.itemsize
        self._steps = _ZarrSteps((aa, ab, bb), spec)
        self.disk = self._disk_dtype(ab)
        self._into = numcodec_into(aa, ab, bb)
        self.out_dtype = self.dtype if encoding in ("native", "be") and self.dtype == self.disk else self.stored
        self._fill = np.asarray(md.fill_value, dtype=self.stored)
        prefix = arr.store_path.path
        self._prefix = f"{prefix}/" if prefix else ""
        self._key = md.encode_chunk_key
        self.workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    # -- set-up -------------------------------------------------------------

    def _disk_dtype(self, ab: tuple[Any, ...]) -> np.dtype[Any]:
        """The dtype of the bytes the ``bytes`` codec holds (its endian), else the stored dtype."""
        endian = getattr(getattr(ab[0], "endian", None), "value", None)
        if type(ab[0]).__name__ != "BytesCodec" or self.stored.byteorder == "|" or endian is None:
            return self.stored
        disk: np.dtype[Any] = self.stored.newbyteorder(">" if endian == "big" else "<")
        return disk

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None or self._pid != os.getpid():  # a forked child has none of the parent's threads
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="arraystore-zarr-read")
            self._pid = os.getpid()
        return self._pool

    def drop_behind(self) -> None:
        """From now on, drop the pages of the chunk (shard) files read from the page cache once read (local
        files only): a conversion larger than the memory does not fill the cache with its source."""
        if isinstance(self._source, _Files) and hasattr(os, "posix_fadvise"):
            self._source.drop_behind = True

    def sample_files(self, n: int) -> list[str]:
        """Paths of up to ``n`` chunk (shard) files spread evenly over the grid; none unless read as local files.

        Paths of absent chunks are included (their files do not exist).
        """
        if not isinstance(self._source, _Files) or n <= 0:
            return []
        grid = tuple(-(-s // u) for s, u in zip(self.shape, self.unit))
        total = math.prod(grid)
        count = min(n, total)
        paths: list[str] = []
        for linear in (k * total // count for k in range(count)):
            coords = tuple(int(c) for c in np.unravel_index(linear, grid))
            try:
                path = self._source.bounded.local_path(self._prefix + self._key(coords))
            except ArrayStoreError:
                continue
            if path is not None:
                paths.append(path)
        return paths

    def close(self) -> None:
        """End the decoding threads."""
        if self._pool is not None and self._pid == os.getpid():
            self._pool.shutdown(wait=True)
        self._pool = None

    # -- reading ------------------------------------------------------------

    def read(self, sel: Selection, out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        """The values at ``sel`` (ints and positive-step slices), as the array's dtype and the selection's shape.

        ``out``: decode into this array (C-contiguous, :attr:`out_dtype`, one axis per entry of ``sel``)
        instead of a new one; the result is a view of it when no dtype conversion is needed.
        """
        axes = [(int(s), 1, 1) if isinstance(s, (int, np.integer)) else _axis(s) for s in sel]
        box = tuple(n for _, n, _ in axes)
        if out is None:
            out = np.empty(box, self.out_dtype)
        elif out.shape != box or out.dtype != self.out_dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {self.out_dtype} array of shape {box}, "
                             f"found {out.dtype} {out.shape}")
        if out.size:
            threaded = self.workers > 1 and out.nbytes >= _THREADED_BYTES
            pool = self._threads() if threaded else None
            lookahead = 4 * self.workers  # tasks queued: a thread finishing one never waits for the submitter
            unit_parts = [list(axis_parts(a, n, st, u)) for (a, n, st), u in zip(axes, self.unit)]
            if self.sharding is None:
                def task(parts: tuple[Part, ...]) -> Callable[[], None]:
                    return lambda: self._chunk(parts, axes, out)

                tasks: Iterator[Callable[[], None]] = self._ahead(
                    ((self._unit_key(p), task(p)) for p in itertools.product(*unit_parts)), pool)
            elif pool is None or math.prod(len(p) for p in unit_parts) >= self.workers:
                def shard(parts: tuple[Part, ...]) -> Callable[[], None]:
                    def run() -> None:  # one thread reads a shard and decodes its inner chunks
                        for t in self._shard_tasks([[p] for p in parts], axes, out, reuse=True):
                            t()

                    return run

                unit_size = math.prod(self.unit)
                tasks = self._ahead(
                    ((self._unit_key(p) if 2 * math.prod(k1 - k0 for _, k0, k1 in p) >= unit_size else None, shard(p))
                     for p in itertools.product(*unit_parts)), pool)
            else:  # fewer shards than threads: the inner chunks of each shard decoded in parallel
                tasks = self._shard_tasks(unit_parts, axes, out)
            run_bounded(pool, tasks, lookahead)
        shape = tuple(n for (s, (_, n, _)) in zip(sel, axes) if not isinstance(s, (int, np.integer)))
        return decode(out.reshape(shape), self.dtype, self.encoding)

    def _unit_key(self, parts: tuple[Part, ...]) -> str:
        return f"{self._prefix}{self._key(tuple(i for i, _, _ in parts))}"

    def _ahead(self, items: Iterator[tuple[str | None, Callable[[], None]]],
               pool: ThreadPoolExecutor | None) -> Iterator[Callable[[], None]]:
        """The tasks, with the files of the next :data:`READAHEAD_BYTES` of units (keys not None) asked of the
        kernel before their task is handed out: a decoding thread then finds its file read, and the disk
        works while the threads decode. Only for threaded reads of local files."""
        if pool is None or not isinstance(self._source, _Files):
            yield from (task for _, task in items)
            return
        source = self._source
        window = max(self.workers + 1, READAHEAD_BYTES // max(1, math.prod(self.unit) * self.stored.itemsize))
        queued: deque[Callable[[], None]] = deque()
        for key, task in items:
            if key is not None:
                source.advise(key)
            queued.append(task)
            if len(queued) > window:
                yield queued.popleft()
        yield from queued

    def _chunk(self, parts: tuple[Part, ...], axes: list[tuple[int, int, int]], out: np.ndarray[Any, Any]) -> None:
        coords = tuple(i for i, _, _ in parts)
        data = self._source.get(self._prefix + self._key(coords), reuse=True)  # decoded before the next get
        if data is not None and self._rule is not None:
            check_chunk(data.data, self._rule, f"{self.where}: chunk {self._key(coords)!r}")
        self._place(coords, self.unit, parts, axes, data, out)

    def _place(self, coords: tuple[int, ...], shape: tuple[int, ...], parts: tuple[Part, ...],
               axes: list[tuple[int, int, int]], data: np.ndarray[Any, Any] | None, out: np.ndarray[Any, Any]) -> None:
        """Decode one chunk's bytes (``None``: absent) into its part of ``out``."""
        dst = tuple(slice(k0, k1) for _, k0, k1 in parts)
        if data is None:
            out[dst] = self._fill
            return
        origin = [c * u for c, u in zip(coords, shape)]
        src = tuple(slice(a + k0 * st - o, a + (k1 - 1) * st - o + 1, st)
                    for (_, k0, k1), (a, _, st), o in zip(parts, axes, origin))
        whole = all(s.step == 1 and s.start == 0 and s.stop == c for s, c in zip(src, shape))
        if whole and self._into is not None and out.dtype == self.disk:
            target = out[dst + (Ellipsis,)]  # a view, also of a 0-d array
            if target.flags.c_contiguous and self._decode_into(data, target):
                return
        chunk = self._decode(data, shape)
        out[dst] = chunk[src]

    def _decode_into(self, data: np.ndarray[Any, Any], target: np.ndarray[Any, Any]) -> bool:
        """Decode straight into ``target`` (a contiguous chunk-sized array); False when the stream says another size."""
        assert self._into is not None
        return decode_into(self._into, data, target.reshape(-1).view(np.uint8))

    def _decode(self, data: np.ndarray[Any, Any], shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
        """One chunk's values (logical chunk shape)."""
        if self._into is not None:
            scratch = np.empty(shape, self.disk)
            if self._decode_into(data, scratch):
                return scratch
        return self._steps(data).reshape(shape)

    # -- shards -------------------------------------------------------------

    def _shard_tasks(self, unit_parts: list[list[Part]], axes: list[tuple[int, int, int]],
                     out: np.ndarray[Any, Any], reuse: bool = False) -> Iterator[Callable[[], None]]:
        """Per shard (read here, on the calling thread): one decoding task per inner chunk the selection touches.

        ``reuse``: the shard is read into the thread's own buffer, so its tasks must run on this
        thread before the next shard is read.
        """
        n_inner = math.prod(self._per)
        for parts in itertools.product(*unit_parts):
            coords = tuple(i for i, _, _ in parts)
            inner_parts = [
                [(j, k0 + a, k0 + b) for j, a, b in axis_parts(ax + k0 * st, k1 - k0, st, c)]
                for (_, k0, k1), (ax, _, st), c in zip(parts, axes, self.inner)
            ]
            touched = math.prod(len(p) for p in inner_parts)
            key = self._prefix + self._key(coords)
            whole = touched * 2 > n_inner or isinstance(self._source, _Keys)
            data = self._source.get(key, reuse=reuse) if whole else None
            if whole and data is None:
                for ip in itertools.product(*inner_parts):
                    self._place(tuple(j for j, _, _ in ip), self.inner, ip, axes, None, out)
                continue
            if whole:
                assert data is not None
                if self._rule is not None:
                    check_chunk(data.data, self._rule, f"{self.where}: chunk {self._key(coords)!r}")
                index = self._index_of(data, key, len(data))
            else:
                raw_index = self._source.get(key, 0, self._index_size) if self._index_at_start else \
                    self._source.get(key, suffix=self._index_size)
                if raw_index is None:
                    for ip in itertools.product(*inner_parts):
                        self._place(tuple(j for j, _, _ in ip), self.inner, ip, axes, None, out)
                    continue
                index = self._index_of(raw_index, key, None)
            for ip in itertools.product(*inner_parts):
                yield self._inner_task(key, coords, ip, index, data, axes, out)

    def _index_of(self, data: np.ndarray[Any, Any], key: str, size: int | None) -> np.ndarray[Any, Any]:
        """The shard index (``per + (2,)`` of uint64) from the shard's bytes (``size`` given) or the index's own."""
        from ..errors import MetadataError

        if size is not None:
            if size < self._index_size:
                raise MetadataError(f"{self.where}: shard {key!r} has {size} bytes, fewer than its "
                                    f"{self._index_size}-byte index; the shard is damaged: rewrite the array")
            data = data[: self._index_size] if self._index_at_start else data[size - self._index_size:]
        elif data.size != self._index_size:
            raise MetadataError(f"{self.where}: shard {key!r} is shorter than its {self._index_size}-byte index; "
                                "the shard is damaged: rewrite the array")
        return self._index(np.ascontiguousarray(data)).reshape(*self._per, 2)

    def _inner_task(self, key: str, coords: tuple[int, ...], ip: tuple[Part, ...], index: np.ndarray[Any, Any],
                    shard: np.ndarray[Any, Any] | None, axes: list[tuple[int, int, int]],
                    out: np.ndarray[Any, Any]) -> Callable[[], None]:
        def run() -> None:
            from ..errors import MetadataError

            inner = tuple(j for j, _, _ in ip)
            local = tuple(j - c * p for j, c, p in zip(inner, coords, self._per))
            offset, length = (int(v) for v in index[local])
            if offset == _ABSENT and length == _ABSENT:
                self._place(inner, self.inner, ip, axes, None, out)
                return
            if shard is not None:
                if offset + length > shard.size:
                    raise MetadataError(f"{self.where}: the index of shard {key!r} points past its end; the shard "
                                        "is damaged: rewrite the array from its source")
                data: np.ndarray[Any, Any] | None = shard[offset: offset + length]
            else:
                data = self._source.get(key, offset, length, reuse=True)
                if data is None or data.size != length:
                    raise MetadataError(f"{self.where}: the index of shard {key!r} points past its end; the shard "
                                        "is damaged: rewrite the array from its source")
                if self._rule is not None and self._rule.shard is not None:
                    check_chunk(data.data, self._rule.shard.inner, f"{self.where}: chunk {key!r}")
            self._place(inner, self.inner, ip, axes, data, out)

        return run
