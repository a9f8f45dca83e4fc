"""Planning a migration: each discovered file resolved and sorted into a job or a final record.

:class:`_Planner` decides, per file, whether it is converted (a :class:`~._job.Job`),
skipped (converted by an earlier run, destination intact), undetermined or failed; used
by :func:`arraystore.migration.migrate` (``run.py``).
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._listing import is_file
from .._open import open as open_store
from ..conversion import ConvertOptions
from ..errors import ArrayStoreError, MetadataError, UnsafeInputError
from ..registry import backend_class, default_suffix
from ..sidecar import sidecar_path
from ._discover import destination_names, overlapping_outputs
from ._group import group_destinations
from ._job import Job
from ._manifest import FileRecord
from ._realdirs import remembered
from .legacy_json import is_own_sidecar, read_json
from .resolve import Resolution, _resolve_stat
from .rules import Rules

__all__ = ["VIRTUAL"]

#: The ``to``/backend recorded by a virtual migration (its store: ``DST/virtual.json`` or ``DST/virtual.icechunk``).
VIRTUAL = "virtual"


def _error(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


def _own_sidecar(path: Path) -> bool:
    """Whether ``path`` has arraystore's own sidecar (a resolution tells it too: evidence ``"sidecar"``)."""
    sp = sidecar_path(path)
    if not is_file(sp):
        return False
    try:
        return is_own_sidecar(read_json(sp))
    except ArrayStoreError:
        return False


def _dst_intact(prev: FileRecord, res: Resolution, dst: str, backend: str) -> bool:
    """Whether an earlier run's destination still opens with the layout and checksum it recorded (no data read)."""
    try:
        with open_store(dst, "r", backend=backend) as store:
            if res.meta is None or store.shape != res.meta.shape or store.dtype != res.meta.dtype:
                return False
            recorded = store.recorded_checksum
    except ArrayStoreError:
        return False
    expected = prev.source_checksum or {}
    return recorded is None or recorded.get("value") == expected.get("value")


def _same_layout(old: dict[str, Any], res: Resolution) -> bool:
    new = res.to_dict()
    return all(old.get(k) == new.get(k) for k in ("dtype", "shape", "order", "offset"))


def _absolute(folder: Path, name: str, bases: dict[Path, str]) -> str:
    """``str((folder / name).absolute())``; with the folder's string remembered in ``bases``, a join of
    strings when ``name`` is already in the form pathlib would give it (discovery's names are)."""
    base = bases.get(folder)
    if base is None:
        base = bases[folder] = str(folder.absolute())
    if os.sep == "/" and name and not (name[0] == "/" or name[-1] == "/" or "//" in name or "/./" in f"/{name}/"):
        return os.path.join(base, name)
    return str((folder / name).absolute())


def _resolution_dict(res: Resolution) -> dict[str, Any]:
    d = res.to_dict()
    d.pop("path", None)
    return d


class _Planner:
    """Resolves every discovered file and sorts it into jobs and final records."""

    def __init__(
        self,
        src: Path,
        dst: Path | str,
        backend: str,
        rules: Rules | None,
        previous: dict[str, FileRecord],
        job_options: ConvertOptions,
        recheck: bool,
    ) -> None:
        self.src, self.dst, self.backend, self.rules = src, dst, backend, rules
        self.previous, self.job_options, self.recheck = previous, job_options, recheck
        self.remote = isinstance(dst, str)
        """The destination is an object-store prefix (``dst`` its URL)."""
        self.storage_options: dict[str, Any] | None = None
        self.virtual: dict[str, bool] = {}
        """``virtual`` and ``checksum`` of a virtual migration's jobs."""
        self.into: str | None = None
        """The group every array goes into (``into=``), or None: one output per file."""
        self.jobs: list[Job] = []
        self.claimed: frozenset[str] = frozenset()
        """Sources of copy jobs another planner of this run made already (see :meth:`_decoded`)."""
        self.scope = uuid.uuid4().hex
        """This run's identifier: the worker batches of one run share their folder listings."""
        self.done: list[FileRecord] = []
        self.undetermined: list[Resolution] = []
        self.keep_data = False
        """Hand the data a small file's check read to its job (:attr:`Job.data`): for a batch resolved and run
        at once (the jobs' data stay within a batch's bytes), not for a whole archive planned first."""
        self.holds_attrs = backend == VIRTUAL or backend_class(backend).holds_attrs
        """Whether the outputs keep the resolved attrs (the provenance); else it stays in the manifest only."""

    def output(self, dest: str) -> str:
        """Where the output named ``dest`` (relative, ``/``-separated) is written: a path or a URL."""
        if isinstance(self.dst, str):
            return f"{self.dst}/{dest}"
        return _absolute(self.dst, dest, self._bases)

    @property
    def _bases(self) -> dict[Path, str]:
        """Absolute paths of the source and destination folders, as strings, computed once."""
        bases: dict[Path, str] | None = self.__dict__.get("_base_strs")
        if bases is None:
            bases = self.__dict__["_base_strs"] = {}
        return bases

    def plan(self, names: Sequence[str], broken: Sequence[tuple[str, ArrayStoreError]]) -> None:
        """Resolve every file here: :attr:`jobs` to run, :attr:`done` records, :attr:`undetermined`."""
        with remembered():
            for name, dest in self.pending(names, broken):
                self._one(name, dest)

    def pending(
        self, names: Sequence[str], broken: Sequence[tuple[str, ArrayStoreError]]
    ) -> list[tuple[str, str]]:
        """Record the files refused without reading them; the ``(name, destination)`` of the others."""
        prev_dest = {
            n: r.destination
            for n, r in self.previous.items()
            if r.destination and r.backend == self.backend and r.status in ("converted", "skipped")
        }
        refused: dict[str, str]
        if self.backend == VIRTUAL:  # one array per file, named as the file: no output files to collide
            dests, refused = {n: n for n in names}, {}
        elif self.into is not None:
            assert isinstance(self.dst, Path)  # migrate() refuses into= for an object-store destination
            suffix = default_suffix(self.backend)  # type: ignore[arg-type]
            dests, refused = group_destinations(names, self.into, suffix, prev_dest, self.src, self.dst)
        else:
            dests = destination_names(names, default_suffix(self.backend), prev_dest)  # type: ignore[arg-type]
            refused = overlapping_outputs(dests, self.src, None if isinstance(self.dst, str) else self.dst)
        todo = []
        for name in names:
            if name in refused:
                self._refuse(name, dests[name], UnsafeInputError(f"{self.src / name}: {refused[name]}"))
            else:
                todo.append((name, dests[name]))
        for name, err in broken:
            if self._decoded(name):
                continue
            try:
                size = (self.src / name).lstat().st_size
            except OSError:
                size = 0
            self.done.append(
                FileRecord(
                    source=name,
                    status="failed",
                    size=size,
                    error=_error(err),
                    note=None if isinstance(err, UnsafeInputError) else "header file whose data file could not be used",
                )
            )
        return todo

    def for_files(self, names: Sequence[str]) -> _Planner:
        """A planner for some of the files, to send to a worker: it carries their earlier records only."""
        part = _Planner(self.src, self.dst, self.backend, self.rules,
                        {n: self.previous[n] for n in names if n in self.previous}, self.job_options, self.recheck)
        part.virtual, part.into, part.storage_options = self.virtual, self.into, self.storage_options
        part.scope = self.scope
        part.claimed = frozenset(j.source for j in self.jobs)
        return part

    def _decoded(self, name: str) -> bool:
        """A virtual migration's copy job for a file only a decoder reads (see ``virtual.fallback``); False if none."""
        if not (self.virtual.get("virtual") and self.virtual.get("fallback", True)):
            return False
        from ..virtual.fallback import decodable

        found = decodable(self.src / name)
        if found is None:
            return False
        meta, data, offset, decoder, reason = found
        st = data.stat()
        try:  # named as its data file, like every referenced array (``scan.mhd`` + ``scan.zraw``: ``scan.zraw``)
            name = data.relative_to(self.src).as_posix()
        except ValueError:
            pass
        if name in self.claimed or any(j.source == name for j in self.jobs):
            return True
        self.jobs.append(
            Job(
                source=name, src_path=str(data.absolute()), meta=meta.to_dict(), offset=offset, own_sidecar=False,
                dst_path=self.output(name), destination=name, backend=self.backend,
                size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, options=self.job_options,
                virtual=True,
                resolution={"status": "resolved", "dialect": meta.attrs.get("dialect"), "decode": decoder,
                            **meta.to_dict()},
                copy=reason, decode=decoder,
            )
        )
        return True

    def _refuse(self, name: str, dest: str, err: ArrayStoreError) -> None:
        try:
            st = (self.src / name).stat()
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = 0, 0
        self.done.append(
            FileRecord(source=name, status="failed", size=size, mtime_ns=mtime, destination=dest, error=_error(err))
        )

    def _one(self, name: str, dest: str) -> None:
        path = self.src / name
        t0 = time.perf_counter()
        try:
            st = os.lstat(path)  # path.stat(), and what resolve() looks at first: one call
            link = stat.S_ISLNK(st.st_mode)
            if link:
                st = os.stat(path)
            data: list[bytes] | None = [] if self.keep_data and not self.virtual.get("virtual") else None
            res = _resolve_stat(path, st, link, self.src, self.rules, self.holds_attrs, data)
        except ArrayStoreError as exc:
            self.done.append(FileRecord(source=name, status="failed", error=_error(exc)))
            return
        base: dict[str, Any] = {
            "source": name,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns,
            "resolution": _resolution_dict(res),
        }
        if res.status == "undetermined":
            self.undetermined.append(res)
            self.done.append(FileRecord(status="undetermined", **base))
            return
        if res.status != "resolved" or res.meta is None:
            if self._decoded(name):
                return
            err = res.error or MetadataError(f"{path}: could not be resolved")
            self.done.append(FileRecord(status="failed", error=_error(err), **base))
            return
        prev = self.previous.get(name)
        if prev is not None and (
            prev.status not in ("converted", "skipped")
            or prev.backend != self.backend
            or prev.destination != dest
        ):
            prev = None  # nothing of ours at this destination
        overwrite, recheck = False, None
        if prev is not None:
            changed = (
                (prev.size, prev.mtime_ns) != (st.st_size, st.st_mtime_ns)
                or prev.ctime_ns not in (0, st.st_ctime_ns)  # rewritten, its mtime put back (0: not recorded)
                or not _same_layout(prev.resolution, res)
            )
            missing_header = self.job_options.header is not None and not Path(f"{self.output(dest)}.hdr").is_file()
            if changed or missing_header or not _dst_intact(prev, res, self.output(dest), self.backend):
                overwrite = True
            elif self.recheck:
                recheck = prev.to_dict()
            else:
                self.done.append(
                    FileRecord(
                        status="skipped",
                        destination=dest,
                        backend=self.backend,
                        source_checksum=prev.source_checksum,
                        destination_checksum=prev.destination_checksum,
                        verified=prev.verified,
                        seconds=time.perf_counter() - t0,
                        note="converted by an earlier run",
                        **base,
                    )
                )
                return
        meta = res.meta
        if not self.holds_attrs and meta.attrs:  # e.g. .npy: the provenance stays in the manifest
            meta = meta.replace(attrs={})
        self.jobs.append(
            Job(
                src_path=_absolute(self.src, name, self._bases),
                meta=meta.to_dict(),
                offset=res.offset,
                own_sidecar=any(e.source == "sidecar" for e in res.evidence),  # read by resolve()
                dst_path=self.output(dest),
                destination=dest,
                backend=self.backend,
                overwrite=overwrite,
                recheck=recheck,
                **base,
                options=self.job_options,
                virtual=self.virtual.get("virtual", False),
                checksum=self.virtual.get("checksum", True),
                fallback=self.virtual.get("fallback", True),
                storage_options=self.storage_options,
                data=data[0] if data else None,
                layout=meta if data is not None else None,
            )
        )
