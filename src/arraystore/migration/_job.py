"""One file's conversion, as a picklable job run in this process, a worker process or a Dask worker."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _fsutil
from .._fsutil import raise_if_full
from .._open import exists
from .._open import open as open_store
from ..checksums import StreamHasher
from ..conversion import ConvertOptions
from ..errors import (
    ArrayStoreError,
    ConversionError,
    MetadataError,
    StorageFullError,
    UnsupportedDtypeError,
    VerificationError,
)
from ..fidelity import check_fidelity
from ..location import Location
from ..meta import ArrayMeta
from ..registry import backend_class, parse_location
from ..store import ArrayStore
from ._group import group_dimension_names
from ._manifest import FileRecord, RecordStatus
from ._realdirs import make_folder, real_root, umask

__all__ = ["Job", "open_source", "run_batch", "run_job"]


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to convert one resolved file; holds no open file."""

    source: str
    """Path relative to the source root (the manifest key)."""
    src_path: str
    meta: dict[str, Any]
    offset: int
    own_sidecar: bool
    dst_path: str
    destination: str
    backend: str
    size: int
    mtime_ns: int
    ctime_ns: int = 0
    """The source's status-change time when resolved (0: not known): a rewrite whose size and modification time were
    put back (``os.utime``) still changes it."""
    resolution: dict[str, Any] = field(default_factory=dict)
    options: ConvertOptions = field(default_factory=lambda: ConvertOptions(verify=True, workers=1))
    """What the conversion is asked to make (backend, overwrite and resume are set per job)."""
    overwrite: bool = False
    """Replace the destination: an earlier run converted a source or layout that has since changed."""
    recheck: dict[str, Any] | None = None
    """The record of an earlier conversion whose destination is to be read back against its checksum."""
    virtual: bool = False
    """Reference the file in place (a virtual migration) instead of converting it."""
    checksum: bool = True
    """For a virtual job: checksum the file's content (False: metadata only)."""
    fallback: bool = True
    """For a virtual job: copy a file that cannot be referenced (False: refuse it)."""
    copy: str | None = None
    """For a virtual job: why the file is copied instead of referenced (known when planned)."""
    decode: str | None = None
    """For a copy: the decoder the data goes through (``"zlib"``), see :mod:`arraystore.virtual.fallback`."""
    storage_options: dict[str, Any] | None = field(default=None, repr=False)
    """Client settings of an object-store destination (never written anywhere)."""
    data: bytes | None = field(default=None, repr=False, compare=False)
    """The source's data bytes, read by the check of its resolution (a small file resolved in the same batch),
    for the one-read one-write path to use instead of reading them again; None: read them."""
    layout: ArrayMeta | None = field(default=None, repr=False, compare=False)
    """``meta`` as the :class:`ArrayMeta` it was made from, when the job runs in the process that resolved it (a
    batch resolved and run at once), instead of making it again from ``meta``; None: made from ``meta``."""

    @property
    def remote(self) -> bool:
        """True when the destination is an object-store URL."""
        return parse_location(self.dst_path).remote


def open_source(path: str | os.PathLike[str], meta: ArrayMeta, offset: int, own_sidecar: bool) -> ArrayStore:
    """Open a legacy raw file read-only with its resolved layout.

    A file with arraystore's own sidecar opens through :func:`arraystore.open`; any other
    file is opened without reading a sidecar, because a legacy JSON file named like one
    (``scan.raw.json``) is evidence for the resolver, not an arraystore sidecar.
    """
    return open_store(path, "r", backend="raw", meta=meta, offset=offset, use_sidecar=own_sidecar)


def failed_record(job: Job, exc: BaseException, t0: float) -> FileRecord:
    """The ``failed`` record of a job that raised ``exc``."""
    return _record(job, "failed", t0, error=_error(exc))


def _error(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


def _record(job: Job, status: RecordStatus, t0: float, **kw: Any) -> FileRecord:
    return FileRecord.made(
        source=job.source,
        status=status,
        size=job.size,
        mtime_ns=job.mtime_ns,
        ctime_ns=job.ctime_ns,
        destination=job.destination,
        backend=job.backend,
        resolution=job.resolution,
        seconds=time.perf_counter() - t0,
        **kw,
    )


def _unchanged(job: Job, st: os.stat_result | None = None) -> str | None:
    """Why the source differs from when it was resolved (its stat ``st``, read here if not given), or None."""
    if st is None:
        st = os.stat(job.src_path)
    if (st.st_size, st.st_mtime_ns) != (job.size, job.mtime_ns) or job.ctime_ns not in (0, st.st_ctime_ns):
        return (
            f"{job.src_path} changed while the migration ran (size {job.size:,} -> {st.st_size:,} bytes, or "
            "its modification or status-change time); it is not converted: rerun the migration once it is no "
            "longer written"
        )
    return None


def _adopt(job: Job, src: ArrayStore, t0: float) -> FileRecord:
    """A destination already published (a run killed before its manifest line): keep it if equal."""
    from ..checksums import checksum

    with open_store(job.dst_path, "r", backend=job.backend) as dst:
        same_layout = dst.shape == src.shape and dst.dtype == src.dtype
        dst_sum = checksum(dst) if same_layout else None
    src_sum = checksum(src)
    if dst_sum is None or dst_sum["value"] != src_sum["value"]:
        return _record(
            job,
            "failed",
            t0,
            source_checksum=src_sum,
            error={
                "type": "AlreadyExistsError",
                "message": f"{job.dst_path} exists and does not hold this file's data (no manifest line says it was "
                "written by this migration); move it away or choose another destination, then rerun",
            },
        )
    return _record(
        job,
        "converted",
        t0,
        source_checksum=src_sum,
        destination_checksum=dst_sum,
        verified=True,
        note="found complete from an interrupted run; read back and matched the source",
    )


def _recheck(job: Job, t0: float) -> FileRecord | None:
    """A ``skipped`` record when the destination still reads back to its recorded checksum, else None."""
    from ..checksums import checksum

    assert job.recheck is not None
    expected = job.recheck.get("source_checksum") or {}
    try:
        with open_store(job.dst_path, "r", backend=job.backend) as dst:
            got = checksum(dst)
    except ArrayStoreError:
        return None
    if got.get("value") != expected.get("value"):
        return None
    return _record(
        job,
        "skipped",
        t0,
        source_checksum=expected,
        destination_checksum=got,
        verified=True,
        note="converted by an earlier run; destination read back and matched",
    )


def _reopen_error(job: Job) -> ArrayStoreError | None:
    """Open the published output read-only; if it does not open as the resolved layout, remove it and say why.

    A file that a later ``open`` refuses (an attribute too large for its metadata file, a
    layout the backend reads differently) is never reported as converted.
    """
    meta = ArrayMeta.from_dict(job.meta)
    try:
        with open_store(job.dst_path, "r", backend=job.backend) as dst:
            if dst.shape == meta.shape and dst.dtype == meta.dtype:
                return None
            err: ArrayStoreError = MetadataError(
                f"{job.dst_path}: written as {meta.dtype} {meta.shape} but reopens as {dst.dtype} {dst.shape}; "
                "report this as a bug"
            )
    except ArrayStoreError as exc:
        err = exc
    with contextlib.suppress(OSError, ArrayStoreError):
        if job.remote:
            from ..objstore._dispatch import remove_url

            remove_url(parse_location(job.dst_path), job.backend)
        else:
            backend_class(job.backend)._remove(parse_location(job.dst_path))
    return err


#: Files of at most this many bytes of data are copied in one read and one write when the
#: destination format writes whole files (``writes_whole_files``: ``.npy``), instead of through a
#: staged conversion, whose setup (staged store, lock, plan, journal) costs more than the data.
WHOLE_FILE_BYTES = 4 << 20


def _whole_file(job: Job, meta: ArrayMeta, cls: type[ArrayStore]) -> bool:
    """Whether ``job`` takes the one-read one-write path (:func:`_write_whole`); ``cls``: its backend's class."""
    opts = job.options
    return (
        cls.writes_whole_files
        and meta.nbytes <= min(WHOLE_FILE_BYTES, opts.max_memory)
        and not meta.attrs
        and opts.compression is None and opts.chunks is None and opts.shards is None and opts.order is None
        and not opts.portable
        and opts.header is None
        and opts.dimension_names is None
    )


def _write_whole(
    job: Job, meta: ArrayMeta, t0: float, note: str | None, mode: int, cls: type[ArrayStore], dst: Location
) -> FileRecord:
    """Copy a small file: one ``pread``, its checksum, one write of the destination (checked, then renamed).

    The destination holds the same bytes a conversion writes; with ``verify`` it is read back
    through its format's reader before it is renamed into place, as a conversion does. ``mode``: the
    source's permission bits within the umask (0600 in, 0600 out); ``cls`` and ``dst``: the backend's
    class and the destination, parsed.
    """
    check_fidelity(cls, meta.dtype)
    if job.data is not None and len(job.data) == meta.nbytes:  # read after the resolution's stat, like a pread here
        data = job.data
    else:
        fd = os.open(job.src_path, os.O_RDONLY)
        try:
            data = os.pread(fd, meta.nbytes, job.offset) if meta.nbytes else b""
        finally:
            os.close(fd)
    if len(data) != meta.nbytes:
        raise ConversionError(
            f"{job.src_path}: the source changed size while being converted (expected {meta.nbytes:,} bytes at offset "
            f"{job.offset:,}, read {len(data):,}); nothing was published. Convert it again once it is no longer being written"
        )
    value = StreamHasher.of(np.ndarray(meta.shape, meta.dtype, buffer=data, order=meta.order))

    def check(back: ArrayMeta, data: np.ndarray[Any, Any]) -> None:
        if back.shape != meta.shape or back.dtype != meta.dtype:
            raise MetadataError(
                f"{job.dst_path}: written as {meta.dtype} {meta.shape} but reopens as {back.dtype} {back.shape}; "
                "report this as a bug"
            )
        if job.options.verify:
            got = StreamHasher.of(data)
            if got["value"] != value["value"]:
                raise VerificationError(
                    f"{job.dst_path}: the converted data reads back with checksum {got['value']}, the source has "
                    f"{value['value']} ({value['algorithm']}); nothing was published. Expected equal values: either the "
                    "source changed while it was converted or a disk returned other bytes; make sure nothing writes "
                    "the source, then migrate again"
                )

    later = _LATER.get() if job.options.durable else None
    if later is not None:  # durable in a batch: published by run_batch after one sync of the staged files
        staged: list[Any] = []
        cls._write_whole(dst, meta, data, check=check, mode=mode, defer=staged)
        later.append((job, staged[0]))
    else:
        cls._write_whole(dst, meta, data, durable=job.options.durable, check=check, mode=mode)
    return _record(
        job,
        "converted",
        t0,
        source_checksum=value,
        destination_checksum=value if job.options.verify else None,
        verified=job.options.verify,
        note=note,
    )


#: Inside :func:`run_batch` (durable): the (job, staged file) of each small output waiting to be published.
_LATER: ContextVar[list[tuple[Job, Any]] | None] = ContextVar("arraystore_migration_publish_later", default=None)


def run_batch(jobs: Sequence[Job]) -> list[FileRecord]:
    """Run ``jobs`` one after the other; an unforeseen error fails its own file, not the batch.

    Durable small outputs (the one-write path) are not fsynced one by one: each is written
    and checked at its staging name, then one file-system sync (:func:`~arraystore._fsutil.sync_filesystem`)
    makes all of them durable, then they are renamed into place, then their folders are
    fsynced, and only then are their records returned (for the manifest). A kill before the
    sync or the renames leaves staging files that the next run replaces; a kill after the
    renames leaves published outputs without manifest lines, which the next run reads back
    and adopts when they equal their sources.
    """
    batched = any(j.options.durable and not j.virtual and not j.remote for j in jobs) and _fsutil.can_sync_filesystem()
    later: list[tuple[Job, Any]] = []
    token = _LATER.set(later) if batched else None
    records: list[FileRecord] = []
    try:
        for job in jobs:
            t0 = time.perf_counter()
            try:
                records.append(run_job(job))
            except Exception as exc:  # run_job turns foreseen errors into records itself
                records.append(failed_record(job, exc, t0))
        if later:
            _publish(later, records)
            later.clear()
    finally:
        if token is not None:
            _LATER.reset(token)
        for _job, staged in later:  # interrupted before publishing: nothing of these is published
            with contextlib.suppress(OSError):
                staged.discard()
    return records


def _publish(later: list[tuple[Job, Any]], records: list[FileRecord]) -> None:
    """Sync the staged files' file systems once, rename each into place, fsync their folders."""
    where = {r.source: i for i, r in enumerate(records)}
    devices: dict[int, Path] = {}
    for _job, staged in later:
        folder = Path(staged.staged).parent
        devices.setdefault(os.stat(folder).st_dev, folder)
    try:
        for folder in devices.values():
            _fsutil.sync_filesystem(folder)
    except OSError as exc:  # nothing is published: each file fails with the reason
        try:
            raise_if_full(exc, str(folder), "syncing")
        except StorageFullError as full:
            exc = full
        for job, staged in later:
            with contextlib.suppress(OSError):
                staged.discard()
            records[where[job.source]] = failed_record(job, exc, time.perf_counter())
        later.clear()
        return
    folders: set[Path] = set()
    while later:
        job, staged = later.pop(0)
        try:
            staged.publish()
            folders.add(Path(staged.final).parent)
        except OSError as exc:
            records[where[job.source]] = failed_record(job, exc, time.perf_counter())
    for folder in folders:
        _fsutil.fsync_dir(folder)


def run_job(job: Job) -> FileRecord:
    """Convert one file; every foreseen error becomes a ``failed`` record rather than an exception."""
    if job.virtual:
        return run_virtual_job(job)
    from ..objstore import current_storage_options, default_storage_options

    if job.storage_options is None and current_storage_options() is None:  # nothing to put in force
        return _run_job(job)
    with default_storage_options(job.storage_options):
        return _run_job(job)


def _run_job(job: Job) -> FileRecord:
    from ..conversion import convert

    t0 = time.perf_counter()
    try:
        st = os.stat(job.src_path)
        changed = _unchanged(job, st)
        if changed is not None:
            return _record(job, "failed", t0, error={"type": "SourceChangedError", "message": changed})
        overwrite, note = job.overwrite, None
        if job.recheck is not None:
            kept = _recheck(job, t0)
            if kept is not None:
                return kept
            overwrite, note = True, "destination did not read back to its recorded checksum; converted again"
        dst = parse_location(job.dst_path)
        if not dst.remote:
            make_folder(dst.file.parent)
        meta = job.layout if job.layout is not None else ArrayMeta.from_dict(job.meta)
        cls = backend_class(job.backend)
        if not overwrite and (exists(dst, job.backend) if dst.remote else cls._exists(dst)):
            if job.options.header is None or Path(f"{job.dst_path}.hdr").is_file():
                with open_source(job.src_path, meta, job.offset, job.own_sidecar) as src:
                    return _adopt(job, src, t0)
            overwrite = True  # killed between publishing the data and its header: convert it again
        if _whole_file(job, meta, cls):
            return _write_whole(job, meta, t0, note, st.st_mode & 0o7777 & ~umask(), cls, dst)
        with open_source(job.src_path, meta, job.offset, job.own_sidecar) as src:
            options = job.options.replace(backend=job.backend, resume=True, overwrite=overwrite)
            if dst.key:  # an array of a group: names that do not clash with its siblings' in xarray
                options = options.replace(dimension_names=group_dimension_names(src, job.dst_path))
            report = convert(src, job.dst_path, options)
        unreadable = _reopen_error(job)
        if unreadable is not None:
            return _record(
                job,
                "failed",
                t0,
                source_checksum=report.checksum,
                error=_error(unreadable),
                note="the output was written but does not open again; it was removed",
            )
        if not dst.remote:  # an object's access is the bucket's policy
            out = dst.file / dst.key if dst.key else dst.file
            _fsutil.apply_mode_like([out, f"{out}.json", f"{out}.hdr"], job.src_path)  # 0600 in, 0600 out
        if report.blocks_resumed:
            note = f"resumed an interrupted conversion: {report.blocks_resumed} of {report.blocks_total} blocks kept"
        return _record(
            job,
            "converted",
            t0,
            source_checksum=report.checksum,
            destination_checksum=report.checksum if report.verified else None,
            verified=report.verified,
            note=note,
        )
    except OSError as exc:
        try:
            raise_if_full(exc, job.dst_path, "converting into")
        except StorageFullError as full:
            return _record(job, "failed", t0, error=_error(full))
        return _record(job, "failed", t0, error=_error(exc))
    except ArrayStoreError as exc:
        return _record(job, "failed", t0, error=_error(exc))


def run_virtual_job(job: Job) -> FileRecord:
    """Reference one file instead of converting it: a ``converted`` record with its content checksum.

    A file no reference can express is copied into the virtual hierarchy instead
    (``note="copied: <reason>"``), unless ``job.fallback`` is False: then it fails with the reason.
    """
    from ..virtual._migrate import check_inside, file_checksum
    from ..virtual.fallback import copy_reason
    from ..virtual.refs import layout_of

    t0 = time.perf_counter()
    try:
        meta = layout_of(job.meta)  # the layout; the attrs matter only to a copy
        reason = job.copy or copy_reason(meta)
        if reason is not None and not job.fallback:
            raise UnsupportedDtypeError(f"{job.src_path}: cannot be referenced in place: {reason}; "
                                        "rerun without --no-fallback to copy it, or migrate it by copying")
        path = Path(job.src_path)
        check_inside(path, job.source, real_root(_archive_root(job)))
        changed = _unchanged(job)
        if changed is None and reason is not None:
            return _copy(job, ArrayMeta.from_dict(job.meta), reason, t0)
        if changed is None and job.checksum:
            digest = file_checksum(job.src_path)
            changed = _unchanged(job)
        else:
            digest = None
        if changed is not None:
            return _record(job, "failed", t0, error={"type": "SourceChangedError", "message": changed})
        return _record(job, "converted", t0, source_checksum=digest, note="referenced in place (virtual)")
    except (OSError, ArrayStoreError) as exc:
        return _record(job, "failed", t0, error=_error(exc))


def _archive_root(job: Job) -> Path:
    """The archive root of a job: its source's absolute path without the relative name."""
    if job.src_path.endswith("/" + job.source):
        return Path(job.src_path[: -len(job.source) - 1] or "/")
    return Path(job.src_path).parents[len(Path(job.source).parts) - 1]


def _copy(job: Job, meta: ArrayMeta, reason: str, t0: float) -> FileRecord:
    """The copying fallback of a virtual job (see :mod:`arraystore.virtual.fallback`)."""
    from ..virtual.fallback import copies_root, copy_file

    dst_root = Path(job.dst_path).parents[len(Path(job.destination).parts) - 1]
    out = copies_root(dst_root) / job.destination
    try:
        sums = copy_file(job.src_path, meta, job.offset, out, options=job.options, own_sidecar=job.own_sidecar,
                         decode=job.decode)
    except ArrayStoreError as exc:
        return _record(job, "failed", t0, error=_error(exc),
                       note=f"cannot be referenced ({reason}), and copying cannot help either")
    except OSError as exc:
        try:
            raise_if_full(exc, str(out), "copying into")
        except StorageFullError as full:
            return _record(job, "failed", t0, error=_error(full))
        raise
    changed = _unchanged(job)
    if changed is not None:
        return _record(job, "failed", t0, error={"type": "SourceChangedError", "message": changed})
    return _record(job, "converted", t0, **sums, note=f"copied: {reason}")
