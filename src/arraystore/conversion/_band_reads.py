"""A local Zarr source decoded in bands of chunk rows straight into a byte-range destination (``.npy``, raw,
contiguous HDF5), while each band is in the CPU cache.

:class:`~arraystore.conversion._movers.BlockMover` decodes a whole block into a block buffer, then hashes
it, then writes it: each decoded byte crosses memory three times, and a fresh process faults in (zeroes)
every block buffer it takes. :class:`BandReadMover` does the same work per band of chunk (shard) rows, the
least that decodes no chunk twice: a decoding thread reads and decodes one band into one of a few band
buffers used again and writes it into the destination at once (``pwrite``), while the reading thread feeds
it, in order, to the block's journal digest and to the content checksum; a buffer is used again once its
band is both written and hashed. A block is journaled once all its bands are written, as before.

It runs where the bands pay: the source's files in the page cache (a source read from the disk keeps the
block reader, which asks the kernel for the files ahead of the decoding), an output kept in the page cache,
both arrays in C order, the source's dtype decoded as is, and blocks of whole rows.
"""

from __future__ import annotations

import math
import queue
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checksums import block_digester
from ..store import ArrayStore
from ._fastpath import pwrite_all
from ._movers import BAND_MAX, BlockMover, StreamedBlock, byte_range, hash_pieces, huge_page_aligned, row_bands
from ._plan import ConversionPlan, blocks_in_memory
from ._zarr_direct import ZarrChunkReader

if TYPE_CHECKING:
    from ._report import ConversionReport

__all__ = ["BAND_TARGET", "BandReadMover"]

#: Bands of small chunk rows are made of several rows, up to about this many bytes (fewer calls per byte).
BAND_TARGET = 4 * 1024 * 1024


class BandReadMover(BlockMover):
    """Blocks of a local Zarr source decoded band by band into a byte-range destination (module docstring).

    :attr:`band_rows` is 0 where the conditions do not hold: every block then moves as a
    :class:`BlockMover` moves it; a block narrower than the array (not whole rows) does too.
    """

    def __init__(self, src: ArrayStore, dst: ArrayStore, plan: ConversionPlan, src_region: tuple[str, int] | None,
                 dst_region: tuple[str, int] | None, *, durable: bool = False, workers: int = 1) -> None:
        super().__init__(src, dst, plan, src_region, dst_region, durable=durable, workers=workers)
        # Blocks banded or not, each is in the file once written when every block is a byte range of it.
        self.writes_file = self._dst_fd is not None and all(
            byte_range(sel, dst.shape, dst.order, dst.dtype.itemsize) is not None for sel in plan.blocks)
        self.band_rows = 0
        self._free: queue.SimpleQueue[np.ndarray[Any, Any]] = queue.SimpleQueue()
        self._bands: ZarrChunkReader | None = None
        self._pool: ThreadPoolExecutor | None = None
        reader = self._chunk_reader
        # Bands of inner chunk rows: a shard's inner chunks are read by range when a band holds at most half of
        # them, so that its stored and decoded bytes stay in the CPU cache too.
        unit: tuple[int, ...] | None = getattr(src, "inner_chunks", None) or src.chunks
        shards: tuple[int, ...] | None = getattr(src, "shards", None) or unit
        if (not isinstance(reader, ZarrChunkReader) or not reader.local or dst_region is None or not unit
                or self._dst_fd is None or self.regime != "page-cache" or self.source_cold
                or src.order != "C" or dst.order != "C" or reader.out_dtype != src.dtype
                or dst.dtype != src.dtype or src.ndim < 1 or shards is None):
            return
        shard_rows = shards[0]
        row = math.prod(src.shape[1:]) * src.dtype.itemsize
        unit_band = unit[0] * row
        self._workers = max(1, workers)
        # One band being decoded per thread, one more waiting to be hashed, one being written; all of them within
        # the blocks the plan counts (they replace the block buffers).
        self._slots = self._workers + 2
        room = plan.blocks.block_bytes * blocks_in_memory(plan.method, plan.compression is not None, plan.workers,
                                                          True) // self._slots
        if not 0 < unit_band <= min(BAND_MAX, plan.blocks.block_bytes, room):
            return
        per = max(1, min(BAND_TARGET, plan.blocks.block_bytes, room) // unit_band)
        while per > 1 and shard_rows % (unit[0] * per):  # a band never spans two shards
            per -= 1
        self.band_rows = unit[0] * per
        self._band_bytes = self.band_rows * row
        for _ in range(self._slots):
            self._free.put(huge_page_aligned(self._band_bytes))
        self._bands = ZarrChunkReader(src, 1)  # one band decoded on the thread that asks (no pool of its own)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="arraystore-band")

    def describe(self, report: ConversionReport) -> None:
        super().describe(report)
        if self.band_rows:
            report.plan["notes"].append(f"source chunks decoded, hashed and written in bands of {self.band_rows} "
                                        "rows")

    def _split(self, sel: tuple[slice, ...]) -> list[tuple[tuple[slice, ...], int, int]] | None:
        """``(band, destination offset, bytes)`` of each band of block ``sel``, or None when not banded."""
        bands = row_bands(sel, self.band_rows, self.dst)
        if bands is None:
            return None
        assert self._dst_region is not None
        return [(band, self._dst_region[1] + off, n) for band, off, n in bands]

    def read(self, sel: tuple[slice, ...]) -> tuple[Any, str]:
        bands = self._split(sel)
        if bands is None:
            return super().read(sel)
        assert self._pool is not None
        digest = block_digester()
        writes: list[Future[None]] = []
        waiting: deque[tuple[Future[None], Future[None], np.ndarray[Any, Any], int]] = deque()
        try:
            for band, off, n in bands:
                while len(waiting) > self._workers:  # a buffer stays free for a band being written
                    self._hash(waiting.popleft(), digest)
                buf = self._free.get()  # given back once its band is written and hashed
                view = buf[:n]
                decoded: Future[None] = Future()
                try:
                    task = self._pool.submit(self._decode_write, band, view, off, decoded)
                except BaseException:
                    self._free.put(buf)
                    raise
                writes.append(task)
                waiting.append((decoded, task, buf, n))
            while waiting:
                self._hash(waiting.popleft(), digest)
        except BaseException:
            for _decoded, task, buf, _n in waiting:  # their buffers come back when their tasks end
                task.add_done_callback(self._giver(buf))
            raise
        return StreamedBlock(sum(n for _, _, n in bands), writes), str(digest.hexdigest())

    def _decode_write(self, band: tuple[slice, ...], view: np.ndarray[Any, Any], off: int,
                      decoded: Future[None]) -> None:
        """Decode ``band`` into ``view`` and write it at ``off``; ``decoded`` says when the bytes are there."""
        assert self._bands is not None and self._dst_fd is not None
        try:
            values = view.view(self.src.dtype).reshape(tuple(s.stop - s.start for s in band))
            got = self._bands.read(band, out=values)
            if not np.may_share_memory(got, values):  # values converted on the way (not chosen for bands)
                values[...] = got
        except BaseException as exc:
            decoded.set_exception(exc)
            raise
        decoded.set_result(None)
        pwrite_all(self._dst_fd, view.data, off, self.dst.path)

    def _hash(self, item: tuple[Future[None], Future[None], np.ndarray[Any, Any], int], digest: Any) -> None:
        """Feed a decoded band to the block's digest and the content checksum (in order), then let its buffer go
        once its write has ended."""
        decoded, task, buf, n = item
        try:
            decoded.result()
            hash_pieces(buf[:n], digest, self._hasher)
        finally:
            task.add_done_callback(self._giver(buf))

    def _giver(self, buf: np.ndarray[Any, Any]) -> Any:
        return lambda _fut: self._free.put(buf)

    def written(self, block: Any) -> None:
        if not isinstance(block, StreamedBlock):
            super().written(block)

    def write(self, i: int, sel: tuple[slice, ...], block: Any, digest: str) -> tuple[int, int, str]:
        if not isinstance(block, StreamedBlock):
            return super().write(i, sel, block, digest)
        block.wait()
        rng = byte_range(sel, self.dst.shape, self.dst.order, self.dst.dtype.itemsize)
        assert rng is not None and self._dst_region is not None and self._writer is not None
        self._writer.wrote(self._dst_region[1] + rng[0], rng[1])
        return i, block.nbytes, digest

    def finish(self) -> None:
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            if self._bands is not None:
                self._bands.close()
        finally:
            super().finish()
