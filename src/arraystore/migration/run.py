"""``migrate()``: discover, resolve, plan, convert in parallel, record every file in a manifest.

See ``docs/migration.md`` for the walkthrough and ``docs/migration-metadata.md`` for how
each file's metadata is resolved.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, as_completed
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from .. import _fsutil
from ..conversion import ConvertOptions
from ..errors import ArrayNotFoundError, BackendError, MetadataError, StorageFullError, known_options
from ..objstore import default_storage_options
from ..registry import backend_class, is_target, target_names
from ._discover import DEFAULT_INCLUDE, discover
from ._group import check_into, consolidate_group
from ._job import Job, run_batch, run_job
from ._manifest import MANIFEST_NAME, FileRecord, Manifest, record_line
from ._planner import VIRTUAL, _error, _Planner
from ._realdirs import fewer_collections, remembered
from ._remote import RemoteManifest, check_remote_target, remote_root, write_remote_outputs
from ._report import REPORT_NAME, SUGGESTED_RULES_NAME, SUMMARY_NAME, MigrationReport
from .resolve import Resolution
from .rules import Rules, load_rules, suggest_rules

__all__ = [
    "REPORT_NAME",
    "SUGGESTED_RULES_NAME",
    "SUMMARY_NAME",
    "MigrationProgress",
    "combine_rules",
    "migrate",
]

T = TypeVar("T")


@dataclass(frozen=True)
class MigrationProgress:
    """Handed to a ``progress`` callable each time a file finishes."""

    record: FileRecord
    done_files: int
    total_files: int
    done_bytes: int
    total_bytes: int


ProgressCallback = Callable[[MigrationProgress], Any]


def _check_dirs(src: Path, dst: Path | None) -> None:
    if not src.exists():
        raise ArrayNotFoundError(f"{src}: no such archive folder to migrate")
    if not src.is_dir():
        raise MetadataError(
            f"{src}: expected the archive's folder, found a file; migrate a folder (or use convert)"
        )
    if dst is None:  # an object-store prefix: nothing to overlap
        return
    s, d = src.resolve(), dst.resolve()
    if s == d or d in s.parents:
        raise MetadataError(
            f"{dst}: the destination must not be the archive or a folder above it; choose another"
        )


def _execute(
    jobs: Sequence[Job], workers: int, scheduler: Any, on_results: Callable[[list[FileRecord]], None]
) -> None:
    if scheduler is not None:
        from ._dask import run_on_dask

        run_on_dask(jobs, scheduler, workers, lambda record: on_results([record]))
        return
    if workers <= 1 or len(jobs) <= 1:
        if any(j.options.durable and not j.virtual for j in jobs):  # made durable, and recorded, a batch at a time
            for batch in _batches(jobs, 1, lambda j: j.size):
                on_results(_run_batch(batch))
            return
        with remembered():
            for job in jobs:
                on_results([run_job(job)])
        return
    _in_pool([(_run_batch, batch, sum(j.size for j in batch)) for batch in _batches(jobs, workers, lambda j: j.size)],
             workers, lambda result: on_results(result))


def _in_pool(
    tasks: Sequence[tuple[Callable[..., Any], Any, int]], workers: int, on_result: Callable[[Any], None]
) -> None:
    """Run ``fn(arg)`` for each task ``(fn, arg, nbytes)`` in worker processes; ``on_result`` here as each finishes.

    The pool's first ``submit`` waits for its workers to start (the forkserver importing
    arraystore, a fork each): a few tenths of a second, as long as converting hundreds of
    small files. A thread submits the tasks meanwhile, and this process runs tasks itself,
    from the end of the list (sorted largest first: the smallest files), until the thread
    has handed them all to the pool: no CPU waits for the workers, and a migration of a few
    batches is often done here before they are up. Only batches of at most
    :data:`BATCH_BYTES` (small files) run here: the memory of the migration stays that of its
    workers' conversions, plus one small batch.
    """
    from ..parallel import abandon_pool, pool_session, process_pool, start_forkserver

    start_forkserver((__name__,))  # from this thread (Ctrl-C ignored in the server), if migrate() did not already
    left = deque(tasks)
    futures: list[Future[Any]] = []
    failed: list[BaseException] = []

    def submit() -> None:
        try:
            while True:
                try:
                    fn, arg, _nbytes = left.popleft()
                except IndexError:
                    return
                futures.append(pool.submit(fn, arg))
        except BaseException as exc:  # a broken pool, or one shut down by an interrupt below
            failed.append(exc)

    with pool_session("migrate() with workers > 1"):
        pool = process_pool(min(workers, len(tasks)), preload=(__name__,))
        submitter = threading.Thread(target=submit, name="arraystore-migrate-submit", daemon=True)
        try:
            submitter.start()
            while True:
                try:  # the thread takes from the left only: what is seen last is what is taken, if any
                    if left[-1][2] > BATCH_BYTES:  # a large file (and all to its left): for the workers
                        break
                    fn, arg, _nbytes = left.pop()
                except IndexError:
                    break
                on_result(fn(arg))
            submitter.join()
            if failed:
                raise failed[0]
            for future in as_completed(futures):
                on_result(future.result())
        except BaseException:  # Ctrl-C, SIGTERM, a full disk: queued files are cancelled, running ones abandoned
            left.clear()
            submitter.join(5.0)  # a spawn under way finishes first, so that its worker is ended too
            abandon_pool(pool)
            raise
        later = _JOIN_LATER.get()
        if later is None:
            pool.shutdown(wait=True)
        else:  # the workers exit while the caller writes its manifest and reports; it waits for them before it returns
            manager, processes = pool._executor_manager_thread, list((pool._processes or {}).values())  # type: ignore[attr-defined]
            pool.shutdown(wait=False)
            later.append((manager, processes))


#: Inside :func:`_pools_joined_at_end`: the (manager thread, worker processes) of each pool :func:`_in_pool` shut down
#: without waiting, joined when the block ends.
_JOIN_LATER: ContextVar[list[tuple[Any, list[Any]]] | None] = ContextVar("arraystore_migrate_join_later", default=None)


@contextlib.contextmanager
def _pools_joined_at_end() -> Iterator[None]:
    """Inside the block, :func:`_in_pool` lets its workers exit in the background (a few milliseconds each, once
    the last task is done) instead of waiting for them; every such worker has exited when the block ends."""
    later: list[tuple[Any, list[Any]]] = []
    token = _JOIN_LATER.set(later)
    try:
        yield
    finally:
        _JOIN_LATER.reset(token)
        for manager, processes in later:
            if manager is not None:
                manager.join()
            for proc in processes:
                proc.join()


#: A virtual migration of this many files or more (and ``workers`` not given) resolves them in one worker
#: process per CPU, as a copying migration does: resolving a file costs about three quarters of referencing
#: it. Measured with ``tools/bench_virtual.py --pool-sweep`` (each run a new process, the pool's start
#: included; 2 CPUs shared with other work, load 2-3): 2 workers took 1.8x the time of this process at
#: 2,000 files, 1.0-1.2x at 4,000 and 1.1x at 10,000; with the pool's server already running (a second
#: migration in one process) 0.8x at 10,000. The workers only pay off with CPUs to spare.
VIRTUAL_POOL_FILES = 4000

#: Small files travel to the pool in batches: one round trip per file costs more than converting it.
#: A batch is reported when all its files are done, so an interrupt abandons at most one batch per
#: worker: batches stay small (files of 8 MiB and more travel alone).
BATCH_FILES = 64
BATCH_BYTES = 8 << 20
#: A migration with workers whose files to resolve fit one batch (at most this many files and
#: :data:`BATCH_BYTES`) runs them in this process: starting the pool (a forkserver importing
#: arraystore, then the workers) takes longer than converting them.
IN_PROCESS_FILES = BATCH_FILES
#: A virtual migration's batches: its jobs only read metadata (0.2-0.3 ms a file), and a batch's round trip
#: (the planner sent, the records and jobs sent back) costs milliseconds. Measured on 10,000 files in a
#: new process with 2 workers: 64 files a batch took 3.4-4.0 s, 256 took 2.2-2.3 s, 1,024 took 2.4-2.8 s.
VIRTUAL_BATCH_FILES = 256


def _server_modules(to: str) -> tuple[str, ...]:
    """Modules the pool's server imports once for its workers: this one and the destination's backend (zarr,
    h5py), which the workers would otherwise each import."""
    from ..registry import BACKENDS

    spec = BACKENDS.get(to)
    return (__name__,) if spec is None else (__name__, spec.target.partition(":")[0])


def _may_start_workers() -> bool:
    """Whether worker processes could start from here: the workers a virtual migration chooses by itself (a
    speed-up, not asked for) are left out where the calling script's top level is not guarded."""
    from ..errors import UnguardedMainError
    from ..parallel import check_main_guard

    try:
        check_main_guard()
    except UnguardedMainError:
        return False
    return True


def _batches(items: Sequence[T], workers: int, size: Callable[[T], int], files: int = 0) -> list[list[T]]:
    """Consecutive items grouped up to ``files`` (default ``BATCH_FILES``) files or ``BATCH_BYTES``, at least
    ``2 * workers`` batches."""
    per = max(1, min(files or BATCH_FILES, -(-len(items) // (2 * workers))))
    out: list[list[T]] = []
    batch: list[T] = []
    total = 0
    for item in items:
        n = size(item)
        if batch and (len(batch) >= per or total + n > BATCH_BYTES):
            out.append(batch)
            batch, total = [], 0
        batch.append(item)
        total += n
    if batch:
        out.append(batch)
    return out


@fewer_collections()
def _run_batch(batch: list[Job]) -> list[FileRecord]:
    """Run a batch in a worker; an unforeseen error fails its own file, not the whole batch.

    The records' manifest lines are encoded here (:func:`record_line`), in parallel: the
    process writing the manifest only appends them.
    """
    with remembered():
        records = run_batch(batch)  # durable small outputs: one file-system sync per batch
    for record in records:
        record_line(record)
    return records


@dataclass
class _Resolved:
    """What a worker that resolved and converted a batch of files sends back."""

    records: list[FileRecord]
    undetermined: list[Resolution]
    rules_used: frozenset[int]
    jobs: list[Job]
    """A virtual migration's jobs (the main process writes the store from them); else none."""


@fewer_collections()
def _resolve_and_run(task: tuple[_Planner, list[tuple[str, str, int]]]) -> _Resolved:
    """In a worker: resolve each file of a batch, sort it (skip, fail, convert) and convert it.

    Resolution costs as much as converting a small file: done here, it runs in parallel and
    the main process only writes the manifest.
    """
    planner, items = task
    planner.keep_data = True  # a batch's small files are read once, for their check and their copy
    with remembered(planner.scope):
        for name, dest, _size in items:
            t0 = time.perf_counter()
            try:
                planner._one(name, dest)
            except Exception as exc:  # _one turns foreseen errors into records itself
                planner.done.append(FileRecord(source=name, status="failed", error=_error(exc),
                                               seconds=time.perf_counter() - t0))
    used = planner.rules.used_indices() if planner.rules is not None else frozenset()
    for record in planner.done:
        record_line(record)
    jobs = planner.jobs if planner.virtual.get("virtual") else []
    return _Resolved([*planner.done, *_run_batch(planner.jobs)], planner.undetermined, used, jobs)


def _tqdm_progress(total_files: int, total_bytes: int) -> tuple[ProgressCallback, Callable[[], None]]:
    from tqdm import tqdm

    bar = tqdm(
        total=total_bytes,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        dynamic_ncols=True,
        desc="migrate",
        disable=not sys.stderr.isatty(),
    )

    def update(event: MigrationProgress) -> None:
        bar.set_postfix_str(f"{event.done_files}/{event.total_files} files", refresh=False)
        bar.update(event.done_bytes - bar.n)

    return update, bar.close


def combine_rules(
    rules: str | os.PathLike[str] | Rules | Sequence[str | os.PathLike[str]] | None,
) -> Rules | None:
    """One :class:`Rules` from a path, a :class:`Rules`, or several paths (their rules in order)."""
    if rules is None or isinstance(rules, Rules):
        return rules
    if isinstance(rules, (str, os.PathLike)):
        return load_rules(rules)
    loaded = [load_rules(p) for p in rules]
    if len(loaded) == 1:
        return loaded[0]
    merged = [
        replace(rule, index=i) for i, rule in enumerate((r for rs in loaded for r in rs.rules), start=1)
    ]
    return Rules(merged, " + ".join(rs.source for rs in loaded))


def _write_outputs(
    report: MigrationReport, dst: Path, undetermined: Sequence[Resolution], durable: bool
) -> None:
    suggested = dst / SUGGESTED_RULES_NAME
    if undetermined:
        _fsutil.atomic_write_bytes(suggested, suggest_rules(undetermined).encode(), durable=durable)
        report.suggested_rules = str(suggested)
    elif suggested.exists():
        suggested.unlink()  # from an earlier run whose undetermined files are now resolved
    _fsutil.atomic_write_bytes(dst / REPORT_NAME, report.to_file_json().encode() + b"\n", durable=durable)
    _fsutil.atomic_write_bytes(dst / SUMMARY_NAME, report.summary().encode() + b"\n", durable=durable)


@known_options
@fewer_collections()
@_pools_joined_at_end()
def migrate(
    src_dir: str | os.PathLike[str],
    dst_dir: str | os.PathLike[str],
    *,
    to: str = "zarr",
    rules: str | os.PathLike[str] | Rules | Sequence[str | os.PathLike[str]] | None = None,
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    compression: str | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    verify: bool = True,
    dry_run: bool = False,
    progress: ProgressCallback | bool | None = None,
    max_memory: int | str = "256MiB",
    recheck: bool = False,
    durable: bool = False,
    virtual: bool = False,
    format: str = "kerchunk",  # noqa: A002 (the documented keyword)
    chunk_bytes: int | str | None = None,
    checksum: bool = True,
    portable: bool = False,
    header: str | None = None,
    into: str | None = None,
    fallback: bool = True,
    storage_options: Mapping[str, Any] | None = None,
) -> MigrationReport:
    """Convert a legacy archive of raw files into self-describing arrays, file by file, resumably.

    Every data file of ``src_dir`` (see ``docs/migration.md`` for the discovery rule) is
    resolved (:func:`arraystore.migration.resolve`); each resolved file is converted with
    :func:`arraystore.conversion.convert` into ``dst_dir``, mirroring the folder tree, with its
    suffix replaced by the target format's (``a/b/x.dat`` -> ``a/b/x.zarr``). Originals are
    opened read-only and never modified, moved or renamed. ``DST/migration.jsonl`` gets a
    line per file as it finishes; rerunning the same call skips files converted before
    (source unchanged, destination intact), retries failed and interrupted ones (an
    interrupted conversion resumes from its journal) and picks up new files.

    Parameters
    ----------
    src_dir, dst_dir
        The archive, and the destination folder (created; it may lie inside ``src_dir``,
        and is then not searched) or an object-store prefix (``"s3://bucket/archive"``): each
        array is then published under it by its metadata written last, and the manifest and
        reports are objects under it (see "Into object storage" in ``docs/migration.md``); only
        Zarr can be written there.
    to
        ``"zarr"`` (``.zarr``), ``"npy"`` (``.npy``), ``"hdf5"`` (``.h5``, dataset ``/data``) or
        ``"raw"`` (``.dat`` + sidecar). ``.npy`` files hold no attributes: their provenance
        is only in the manifest.
    rules
        A rules file (path), several (their rules in order: the first match wins), or a
        :class:`Rules`, for files no other evidence describes.
    include, exclude
        Globs selecting data files (rules-file syntax, case-insensitive).
    compression
        Destination compression (zarr, hdf5), e.g. ``"zstd"``; default uncompressed.
    workers
        Worker processes resolving and converting files in parallel; default one per CPU (a
        virtual migration of fewer than 4,000 files: this process); ``1`` runs in this process. With ``scheduler="local"``, the number of Dask workers (default 2).
    scheduler
        Run on Dask: a scheduler address, a ``distributed.Client``, or ``"local"`` for a
        ``LocalCluster``. Workers must see both folders at the same paths.
    verify
        Read every destination back and compare checksums before publishing it.
    dry_run
        Resolve and plan only: nothing is written (``planned`` records).
    progress
        ``True`` for a tqdm bar (files, bytes, ETA) on stderr when it is a terminal, or a
        callable receiving a :class:`MigrationProgress` per finished file.
    max_memory
        Buffer budget of each file's conversion, per worker.
    recheck
        Also read back every destination converted by an earlier run and compare it with
        its recorded checksum; a mismatch is converted again.
    durable
        fsync every manifest line and every conversion (slower; survives power loss, not
        only a killed process). Small files copied in one write are made durable a batch at a
        time (one file-system sync, then the renames, then the batch's manifest lines).
    virtual
        Copy nothing: write a Zarr v3 hierarchy whose chunks are byte-range references into
        the original files (one array per file, at the file's relative path), as
        ``DST/virtual.json`` (``format="kerchunk"``) or ``DST/virtual.icechunk``
        (``format="icechunk"``). ``to`` does not apply; a file no reference can express is
        copied (see ``fallback``; ``compression`` and ``verify`` apply to these copies). See "Virtual migration" in
        ``docs/migration.md``.
    format
        The virtual store's format: ``"kerchunk"`` or ``"icechunk"``.
    chunk_bytes
        Target size of one chunk reference (bytes or ``"16MiB"``; default 4 MiB: zarr-python
        reads 2-4 MiB chunks fastest, see ``docs/migration.md``).
    checksum
        Record each referenced file's ``xxh3_128`` content checksum (one sequential read);
        False records size and modification time only.
    fallback
        A virtual migration copies a file that no reference can express (a dtype without a
        Zarr v3 core type, compressed MetaImage data, padded EHdr rows) into a real Zarr array of the same
        hierarchy (``DST/virtual.copies``; note ``"copied: <reason>"``); False refuses it
        with the reason instead. ``compression`` applies to these copies.
    portable
        Zarr destinations: only Zarr v3 core data types (see
        :class:`~arraystore.conversion.ConvertOptions`).
    header
        Raw destinations: ``"envi"`` (or ``"envi:bsq"``, ``"envi:bil"``, ``"envi:bip"``) also
        writes an ENVI header beside every output, for GDAL, QGIS, spectral and ENVI (see
        :class:`~arraystore.conversion.ConvertOptions`). A file ENVI cannot describe fails
        with the reason.
    into
        Zarr: put every array into one group ``DST/<into>`` (e.g. ``"archive.zarr"``) at its
        relative path without the suffix (``run1/temperature.dat`` ->
        ``DST/archive.zarr::run1/temperature``) instead of one bare array per file, with
        dimension names that do not clash inside a group (the source's, else
        ``temperature_dim_0``, ...) and consolidated metadata, so that
        ``xr.open_zarr("DST/archive.zarr", group="run1")`` opens them. See "Into one Zarr group"
        in ``docs/migration.md``.
    storage_options
        Settings of an object-store destination's client (as in :func:`arraystore.open`);
        default: the cloud's standard environment variables. Never written anywhere.

    Returns
    -------
    MigrationReport
        Also written to ``DST/migration-report.json`` and ``DST/migration-summary.txt``
        (not in a dry run). Undetermined files get a template in ``DST/rules-suggested.toml``.

    Raises
    ------
    ArrayNotFoundError
        ``src_dir`` does not exist.
    MetadataError
        ``src_dir`` is a file or ``dst_dir`` is the archive or above it; the rules file or the
        manifest is invalid.
    BackendError
        ``to`` is not a known format, or its library is not installed; or ``dst_dir`` is an
        object-store URL and ``to`` cannot be written there (raw, npy, hdf5), or ``virtual=True``.
    StorageFullError
        The destination's file system filled up (ENOSPC, EDQUOT). The run stops: queued files
        are cancelled, files in flight abandoned, and the manifest keeps a whole line for
        every file done (plus the reports when space allows); rerun after freeing space.
    KeyboardInterrupt
        Ctrl-C (or a SIGTERM turned into one by the command line): the same stop, raised
        after the manifest and reports of what was done are written.
    """
    t0 = time.perf_counter()
    root = remote_root(os.fspath(dst_dir))
    src = Path(src_dir)
    dst: Path | str = Path(dst_dir) if root is None else str(root.url)
    _check_dirs(src, dst if isinstance(dst, Path) else None)
    if root is not None:
        check_remote_target(root, to, virtual=virtual, into=into)
    target_bytes = 0
    if virtual:
        to, target_bytes = VIRTUAL, _virtual_options(format, chunk_bytes)
    elif not is_target(to):
        raise MetadataError(f"expected to= one of {', '.join(target_names())}, found {to!r}")
    else:
        cls = backend_class(to)  # a missing optional library fails here, before any work
        if into is not None:
            check_into(into, cls)
        if header is not None and "header" not in inspect.signature(cls._create).parameters:
            raise BackendError(
                f"header={header!r} writes an ENVI header beside raw outputs; expected to='raw' (--to raw), found "
                f"to={to!r}: drop header (--header) or migrate to raw"
            )
    rule_set = combine_rules(rules)
    manifest: Manifest | RemoteManifest
    if root is None:
        manifest = Manifest(Path(dst) / MANIFEST_NAME, durable=durable)
    else:
        manifest = RemoteManifest(root, MANIFEST_NAME, storage_options)
    # A dry run, and a virtual migration of fewer than VIRTUAL_POOL_FILES files: worker processes cost more
    # than they save.
    in_process = workers is None and scheduler is None and (dry_run or virtual)
    nworkers = 1 if in_process else (workers or os.cpu_count() or 1)
    if not dry_run and not virtual and scheduler is None and nworkers > 1:
        from ..parallel import check_main_guard

        check_main_guard("migrate() with workers > 1")  # before any work, even if the files fit one batch here
    many: tuple[int, Callable[[], object]] | None = None
    if not dry_run and not virtual and scheduler is None and nworkers > 1:
        from ..parallel import start_forkserver

        # The pool's server imports arraystore while this process lists, sorts and plans the files, from
        # the moment they are known not to fit one batch of this process.
        many = (IN_PROCESS_FILES, lambda: start_forkserver(_server_modules(to)))
    with default_storage_options(storage_options):
        previous = manifest.read()
        found = discover(src, include, exclude, skip=dst if isinstance(dst, Path) else None, many=many)
    if in_process and virtual and not dry_run and len(found.data) >= VIRTUAL_POOL_FILES and _may_start_workers():
        nworkers = os.cpu_count() or 1
        if nworkers > 1:
            from ..parallel import start_forkserver

            start_forkserver(_server_modules(to))
    # Threads of each conversion: this process's CPUs when it runs the files one after the other.
    threads = 1 if (scheduler is not None or nworkers > 1) else (os.cpu_count() or 1)
    job_options = ConvertOptions.from_mapping(
        {"compression": compression, "verify": verify, "max_memory": max_memory, "durable": durable, "workers": threads,
         "portable": portable, "header": header}
    )
    planner = _Planner(src, dst, to, rule_set, previous, job_options, recheck)
    planner.virtual = {"virtual": virtual, "checksum": checksum, "fallback": fallback}
    if into is not None and virtual:
        raise MetadataError("into= names a group of converted arrays; a virtual migration writes its own store: drop one")
    planner.into = into
    planner.storage_options = dict(storage_options) if storage_options else None
    pending: list[tuple[str, str]] = []
    with default_storage_options(storage_options):
        if not dry_run and scheduler is None and nworkers > 1:
            pending = planner.pending(found.data, found.broken_headers)  # resolved in the workers
        else:
            planner.plan(found.data, found.broken_headers)
    report = MigrationReport(
        src=str(src),
        dst=str(dst),
        to=to,
        dry_run=dry_run,
        workers=nworkers,
        rules=rule_set.source if rule_set is not None else None,
        scheduler=None if scheduler is None else _describe(scheduler),
    )
    records: dict[str, FileRecord] = {r.source: r for r in planner.done}
    if dry_run:
        for job in planner.jobs:
            records[job.source] = FileRecord(
                source=job.source,
                status="planned",
                size=job.size,
                mtime_ns=job.mtime_ns,
                ctime_ns=job.ctime_ns,
                destination=job.destination,
                backend=to,
                resolution=job.resolution,
            )
    stopped: BaseException | None = None
    if not dry_run:
        try:
            if isinstance(dst, Path):
                dst.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _fsutil.raise_if_full(exc, dst, "creating")
            raise
        try:
            with default_storage_options(storage_options):
                _run_jobs(planner, pending, manifest, records, nworkers, scheduler, progress, found.sizes)
            if virtual:
                _write_virtual(planner, records, src, Path(dst), format, target_bytes, durable)
        except (KeyboardInterrupt, StorageFullError) as exc:
            stopped = exc  # the manifest and reports of what was done are still written below
        if into is not None:  # once every writer is done: no array missing from what xarray reads
            try:
                consolidate_group(Path(dst) / into)
            except OSError as exc:
                if stopped is None:  # else the reason the run stopped is the error to report
                    _fsutil.raise_if_full(exc, Path(dst) / into, "consolidating")
                    raise
    if rule_set is not None:
        report.rules_unused = [r.glob for r in rule_set.unused()]
    report.records = [records[k] for k in sorted(records)]
    report.seconds = time.perf_counter() - t0
    if not dry_run:
        try:
            # What this run appended wins over earlier runs' lines. Every appended line's record is
            # in ``records`` (put there first); after an interrupt the file is read again all the same.
            merged = {**previous, **(manifest.read() if stopped is not None else {}), **records}
            with default_storage_options(storage_options):
                manifest.rewrite({k: v for k, v in merged.items() if k in records or _kept(src, k)})
                if root is None:
                    _write_outputs(report, Path(dst), planner.undetermined, durable)
                else:
                    write_remote_outputs(report, root, planner.undetermined, storage_options)
        except StorageFullError:
            # The appended manifest already holds a whole line per finished file: it stays as it is.
            if stopped is None:
                raise
    elif planner.undetermined:
        report.suggested_rules = f"{dst}/{SUGGESTED_RULES_NAME} (written by a real run)"
    if stopped is not None:
        raise stopped
    return report


def _virtual_options(fmt: str, chunk_bytes: int | str | None) -> int:
    """Check a virtual migration's options and libraries before any work; the target chunk size."""
    from ..conversion._plan import parse_size
    from ..virtual import require
    from ..virtual.refs import DEFAULT_CHUNK_BYTES

    require(fmt)
    size = DEFAULT_CHUNK_BYTES if chunk_bytes is None else parse_size(chunk_bytes)
    if size < 1:
        raise MetadataError(f"expected chunk_bytes of at least 1 byte, found {chunk_bytes!r}")
    return size


def _write_virtual(
    planner: _Planner, records: dict[str, FileRecord], src: Path, dst: Path, fmt: str, chunk_bytes: int, durable: bool
) -> None:
    from ..virtual._migrate import write_store

    entries = [(j, records[j.source]) for j in planner.jobs if records.get(j.source) is not None]
    entries = [(j, r) for j, r in entries if r.status == "converted"]
    attrs = {"arraystore.virtual_migration": {"format": fmt, "chunk_bytes": chunk_bytes, "files": len(entries)}}
    write_store(dst, src, fmt, entries, chunk_bytes=chunk_bytes, attrs=attrs, durable=durable)


def _kept(src: Path, name: str) -> bool:
    """Whether an earlier run's line for ``name`` stays in the manifest: a relative path to a file still in ``src``."""
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return False
    return (src / name).is_file()


def _describe(scheduler: Any) -> str:
    from ._dask import describe_scheduler

    return describe_scheduler(scheduler)


def _sized(
    src: Path, pending: Sequence[tuple[str, str]], listed: Mapping[str, int] | None = None
) -> list[tuple[str, str, int]]:
    """Each pending file with its size: as discovery listed it (a regular file), else from a ``stat`` now."""
    out = []
    root = os.fspath(src)
    listed = listed or {}
    for name, dest in pending:
        size = listed.get(name)
        if size is None:
            try:
                size = os.stat(os.path.join(root, name)).st_size
            except OSError:
                size = 0  # the worker's resolution reports it
        out.append((name, dest, size))
    return out


def _run_jobs(
    planner: _Planner,
    pending: Sequence[tuple[str, str]],
    manifest: Manifest | RemoteManifest,
    records: dict[str, FileRecord],
    workers: int,
    scheduler: Any,
    progress: ProgressCallback | bool | None,
    sizes: Mapping[str, int] | None = None,
) -> None:
    """Run the planned jobs, and resolve and run the ``pending`` files in worker processes (``sizes``: as listed)."""
    manifest.append_many(planner.done)
    jobs = sorted(planner.jobs, key=lambda j: (-j.size, j.source))  # largest first: a shorter tail
    todo = sorted(_sized(planner.src, pending, sizes), key=lambda t: (-t[2], t[0]))
    total_files = len(planner.done) + len(jobs) + len(todo)
    total_bytes = sum(r.size for r in planner.done) + sum(j.size for j in jobs) + sum(t[2] for t in todo)
    close: Callable[[], None] = lambda: None  # noqa: E731
    callback: ProgressCallback | None = None
    if progress is True:
        callback, close = _tqdm_progress(total_files, total_bytes)
    elif callable(progress):
        callback = progress
    state = [len(planner.done), sum(r.size for r in planner.done)]

    def finished(batch: list[FileRecord]) -> None:
        for record in batch:
            records[record.source] = record  # first: an interrupt after the append must not lose it
        if len(batch) == 1:
            manifest.append(batch[0])  # fsynced in groups when durable
        else:
            manifest.append_many(batch)  # one write, one fsync when durable
        for record in batch:
            if record.error is not None and record.error.get("type") == StorageFullError.__name__:
                raise StorageFullError(errno.ENOSPC, f"{record.source}: {record.error.get('message', '')}")
            state[0] += 1
            state[1] += record.size
            if callback is not None:
                callback(MigrationProgress(record, state[0], total_files, state[1], total_bytes))

    def resolved(result: _Resolved) -> None:
        planner.jobs.extend(result.jobs)
        planner.undetermined.extend(result.undetermined)
        if planner.rules is not None:
            planner.rules.mark_used(result.rules_used)
        finished(result.records)

    try:
        if callback is not None:
            for rec in planner.done:
                callback(MigrationProgress(rec, len(planner.done), total_files, state[1], total_bytes))
        _execute(jobs, workers, scheduler, finished)
        if len(todo) == 1 or (len(todo) <= IN_PROCESS_FILES and sum(t[2] for t in todo) <= BATCH_BYTES):
            resolved(_resolve_and_run((planner.for_files([t[0] for t in todo]), todo)))  # no pool for one batch
        elif todo:
            tasks = [
                (_resolve_and_run, (planner.for_files([t[0] for t in batch]), batch), sum(t[2] for t in batch))
                for batch in _batches(todo, workers, lambda t: t[2],
                                      VIRTUAL_BATCH_FILES if planner.virtual.get("virtual") else BATCH_FILES)
            ]
            _in_pool(tasks, workers, resolved)
        if todo and planner.undetermined:  # resolved largest first (here or in the workers): in discovery order
            order = {os.fspath(planner.src / name): i for i, (name, _) in enumerate(pending)}
            planner.undetermined.sort(key=lambda r: order.get(os.fspath(r.path), len(order)))
    finally:
        manifest.close()
        close()

