"""``convert(..., scheduler=...)``: one conversion's blocks as tasks on a Dask cluster.

The client process (the one that calls :func:`convert`) plans exactly as a local
conversion does (same block plan, same destination chunks, same journal key, so a
conversion interrupted locally resumes on a cluster and the other way round), creates
the staged destination with :func:`arraystore.create`, holds its writer lock, keeps
the journal, computes the checksum, verifies and publishes. The cluster's workers do
the block work. Every task carries paths and a block index, never data; the workers
must see the source and the staged destination under the same paths (a shared file
system), or reach them in an object store. Who writes a block depends on the destination:

backends with ``parallel_chunk_writers`` (Zarr)
    Each task opens the *staged* array itself (:func:`arraystore._open.share_staged`,
    without the writer lock: the client holds it), reads its block from the source and writes it. Safe
    without a lock because blocks are whole destination chunks (or shards), each chunk
    belongs to exactly one block, Zarr stores every chunk in its own file, and the
    workers never write ``zarr.json`` (the staged handle sets no "incomplete" flag;
    only the client writes metadata, at the end). In an object store the array is created at
    its final place, flagged *staged*; the tasks open it without the lease (the client holds
    it, and renews it as blocks finish) and never write ``zarr.json``; the client's last write
    of ``zarr.json`` publishes it.
``raw``, ``npy``, contiguous uncompressed HDF5
    The client preallocates the file (``create``); each task writes its block's byte
    range with ``pwrite`` (or copies it in the kernel with ``copy_file_range`` when
    source and destination hold the same bytes in the same layout). Distinct blocks
    are distinct byte ranges, and no file metadata changes, so no lock is needed; the
    client's HDF5 handle never caches these bytes. When the block plan's blocks are
    not byte runs of the destination (a change of order), tasks hand blocks to the
    client instead, as for HDF5.
chunked or compressed ``hdf5`` (and any other backend)
    HDF5 allows one writing process per file and caches metadata inside it: a second
    process opening the staged file would corrupt it (and its file locking refuses it),
    and serialising workers with a ``distributed.Lock`` would still reopen, rewrite the
    metadata and close the file on every block. So tasks read (and decode) source blocks
    in parallel and return them; the client writes them in plan order, at most a
    budget's worth in flight.

Each task returns its block's digest (:func:`~arraystore.checksums.block_digest`), which
the client journals, so a kill of the client resumes like a local conversion; journaled
blocks are read back (by the task that would rewrite them) and only rewritten when
they differ. The content checksum is streamed in the client when the client sees the
blocks in C order; otherwise the client hashes the source in C-order slabs in a
thread while the workers convert. ``verify=True`` re-reads the staged destination in
the client before it is published.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .._open import StagedArray, share_staged
from .._open import open as open_store
from ..checksums import StreamHasher, block_digest, c_order_plan, c_streamable
from ..errors import ArrayChangedError, ArrayStoreError, ConversionError
from ..integrations.scheduler import Completions, check_scheduler, client_for, describe_scheduler, distributed_module
from ..store import ArrayStore
from ._fastpath import DropBehindWriter, copy_range, pread_into, pwrite_all
from ._hdf5_direct import DirectChunkWriter
from ._journal import Journal
from ._movers import byte_range, progress_bar
from ._options import ConvertOptions
from ._plan import ConversionPlan, blocks_in_memory
from ._report import ConversionReport
from ._run import _Conversion, run_conversion

__all__ = ["convert_on_dask", "describe_scheduler"]

Sel = tuple[slice, ...]


# -- what tasks carry ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SourceRef:
    """A source as a worker reopens it: path, backend and the options that reading it needs."""

    path: str
    backend: str
    options: dict[str, Any] = field(default_factory=dict)

    def open(self) -> ArrayStore:
        return open_store(self.path, "r", backend=self.backend, **self.options)


def _source_ref(store: ArrayStore) -> _SourceRef:
    if store.mode == "c":
        raise ConversionError(
            f"{store.path}: a copy-on-write store's changes live only in this process, where the Dask workers "
            "cannot read them; convert without scheduler=, or save the changes to a file first"
        )
    if store.writable:
        store.flush()  # the workers read the file
    try:
        _fn, (path, backend, options) = store.__reduce__()[:2]
    except TypeError:
        raise ConversionError(
            f"{store.path}: the source is an array still being created; close (publish) it before converting it "
            "on a cluster"
        ) from None
    return _SourceRef(str(path), str(backend), dict(options))


@dataclass(frozen=True)
class _Target:
    """How a task writes its block.

    ``kind`` is ``"chunks"`` (open the staged array), ``"region"`` (pwrite into a
    preallocated byte range), ``"copy"`` (byte range to byte range, same layout) or
    ``"client"`` (return the block to the client).
    """

    kind: str
    source: _SourceRef
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    order: str
    durable: bool = False
    digest_order: str = "C"  # the source's storage order: journaled digests match a local conversion's
    # chunks
    staged: StagedArray | None = None
    # region, copy
    file: str = ""
    offset: int = 0
    src_file: str = ""
    src_offset: int = 0
    method: str = "blocks"


class _Done(NamedTuple):
    """What a task hands back: ``status`` is ``written``, ``rewritten`` or ``resumed``; ``data``: C-order bytes."""

    number: int
    nbytes: int
    digest: str
    status: str
    data: np.ndarray[Any, Any] | None = None
    copy_call: str | None = None


# -- tasks (run on the workers) -------------------------------------------------------------------------------------


def _read_source(source: _SourceRef, sel: Sel) -> np.ndarray[Any, Any]:
    with source.open() as src:
        return np.asarray(src[sel])


def _block_task(target: _Target, index: int, sel: Sel, expected: str | None) -> _Done:
    """Convert one block (``expected``: its journaled digest, when a previous run finished it)."""
    if target.kind == "client":
        block = _read_source(target.source, sel)
        # as bytes: distributed hands arrays nested in a result back in native byte order
        raw = np.ascontiguousarray(block).reshape(-1).view(np.uint8)
        return _Done(index, block.nbytes, block_digest(block, target.digest_order), "written", raw)
    if target.kind == "chunks":
        return _chunk_block(target, index, sel, expected)
    return _range_block(target, index, sel, expected)


def _open_staged(target: _Target) -> ArrayStore:
    """A second handle on the staged array, for writing distinct chunks; it never publishes."""
    assert target.staged is not None
    try:
        return target.staged.open()
    except ArrayChangedError as exc:
        raise ConversionError(f"{exc}; run the conversion again") from None


def _chunk_block(target: _Target, index: int, sel: Sel, expected: str | None) -> _Done:
    store = _open_staged(target)
    try:
        status = "written"
        if expected is not None:
            old = np.asarray(store[sel])
            if block_digest(old, target.digest_order) == expected:
                return _Done(index, old.nbytes, expected, "resumed")
            status = "rewritten"
        block = _read_source(target.source, sel)
        store[sel] = block
    finally:
        store.abandon()  # closes this handle without publishing or removing the staged array
    return _Done(index, block.nbytes, block_digest(block, target.digest_order), status)


def _range_block(target: _Target, index: int, sel: Sel, expected: str | None) -> _Done:
    rng = byte_range(sel, target.shape, target.order, target.dtype.itemsize)
    if rng is None:  # the client checked every block
        raise ConversionError(f"{target.file}: block {sel} is not one byte range of the destination")
    off, n = rng
    fd = os.open(target.file, os.O_RDWR)
    try:
        status = "written"
        if expected is not None:
            if _range_matches(target, fd, sel, off, n, expected):
                return _Done(index, n, expected, "resumed")
            status = "rewritten"
        writer = DropBehindWriter(fd)
        call = None
        if target.kind == "copy":
            digest, call = _copy(target, fd, off, n, writer)
        else:
            block = _read_source(target.source, sel)
            digest = block_digest(block, target.digest_order)
            flat = np.ravel(block, order=target.order)  # type: ignore[call-overload]
            pwrite_all(fd, flat.view(np.uint8).data, target.offset + off, target.file)
            writer.wrote(target.offset + off, n)
        writer.finish()
        if target.durable:
            os.fdatasync(fd)
    finally:
        os.close(fd)
    return _Done(index, n, digest, status, copy_call=call)


def _range_matches(target: _Target, fd: int, sel: Sel, off: int, n: int, expected: str) -> bool:
    """True when the destination's bytes of a block are the ones journaled (or, for kernel copies, the source's)."""
    have = np.empty(n, np.uint8)
    pread_into(fd, have.data, target.offset + off)
    if target.kind == "copy":
        if expected:
            return bool(block_digest(have) == expected)
        want = np.empty(n, np.uint8)
        with open(target.src_file, "rb") as f:
            pread_into(f.fileno(), want.data, target.src_offset + off)
        return bool(block_digest(want) == block_digest(have))
    shape = tuple(s.stop - s.start for s in sel)
    block = have.view(target.dtype).reshape(shape, order=target.order)  # type: ignore[call-overload]
    return bool(block_digest(block, target.digest_order) == expected)


def _copy(target: _Target, dst_fd: int, off: int, n: int, writer: DropBehindWriter) -> tuple[str, str]:
    """Copy a byte range between same-layout files: in the kernel (digest ``""``) or through a buffer."""
    src_fd = os.open(target.src_file, os.O_RDONLY)
    try:
        if target.method == "kernel-copy":
            call = copy_range(src_fd, target.src_offset + off, dst_fd, target.offset + off, n, writer, target.file)
            return "", call
        buf = np.empty(n, np.uint8)
        pread_into(src_fd, buf.data, target.src_offset + off)
        pwrite_all(dst_fd, buf.data, target.offset + off, target.file)
        writer.wrote(target.offset + off, n)
        return block_digest(buf), "preadv/pwritev"
    finally:
        os.close(src_fd)


# -- the client -----------------------------------------------------------------------------------------------------


class _SourceChecksum(threading.Thread):
    """The source's content checksum, read in C-order slabs in the client while the workers convert."""

    def __init__(self, store: ArrayStore, max_bytes: int) -> None:
        super().__init__(name="arraystore-convert-checksum", daemon=True)
        self.store = store
        self.max_bytes = max_bytes
        self._stop_event = threading.Event()
        self._value: dict[str, str] | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            h = StreamHasher()
            store = self.store
            for sel in c_order_plan(store.shape, store.dtype.itemsize, self.max_bytes):
                if self._stop_event.is_set():
                    return
                h.update(store[sel] if sel else store[...])
            self._value = h.result()
        except BaseException as exc:  # re-raised in the client's thread by result()
            self._error = exc

    def result(self) -> dict[str, str]:
        self.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value

    def cancel(self) -> None:
        self._stop_event.set()
        self.join()


class _DaskConversion(_Conversion):
    """A local conversion's planning, journal, verification and publishing; blocks moved by a Dask cluster."""

    scheduler: Any = None
    writes_chunks_here = False  # workers write them: a replaced array's objects are deleted first

    def _move(self, dst: ArrayStore, dst_region: tuple[str, int] | None, plan: ConversionPlan, journal: Journal,
              report: ConversionReport, direct: tuple[bool, int | None] | None = None) -> dict[str, str] | None:
        target = self._target(dst, dst_region, plan)
        hasher = StreamHasher(self.src.dtype) if target.kind == "client" and c_streamable(plan.blocks) else None
        side = None
        if hasher is None:
            side = _SourceChecksum(self.src, max(plan.blocks.block_bytes, 1 << 20))
            side.start()
        report.plan["scheduler"] = {"address": describe_scheduler(self.scheduler),
                                    "writes": "client" if target.kind == "client" else "workers"}
        try:
            if plan.n_blocks:
                with client_for(self.scheduler, self.workers) as (client, completions):
                    run = _ClientWrites if target.kind == "client" else _WorkerWrites
                    run(self, client, completions, dst, plan, journal, report, target, hasher, direct).run()
        except BaseException:
            if side is not None:
                side.cancel()
            raise
        return hasher.result() if hasher is not None else side.result() if side is not None else None

    def _target(self, dst: ArrayStore, region: tuple[str, int] | None, plan: ConversionPlan) -> _Target:
        src = self.src
        common: dict[str, Any] = {"source": _source_ref(src), "shape": dst.shape, "dtype": dst.dtype,
                                  "order": dst.order, "durable": self.durable, "digest_order": plan.order}
        if plan.method != "blocks":  # same bytes, same layout: run() checked both byte ranges exist
            s_region = self._src_region
            assert s_region is not None and region is not None
            return _Target("copy", file=region[0], offset=region[1], src_file=s_region[0],
                           src_offset=s_region[1], method=plan.method, **common)
        if type(dst).parallel_chunk_writers:
            target = _Target("chunks", staged=share_staged(dst), **common)
            try:  # a zip store's staging folder, for instance, takes no second writer
                _open_staged(target).abandon()
                return target
            except ArrayStoreError:
                return _Target("client", **common)
        if region is not None and all(
            byte_range(sel, dst.shape, dst.order, dst.dtype.itemsize) is not None for sel in plan.blocks
        ):
            return _Target("region", file=region[0], offset=region[1], **common)
        return _Target("client", **common)


#: Seconds an interrupted conversion waits for the blocks in flight before cancelling them.
INTERRUPT_GRACE = 1.0


class _Mover:
    """The client's loop: submit block tasks, at most ``window`` in flight; journal and report what finishes."""

    def __init__(self, conv: _DaskConversion, client: Any, completions: Completions, dst: ArrayStore,
                 plan: ConversionPlan, journal: Journal, report: ConversionReport, target: _Target,
                 hasher: StreamHasher | None, direct: tuple[bool, int | None] | None) -> None:
        self.conv, self.client, self.completions, self.dst, self.plan = conv, client, completions, dst, plan
        self.direct = direct
        self.journal, self.report, self.target, self.hasher = journal, report, target, hasher
        self.bar = progress_bar(conv.progress, plan.nbytes)
        self.done_bytes = 0
        self.token = uuid.uuid4().hex[:12]
        self.inflight: set[Any] = set()

    def submit(self, index: int, sel: Sel, expected: str | None) -> Any:
        fut = self.client.submit(_block_task, self.target, index, sel, expected,
                                 key=f"arraystore-convert-{self.token}-{index}", pure=False)
        self.inflight.add(fut)
        return self.completions.watch(fut)

    def result(self, fut: Any) -> _Done:
        self.completions.until_done(fut)  # Ctrl-C raises here, not inside distributed's result()
        done: _Done = fut.result()
        self.inflight.discard(fut)
        fut.release()
        return done

    def progress(self, nbytes: int) -> None:
        self.done_bytes += nbytes
        self.bar(self.done_bytes, self.plan.nbytes)

    def record(self, done: _Done) -> None:
        self.journal.record(done.number, done.digest)
        self.report.blocks_written += 1
        if done.status == "rewritten":
            self.report.blocks_rewritten += 1
        if done.copy_call:
            self.report.copy_call = done.copy_call
        self.progress(done.nbytes)

    def run(self) -> None:
        try:
            self.loop()
        except KeyboardInterrupt:
            self.stop(INTERRUPT_GRACE)
            raise
        except BaseException:
            # Let the few blocks in flight finish (unjournaled) rather than cancel them: a running task cannot
            # be stopped, and none may still write into the staged array once convert() has raised.
            self.stop(None)
            raise

    def stop(self, grace: float | None) -> None:
        """Wait up to ``grace`` seconds (``None``: no limit) for the tasks in flight, then cancel the rest.

        Blocks finished are already journaled; the others stay unjournaled, and a rerun
        rewrites them. A task still running when it is cancelled cannot be stopped on a
        cluster the caller owns (it rewrites the same bytes a rerun would); a ``"local"``
        cluster is closed right after, which ends it.
        """
        futures = list(self.inflight)
        with contextlib.suppress(BaseException):
            distributed_module().wait(futures, timeout=grace)
        with contextlib.suppress(BaseException):
            self.client.cancel([f for f in futures if not f.done()])
        self.inflight.clear()

    def loop(self) -> None:
        raise NotImplementedError


class _WorkerWrites(_Mover):
    """Workers write their blocks; results arrive in any order."""

    def loop(self) -> None:
        threads = sum(self.client.nthreads().values()) or 1
        window = 2 * threads  # each thread has a block running and one queued
        for i, sel in enumerate(self.plan.blocks):
            self.submit(i, sel, self.journal.done.get(i))
            if len(self.inflight) >= window:
                self.finished(self.result(self.completions.next()))
        while self.inflight:
            self.finished(self.result(self.completions.next()))

    def finished(self, done: _Done) -> None:
        self.dst._keep_alive()  # the workers write; this process holds the writer lock (a lease expires)
        if done.status == "resumed":
            self.report.blocks_resumed += 1
            self.progress(done.nbytes)
        else:
            self.record(done)


class _ClientWrites(_Mover):
    """Workers read blocks; the client writes them in plan order (and streams the checksum when it can)."""

    def loop(self) -> None:
        plan, dst, journal = self.plan, self.dst, self.journal
        parts = blocks_in_memory("blocks", plan.compression is not None, plan.workers)
        window = max(1, parts - 2 - (self.hasher is None))  # minus the block being written (+ checksum slab)
        flush_each = not type(dst).writes_go_through
        # a deflated HDF5 destination: the client compresses chunks on its threads, as a local conversion does
        self.writer = DirectChunkWriter(dst, *self.direct, workers=self.conv.workers) if self.direct else None
        try:
            self._loop(plan, dst, journal, window, flush_each)
        finally:
            if self.writer is not None:
                self.writer.close()

    def _loop(self, plan: ConversionPlan, dst: ArrayStore, journal: Journal, window: int, flush_each: bool) -> None:
        pending: deque[tuple[Sel, Any]] = deque()
        for i, sel in enumerate(plan.blocks):
            if i in journal.done:
                while pending:
                    self.write(*pending.popleft(), flush_each)
                data = np.asarray(dst[sel])
                if block_digest(data, plan.order) == journal.done[i]:
                    if self.hasher is not None:
                        self.hasher.update(data)
                    self.report.blocks_resumed += 1
                    self.progress(data.nbytes)
                    continue
                journal.forget(i)
                self.report.blocks_rewritten += 1
                del data
            pending.append((sel, self.submit(i, sel, None)))
            while len(pending) > window:
                self.write(*pending.popleft(), flush_each)
        while pending:
            self.write(*pending.popleft(), flush_each)

    def write(self, sel: Sel, fut: Any, flush_each: bool) -> None:
        done = self.result(fut)
        assert done.data is not None
        block = done.data.view(self.conv.src.dtype).reshape(tuple(s.stop - s.start for s in sel))
        if self.writer is not None:
            self.writer.write(sel, block)
        else:
            self.dst[sel] = block
        if flush_each:
            self.dst.flush()
        if self.hasher is not None:
            self.hasher.update(block)
        self.record(done._replace(data=None))


def convert_on_dask(
    src: str | os.PathLike[str] | ArrayStore,
    dst: str | os.PathLike[str],
    options: ConvertOptions,
    *,
    scheduler: Any,
    progress: Any = None,
    attrs: str = "keep",
) -> ConversionReport:
    """:func:`arraystore.convert` with ``scheduler=``: the same plan and result, blocks moved by a Dask cluster.

    ``options.workers`` sizes a ``"local"`` cluster (worker processes, one thread each) and,
    as locally, the plan. Memory figures in the report are the client process's.
    See the module docstring for who writes what, and ``docs/conversion.md``.
    """
    check_scheduler(scheduler)
    return run_conversion(src, dst, options, progress, _DaskConversion, scheduler=scheduler)
