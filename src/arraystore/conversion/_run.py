"""``convert()``: plan, then move blocks (copying byte ranges where layouts match), journal, verify, publish."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from .._dimnames import source_dimension_names
from .._open import create
from .._open import open as open_store
from ..checksum import StreamHasher, block_digest, c_streamable, checksum
from ..errors import (
    AlreadyExistsError,
    ArrayStoreError,
    ConversionError,
    DimensionError,
    NotMemoryMappableError,
    StorageFullError,
    VerificationError,
)
from ..fidelity import check_fidelity
from ..registry import backend_class, detect_backend, parse_location
from ..store import ArrayStore
from ._fastpath import DROP_BEHIND_MIN, DropBehindWriter, copy_range, drop_cache, pread_into, pwrite_all
from ._hdf5_direct import DirectChunkWriter, direct_pipeline
from ._journal import Journal, journal_path, source_fingerprint
from ._memory import SAMPLE_THREAD_MIN, MemorySampler
from ._parallel import BlockPipeline
from ._plan import (
    MAX_CHUNK_BYTES,
    TARGET_CHUNK_BYTES,
    ConversionPlan,
    blocks_in_memory,
    choose_chunks,
    default_workers,
    parse_size,
    plan_conversion,
    transposes,
)
from ._report import ConversionReport

__all__ = ["convert"]

#: Largest buffer of a byte-range copy: larger ones do not copy faster.
COPY_BLOCK = 64 * 1024 * 1024

#: Backends whose writes are on the file (page cache) as soon as the write returns.
_WRITE_THROUGH = frozenset({"raw", "npy", "zarr"})

Progress = Callable[[int, int], Any]


def convert(
    src: str | os.PathLike[str] | ArrayStore,
    dst: str | os.PathLike[str],
    *,
    backend: str | None = None,
    chunks: Any = None,
    shards: Any = None,
    compression: str | None = None,
    order: str | None = None,
    max_memory: int | str = "256MiB",
    workers: int | None = None,
    verify: bool = False,
    resume: bool = True,
    durable: bool = False,
    overwrite: bool = False,
    progress: Progress | bool | None = None,
    scheduler: Any = None,
) -> ConversionReport:
    """Convert an array to another format (or layout) in bounded memory, atomically, resumably.

    Parameters
    ----------
    src
        Source path (``file::key`` inside HDF5/Zarr hierarchies) or an open store.
    dst
        Destination path; it must not exist unless ``overwrite=True``.
    backend
        Destination format; default from ``dst``'s suffix.
    chunks, shards, compression
        Destination layout (HDF5, Zarr). ``chunks=None`` picks about 4 MiB chunks
        that are whole along the source's fastest-varying axes; an uncompressed HDF5
        destination without chunks is contiguous.
    order
        ``"C"`` or ``"F"`` for the destination; default: the source's.
    max_memory
        Budget for the conversion's buffers: ``"256MiB"``, ``"1GB"`` or bytes.
    workers
        Writer threads for compressed Zarr destinations, compression threads for deflated
        (gzip) HDF5 destinations; default: one per CPU.
    verify
        Re-read the destination before publishing it and compare checksums.
    resume
        Continue an interrupted conversion of the same source with the same options;
        ``False`` starts from scratch.
    durable
        fsync data, metadata, journal and folder before the rename.
    overwrite
        Replace an existing destination (only when the new one is complete).
    progress
        ``True`` for a tqdm bar on stderr, or a callable ``(done_bytes, total_bytes)``.
    scheduler
        Run the blocks on a Dask cluster: a scheduler address, a ``distributed.Client``,
        or ``"local"`` for a temporary ``LocalCluster`` of ``workers`` processes. The
        workers must see both paths; see docs/conversion.md, "On a Dask cluster".

    Returns
    -------
    ConversionReport

    Raises
    ------
    UnsupportedDtypeError
        The destination cannot store the dtype exactly (nothing is written).
    MemoryBudgetError
        ``max_memory`` cannot hold one destination chunk (nothing is written).
    AlreadyExistsError, ConversionError, VerificationError, StorageFullError
    """
    if scheduler is not None:
        from ._dask import convert_on_dask

        return convert_on_dask(src, dst, scheduler=scheduler, backend=backend, chunks=chunks, shards=shards,
                               compression=compression, order=order, max_memory=max_memory, workers=workers,
                               verify=verify, resume=resume, durable=durable, overwrite=overwrite, progress=progress)
    budget = parse_size(max_memory)
    nworkers = default_workers(workers)
    t0 = time.perf_counter()
    sampler = MemorySampler()  # its thread starts only for large conversions (see _Conversion.run)
    try:
        src_store = src if isinstance(src, ArrayStore) else open_store(src, "r")
        try:
            report = _Conversion(src_store, dst, backend, chunks, shards, compression, order, budget, nworkers,
                                 verify, resume, durable, overwrite, progress, sampler=sampler).run()
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


def _tuple(x: Any) -> tuple[int, ...] | None:
    if x is None:
        return None
    if isinstance(x, int):
        return (x,)
    return tuple(int(v) for v in x)


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


def _mapped_region(store: ArrayStore) -> tuple[str, int] | None:
    """``(file, offset)`` of a store's data when it is one contiguous uncompressed byte range."""
    from ..backends._mapped import MappedFileStore

    if not store.supports_memmap or store.nbytes == 0:
        return None
    if isinstance(store, MappedFileStore):  # raw, npy: known without mapping the file (we pread/pwrite it)
        return store.data_file, store.offset
    try:
        mm = store.as_memmap()
    except (NotMemoryMappableError, ArrayStoreError):
        return None
    if mm.filename is None:
        return None
    return str(mm.filename), int(mm.offset)


class _Conversion:
    """One conversion's state; :meth:`run` does it."""

    def __init__(self, src: ArrayStore, dst: Any, backend: str | None, chunks: Any, shards: Any,
                 compression: str | None, order: str | None, budget: int, workers: int, verify: bool,
                 resume: bool, durable: bool, overwrite: bool, progress: Progress | bool | None,
                 *, sampler: MemorySampler | None = None) -> None:
        self.src = src
        self.sampler = sampler
        self.dst_loc = parse_location(dst)
        self.dst_cls = backend_class(backend or detect_backend(self.dst_loc, must_exist=False))
        self.chunks = _tuple(chunks)
        self.shards = _tuple(shards)
        DimensionError.check("chunks", self.chunks, src.shape)
        DimensionError.check("shards", self.shards, src.shape)
        self.compression = compression
        out_order = order or src.order
        if out_order not in ("C", "F"):
            raise ConversionError(f"expected order 'C' or 'F' (or None for the source's), found {order!r}")
        # The order the destination stores (HDF5: always C, so other readers see the array's shape).
        self.order: Literal["C", "F"] = self.dst_cls.storage_order("C" if out_order == "C" else "F")
        self.budget = budget
        self.workers = workers
        self.verify = verify
        self.resume = resume
        self.durable = durable
        self.overwrite = overwrite
        self.progress = progress
        self._src_region = _mapped_region(src)

    # -- planning ----------------------------------------------------------

    def _preflight(self) -> None:
        src, cls = self.src, self.dst_cls
        if parse_location(src.path) == self.dst_loc:
            raise ConversionError(f"{src.path}: source and destination are the same array; choose another destination")
        check_fidelity(cls, src.dtype)
        if src.meta.attrs and cls.backend == "npy":
            raise ConversionError(
                f"{src.path} has attrs {sorted(src.meta.attrs)}, which the .npy format cannot hold; converting "
                "would lose them: choose raw, hdf5 or zarr, or remove the attrs from a copy first"
            )
        if cls._exists(self.dst_loc) and not self.overwrite:
            raise AlreadyExistsError(f"{self.dst_loc}: an array already exists there; pass overwrite=True to replace it")

    def _contiguous_dst(self) -> bool:
        from ..backends._mapped import MappedFileStore

        return issubclass(self.dst_cls, MappedFileStore)

    def _dst_layout(self) -> tuple[tuple[int, ...] | None, str | None]:
        """(chunks to pass to create, note): None for contiguous destinations."""
        src = self.src
        if self._contiguous_dst():
            if self.chunks is not None or self.shards is not None or self.compression is not None:
                raise ConversionError(
                    f"the {self.dst_cls.backend} backend stores one contiguous uncompressed byte range: chunks=, "
                    "shards= and compression= need hdf5 or zarr"
                )
            return None, None
        if self.chunks is not None:
            return self.chunks, None
        per_block = self.budget // blocks_in_memory("blocks", self.compression is not None, self._writers())
        if transposes(src.shape, src.order, self.order, src.chunks) and self.shards is None:
            target = max(1, min(TARGET_CHUNK_BYTES, per_block))
            return (choose_chunks(src.shape, src.dtype.itemsize, src.order, target),
                    "Fortran-order source into C order: chunks are contiguous runs of the source, each block read "
                    "sequentially and written as whole chunks")
        if self.dst_cls.backend == "hdf5" and self.compression is None and self.shards is None:
            return None, "uncompressed HDF5 without chunks: contiguous dataset"
        if self.shards is not None:
            return None, "chunks inside shards chosen by the backend"
        if src.chunks is not None and self.order == src.order:
            nbytes = math.prod(src.chunks) * src.dtype.itemsize
            if nbytes <= min(MAX_CHUNK_BYTES, per_block):
                return tuple(src.chunks), "chunks taken from the source"
        target = max(1, min(TARGET_CHUNK_BYTES, per_block))
        return (choose_chunks(src.shape, src.dtype.itemsize, self.order, target),
                f"chunks chosen: about {target:,} bytes, whole along the fastest-varying axes")

    def _method(self, dst_grid: tuple[int, ...] | None) -> str:
        src = self.src
        same_layout = dst_grid is None and self.order == src.order and src.nbytes > 0
        if same_layout and self._src_region is not None and (self._contiguous_dst() or self.dst_cls.backend == "hdf5"):
            if self.dst_cls.backend == "hdf5" and self.compression is not None:
                return "blocks"
            return "buffered-copy" if c_streamable_shape(src.shape, src.order) else "kernel-copy"
        return "blocks"

    def _plan(self, grid: tuple[int, ...] | None, chunks: tuple[int, ...] | None, method: str,
              notes: list[str]) -> ConversionPlan:
        budget = min(self.budget, COPY_BLOCK) if method != "blocks" else self.budget
        return plan_conversion(
            src_backend=self.src.backend, dst_backend=self.dst_cls.backend, shape=self.src.shape, dtype=self.src.dtype,
            order=self.src.order, chunks=chunks, shards=grid if self.shards is not None else None,
            compression=self.compression, max_memory=budget, workers=self._writers(), method=method, notes=notes,
        )

    def _writers(self) -> int:
        return self.workers if (self.dst_cls.backend == "zarr" and self.compression is not None) else 1

    # -- running -----------------------------------------------------------

    def run(self) -> ConversionReport:
        src = self.src
        self._preflight()
        create_chunks, note = self._dst_layout()
        grid = self.shards if self.shards is not None else create_chunks
        method = self._method(grid)
        notes = [note] if note else []
        plan = self._plan(grid, create_chunks, method, notes)  # MemoryBudgetError here: nothing written yet
        if self.sampler is not None and plan.nbytes >= SAMPLE_THREAD_MIN:
            self.sampler.start()
        jpath = journal_path(self.dst_loc)
        fingerprint = source_fingerprint(parse_location(src.path), src.backend, src.meta.to_dict())
        journal, restart = Journal.open(jpath, fingerprint, plan.key(), resume=self.resume, durable=self.durable,
                                        enabled=_resumable(plan))
        reuse = self.resume and not journal.fresh
        extra: dict[str, Any] = {"shards": self.shards} if self.shards is not None else {}
        try:
            names = source_dimension_names(src) if self.dst_cls.supports_dimension_names else None
            if names is not None:
                extra["dimension_names"] = names
            dst = create(str(self.dst_loc), src.shape, src.dtype, backend=self.dst_cls.backend, chunks=create_chunks,
                         compression=self.compression, order=self.order, attrs=dict(src.meta.attrs),
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
            dst_region = _mapped_region(dst) if dst.dtype == src.dtype else None
            if plan.method != "blocks" and dst_region is None:
                plan = self._plan(None, None, "blocks", [*notes, "destination has no contiguous byte range yet"])
                journal.restart(plan.key(), enabled=_resumable(plan))
            direct = direct_pipeline(dst, src.dtype) if plan.method == "blocks" else None
            if direct is not None:
                plan = dataclasses.replace(plan, notes=(*plan.notes, (
                    f"chunks {'shuffled and ' if direct[0] else ''}deflated (level {direct[1]}) by {self.workers} "
                    "threads, written with write_direct_chunk")))
            report.method = plan.method
            report.plan = plan.to_dict()
            report.blocks_total = plan.n_blocks
            report.memory_estimate = plan.blocks.block_bytes * blocks_in_memory(plan.method, self.compression is not None,
                                                                                 plan.workers)
            value = self._move(dst, dst_region, plan, journal, report, direct)
            if value is None:  # not streamable in C order: one pass over the source
                value = checksum(src, max_bytes=max(plan.blocks.block_bytes, 1 << 20))
            report.checksum = value
            if self.verify:
                # Never the path that produced the bytes: both sides as their libraries decode them.
                slab = max(plan.blocks.block_bytes, 1 << 20)
                if self._src_region is not None:
                    value = checksum(src, max_bytes=slab, decoded=True)
                got = checksum(dst, max_bytes=slab, decoded=True)
                if got["value"] != value["value"]:
                    raise VerificationError(
                        f"{self.dst_loc}: the converted data reads back with checksum {got['value']}, the source "
                        f"has {value['value']} ({value['algorithm']}); nothing was published. Check the disk and "
                        "convert again"
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
                raise ConversionError(
                    f"{src.path}: the source changed size while being converted ({exc}); nothing was published. "
                    "Convert it again once it is no longer being written"
                ) from exc
            raise
        dst.close()  # publishes: flush (+ fsync when durable), rename into place
        journal.remove()
        return report

    def _move(self, dst: ArrayStore, dst_region: tuple[str, int] | None, plan: ConversionPlan, journal: Journal,
              report: ConversionReport, direct: tuple[bool, int] | None = None) -> dict[str, str] | None:
        """Move every block; returns the streamed checksum, or None when blocks are not C-order consecutive."""
        hasher = StreamHasher() if c_streamable(plan.blocks) else None
        total = plan.nbytes
        done = [0]
        bar = _progress_bar(self.progress, total)
        flush_each = dst.backend not in _WRITE_THROUGH

        def finished(item: tuple[int, int, str]) -> None:
            i, nbytes, digest = item
            if flush_each:
                dst.flush()
            journal.record(i, digest)
            report.blocks_written += 1
            done[0] += nbytes
            bar(done[0], total)

        mover: _BlockMover
        if direct is not None:
            mover = _DirectChunkMover(self.src, dst, plan, self._src_region, None,
                                      DirectChunkWriter(dst, *direct, workers=self.workers))
        else:
            mover = (_ByteMover if plan.method != "blocks" else _BlockMover)(self.src, dst, plan, self._src_region,
                                                                             dst_region)
        try:
            with BlockPipeline(0 if plan.workers <= 1 and plan.method != "blocks" else plan.workers, finished) as pipe:
                first = True
                for i, sel in enumerate(plan.blocks):
                    if i in journal.done:
                        data, digest = mover.read_back(sel)
                        if journal.done[i] in (digest, "") and (journal.done[i] or mover.same_as_source(sel, data)):
                            if hasher is not None:
                                hasher.update(mover.as_array(data, sel))
                            report.blocks_resumed += 1
                            done[0] += data.nbytes
                            bar(done[0], total)
                            continue
                        journal.forget(i)
                        report.blocks_rewritten += 1
                    data, digest = mover.read(sel)
                    if hasher is not None:
                        hasher.update(mover.as_array(data, sel))
                    if first:  # the first write runs alone: backends set their "incomplete" flag on it
                        finished(mover.write(i, sel, data, digest))
                        first = False
                    else:
                        pipe.submit(mover.write, i, sel, data, digest)
                    del data
            if self.sampler is not None:
                self.sampler.sample()  # the block buffers are still alive here
        finally:
            mover.finish()
        report.copy_call = getattr(mover, "copy_call", None)
        return hasher.result() if hasher is not None else None


def _resumable(plan: ConversionPlan) -> bool:
    """A plan of one block has nothing to resume: it runs without a journal file."""
    return plan.n_blocks > 1


def c_streamable_shape(shape: tuple[int, ...], order: str) -> bool:
    """True when storage order equals C order for this shape (C order, or at most one axis longer than 1)."""
    return order == "C" or sum(1 for n in shape if n > 1) <= 1


def _progress_bar(progress: Progress | bool | None, total: int) -> Callable[[int, int], Any]:
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


class _BlockMover:
    """Blocks as arrays: ``src[sel]`` (or a pread for byte-range sources), ``dst[sel] = block`` (or a pwrite)."""

    def __init__(self, src: ArrayStore, dst: ArrayStore, plan: ConversionPlan,
                 src_region: tuple[str, int] | None, dst_region: tuple[str, int] | None) -> None:
        self.src, self.dst, self.plan = src, dst, plan
        self.dtype = src.dtype
        self._drop = plan.nbytes >= DROP_BEHIND_MIN  # small conversions leave the page cache alone
        self._src_region = src_region
        self._src_fd = os.open(self._src_region[0], os.O_RDONLY) if self._src_region else None
        self._dst_region = dst_region
        self._dst_fd = os.open(self._dst_region[0], os.O_RDWR) if self._dst_region else None
        self._writer = DropBehindWriter(self._dst_fd, enabled=self._drop) if self._dst_fd is not None else None

    def as_array(self, data: np.ndarray[Any, Any], sel: tuple[slice, ...]) -> np.ndarray[Any, Any]:
        return data

    def read(self, sel: tuple[slice, ...]) -> tuple[np.ndarray[Any, Any], str]:
        block = self._read_src(sel)
        return block, block_digest(block)

    def _read_src(self, sel: tuple[slice, ...]) -> np.ndarray[Any, Any]:
        src = self.src
        rng = byte_range(sel, src.shape, src.order, src.dtype.itemsize) if self._src_fd is not None else None
        if rng is None or self._src_region is None or self._src_fd is None:
            return np.asarray(src[sel])
        off, n = rng
        shape = tuple(s.stop - s.start for s in sel)
        flat = np.empty(math.prod(shape), src.dtype)
        pread_into(self._src_fd, flat.view(np.uint8).data, self._src_region[1] + off)
        if self._drop:
            drop_cache(self._src_fd, self._src_region[1] + off, n)
        return flat.reshape(shape, order=src.order)  # type: ignore[call-overload, no-any-return]

    def read_back(self, sel: tuple[slice, ...]) -> tuple[np.ndarray[Any, Any], str]:
        block = np.asarray(self.dst[sel])
        return block, block_digest(block)

    def same_as_source(self, sel: tuple[slice, ...], data: np.ndarray[Any, Any]) -> bool:
        return bool(block_digest(self._read_src(sel)) == block_digest(data))

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
        if self._writer is not None:
            self._writer.finish()
        for fd in (self._src_fd, self._dst_fd):
            if fd is not None:
                os.close(fd)
        self._src_fd = self._dst_fd = None


class _DirectChunkMover(_BlockMover):
    """Blocks of a deflated HDF5 destination: chunks compressed on a pool, written with write_direct_chunk."""

    def __init__(self, src: ArrayStore, dst: ArrayStore, plan: ConversionPlan, src_region: tuple[str, int] | None,
                 dst_region: tuple[str, int] | None, direct: DirectChunkWriter) -> None:
        super().__init__(src, dst, plan, src_region, dst_region)
        self._direct = direct
        before_write = getattr(dst, "_before_write", None)  # sets the "incomplete" flag of in-place datasets
        if before_write is not None:
            before_write()

    def write(self, i: int, sel: tuple[slice, ...], block: np.ndarray[Any, Any], digest: str) -> tuple[int, int, str]:
        self._direct.write(sel, block)
        return i, block.nbytes, digest

    def finish(self) -> None:
        try:
            self._direct.close()
        finally:
            super().finish()


class _ByteMover(_BlockMover):
    """Same bytes, same layout: blocks are byte ranges, copied through one buffer or in the kernel."""

    def __init__(self, src: ArrayStore, dst: ArrayStore, plan: ConversionPlan,
                 src_region: tuple[str, int] | None, dst_region: tuple[str, int] | None) -> None:
        super().__init__(src, dst, plan, src_region, dst_region)
        assert self._src_region is not None and self._dst_region is not None
        self._buf = np.empty(plan.blocks.block_bytes if plan.method == "buffered-copy" else 0, np.uint8)
        self.copy_call: str | None = "preadv/pwritev" if plan.method == "buffered-copy" else None

    def _range(self, sel: tuple[slice, ...]) -> tuple[int, int]:
        rng = byte_range(sel, self.src.shape, self.src.order, self.src.dtype.itemsize)
        assert rng is not None  # plans of contiguous arrays without chunks are runs
        return rng

    def as_array(self, data: np.ndarray[Any, Any], sel: tuple[slice, ...]) -> np.ndarray[Any, Any]:
        return data  # raw bytes in storage order == C order when streamable

    def read(self, sel: tuple[slice, ...]) -> tuple[np.ndarray[Any, Any], str]:
        off, n = self._range(sel)
        if self.plan.method == "kernel-copy":
            return np.empty(0, np.uint8), ""  # bytes stay in the kernel; resume compares with the source
        assert self._src_fd is not None and self._src_region is not None
        view = self._buf[:n]
        pread_into(self._src_fd, view.data, self._src_region[1] + off)
        if self._drop:
            drop_cache(self._src_fd, self._src_region[1] + off, n)
        return view, block_digest(view)

    def _read_dst(self, sel: tuple[slice, ...]) -> np.ndarray[Any, Any]:
        off, n = self._range(sel)
        assert self._dst_fd is not None and self._dst_region is not None
        view = self._buf[:n] if self._buf.size >= n else np.empty(n, np.uint8)
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
            self.copy_call = copy_range(self._src_fd, self._src_region[1] + off, self._dst_fd,
                                        self._dst_region[1] + off, n, self._writer, self.dst.path)
        else:
            pwrite_all(self._dst_fd, block.data, self._dst_region[1] + off, self.dst.path)
            self._writer.wrote(self._dst_region[1] + off, n)
        return i, n, digest
