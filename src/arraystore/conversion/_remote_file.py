"""Downloads of Zarr arrays from object storage into a local file: each chunk's bytes pwritten as they come.

The general path (:class:`~arraystore.conversion._zarr_direct.ZarrChunkReader`) fetches a
block's chunks, decodes each into a block buffer and hands the block to the writer,
which writes it into the destination's file: every byte is copied once more than it
needs to be, and the requests run in rounds. When the chunks' decoded bytes *are* the
destination file's bytes (the ``bytes`` codec in the destination's byte order, then no
codec, ``zstd`` or ``blosc``; no encoding, no sharding, C order, chunks that span every
axis but the first, blocks of whole rows of chunks), :class:`RemoteChunkFileMover` does
the job with no block buffer:

* one asyncio loop on its own thread keeps up to :func:`in_flight` GET requests in flight
  (obstore, the store the array was opened on), in the order the conversion will take
  the blocks (blocks its journal holds already are skipped), each a window slot: the
  in-flight bytes are at most ``in_flight * chunk bytes``, within ``max_memory``;
* an object's size is checked against the chunk's before its body is read (a chunk of
  another size is a damaged array: :class:`~arraystore.errors.MetadataError`); the body
  is written at its offset in the destination with ``pwrite`` on the loop's thread (the
  GIL is released while the kernel copies it), from obstore's own buffer, no copy;
* a compressed chunk's object may be at most :func:`stored_limit` bytes (more than any
  encoding of the chunk takes), its stream must declare the chunk's decoded size, and it
  is decoded by numcodecs (the GIL released) on one of ``workers`` threads straight into
  a chunk-sized buffer, which is ``pwrite``-n there; the window then counts both buffers
  per request;
* the loop feeds each block's journal digest and the content checksum from those same
  buffers, in order, and frees their slots (nothing per chunk crosses threads), one block
  after the other; a block after one the journal holds already waits until the
  conversion's reader (:meth:`RemoteChunkFileMover.read`) opens it (the conversion hashes
  the journaled one from the file first). The reader waits for its block's digest, then
  runs the source's generation check (a HEAD of its metadata), which begins after every
  byte of the block arrived. A block is
  journaled (and the conversion published) only after that check: bytes of a replaced
  or changing array may reach the staged file, never a published one, nor the journal.

A block out of that order (a resumed block whose journal digest did not match) is read
by the general path.
"""

from __future__ import annotations

import asyncio
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checksums import block_digester
from ..errors import MetadataError
from ..store import ArrayStore
from ._fastpath import pwrite_all
from ._movers import BlockMover
from ._plan import ConversionPlan
from ._zarr_direct import _object_store, _split, zarr_readable_array

if TYPE_CHECKING:
    from ._report import ConversionReport

__all__ = ["MAX_IN_FLIGHT", "RemoteChunkFileMover", "in_flight", "remote_file_layout", "stored_limit"]

#: Requests in flight at most (the bare obstore client of tools/bench_objstore.py keeps as many).
MAX_IN_FLIGHT = 64
#: The share of ``max_memory`` that chunks in flight may take.
IN_FLIGHT_SHARE = 0.5

_PLACEHOLDER = np.empty(0, np.uint8)  # what read() returns for a block already in the file
_FILL: Any = object()  # an absent chunk: the fill value


def in_flight(max_memory: int, chunk_bytes: int) -> int:
    """Requests kept in flight: :data:`MAX_IN_FLIGHT`, fewer when their buffers would take over
    :data:`IN_FLIGHT_SHARE` of ``max_memory``; at least one."""
    return max(1, min(MAX_IN_FLIGHT, int(max_memory * IN_FLIGHT_SHARE) // max(1, chunk_bytes)))


def stored_limit(chunk_bytes: int) -> int:
    """The most bytes a compressed chunk of ``chunk_bytes`` may be stored in: above zstd's and blosc's bounds for
    data that does not compress (zstd: 1/256 more and a frame header; blosc: 16 bytes)."""
    return chunk_bytes + chunk_bytes // 128 + 1024


class _Layout:
    """Where a source chunk's bytes go in the destination file, and how they are stored (``codec``: None,
    uncompressed, else :func:`~arraystore.backends._zarr_read.numcodec_into`'s answer)."""

    def __init__(self, ostore: Any, prefix: str, key: Any, unit_rows: int, rows: int, row_bytes: int,
                 fill: np.ndarray[Any, Any], codec: tuple[str, Any] | None = None) -> None:
        self.ostore = ostore
        self.prefix = prefix
        self.key = key
        self.unit_rows = unit_rows
        self.rows = rows
        self.row_bytes = row_bytes
        self.chunk_bytes = unit_rows * row_bytes
        self.fill = fill
        self.codec = codec
        self.ndim = 1

    def chunk_key(self, c: int) -> str:
        return self.prefix + str(self.key((c,) + (0,) * (self.ndim - 1)))

    def extent(self, c: int) -> tuple[int, int]:
        """(offset in the array's bytes, bytes of the array in it) of chunk ``c``."""
        lo = c * self.unit_rows
        return lo * self.row_bytes, (min(self.rows, lo + self.unit_rows) - lo) * self.row_bytes


def remote_file_layout(src: ArrayStore, dst: ArrayStore, plan: ConversionPlan,
                       dst_region: tuple[str, int] | None) -> _Layout | None:
    """How the chunks of ``src`` land in ``dst``'s file, when their stored bytes are its bytes; else None."""
    from ..location import parse_location

    if dst_region is None or not parse_location(src.path).remote or src.ndim == 0 or 0 in src.shape:
        return None
    arr = zarr_readable_array(src, "_decode_sync")
    ostore = _object_store(arr.store_path.store) if arr is not None else None
    if arr is None or ostore is None:
        return None
    md = arr.metadata
    try:
        sharding, aa, (ab,), bb = _split(md.codecs, "_decode_sync")
    except ValueError:
        return None
    from zarr.codecs import BytesCodec

    from ..backends._zarr_read import numcodec_into  # zarr: imported when a Zarr array is converted

    into = numcodec_into(aa, (ab,), bb)
    if sharding is not None or aa or type(ab) is not BytesCodec or into is None:
        return None
    stored = np.dtype(getattr(src, "stored_dtype", None))
    if getattr(src, "encoding", None) not in ("native", "be") or stored.names is not None or stored.hasobject:
        return None
    endian = getattr(ab.endian, "value", None)
    raw = stored if endian is None or stored.itemsize == 1 else stored.newbyteorder("<" if endian == "little" else ">")
    shape, unit = tuple(src.shape), tuple(int(u) for u in md.chunk_grid.chunk_shape)
    if (raw != dst.dtype or src.dtype != dst.dtype or tuple(dst.shape) != shape or unit[1:] != shape[1:]
            or src.order != "C" or dst.order != "C" or plan.order != "C"):
        return None
    for sel in plan.blocks:
        first = sel[0]
        if (first.start % unit[0] or (first.stop % unit[0] and first.stop != shape[0])
                or any((s.start, s.stop) != (0, n) for s, n in zip(sel[1:], shape[1:]))):
            return None
    prefix = arr.store_path.path
    fill = np.full(unit, np.asarray(md.fill_value, dtype=stored), dtype=raw)
    layout = _Layout(ostore, f"{prefix}/" if prefix else "", md.encode_chunk_key, unit[0], shape[0],
                     math.prod(shape[1:]) * raw.itemsize, fill, None if into[0] == "bytes" else into)
    layout.ndim = len(shape)
    return layout


class _Block:
    """A block's chunks ``[first, stop)``, what the fetching loop decided for it, and its digest once hashed."""

    __slots__ = ("digest", "first", "hashed", "index", "opened", "state", "stop")

    def __init__(self, index: int, first: int, stop: int) -> None:
        self.index, self.first, self.stop = index, first, stop
        self.state = "pending"  # then "fetched" (its chunks requested) or "skipped" (journaled already)
        self.opened = False  # its hashing began
        self.digest: str | None = None
        self.hashed = 0  # bytes of the content checksum's stream hashed when it ended


class RemoteChunkFileMover(BlockMover):
    """Blocks of an uncompressed Zarr array in a bucket, downloaded chunk by chunk straight into the file.

    See the module docstring. ``done``: the journal's finished blocks (their chunks are not fetched).
    Everything per chunk happens on the loop's thread: the request, the size check, the ``pwrite``,
    and, once :meth:`read` has opened the chunk's block, the hashing in order and the release of its
    slot; :meth:`read` waits once per block.
    """

    def __init__(self, src: ArrayStore, dst: ArrayStore, plan: ConversionPlan, dst_region: tuple[str, int],
                 layout: _Layout, *, max_memory: int, durable: bool = False, workers: int = 1,
                 done: dict[int, str] | None = None) -> None:
        super().__init__(src, dst, plan, None, dst_region, durable=durable, workers=workers)
        self.writes_file = True
        self.layout = layout
        # A compressed chunk's request holds its stored bytes and its decoded ones.
        self.window = in_flight(max_memory, layout.chunk_bytes * (2 if layout.codec is not None else 1))
        #: Decoded chunks' buffers hashed already, used again (list.append and list.pop are atomic).
        self._spare: list[np.ndarray[Any, Any]] = []
        self._decoders = (ThreadPoolExecutor(max(1, workers), thread_name_prefix="arraystore-download-decode")
                          if layout.codec is not None else None)
        self._base = dst_region[1]
        self._done = done if done is not None else {}
        self._blocks: list[_Block] = []
        self._index: dict[tuple[int, int], int] = {}
        for i, sel in enumerate(plan.blocks):
            self._index[(sel[0].start, sel[0].stop)] = i
            self._blocks.append(_Block(i, sel[0].start // layout.unit_rows, -(-sel[0].stop // layout.unit_rows)))
        # The loop's own state: arrived chunks not hashed yet (bytes-like, or _FILL), the block being
        # hashed, its digest and its next chunk.
        self._arrived: dict[int, Any] = {}
        self._open: _Block | None = None
        self._digester: Any = None
        self._next = 0
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._closing = False
        #: Chunks whose slot is taken (requested, or arrived and not yet hashed): at most :attr:`window`.
        self.held = 0
        #: The most chunks :attr:`held` at once (what the budget counts).
        self.peak_held = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arraystore-download", daemon=True)
        self._thread.start()
        self._started.wait()

    # -- the fetching loop (its own thread) -----------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._slots = asyncio.Semaphore(self.window)
            self._main_task = loop.create_task(self._schedule())
            self._started.set()
            loop.run_until_complete(self._main_task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # handed to the reader
            self._fail(exc)
        finally:
            self._started.set()
            self._fail(RuntimeError("internal error: the download loop ended before the conversion did"))
            loop.close()

    async def _schedule(self) -> None:
        assert self._slots is not None
        tasks: set[asyncio.Task[None]] = set()
        try:
            for i, block in enumerate(self._blocks):
                with self._cond:
                    block.state = "skipped" if i in self._done else "fetched"
                    self._cond.notify_all()
                if block.state == "skipped":
                    continue
                if self._open is None and i > 0 and self._blocks[i - 1].digest is not None:
                    self._open_block(block)  # the one before was hashed here: this one follows it
                for c in range(block.first, block.stop):
                    await self._slots.acquire()
                    if self._error is not None or self._closing:
                        return
                    self.held += 1
                    self.peak_held = max(self.peak_held, self.held)
                    task = asyncio.ensure_future(self._fetch(c))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
            # Every chunk arrived; the loop still hashes those of blocks not opened yet: it runs until finish().
            await asyncio.get_running_loop().create_future()
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _fetch(self, c: int) -> None:
        import obstore
        import obstore.exceptions as oe

        layout = self.layout
        key = layout.chunk_key(c)
        offset, nbytes = layout.extent(c)
        try:
            try:
                got = await obstore.get_async(layout.ostore, key)
            except (oe.NotFoundError, FileNotFoundError):
                data: Any = _FILL
                pwrite_all(self._dst_fd_checked(), layout.fill.reshape(-1).view(np.uint8)[:nbytes].data,
                           self._base + offset, self.dst.path)
            else:
                size = int(got.meta["size"])
                if layout.codec is None and size != layout.chunk_bytes:
                    raise MetadataError(
                        f"{self.src.path}: chunk {key.removeprefix(layout.prefix)!r} is an object of {size:,} bytes; "
                        f"the array's chunks are uncompressed, {layout.chunk_bytes:,} bytes each: the chunk is "
                        "damaged or of another array: rewrite the array from its source"
                    )
                if layout.codec is not None and size > stored_limit(layout.chunk_bytes):
                    raise MetadataError(
                        f"{self.src.path}: chunk {key.removeprefix(layout.prefix)!r} is an object of {size:,} bytes; "
                        f"the array's chunks decode to {layout.chunk_bytes:,} bytes, which {layout.codec[0]} stores "
                        f"in at most {stored_limit(layout.chunk_bytes):,}: the chunk is damaged or of another array: "
                        "rewrite the array from its source"
                    )
                data = await got.bytes_async()
                if layout.codec is None:
                    pwrite_all(self._dst_fd_checked(), memoryview(data)[:nbytes], self._base + offset, self.dst.path)
                else:
                    data = await asyncio.get_running_loop().run_in_executor(
                        self._decoders, self._decode_and_write, key, data, offset, nbytes)
            self._arrived[c] = data
            if c == self._next and self._open is not None:
                self._hash_arrived()
        except BaseException as exc:
            self._fail(exc)
            raise

    def _decode_and_write(self, key: str, data: Any, offset: int, nbytes: int) -> np.ndarray[Any, Any]:
        """(On a decoding thread) a compressed chunk decoded into a chunk-sized buffer (a spare one, else a new one),
        written, and returned."""
        from ..backends._zarr_read import decode_into

        layout = self.layout
        assert layout.codec is not None
        try:
            decoded = self._spare.pop()
        except IndexError:  # at most one per request in flight is made
            decoded = np.empty(layout.chunk_bytes, np.uint8)
        name = key.removeprefix(layout.prefix)
        try:
            whole = decode_into(layout.codec, np.frombuffer(data, np.uint8), decoded)
        except (RuntimeError, ValueError) as exc:  # numcodecs' errors of a stream it cannot decode
            raise MetadataError(f"{self.src.path}: chunk {name!r} is not a valid {layout.codec[0]} stream ({exc}): "
                                "the chunk is damaged: rewrite the array from its source") from exc
        if not whole:
            raise MetadataError(
                f"{self.src.path}: chunk {name!r} does not declare the chunk's {layout.chunk_bytes:,} decoded bytes "
                f"in its {layout.codec[0]} stream: the chunk is damaged or of another array: rewrite the array "
                "from its source")
        pwrite_all(self._dst_fd_checked(), decoded[:nbytes].data, self._base + offset, self.dst.path)
        return decoded

    def _open_block(self, block: _Block) -> None:
        """(On the loop) start hashing ``block``: the conversion reads it now, or it follows the block just hashed."""
        if block.opened:
            return
        block.opened = True
        self._open, self._next = block, block.first
        self._digester = block_digester()
        self._hash_arrived()

    def _hash_arrived(self) -> None:
        """(On the loop) hash the open block's chunks that arrived, in order; free their slots."""
        block = self._open
        assert block is not None and self._slots is not None
        layout, hasher = self.layout, self._hasher
        while self._next < block.stop and self._next in self._arrived:
            c = self._next
            data = self._arrived.pop(c)
            piece = (layout.fill.reshape(-1).view(np.uint8) if data is _FILL
                     else np.frombuffer(data, np.uint8))[: layout.extent(c)[1]]
            self._digester.update(piece)
            if hasher is not None:
                hasher.update(piece)
            if isinstance(data, np.ndarray):  # a decoded chunk's buffer: the next chunk is decoded into it
                self._spare.append(data)
            del data, piece
            self.held -= 1
            self._slots.release()
            self._next = c + 1
        if self._next == block.stop:
            self._open = None
            with self._cond:
                block.hashed = hasher.nbytes if hasher is not None else 0
                block.digest = str(self._digester.hexdigest())
                self._cond.notify_all()
            # The next block follows at once when its chunks are being fetched (one journaled already is
            # hashed by the conversion from the file, in its turn: the reader opens the one after it).
            following = self._blocks[block.index + 1] if block.index + 1 < len(self._blocks) else None
            if following is not None and following.state == "fetched":
                self._open_block(following)

    def _dst_fd_checked(self) -> int:
        assert self._dst_fd is not None
        return self._dst_fd

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            if self._error is None and not isinstance(exc, asyncio.CancelledError):
                self._error = exc
            self._cond.notify_all()

    # -- the conversion's side ---------------------------------------------------------

    def _wait(self, done: Any) -> None:
        """Wait until ``done()``; the loop's failure raised here."""
        with self._cond:
            while not done():
                if self._error is not None:
                    with self.src._client_errors():
                        raise self._error
                self._cond.wait()

    def read(self, sel: tuple[slice, ...]) -> tuple[np.ndarray[Any, Any], str]:
        """Block ``sel`` is in the file once this returns: its digest (the array is checked unchanged);
        a block out of the fetching order is read (and later written) by the general path."""
        i = self._index.get((sel[0].start, sel[0].stop))
        block = self._blocks[i] if i is not None else None
        if block is not None:
            self._wait(lambda: block.state != "pending")
        if block is None or block.state != "fetched" or self._loop is None:
            return super().read(sel)
        try:
            self._loop.call_soon_threadsafe(self._open_block, block)
        except RuntimeError:  # the loop ended: its failure says why
            self._wait(lambda: False)  # raises
        self._wait(lambda: block.digest is not None)
        with self.src._client_errors():
            self.src._check_generation()  # begun after every byte of the block arrived
        layout = self.layout
        offset = layout.extent(block.first)[0]
        nbytes = sum(layout.extent(c)[1] for c in range(block.first, block.stop))
        if self._writer is not None:
            self._writer.wrote(self._base + offset, nbytes)
        assert block.digest is not None
        return _PLACEHOLDER, block.digest

    def describe(self, report: ConversionReport) -> None:
        # Not the base's note of chunks decoded here: only a block out of the fetching order is read that way.
        report.plan.setdefault("notes", []).extend([
            f"page cache: {self.regime}",
            f"source chunks written into the file as they arrive, up to {self.window} requests in flight"
            + (f", decoded on {self.workers} threads" if self.layout.codec is not None else "")])
        report.memory_estimate = self.window * self.layout.chunk_bytes * (2 if self.layout.codec is not None else 1)

    def account(self, report: ConversionReport) -> None:
        report.plan["download"] = {"requests_in_flight": self.window, "peak_chunks_held": self.peak_held,
                                   "chunk_bytes": self.layout.chunk_bytes}

    def hashed_after(self, i: int, hasher: Any) -> int:
        """Bytes of the stream hashed when block ``i`` ended (the loop may be hashing the next one already)."""
        block = self._blocks[i]
        return block.hashed if block.digest is not None and block.opened else int(hasher.nbytes)

    def write(self, i: int, sel: tuple[slice, ...], block: np.ndarray[Any, Any], digest: str) -> tuple[int, int, str]:
        if block is _PLACEHOLDER:  # in the file already
            return i, math.prod(s.stop - s.start for s in sel) * self.dst.dtype.itemsize, digest
        return super().write(i, sel, block, digest)

    def finish(self) -> None:
        self._closing = True
        loop = self._loop
        if loop is not None and self._thread.is_alive():
            def stop() -> None:
                self._main_task.cancel()

            try:
                loop.call_soon_threadsafe(stop)
            except RuntimeError:
                pass
        self._thread.join()
        if self._decoders is not None:
            self._decoders.shutdown(wait=True)
        self._arrived.clear()
        self._spare.clear()
        super().finish()
