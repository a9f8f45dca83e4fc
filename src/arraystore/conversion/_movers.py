"""How blocks move: as arrays (``src[sel]`` / ``dst[sel] = block``), as byte ranges (``pread``/``pwrite``,
``copy_file_range``), or as chunks compressed here and written with HDF5's ``write_direct_chunk``.

A mover reads a block, writes it, reads it back for resume, and says whether a
journaled block still matches the source. :class:`~arraystore.conversion._run._Conversion`
picks the mover from the plan's method.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Container
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

import numpy as np

from ..checksums import StreamHasher, block_digest, block_digester
from ..errors import ArrayStoreError, NotMemoryMappableError
from ..store import ArrayStore
from ._fastpath import (
    COLD_SHARE,
    WINDOW,
    CacheRegime,
    DropBehindWriter,
    available_memory,
    cache_regime,
    copy_range,
    drop_cache,
    pread_into,
    pwrite_all,
    reserve,
    resident_share,
    settle_close_flush,
)
from ._hdf5_direct import DirectChunkReader, direct_pipeline
from ._plan import ConversionPlan
from ._zarr_direct import ZarrChunkReader, ZarrChunkWriter, zarr_readable_array

if TYPE_CHECKING:
    from ._report import ConversionReport

__all__ = [
    "BAND_MAX", "COPY_BUFFERS", "COPY_STREAMS", "HASH_PIECE", "RING_PIECE", "RING_SLOTS",
    "BlockBuffers", "BlockMover", "ByteMover", "DirectChunkMover", "PieceRing", "Progress", "StreamedBlock", "byte_range",
    "copies_through_ring", "hash_pieces", "huge_page_aligned", "mapped_region", "progress_bar", "reads_chunks",
    "row_bands",
]

Progress = Callable[[int, int], Any]

#: Buffers of an overlapped buffered copy (one being read, one being written).
COPY_BUFFERS = 2

#: Bytes of a kernel-copied block read back at once for hashing: the buffer stays in the CPU cache. Measured on
#: the 2-core VM against hashing a read-only map of each 64 MiB block: the two hashes alone 0.054 against 0.066
#: CPU s per 512 MiB (the map's page faults and unmapping cost more than the copy into the buffer), a whole
#: cached 512 MiB conversion 0.223 against 0.237; and a source that shrinks is an EOFError, not a SIGBUS.
HASH_PIECE = 1024 * 1024

#: What :meth:`ByteMover.read` returns for a kernel copy: the bytes stayed in the kernel (and were hashed).
_NO_BYTES: np.ndarray[Any, Any] = np.empty(0, np.uint8)

#: Kernel copies in flight at once from a source read from the disk (at most one per worker).
COPY_STREAMS = 2

#: Bytes of a piece of a copy through a ring of buffers (:class:`PieceRing`): read, written and hashed while in the
#: CPU cache (L2 and the shared L3 of the 2-core VM hold a few).
RING_PIECE = 2 * 1024 * 1024

#: Buffers of a :class:`PieceRing`: the piece being read and written, and those the second thread still hashes.
RING_SLOTS = 4


#: Chunk (shard) files of a decoded source whose page-cache residency stands for the whole source's.
SAMPLED_FILES = 16


def files_resident_share(paths: list[str]) -> float | None:
    """The share of the bytes of ``paths`` in the page cache (each file sampled, :func:`resident_share`), weighted
    by size; None when no file could be looked at (absent files are skipped) or where it cannot be known."""
    resident = total = 0.0
    probes = max(2, 32 // max(1, len(paths)))  # about 32 windows in all
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            size = os.fstat(fd).st_size
            share = resident_share(fd, 0, size, probes) if size else None
        finally:
            os.close(fd)
        if share is not None:
            resident += share * size
            total += size
    return resident / total if total else None


def byte_range(sel: tuple[slice, ...], shape: tuple[int, ...], order: str, itemsize: int) -> tuple[int, int] | None:
    """``(offset, nbytes)`` of a block in a contiguous array's storage, or None when it is not one run."""
    if not shape:
        return 0, itemsize
    s, sh = (sel[::-1], shape[::-1]) if order == "F" else (sel, shape)
    lens = [x.stop - x.start for x in s]
    partial = [j for j in range(len(sh)) if lens[j] != sh[j]]
    p = partial[-1] if partial else 0
    if any(lens[j] != 1 for j in range(p)):
        return None
    linear = 0
    for start, n in zip((x.start for x in s), sh):
        linear = linear * n + start
    return linear * itemsize, math.prod(lens) * itemsize


class _OneByteRange(Protocol):
    """What a ``memory_mappable`` store has: its data file and the data's offset in it."""

    @property
    def data_file(self) -> str: ...

    @property
    def offset(self) -> int: ...


def mapped_region(store: ArrayStore) -> tuple[str, int] | None:
    """``(file, offset)`` of a store's data when it is one contiguous uncompressed byte range."""
    if not store.supports_memmap or store.nbytes == 0:
        return None
    if type(store).memory_mappable:  # known without mapping the file (we pread/pwrite it)
        mapped = cast(_OneByteRange, store)
        return mapped.data_file, mapped.offset
    try:
        mm = store.as_memmap()
    except (NotMemoryMappableError, ArrayStoreError):
        return None
    if mm.filename is None:
        return None
    return str(mm.filename), int(mm.offset)


def progress_bar(progress: Progress | bool | None, total: int) -> Callable[[int, int], Any]:
    if callable(progress):
        return progress
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, dynamic_ncols=True, leave=True)

        def update(done: int, _total: int) -> None:
            bar.update(done - bar.n)
            if done >= _total:
                bar.close()

        return update
    return lambda done, total: None


class BlockBuffers:
    """Block buffers used again once their block is written.

    A fresh block-sized buffer costs the kernel a zeroed page for every page touched
    (``clear_page`` was a sixth of a Zarr conversion's CPU time); a conversion reads
    into buffers taken here and gives each back (:meth:`give_back`) when its block's
    write has finished, so at most as many buffers exist as blocks were alive at once
    (what the plan counts), and none is written into while a writer still reads it.
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._free: list[np.ndarray[Any, Any]] = []
        self._lent: dict[int, np.ndarray[Any, Any]] = {}
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> np.ndarray[Any, Any]:
        """A buffer of ``nbytes`` bytes (uint8), lent until :meth:`give_back`."""
        with self._lock:
            for k, buf in enumerate(self._free):
                if buf.size >= nbytes:
                    del self._free[k]
                    break
            else:
                buf = np.empty(max(nbytes, self.size), np.uint8)
            self._lent[id(buf)] = buf
        return buf[:nbytes]

    def give_back(self, block: np.ndarray[Any, Any]) -> None:
        """Return the buffer under ``block`` (a view of a lent one; anything else is ignored)."""
        root: Any = block
        while isinstance(root.base, np.ndarray):
            root = root.base
        with self._lock:
            buf = self._lent.pop(id(root), None)
            if buf is not None:
                self._free.append(buf)

    def clear(self) -> None:
        """Drop every buffer."""
        with self._lock:
            self._free.clear()
            self._lent.clear()


def reads_chunks(src: ArrayStore, src_region: tuple[str, int] | None) -> bool:
    """True when a :class:`BlockMover` reads ``src`` by decoding its chunks here (a Zarr array, deflated HDF5)."""
    if src_region is not None:
        return False
    return zarr_readable_array(src, "_decode_sync") is not None or direct_pipeline(src, src.dtype) is not None


class BlockMover:
    """Blocks as arrays: ``src[sel]`` (or a pread for byte-range sources), ``dst[sel] = block`` (or a pwrite)."""

    def __init__(self, src: ArrayStore, dst: ArrayStore, plan: ConversionPlan,
                 src_region: tuple[str, int] | None, dst_region: tuple[str, int] | None, *,
                 durable: bool = False, workers: int = 1, chunk_files: bool = False) -> None:
        self.src, self.dst, self.plan = src, dst, plan
        self.workers = workers
        # A Zarr source (not a byte range) whose chunks we can decode: fetched and decoded on ``workers`` threads.
        self._chunk_reader: ZarrChunkReader | DirectChunkReader | None = None
        if src_region is None and zarr_readable_array(src, "_decode_sync") is not None:
            self._chunk_reader = ZarrChunkReader(src, workers, fetch_bytes=plan.blocks.block_bytes, blocks=plan.blocks)
        elif src_region is None and (deflated := direct_pipeline(src, src.dtype)) is not None:
            self._chunk_reader = DirectChunkReader(src, deflated[0], workers)
        self.dtype = src.dtype
        self._src_region = src_region
        self._src_fd = os.open(self._src_region[0], os.O_RDONLY) if self._src_region else None
        self.source_cold = self._source_cold()
        self.regime: CacheRegime = cache_regime(plan.nbytes, available_memory(), durable, self.source_cold,
                                                decoded=self._chunk_reader is not None and dst_region is not None,
                                                chunk_files=chunk_files)
        self._drop = self.regime == "drop-behind"  # outputs that fit in memory leave the page cache alone
        if self._drop and isinstance(self._chunk_reader, ZarrChunkReader):
            self._chunk_reader.drop_behind()
        self._dst_region = dst_region
        self._dst_fd = os.open(self._dst_region[0], os.O_RDWR) if self._dst_region else None
        self._writer = (DropBehindWriter(self._dst_fd, enabled=self.regime != "page-cache", drop=self._drop)
                        if self._dst_fd is not None else None)
        self._buffers = BlockBuffers(plan.blocks.block_bytes)
        #: True when :meth:`write` puts every block into the destination's file itself (``pwrite``): a block is
        #: in the file (the page cache) when its write returns, with no flush of the destination needed.
        self.writes_file = self._dst_fd is not None and type(self).write is BlockMover.write and all(
            byte_range(sel, dst.shape, dst.order, dst.dtype.itemsize) is not None for sel in plan.blocks)

    def _source_cold(self) -> bool:
        """True when the source is mostly not in the page cache (its reads will go to the disk): a byte range,
        or the files of a source whose chunks are decoded here (a sample of them)."""
        if self.plan.nbytes < WINDOW:
            return False
        if self._chunk_reader is not None:
            share = files_resident_share(self._chunk_reader.sample_files(SAMPLED_FILES))
        elif self._src_fd is not None and self._src_region is not None:
            share = resident_share(self._src_fd, self._src_region[1], self.src.nbytes)
        else:
            return False
        return share is not None and share < COLD_SHARE

    #: True when :meth:`read` feeds the content checksum itself (the conversion then does not).
    hashes_stream = False
    #: True when :meth:`hash_stream` may be called: :meth:`read` then feeds each block to the checksum in order.
    #: A mover that takes its hasher when built (:class:`ByteMover`) says False.
    streams_hash: ClassVar[bool] = True

    def describe(self, report: ConversionReport) -> None:
        """Add what ``report`` says of how the blocks move (its notes, its memory estimate), before they move."""
        notes = report.plan.setdefault("notes", [])
        notes.append(f"page cache: {self.regime}")
        if self.reads_chunks:
            notes.append(f"source chunks fetched and decoded here on {self.workers} threads")

    def account(self, report: ConversionReport) -> None:
        """Add what ``report`` says once every block moved."""

    @property
    def reads_chunks(self) -> bool:
        """True when source blocks are read by decoding the source's chunks here (a Zarr source)."""
        return self._chunk_reader is not None

    def as_array(self, data: np.ndarray[Any, Any], sel: tuple[slice, ...]) -> np.ndarray[Any, Any]:
        return data

    def hash_stream(self, hasher: StreamHasher) -> None:
        """Feed the content checksum in :meth:`read`, each block in the same pass as its digest.

        Both hashes then read each :data:`HASH_PIECE` piece of the block while it is in the CPU cache,
        where hashing the whole block twice reads it from memory twice. The conversion calls this
        when the blocks are read in C order, one at a time (the read ahead starts block ``i + 1``
        once block ``i`` was taken), and checks the bytes hashed after every block.
        """
        self._hasher = hasher
        self.hashes_stream = True

    _hasher: StreamHasher | None = None

    def read(self, sel: tuple[slice, ...]) -> tuple[np.ndarray[Any, Any], str]:
        """Block ``sel`` of the source, in a buffer lent until :meth:`written` is called with it, and its digest."""
        block = self._read_src(sel, pooled=True)
        return block, self._digest(block)

    def _digest(self, block: np.ndarray[Any, Any]) -> str:
        """The block's journal digest (in the source's order: no reordering copy), fed to the content checksum too."""
        order = self.plan.order
        if self._hasher is None:
            return block_digest(block, order)
        ordered = block.T if order == "F" else block  # a streamed plan: the same bytes as the block's C order
        if not ordered.flags.c_contiguous:
            self._hasher.update(block)
            return block_digest(block, order)
        flat = ordered.reshape(-1).view(np.uint8)
        digest = block_digester()
        for lo in range(0, flat.size, HASH_PIECE):
            piece = flat[lo : lo + HASH_PIECE]
            digest.update(piece)
            self._hasher.update(piece)
        return str(digest.hexdigest())

    def hashed_after(self, i: int, hasher: StreamHasher) -> int:
        """Bytes of the content checksum's stream hashed when block ``i`` (just read) ended."""
        return hasher.nbytes

    def written(self, block: np.ndarray[Any, Any]) -> None:
        """``block`` (from :meth:`read`) is written and hashed: its buffer may take another block."""
        self._buffers.give_back(block)

    def _read_src(self, sel: tuple[slice, ...], pooled: bool = False) -> np.ndarray[Any, Any]:
        src = self.src
        shape = tuple(s.stop - s.start for s in sel)
        rng = byte_range(sel, src.shape, src.order, src.dtype.itemsize) if self._src_fd is not None else None
        if rng is None or self._src_region is None or self._src_fd is None:
            if self._chunk_reader is not None:
                reader = self._chunk_reader
                out_dtype = reader.out_dtype if pooled else None
                if out_dtype is None:
                    return reader.read(sel)
                out = self._buffers.take(math.prod(shape) * out_dtype.itemsize).view(out_dtype).reshape(shape)
                block = reader.read(sel, out=out)
                if not np.may_share_memory(block, out):  # converted to the array's dtype: the buffer is free again
                    self._buffers.give_back(out)
                return block
            return np.asarray(src[sel])
        off, n = rng
        count = math.prod(shape)
        flat = (self._buffers.take(n).view(src.dtype) if pooled else np.empty(count, src.dtype))
        pread_into(self._src_fd, flat.view(np.uint8).data, self._src_region[1] + off)
        if self._drop:
            drop_cache(self._src_fd, self._src_region[1] + off, n)
        return flat.reshape(shape, order=src.order)  # type: ignore[call-overload, no-any-return]

    def read_back(self, sel: tuple[slice, ...]) -> tuple[np.ndarray[Any, Any], str]:
        block = np.asarray(self.dst[sel])
        return block, block_digest(block, self.plan.order)

    def same_as_source(self, sel: tuple[slice, ...], data: np.ndarray[Any, Any]) -> bool:
        order = self.plan.order
        return bool(block_digest(self._read_src(sel), order) == block_digest(data, order))

    def write(self, i: int, sel: tuple[slice, ...], block: np.ndarray[Any, Any], digest: str) -> tuple[int, int, str]:
        dst = self.dst
        rng = byte_range(sel, dst.shape, dst.order, dst.dtype.itemsize) if self._dst_fd is not None else None
        if rng is not None and self._dst_region is not None and self._dst_fd is not None and self._writer is not None:
            flat = np.ravel(block, order=dst.order)  # type: ignore[arg-type]
            pwrite_all(self._dst_fd, flat.view(np.uint8).data, self._dst_region[1] + rng[0], dst.path)
            self._writer.wrote(self._dst_region[1] + rng[0], rng[1])
        else:
            dst[sel] = block
        return i, block.nbytes, digest

    def finish(self) -> None:
        self._buffers.clear()
        if self._chunk_reader is not None:
            self._chunk_reader.close()
        if self._writer is not None:
            self._writer.finish()
        for fd in (self._src_fd, self._dst_fd):
            if fd is not None:
                os.close(fd)
        self._src_fd = self._dst_fd = None


class ChunkWriter(Protocol):
    """Writes whole-chunk blocks itself (:class:`DirectChunkWriter`, :class:`ZarrChunkWriter`)."""

    def write(self, sel: tuple[slice, ...], block: np.ndarray[Any, Any]) -> None: ...

    def close(self) -> None: ...


#: Largest band of chunk rows read, hashed and compressed at once by a :class:`DirectChunkMover` (see its docstring).
BAND_MAX = 16 * 1024 * 1024


#: Bytes of a transparent huge page (x86-64, arm64 with 4 KiB pages).
HUGE_PAGE = 2 * 1024 * 1024


def row_bands(sel: tuple[slice, ...], band_rows: int,
              store: ArrayStore) -> list[tuple[tuple[slice, ...], int, int]] | None:
    """``(band, offset, bytes)`` in ``store``'s layout of each band of ``band_rows`` rows of block ``sel``; None
    without bands, or for a block narrower than the array (a band of it is not one byte range)."""
    if not band_rows or not sel:
        return None
    if any(s.start != 0 or s.stop != n for s, n in zip(sel[1:], store.shape[1:])):
        return None
    bands = []
    for lo in range(sel[0].start, sel[0].stop, band_rows):
        band = (slice(lo, min(lo + band_rows, sel[0].stop)), *sel[1:])
        rng = byte_range(band, store.shape, store.order, store.dtype.itemsize)
        if rng is None:
            return None
        bands.append((band, *rng))
    return bands


def hash_pieces(data: np.ndarray[Any, Any], digest: Any, hasher: StreamHasher | None) -> None:
    """Feed a band's bytes to its block's digest and to the content checksum, a cache-sized piece at a time."""
    for lo in range(0, data.size, HASH_PIECE):
        piece = data[lo : lo + HASH_PIECE]
        digest.update(piece)
        if hasher is not None:
            hasher.update(piece)


def huge_page_aligned(nbytes: int) -> np.ndarray[Any, Any]:
    """``nbytes`` bytes starting on a huge page boundary: numpy asks for huge pages for buffers of 4 MiB and more,
    and a band buffer so aligned is backed by them whole (paired 512 MiB zstd:3 conversions on the 2-core VM: 1.13
    against 1.20 user CPU s per GiB of random float32 with buffers as numpy places them)."""
    if nbytes < HUGE_PAGE:
        return np.empty(nbytes, np.uint8)
    raw = np.empty(nbytes + HUGE_PAGE, np.uint8)
    return raw[-raw.ctypes.data % HUGE_PAGE :][:nbytes]


class StreamedBlock:
    """What a mover's ``read`` returns for a block streamed in bands (:class:`DirectChunkMover`, the band reader):
    their writes, under way."""

    def __init__(self, nbytes: int, writes: list[Future[None]]) -> None:
        self.nbytes = nbytes
        self.writes = writes

    def wait(self) -> None:
        """Wait for every band's write; the first failure is raised once all have ended."""
        error: BaseException | None = None
        for fut in self.writes:
            try:
                fut.result()
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error


class DirectChunkMover(BlockMover):
    """Blocks whose chunks are encoded on a pool and written by us: a deflated HDF5 dataset
    (``write_direct_chunk``), a Zarr array (whole chunk objects).

    A byte-range source in the page cache (C order) into unsharded local Zarr chunk files is
    streamed: :meth:`read` reads each band of the block's chunk rows (``pread``) into one of
    ``workers + 2`` band buffers used again, feeds it to the block's digest and the content
    checksum while it is in the CPU cache, and hands it at once to the chunk threads, which
    compress it before it leaves the cache and give the buffer back; :meth:`write` waits for
    the block's bands, so a block is journaled once its chunk files are written, as before.
    A whole block read into a fresh block buffer, hashed, then compressed later read each byte
    from memory three times (and faulted in the block buffers).
    """

    def __init__(self, src: ArrayStore, dst: ArrayStore, plan: ConversionPlan, src_region: tuple[str, int] | None,
                 dst_region: tuple[str, int] | None, direct: ChunkWriter, *, durable: bool = False,
                 workers: int = 1) -> None:
        super().__init__(src, dst, plan, src_region, dst_region, durable=durable, workers=workers,
                         chunk_files=isinstance(direct, ZarrChunkWriter))
        self._direct = direct
        if isinstance(direct, ZarrChunkWriter):  # chunk files start their write-back as the regime says
            direct.writeback = self.regime != "page-cache"
        self._band_rows = 0
        self._free_bands: queue.SimpleQueue[np.ndarray[Any, Any]] = queue.SimpleQueue()
        slots = max(1, workers) + 2
        if (isinstance(direct, ZarrChunkWriter) and direct.takes_bands and self._src_fd is not None
                and self.regime == "page-cache" and not self.source_cold and plan.compression is not None
                and src.order == "C" and plan.order == "C" and src.ndim >= 1):
            band = direct.unit[0] * math.prod(src.shape[1:]) * src.dtype.itemsize
            # As many bands as the plan counts blocks being read and written (the reader's, the read-ahead's, one
            # per writer), each at most a block: within the memory budget, and no block buffer is taken.
            if 0 < band <= min(BAND_MAX, plan.blocks.block_bytes):
                self._band_rows = direct.unit[0]
                for _ in range(slots):
                    self._free_bands.put(huge_page_aligned(band))
        before_write = getattr(dst, "_before_write", None)  # sets the "incomplete" flag of in-place datasets
        if before_write is not None:
            before_write()

    @property
    def streams_bands(self) -> bool:
        """True when blocks are read, hashed and compressed in bands of chunk rows (see the class docstring)."""
        return self._band_rows > 0

    def describe(self, report: ConversionReport) -> None:
        super().describe(report)
        if self.streams_bands:
            report.plan["notes"].append(f"chunk rows read, hashed and compressed in bands of {self._band_rows} rows")

    def _bands(self, sel: tuple[slice, ...]) -> list[tuple[tuple[slice, ...], int, int]] | None:
        """``(band, source offset, bytes)`` of each band of chunk rows of block ``sel``, or None when not streamed."""
        return row_bands(sel, self._band_rows, self.src) if self.streams_bands else None

    def read(self, sel: tuple[slice, ...]) -> tuple[Any, str]:
        bands = self._bands(sel)
        if bands is None:
            return super().read(sel)
        assert self._src_fd is not None and self._src_region is not None and isinstance(self._direct, ZarrChunkWriter)
        digest = block_digester()
        writes: list[Future[None]] = []
        src = self.src
        for band, off, n in bands:
            buf = self._free_bands.get()  # a band's buffer comes back once its chunks are written
            try:
                view = buf[:n]
                pread_into(self._src_fd, view.data, self._src_region[1] + off)
                self._hash_band(view, digest)
                values = view.view(src.dtype).reshape(tuple(s.stop - s.start for s in band))
            except BaseException:
                self._free_bands.put(buf)
                raise
            writes.append(self._direct.submit(band, values, self._giver(buf)))
        return StreamedBlock(sum(n for _, _, n in bands), writes), str(digest.hexdigest())

    def _hash_band(self, view: np.ndarray[Any, Any], digest: Any) -> None:
        hash_pieces(view, digest, self._hasher)

    def _giver(self, buf: np.ndarray[Any, Any]) -> Callable[[], None]:
        """What gives ``buf`` back to the band buffers once its chunks are written."""
        return lambda: self._free_bands.put(buf)

    def written(self, block: Any) -> None:
        if not isinstance(block, StreamedBlock):
            super().written(block)

    def write(self, i: int, sel: tuple[slice, ...], block: Any, digest: str) -> tuple[int, int, str]:
        if isinstance(block, StreamedBlock):
            block.wait()
        else:
            self._direct.write(sel, block)
        return i, block.nbytes, digest

    def finish(self) -> None:
        try:
            self._direct.close()
        finally:
            super().finish()


def copies_through_ring(source_cold: bool) -> bool:
    """True when a same-layout copy goes through a :class:`PieceRing` rather than ``copy_file_range``: a source in
    the page cache. One read from the disk is copied in the kernel, two streams at once: through the ring (even
    with the next block advised ``WILLNEED``) the 2-core VM gave 0.44-1.84x the kernel copy's time, cold 1 GiB
    under load averages of 8-13, where the cached copy was consistently faster (0.6x, 512 MiB)."""
    return not source_cold


class PieceRing:
    """Copies byte ranges through a ring of :data:`RING_SLOTS` cache-sized buffers, hashed on a second thread.

    The copying thread reads a :data:`RING_PIECE` piece into the next free buffer
    (``preadv``), hands it to the hashing thread and writes it (``pwritev``) while it is
    hashed; a buffer is read into again once its piece is hashed. Each byte crosses
    memory once on its way in and once on its way out, as in the kernel's own copy, and
    the hashing runs on the other core. Unlike ``copy_file_range`` (whose splice moves
    page-sized pieces 64 KiB at a time) the writes are large whatever the two files'
    offsets: a ``.npy`` header of 128 bytes puts every page of the kernel's copy across
    two pages of the other file, and on the 2-core VM a cached 512 MiB copy then took
    1.5-2x as long as through the ring.
    """

    def __init__(self, hasher: StreamHasher | None) -> None:
        self._hasher = hasher
        self._slots = [np.empty(RING_PIECE, np.uint8) for _ in range(RING_SLOTS)]
        self._turn = 0
        self._free = threading.Semaphore(RING_SLOTS)
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._hash_pieces, name="arraystore-hash", daemon=True)
        self._thread.start()

    def _hash_pieces(self) -> None:
        while (item := self._work.get()) is not None:
            if isinstance(item, threading.Event):  # the block's pieces before it are hashed
                item.set()
                continue
            piece, digest = item
            try:
                if self._error is None:
                    digest.update(piece)
                    if self._hasher is not None:
                        self._hasher.update(piece)
            except BaseException as exc:  # raised by copy() on the copying thread
                self._error = exc
            finally:
                self._free.release()

    def copy(self, src_fd: int, src_off: int, dst_fd: int, dst_off: int, nbytes: int, path: str) -> str:
        """Copy ``nbytes`` and return their digest (:func:`~arraystore.checksums.block_digester`), also fed to
        the stream hasher; a short source raises ``EOFError``, a full disk ``StorageFullError``."""
        digest = block_digester()
        try:
            for lo in range(0, nbytes, RING_PIECE):
                self._free.acquire()
                piece = self._slots[self._turn][: min(RING_PIECE, nbytes - lo)]
                self._turn = (self._turn + 1) % RING_SLOTS
                try:
                    pread_into(src_fd, piece.data, src_off + lo)
                except BaseException:
                    self._free.release()
                    raise
                self._work.put((piece, digest))
                pwrite_all(dst_fd, piece.data, dst_off + lo, path)
        finally:
            hashed = threading.Event()
            self._work.put(hashed)
            hashed.wait()
        if self._error is not None:
            raise self._error
        return str(digest.hexdigest())

    def close(self) -> None:
        """Stop the hashing thread (its queued pieces are hashed first)."""
        if self._thread.is_alive():
            self._work.put(None)
            self._thread.join()


class ByteMover(BlockMover):
    """Same bytes, same layout: blocks are byte ranges, copied in the kernel or through buffers.

    ``"kernel-copy"``: a source in the page cache is copied through a :class:`PieceRing`
    (:func:`copies_through_ring`), each block's pieces hashed on the ring's thread while
    they are written. A source read from the disk is copied in the kernel (``copy_file_range``,
    :func:`copy_range`) on a thread, ahead of the reader: block ``k + 1`` is copied while
    block ``k`` is hashed. A source read from the disk (:attr:`source_cold`) is copied by
    :data:`COPY_STREAMS` threads at once (two sequential streams keep the disk reading
    while one waits); from the page cache one thread copies, as copies into one file
    serialise on its inode lock. :meth:`read` waits for its block's copy, then hashes
    the source's pages the copy just brought into the page cache: read back in
    :data:`HASH_PIECE` pieces into one buffer that stays in the CPU cache, each piece
    fed to the block's journal digest and to the conversion's content checksum
    (``hasher``, in order). :meth:`write` (on the conversion's writer thread) retires
    the block: write-back started (and, in the drop-behind regime, waited for one
    window later, the pages dropped). Blocks already journaled (``done``) are not
    copied ahead.

    ``"buffered-copy"`` (no kernel copy on this platform): reads go into
    :data:`COPY_BUFFERS` buffers in turn, so the source read of block ``k + 1`` runs while
    block ``k`` is written by the writer thread (the buffer being read is never the one
    being written). Reads of the destination (resume) use a buffer of their own.
    """

    def __init__(self, src: ArrayStore, dst: ArrayStore, plan: ConversionPlan,
                 src_region: tuple[str, int] | None, dst_region: tuple[str, int] | None, *,
                 durable: bool = False, workers: int = 1, done: Container[int] = (),
                 hasher: StreamHasher | None = None) -> None:
        super().__init__(src, dst, plan, src_region, dst_region, durable=durable, workers=workers)
        assert self._src_region is not None and self._dst_region is not None and self._dst_fd is not None
        reserve(self._dst_fd, self._dst_region[1], plan.nbytes, dst.path)
        settle_close_flush(self._dst_region[0])
        kernel = plan.method == "kernel-copy"
        size = plan.blocks.block_bytes if not kernel else min(HASH_PIECE, plan.blocks.block_bytes)
        self._bufs = [np.empty(size, np.uint8) for _ in range(COPY_BUFFERS if not kernel else 1)]
        self._turn = 0
        self.copy_call: str | None = None if kernel else "preadv/pwritev"
        self._hasher = hasher if kernel else None
        #: True when :meth:`read` feeds the content checksum itself (it returns no bytes).
        self.hashes_stream = self._hasher is not None
        self._done = done
        self._order: list[tuple[int, int]] = []  # kernel copies: every block's byte range, in plan order
        self._next: dict[int, int] = {}  # offset -> index in _order
        self._copies: dict[int, Future[str]] = {}  # offset -> its copy, started ahead
        # A source read from the disk: two copies at once keep it reading. From the page cache, copies into
        # one file serialise on its inode lock: one copy, a block ahead of the hashing.
        self._streams = min(max(workers, 1), COPY_STREAMS if self.source_cold else 1)
        self._ring = PieceRing(self._hasher) if kernel and copies_through_ring(self.source_cold) else None
        self._pool = (ThreadPoolExecutor(self._streams, thread_name_prefix="arraystore-copy")
                      if kernel and self._ring is None and plan.n_blocks > 1 else None)
        if self._pool is not None:
            self._order = [self._range(sel) for sel in plan.blocks]
            self._next = {off: k for k, (off, _n) in enumerate(self._order)}

    @property
    def streams(self) -> int:
        """Kernel copies run at once (0: copied inline, a plan of one block, or through the ring)."""
        return self._streams if self._pool is not None else 0

    streams_hash: ClassVar[bool] = False

    def describe(self, report: ConversionReport) -> None:
        super().describe(report)
        if self.plan.method == "kernel-copy":
            report.plan["notes"].append(f"{self.how}{', the source read from the disk' if self.source_cold else ''}")

    def account(self, report: ConversionReport) -> None:
        report.copy_call = self.copy_call

    @property
    def how(self) -> str:
        """How the blocks are copied, for the plan's notes."""
        if self.plan.method != "kernel-copy":
            return "read and written through two buffers"
        if self._ring is not None:
            return "copied through a ring of cache-sized buffers, hashed on a second thread"
        how = f"by {self.streams} thread(s) ahead of the hashing" if self.streams else "in one call"
        return f"copied in the kernel {how}"

    def _range(self, sel: tuple[slice, ...]) -> tuple[int, int]:
        rng = byte_range(sel, self.src.shape, self.src.order, self.src.dtype.itemsize)
        assert rng is not None  # plans of contiguous arrays without chunks are runs
        return rng

    def as_array(self, data: np.ndarray[Any, Any], sel: tuple[slice, ...]) -> np.ndarray[Any, Any]:
        return data  # raw bytes in storage order == C order when streamable

    def _copy(self, off: int, n: int) -> str:
        assert self._src_fd is not None and self._src_region is not None
        assert self._dst_fd is not None and self._dst_region is not None and self._writer is not None
        return copy_range(self._src_fd, self._src_region[1] + off, self._dst_fd, self._dst_region[1] + off, n,
                          self._writer, self.dst.path, drop_source=False)

    def _kernel_copy(self, off: int, n: int) -> None:
        """Copy the block at ``off`` (its copy may have started ahead) and start the ones after it."""
        if self._pool is None:
            self.copy_call = self._copy(off, n)
            return
        k = self._next[off]
        for j in range(k, min(k + self._streams + 1, len(self._order))):
            o, m = self._order[j]
            if o not in self._copies and (j == k or j not in self._done):
                self._copies[o] = self._pool.submit(self._copy, o, m)
        self.copy_call = self._copies.pop(off).result()

    def _hash_source(self, off: int, n: int) -> str:
        """The block's journal digest, its bytes also fed to the content checksum; read in cache-sized pieces."""
        assert self._src_fd is not None and self._src_region is not None
        buf = self._bufs[0]
        digest = block_digester()
        start = self._src_region[1] + off
        for lo in range(0, n, len(buf)):
            piece = buf[: min(len(buf), n - lo)]
            pread_into(self._src_fd, piece.data, start + lo)
            digest.update(piece)
            if self._hasher is not None:
                self._hasher.update(piece)
        return str(digest.hexdigest())

    def read(self, sel: tuple[slice, ...]) -> tuple[np.ndarray[Any, Any], str]:
        off, n = self._range(sel)
        assert self._src_fd is not None and self._src_region is not None
        if self._ring is not None:
            assert self._dst_fd is not None and self._dst_region is not None
            self.copy_call = "preadv/pwritev"
            return _NO_BYTES, self._ring.copy(self._src_fd, self._src_region[1] + off, self._dst_fd,
                                              self._dst_region[1] + off, n, self.dst.path)
        if self.plan.method == "kernel-copy":
            self._kernel_copy(off, n)
            return _NO_BYTES, self._hash_source(off, n)
        view = self._bufs[self._turn][:n]
        self._turn = (self._turn + 1) % len(self._bufs)
        pread_into(self._src_fd, view.data, self._src_region[1] + off)
        if self._drop:
            drop_cache(self._src_fd, self._src_region[1] + off, n)
        return view, block_digest(view)

    def _read_dst(self, sel: tuple[slice, ...]) -> np.ndarray[Any, Any]:
        off, n = self._range(sel)
        assert self._dst_fd is not None and self._dst_region is not None
        view = np.empty(n, np.uint8)  # never a copy buffer: one of them may be being written
        pread_into(self._dst_fd, view.data, self._dst_region[1] + off)
        return view

    def read_back(self, sel: tuple[slice, ...]) -> tuple[np.ndarray[Any, Any], str]:
        view = self._read_dst(sel)
        return view, block_digest(view)

    def same_as_source(self, sel: tuple[slice, ...], data: np.ndarray[Any, Any]) -> bool:
        off, n = self._range(sel)
        assert self._src_fd is not None and self._src_region is not None
        digest = block_digest(data)  # before the source overwrites a shared buffer
        other = np.empty(n, np.uint8)
        pread_into(self._src_fd, other.data, self._src_region[1] + off)
        return bool(block_digest(other) == digest)

    def write(self, i: int, sel: tuple[slice, ...], block: np.ndarray[Any, Any], digest: str) -> tuple[int, int, str]:
        off, n = self._range(sel)
        assert self._src_fd is not None and self._dst_fd is not None and self._writer is not None
        assert self._src_region is not None and self._dst_region is not None
        if self.plan.method == "kernel-copy":
            if self._drop:
                drop_cache(self._src_fd, self._src_region[1] + off, n)
        else:
            pwrite_all(self._dst_fd, block.data, self._dst_region[1] + off, self.dst.path)
        self._writer.wrote(self._dst_region[1] + off, n)
        return i, n, digest

    def finish(self) -> None:
        if self._ring is not None:
            self._ring.close()
        if self._pool is not None:  # copies started ahead of a failure: finished before the files close
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._copies.clear()
        super().finish()
