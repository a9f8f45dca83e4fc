"""One conversion, run: plan, create the staged destination, move the blocks, journal, verify, publish.

:class:`_Conversion` holds a conversion's state; :mod:`._plan` decides the layout and
the method, :mod:`._movers` moves the blocks, :mod:`._dask` subclasses it to move them
on a cluster. The public entry point is :func:`arraystore.convert` (:mod:`._convert`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from .._dimnames import DimensionNames, check_dimension_names, source_dimension_names
from .._open import create, exists
from .._open import open as open_store
from ..checksums import StreamHasher, c_streamable, checksum
from ..compression import check_codec
from ..dialects.envi_write import check_envi, envi_interleave
from ..errors import (
    AlreadyExistsError,
    ConversionError,
    DimensionError,
    MetadataError,
    StorageFullError,
    VerificationError,
)
from ..fidelity import check_fidelity
from ..location import Location
from ..registry import backend_class, detect_backend, parse_location
from ..store import ArrayStore
from ._band_reads import BandReadMover
from ._hdf5_direct import DirectChunkWriter, direct_pipeline
from ._journal import Journal, journal_path, source_fingerprint, tree_state
from ._memory import SAMPLE_THREAD_MIN, MemorySampler
from ._movers import BlockMover, ByteMover, DirectChunkMover, Progress, mapped_region, progress_bar, reads_chunks
from ._options import ConvertOptions
from ._parallel import BlockPipeline, ReadAhead
from ._plan import (
    OVERLAP_BLOCK_BYTES,
    ConversionPlan,
    blocks_in_memory,
    choose_method,
    default_workers,
    destination_layout,
    plan_conversion,
    transposes,
    writer_threads,
)
from ._remote_file import RemoteChunkFileMover, remote_file_layout
from ._report import ConversionReport
from ._zarr_direct import ZarrChunkWriter, zarr_direct_array

__all__ = ["COPY_BLOCK", "run_conversion"]

#: Largest buffer of a byte-range copy: larger ones do not copy faster.
COPY_BLOCK = 64 * 1024 * 1024


class _Conversion:
    """One conversion's state; :meth:`run` does it."""

    #: The destination's chunks are all written by this process (a replaced array's may be overwritten in place).
    writes_chunks_here: bool = True

    def __init__(self, src: ArrayStore, dst: Any, options: ConvertOptions, progress: Progress | bool | None = None,
                 *, sampler: MemorySampler | None = None) -> None:
        self.src = src
        self.options = options
        self.sampler = sampler
        self.dst_loc = parse_location(dst)
        self.dst_cls = backend_class(options.backend or detect_backend(self.dst_loc, must_exist=False))
        self.chunks = options.chunks
        self.shards = options.shards
        DimensionError.check("chunks", self.chunks, src.shape)
        DimensionError.check("shards", self.shards, src.shape)
        self.compression = options.compression
        out_order = options.order or ("C" if src.order == "C" else "F")
        # The order the destination stores (HDF5: always C, so that other readers see the array's shape).
        self.header: str | None = options.header
        header_opts = {"header": self.header} if self.header is not None else {}
        self.order: Literal["C", "F"] = self.dst_cls.storage_order(out_order, **header_opts)
        self.budget = options.max_memory
        self.workers = default_workers(options.workers)
        self.verify = options.verify
        self.resume = options.resume
        self.durable = options.durable
        self.overwrite = options.overwrite
        self.drop_attrs = options.attrs == "drop"
        self.progress = progress
        self._src_region = mapped_region(src)
        # A source whose chunks are decoded here: the next block is decoded while this one is hashed and written;
        # a byte-range source into chunks compressed here: the next block is read (and digested) meanwhile, so
        # neither the disk nor the encoding threads wait for the other.
        self._read_ahead = reads_chunks(src, self._src_region) or (self._src_region is not None
                                                                   and self.compression is not None)
        self._zarr_direct = False  # set by run(): the destination's chunks are encoded and written here
        self._chunks_may_exist = True
        self._layout_note: str | None = None
        if self.chunks is None and self.shards is None:
            self._carry_shards()

    def _carry_shards(self) -> None:
        """A sharded source into a destination that shards: its inner chunks and shards, as zarr-python shows
        them (``chunks`` and ``shards``), when one shard fits a block of the budget and the order is kept."""
        shards, inner = getattr(self.src, "shards", None), getattr(self.src, "inner_chunks", None)
        if shards is None or inner is None or self.order != self.src.order:
            return
        if "shards" not in inspect.signature(self.dst_cls._create).parameters:
            return
        per_block = self.budget // blocks_in_memory("blocks", self.compression is not None, self._writers(),
                                                    self._read_ahead)
        if math.prod(shards) * self.src.dtype.itemsize > per_block:
            return
        self.chunks, self.shards = tuple(inner), tuple(shards)
        self._layout_note = f"chunks {self.chunks} inside shards {self.shards} taken from the source"

    # -- planning ----------------------------------------------------------

    def _preflight(self) -> None:
        src, cls = self.src, self.dst_cls
        if parse_location(src.path) == self.dst_loc:
            raise ConversionError(f"{src.path}: source and destination are the same array; choose another destination")
        check_fidelity(cls, src.dtype)
        check_codec(cls, self.compression)
        if src.meta.attrs and not cls.holds_attrs and not self.drop_attrs:
            raise ConversionError(
                f"{src.path} has attrs {sorted(src.meta.attrs)}, which the {cls.backend} format cannot hold; "
                "converting would lose them: convert with attrs='drop' (command line: --drop-attrs) to write it "
                "without them, or choose a backend that keeps them (raw, hdf5, zarr)"
            )
        if exists(self.dst_loc, cls.backend) and not self.overwrite:
            raise AlreadyExistsError(f"{self.dst_loc}: an array already exists there; pass overwrite=True to replace it")

    def _envi_header(self) -> str:
        """The header choice with its interleave settled (from the source's dimension names); checks the array."""
        assert self.header is not None
        if "header" not in inspect.signature(self.dst_cls._create).parameters:
            raise ConversionError(
                f"{self.dst_loc}: header={self.header!r} writes an ENVI header beside raw bytes; expected a raw "
                f"destination (.dat, --to raw), found the {self.dst_cls.backend} backend: drop header (--header)"
            )
        src = self.src
        check_envi(src.shape, src.dtype, self.dst_loc)  # before a byte is written
        names = self.options.dimension_names or source_dimension_names(src) or src.meta.attrs.get("axes")
        names = names if isinstance(names, (list, tuple)) else None
        return f"envi:{envi_interleave(self.header, src.ndim, names)}"

    def _dimension_names(self) -> DimensionNames | None:
        """The destination's dimension names: the options' (checked), else the source's; None where not recorded."""
        given = self.options.dimension_names
        if given is not None:
            if not self.dst_cls.supports_dimension_names:
                raise ConversionError(
                    f"{self.dst_loc}: the {self.dst_cls.backend} backend has nowhere to record dimension_names "
                    f"{given!r}; convert to hdf5 or zarr, or drop dimension_names"
                )
            try:
                return check_dimension_names(given, self.src.ndim)
            except MetadataError as exc:
                raise ConversionError(f"{self.dst_loc}: {exc}") from None
        return source_dimension_names(self.src) if self.dst_cls.supports_dimension_names else None

    def _dst_layout(self) -> tuple[tuple[int, ...] | None, str | None]:
        return destination_layout(self.src, self.dst_cls, chunks=self.chunks, shards=self.shards,
                                  compression=self.compression, order=self.order, budget=self.budget,
                                  writers=self._writers(), read_ahead=self._read_ahead)

    def _method(self, dst_grid: tuple[int, ...] | None) -> str:
        return choose_method(self.src, self.dst_cls, grid=dst_grid, order=self.order, compression=self.compression,
                             src_is_byte_range=self._src_region is not None)

    def _plan(self, grid: tuple[int, ...] | None, chunks: tuple[int, ...] | None, method: str,
              notes: list[str]) -> ConversionPlan:
        budget = min(self.budget, COPY_BLOCK) if method != "blocks" else self.budget
        src = self.src
        # Reordered blocks: small enough that reading one overlaps reordering and writing the one before.
        cap = OVERLAP_BLOCK_BYTES if method == "blocks" and transposes(src.shape, src.order, self.order,
                                                                         src.chunks) else None
        if cap is None and method == "blocks" and grid is None and self._read_ahead and src.chunks and src.order == "C":
            # Blocks of whole rows of source chunks (shards): no chunk is decoded for two blocks, and when the
            # budget allows, as many rows as threads, so that no thread idles at the end of a block.
            per = budget // blocks_in_memory(method, self.compression is not None, self._writers(), True)
            slab = src.chunks[0] * math.prod(src.shape[1:]) * src.dtype.itemsize
            if 0 < slab * self.workers <= per:
                slab *= self.workers
            if 0 < slab <= per:
                cap = per - per % slab
        source_codec = getattr(src, "compression", None)
        if self.compression is None and source_codec and self.dst_cls.codecs:
            notes = [*notes, f"the source is compressed ({source_codec}) and the destination is not: compression "
                             "is not carried over; pass compression= (--compression) to compress it"]
        if budget < self.budget:  # the plan's max_memory is what it uses, not what it was given
            notes = [*notes, f"a byte copy uses {budget:,} bytes of the {self.budget:,}-byte memory budget: larger "
                             "blocks copy no faster"]
        return plan_conversion(
            src_backend=src.backend, dst_backend=self.dst_cls.backend, shape=src.shape, dtype=src.dtype,
            order=src.order, chunks=chunks, shards=grid if self.shards is not None else None,
            compression=None if self.compression is None else str(self.compression), max_memory=budget,
            workers=self._writers(), method=method, notes=notes, max_block=cap,
            read_ahead=self._read_ahead and method == "blocks",
        )

    def _writers(self) -> int:
        return writer_threads(self.dst_cls, self.compression, self.workers)

    # -- running -----------------------------------------------------------

    def run(self) -> ConversionReport:
        src = self.src
        if self.options.portable and "portable" not in inspect.signature(self.dst_cls._create).parameters:
            raise ConversionError(
                f"{self.dst_loc}: portable=True chooses Zarr v3 core data types; expected a Zarr destination, found "
                f"the {self.dst_cls.backend} backend: drop portable (--portable) or convert to .zarr"
            )
        if self.header is not None:
            self.header = self._envi_header()
        names = self._dimension_names()  # ConversionError here: nothing written yet
        self._preflight()
        create_chunks, note = self._dst_layout()
        note = self._layout_note or note
        grid = self.shards if self.shards is not None else create_chunks
        method = self._method(grid)
        notes = [note] if note else []
        if self.drop_attrs and src.meta.attrs:
            notes.append(f"attrs not copied (attrs='drop'): {sorted(src.meta.attrs)}")
        plan = self._plan(grid, create_chunks, method, notes)  # MemoryBudgetError here: nothing written yet
        if self.sampler is not None and plan.nbytes >= SAMPLE_THREAD_MIN:
            self.sampler.start()
        jpath = journal_path(self.dst_loc)
        before = self._src_file_state()
        src_loc = parse_location(src.path)
        same = before is not None and self._src_region is None and self._src_root == src_loc.file
        fingerprint = source_fingerprint(src_loc, src.backend, src.meta.to_dict(), src._version(),
                                         state=before if same else None)
        if self.dst_loc.remote:  # objects cannot be appended to: the journal lives under the destination prefix
            from ..objstore._journal import RemoteJournal

            journal, restart = RemoteJournal.open_remote(self.dst_loc, fingerprint, plan.key(), resume=self.resume,
                                                         enabled=_resumable(plan))
        else:
            journal, restart = Journal.open(jpath, fingerprint, plan.key(), resume=self.resume,
                                            durable=self.durable, enabled=_resumable(plan))
        reuse = self.resume and not journal.fresh
        extra: dict[str, Any] = {"shards": self.shards} if self.shards is not None else {}
        if names is not None:
            extra["dimension_names"] = names
        if self.options.portable:
            extra["portable"] = True
        if self.header is not None:
            extra["header"] = self.header
        if self.writes_chunks_here and self.dst_loc.remote and self._dst_url_class().overwrites_in_place:
            extra["overwrite_in_place"] = True  # every chunk is written or deleted below (a resume: its journal)
        try:
            extra.update(self.dst_cls.value_options(src, self.budget))  # e.g. HDF5 string widths: reads the source
            dst = create(str(self.dst_loc), src.shape, src.dtype, backend=self.dst_cls.backend, chunks=create_chunks,
                         compression=self.compression, order=self.order, attrs={} if self.drop_attrs else dict(src.meta.attrs),
                         overwrite=self.overwrite, durable=self.durable, resume=reuse, **extra)
        except BaseException:
            if journal.fresh:
                journal.remove()
            raise
        report = ConversionReport(src=src.path, dst=str(self.dst_loc), src_backend=src.backend,
                                  dst_backend=self.dst_cls.backend, nbytes=src.nbytes, method=plan.method,
                                  restarted=restart)
        try:
            actual_grid = dst.chunks
            if actual_grid != plan.blocks.chunks and actual_grid is not None and grid != actual_grid:
                # The backend chose (or adjusted) the chunk grid: align to what it made; restart the journal.
                plan = self._plan(actual_grid, actual_grid if self.shards is None else create_chunks, "blocks", notes)
                journal.restart(plan.key(), enabled=_resumable(plan))
            dst_region = mapped_region(dst) if dst.dtype == src.dtype else None
            if plan.method != "blocks" and dst_region is None:
                plan = self._plan(None, None, "blocks", [*notes, "destination has no contiguous byte range yet"])
                journal.restart(plan.key(), enabled=_resumable(plan))
            direct = direct_pipeline(dst, src.dtype, uncompressed=True) if plan.method == "blocks" else None
            self._zarr_direct = plan.method == "blocks" and direct is None and zarr_direct_array(dst) is not None
            self._chunks_may_exist = reuse
            if self._zarr_direct:
                plan = dataclasses.replace(plan, notes=(*plan.notes, (
                    f"chunks encoded by the array's codecs on {self.workers} threads and written as whole objects")))
            if direct is not None:
                how = ("laid out in C order" if direct[1] is None else
                       f"{'shuffled and ' if direct[0] else ''}deflated (level {direct[1]})")
                plan = dataclasses.replace(plan, notes=(*plan.notes, (
                    f"chunks {how} by {self.workers} threads, written with write_direct_chunk")))
            report.method = plan.method
            report.plan = plan.to_dict()
            report.blocks_total = plan.n_blocks
            report.memory_estimate = plan.blocks.block_bytes * blocks_in_memory(
                plan.method, self.compression is not None, plan.workers, self._read_ahead and plan.method == "blocks")
            with self._store_errors():
                value = self._move(dst, dst_region, plan, journal, report, direct)
            if self._src_file_state() != before:
                raise _SourceModified("its data file was written to while its blocks were read"
                                      if self._src_region is not None else
                                      "its files were written to while its blocks were read")
            if value is None:  # not streamable in C order: one pass over the source
                value = checksum(src, max_bytes=max(plan.blocks.block_bytes, 1 << 20), workers=self.workers)
            report.checksum = value
            if self.verify:
                # Never the path that produced the bytes: both sides as their libraries decode them.
                slab = max(plan.blocks.block_bytes, 1 << 20)
                # A resumed block was hashed from the destination: only the source itself can vouch for it.
                if self._src_region is not None or report.blocks_resumed:
                    value = checksum(src, max_bytes=slab, decoded=True, workers=self.workers)
                got = checksum(dst, max_bytes=slab, decoded=True, workers=self.workers)
                if got["value"] != value["value"]:
                    raise VerificationError(
                        f"{self.dst_loc}: the converted data reads back with checksum {got['value']}, the source "
                        f"has {value['value']} ({value['algorithm']}); nothing was published. Expected equal values: either "
                        "the source changed while it was converted (another writer; resumed blocks from before the "
                        "change) or a disk returned other bytes; make sure nothing writes the source, then convert "
                        "again with resume=False"
                    )
                report.verified = True
            try:
                dst.set_checksum(value)
                report.checksum_recorded = True
            except NotImplementedError:
                report.checksum_recorded = False
        except VerificationError:
            dst.discard()
            journal.remove()
            raise
        except BaseException as exc:
            # Keep the half-built destination for a rerun, unless rerunning cannot help:
            # a full disk (free the space now) or a source that changed under us.
            if self.resume and not isinstance(exc, (StorageFullError, EOFError)):
                journal.close()
                dst.abandon()
            else:
                dst.discard()
                journal.remove()
            if isinstance(exc, EOFError):
                what = "was modified" if isinstance(exc, _SourceModified) else "changed size"
                raise ConversionError(
                    f"{src.path}: the source {what} while being converted ({exc}); nothing was published. "
                    "Convert it again once it is no longer being written"
                ) from exc
            raise
        dst.close()  # publishes: flush (+ fsync when durable), rename into place
        journal.remove()
        return report

    def _src_file_state(self) -> tuple[int, int, int] | None:
        """Size, modification and status-change time of the files holding a local source (None: not told).

        Compared after the last block is read: a file rewritten in place meanwhile (same size, even with its
        modification time put back) would give an array of old and new bytes. A byte-range source's data file;
        else the source's file, or its array's folder (a Zarr array: its chunk files), unless the destination
        is written there too (another dataset of the same HDF5 file), where its own writes would count.
        """
        if self._src_region is not None:
            try:
                st = os.stat(self._src_region[0])
            except OSError:
                return (-1, -1, -1)
            return st.st_size, st.st_mtime_ns, st.st_ctime_ns
        root = self._src_root
        return None if root is None else tree_state(root)

    @functools.cached_property
    def _src_root(self) -> Path | None:
        src = parse_location(self.src.path)
        if src.remote:
            return None
        root, dst = _array_root(src), self.dst_loc
        if not dst.remote:
            dst_root = _array_root(dst)
            if dst_root.is_relative_to(root) or root.is_relative_to(dst_root):
                return None
        return root

    def _dst_url_class(self) -> type[ArrayStore]:
        from ..objstore._dispatch import url_class

        return url_class(self.dst_loc, self.dst_cls.backend)

    def _store_errors(self) -> contextlib.AbstractContextManager[None]:
        """Object-store client errors of writers that bypass the store's own mapping, as arraystore's."""
        if not self.dst_loc.remote:
            return contextlib.nullcontext()
        from ..objstore import store_errors

        return store_errors(str(self.dst_loc))

    def _move(self, dst: ArrayStore, dst_region: tuple[str, int] | None, plan: ConversionPlan, journal: Journal,
              report: ConversionReport, direct: tuple[bool, int | None] | None = None) -> dict[str, str] | None:
        """Move every block; returns the streamed checksum, or None when blocks are not C-order consecutive."""
        hasher = StreamHasher(self.src.dtype) if c_streamable(plan.blocks) else None
        total = plan.nbytes
        done = [0]
        bar = progress_bar(self.progress, total)
        # Byte-range copies write the file itself: their blocks are in it when they return.
        flush_each = [not type(dst).writes_go_through and plan.method == "blocks"]

        lent: dict[int, Any] = {}  # blocks being written, by index: their buffers are reused once written

        def finished(item: tuple[int, int, str]) -> None:
            i, nbytes, digest = item
            block = lent.pop(i, None)
            if block is not None:
                mover.written(block)
            dst._keep_alive()  # chunk writers that bypass dst[sel] = x (ZarrChunkWriter) renew no lease
            if flush_each[0]:
                dst.flush()
                # Blocks written into the file by the mover (pwrite) are there once written: after the first
                # flush (the backend's own state), none per block (an HDF5 flush waits for the disk: msync).
                flush_each[0] = not mover.writes_file
            journal.record(i, digest)
            report.blocks_written += 1
            done[0] += nbytes
            bar(done[0], total)

        mover: BlockMover
        if direct is not None:
            mover = DirectChunkMover(self.src, dst, plan, self._src_region, None,
                                      DirectChunkWriter(dst, *direct, workers=self.workers), durable=self.durable,
                                      workers=self.workers)
        elif self._zarr_direct:
            mover = DirectChunkMover(self.src, dst, plan, self._src_region, None,
                                      ZarrChunkWriter(dst, self.workers, may_exist=self._chunks_may_exist,
                                                      put_bytes=plan.blocks.block_bytes),
                                      durable=self.durable, workers=self.workers)
        elif plan.method != "blocks":
            mover = ByteMover(self.src, dst, plan, self._src_region, dst_region, durable=self.durable,
                              workers=self.workers, done=journal.done, hasher=hasher)
        elif dst_region is not None and (layout := remote_file_layout(self.src, dst, plan, dst_region)) is not None:
            mover = RemoteChunkFileMover(self.src, dst, plan, dst_region, layout, max_memory=self.budget,
                                         durable=self.durable, workers=self.workers, done=journal.done)
        elif reads_chunks(self.src, self._src_region) and dst_region is not None:
            mover = BandReadMover(self.src, dst, plan, self._src_region, dst_region, durable=self.durable,
                                  workers=self.workers)
        else:
            mover = BlockMover(self.src, dst, plan, self._src_region, dst_region, durable=self.durable,
                               workers=self.workers)
        if hasher is not None and not mover.hashes_stream and mover.streams_hash:
            mover.hash_stream(hasher)  # one pass over each block for its digest and the content checksum
        itemsize = self.src.dtype.itemsize
        fed = 0  # bytes of the C-order stream hashed so far: a mover that hashes it is checked after every block
        mover.describe(report)
        # Byte-range copies keep one write in flight: the next block is copied (kernel) or read (buffered)
        # while the one before is written back or written.
        threads = 1 if plan.method in ("kernel-copy", "buffered-copy") else plan.workers
        # Decoded sources: one block decoded ahead (its own thread feeding the decoding threads) while
        # this one is hashed and written; byte-range sources into compressed chunks: one block read ahead.
        # The plan counts that block (blocks_in_memory(read_ahead=True)).
        ahead = ReadAhead(mover.read) if self._read_ahead and plan.method == "blocks" else None
        try:
            with BlockPipeline(threads, finished) as pipe:
                first = True
                blocks = _Peekable(enumerate(plan.blocks))
                for i, sel in blocks:
                    if i in journal.done:
                        data, digest = mover.read_back(sel)
                        if journal.done[i] in (digest, "") and (journal.done[i] or mover.same_as_source(sel, data)):
                            if hasher is not None:
                                hasher.update(mover.as_array(data, sel))
                                fed = hasher.nbytes
                            report.blocks_resumed += 1
                            done[0] += data.nbytes
                            bar(done[0], total)
                            continue
                        journal.forget(i)
                        report.blocks_rewritten += 1
                    data, digest = ahead.take(i, sel) if ahead is not None else mover.read(sel)
                    if hasher is not None and mover.hashes_stream:
                        fed += math.prod(s.stop - s.start for s in sel) * itemsize
                        hashed = mover.hashed_after(i, hasher)
                        if hashed != fed:  # blocks hashed out of order, twice or not at all
                            raise RuntimeError(f"internal error: {hashed} bytes of {self.src.path} hashed "
                                               f"after block {i}, expected {fed}; nothing was published")
                    if ahead is not None and (nxt := blocks.peek()) is not None and nxt[0] not in journal.done:
                        ahead.start(*nxt)
                    if hasher is not None and not mover.hashes_stream:
                        hasher.update(mover.as_array(data, sel))
                    lent[i] = data
                    if first:  # the first write runs alone: backends set their "incomplete" flag on it
                        finished(mover.write(i, sel, data, digest))
                        first = False
                    else:
                        pipe.submit(mover.write, i, sel, data, digest)
                    del data
            if self.sampler is not None:
                self.sampler.sample()  # the block buffers are still alive here
        finally:
            try:
                if ahead is not None:
                    ahead.close()
            finally:
                mover.finish()
        mover.account(report)
        return hasher.result() if hasher is not None else None


class _Peekable:
    """An iterator that can show its next item without taking it."""

    _NOTHING: Any = object()

    def __init__(self, items: Iterator[Any]) -> None:
        self._items = items
        self._next: Any = self._NOTHING

    def __iter__(self) -> _Peekable:
        return self

    def __next__(self) -> Any:
        if self._next is not self._NOTHING:
            item, self._next = self._next, self._NOTHING
            if item is None:
                raise StopIteration
            return item
        return next(self._items)

    def peek(self) -> Any:
        """The next item (still to be taken), or None at the end (the items are never None)."""
        if self._next is self._NOTHING:
            self._next = next(self._items, None)
        return self._next


def _resumable(plan: ConversionPlan) -> bool:
    """A plan of one block has nothing to resume: it runs without a journal file."""
    return plan.n_blocks > 1


def run_conversion(
    src: str | os.PathLike[str] | ArrayStore,
    dst: str | os.PathLike[str],
    options: ConvertOptions,
    progress: Progress | bool | None = None,
    conversion: type[_Conversion] | None = None,
    **attrs: Any,
) -> ConversionReport:
    """Open the source, run a conversion (``conversion``, default :class:`_Conversion`, with ``attrs`` set on it),
    and fill in the report's timing and memory figures."""
    t0 = time.perf_counter()
    sampler = MemorySampler()  # its thread starts only for large conversions (see _Conversion.run)
    try:
        src_store = src if isinstance(src, ArrayStore) else open_store(src, "r")
        try:
            conv = (conversion or _Conversion)(src_store, dst, options, progress, sampler=sampler)
            for name, value in attrs.items():
                setattr(conv, name, value)
            report = conv.run()
        finally:
            if src_store is not src:
                src_store.close()
    finally:
        sampler.stop()
    report.seconds = time.perf_counter() - t0
    report.throughput = report.nbytes / report.seconds if report.seconds > 0 else 0.0
    report.peak_memory = sampler.peak_anon
    report.baseline_memory = sampler.baseline.anon
    report.peak_file_memory = sampler.peak_file
    return report


def _array_root(location: Location) -> Path:
    """The file holding a local array, or the folder of its files (a key inside a folder: a Zarr group's array)."""
    if location.key and not location.file.is_file():
        return location.file / location.key.strip("/")
    return location.file


class _SourceModified(EOFError):
    """A byte-range source's data file changed while the conversion read it (see ``_src_file_state``)."""
