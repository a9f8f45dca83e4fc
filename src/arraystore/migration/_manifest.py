"""The migration manifest ``migration.jsonl``: one JSON line per file, appended as files finish.

Lines are written to the operating system as soon as their files are done: one write per
file in this process, one write per batch of files from a worker process
(:meth:`Manifest.append_many`), so a killed migration (SIGKILL included) loses at most the
files in flight: the kernel keeps what a dead process wrote. A power cut is another matter:
with ``durable=True`` the lines are fsynced after their files' data were (each conversion
is durable too), one fsync per batch of lines (:data:`SYNC_LINES` at most in this process);
a line lost to a power cut leaves a published destination without a line, which a rerun
reads back and adopts only when it equals its source. Without ``durable`` nothing is
fsynced, and after a power cut a rerun with ``recheck=True`` reads every destination
back. A rerun reads the manifest,
takes the last line of each source, and rewrites the file with one line per source
(atomically) when it finishes. A torn last line (a kill in the middle of a write) is
ignored: its file is simply done again.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .. import _fsutil
from ..errors import MetadataError

__all__ = ["MANIFEST_NAME", "SYNC_LINES", "FileRecord", "Manifest", "RecordStatus", "parse_manifest", "record_json",
           "record_line"]

MANIFEST_NAME = "migration.jsonl"
#: With ``durable``, lines appended one at a time are fsynced in groups of at most this many.
SYNC_LINES = 64
RecordStatus = Literal["converted", "skipped", "undetermined", "failed", "planned"]


@dataclass
class FileRecord:
    """One source file's outcome: a line of ``migration.jsonl``.

    Attributes
    ----------
    source
        Path relative to the source root (``/``-separated).
    status
        ``"converted"`` (written and, with verification, read back equal), ``"skipped"``
        (converted by an earlier run and still valid), ``"undetermined"`` (no dtype:
        see ``resolution["candidates"]``), ``"failed"`` (see ``error``), or ``"planned"``
        (a dry run: would be converted).
    size, mtime_ns, ctime_ns
        The source's size, modification time and status-change time when it was resolved
        (``ctime_ns`` 0: not recorded, a line of an earlier version). A rerun skips a file only
        when all three are unchanged: a rewrite whose size and modification time were put back
        (``os.utime``) still changes the status-change time, which no unprivileged program can set.
    destination
        Path relative to the destination root, for resolved files.
    backend
        The destination format.
    source_checksum, destination_checksum
        ``{"algorithm", "value"}``: the source's content checksum, computed while it was
        converted, and the destination's as read back (``None`` without verification).
    verified
        True when the destination was read back and matched the source.
    resolution
        :meth:`Resolution.to_dict`: resolved metadata and the evidence for it.
    error
        ``{"type", "message"}`` for failed files.
    seconds
        Time spent on this file in this run.
    note
        How the outcome was reached, when it is not the plain one.
    finished
        UTC time the line was made (ISO 8601): when the file, or the worker's batch it was
        in, finished.
    """

    source: str
    status: RecordStatus
    size: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    destination: str | None = None
    backend: str | None = None
    source_checksum: dict[str, str] | None = None
    destination_checksum: dict[str, str] | None = None
    verified: bool = False
    resolution: dict[str, Any] = field(default_factory=dict)
    error: dict[str, str] | None = None
    seconds: float = 0.0
    note: str | None = None
    finished: str = ""

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__  # the fields are plain instance attributes (no slots, no descriptors)
        if "_line" in d:
            if "resolution" not in d:  # still in the line only (see __reduce_ex__): kept before the line goes
                d["resolution"] = _decoded_resolution(d["_line"])
            del d["_line"]  # a changed record is encoded again (see record_line)
        d[name] = value

    def __reduce_ex__(self, protocol: Any) -> Any:
        """An encoded record (:func:`record_line`) travels without its ``resolution``, which its line holds.

        A worker process sends its records to the process writing the manifest, which appends
        their lines and reads the resolution of few of them (undetermined and failed files, in
        the summary): it is decoded from the line when first read, instead of being pickled and
        unpickled whole (most of a record's size: every piece of evidence).
        """
        d = self.__dict__
        if "_line" not in d:
            return super().__reduce_ex__(protocol)
        return _lazy_record, ({k: v for k, v in d.items() if k != "resolution"},)

    if not TYPE_CHECKING:  # mypy would accept any attribute of a class with __getattr__

        def __getattr__(self, name: str) -> Any:
            d = self.__dict__
            if name == "resolution" and "_line" in d:  # a record sent without it (see __reduce_ex__)
                value = d["resolution"] = _decoded_resolution(d["_line"])
                return value
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (field order as declared); nested values are shared, not copied."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def made(cls, **values: Any) -> FileRecord:
        """``FileRecord(**values)``, without a :meth:`__setattr__` call per field (a migration makes one record
        per file, in its hottest loop): the defaults, then ``values``, put in place at once.

        Raises
        ------
        TypeError
            A name in ``values`` is not a field, or ``source`` or ``status`` is missing.
        """
        if not values.keys() <= _FIELD_NAMES or "source" not in values or "status" not in values:
            raise TypeError(f"expected the fields of a FileRecord (source and status at least), found {sorted(values)}")
        record = cls.__new__(cls)
        d = record.__dict__
        d.update(_DEFAULTS)
        d["resolution"] = {}
        d.update(values)
        return record

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileRecord:
        """Inverse of :meth:`to_dict`; unknown keys (from newer versions) are ignored.

        Raises
        ------
        TypeError
            ``d`` is not a dict, or a field has the wrong type (a hand-edited or hostile line).
        ValueError
            ``status`` is not a known status, or ``source`` is empty.
        """
        if not isinstance(d, dict):
            raise TypeError(f"expected a JSON object, found {type(d).__name__}")
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for key in ("source", "status"):
            if key not in known:
                raise TypeError(f"missing {key!r}")
        for key, value in known.items():
            want = _FIELD_TYPES[key]
            if not isinstance(value, want) or (isinstance(value, bool) and bool not in want):
                raise TypeError(f"expected {key!r} of type {' or '.join(t.__name__ for t in want)}, "
                                f"found {type(value).__name__}")
        if known["status"] not in _STATUSES or not known["source"]:
            raise ValueError(f"expected a status in {', '.join(_STATUSES)} and a non-empty source")
        return cls(**known)

    @property
    def error_message(self) -> str:
        """``"Type: message"`` of a failed file, else ``""``."""
        return f"{self.error['type']}: {self.error['message']}" if self.error else ""


#: The fields of a record, and the defaults of all but ``resolution`` (a new dict each, see :meth:`FileRecord.made`).
_FIELD_NAMES = frozenset(f.name for f in fields(FileRecord))
_DEFAULTS = {f.name: f.default for f in fields(FileRecord) if f.default is not MISSING}
assert _FIELD_NAMES - _DEFAULTS.keys() == {"source", "status", "resolution"}


def _lazy_record(state: dict[str, Any]) -> FileRecord:
    """A record unpickled from :meth:`FileRecord.__reduce_ex__`: its fields but ``resolution``, and its line."""
    record = FileRecord.__new__(FileRecord)
    record.__dict__.update(state)
    return record


def _decoded_resolution(line: bytes) -> dict[str, Any]:
    """The ``resolution`` of a record's encoded line (:func:`record_line`)."""
    value: dict[str, Any] = json.loads(line)["resolution"]
    return value


_STATUSES = ("converted", "skipped", "undetermined", "failed", "planned")
_OPT_STR = (str, type(None))
_OPT_DICT = (dict, type(None))
#: The JSON types each field of a manifest line may have; anything else refuses the manifest.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "source": (str,),
    "status": (str,),
    "size": (int,),
    "mtime_ns": (int,),
    "ctime_ns": (int,),
    "destination": _OPT_STR,
    "backend": _OPT_STR,
    "source_checksum": _OPT_DICT,
    "destination_checksum": _OPT_DICT,
    "verified": (bool,),
    "resolution": (dict,),
    "error": _OPT_DICT,
    "seconds": (int, float),
    "note": _OPT_STR,
    "finished": (str,),
}


def parse_manifest(body: bytes, where: str, *, torn_last_line: bool = True) -> dict[str, FileRecord]:
    """The last line of each source in a manifest's bytes.

    ``torn_last_line``: a last line that does not parse is one a kill tore (a file
    appended to); False for a manifest written whole (an object), where it is refused too.

    Raises
    ------
    MetadataError
        A complete line is not a record.
    """
    records: dict[str, FileRecord] = {}
    lines = body.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = _fsutil.loads_json(line, f"{where}, line {i + 1}", "migration record")
            rec = FileRecord.from_dict(obj)
        except (ValueError, TypeError, RecursionError) as exc:
            if torn_last_line and i == len(lines) - 1:
                continue  # a line torn by a kill: its file is done again
            raise MetadataError(
                f"{where}, line {i + 1}: expected a migration record (JSON object with 'source' and "
                f"'status'), found {line[:80]!r} ({exc}); restore the file or move it away to start over"
            ) from None
        records[rec.source] = rec
    return records


_NOW: list[Any] = [None, ""]


def _now() -> str:
    """The UTC time in ISO 8601, to the second (formatted once per second: every file's line has one)."""
    second = int(time.time())
    last = _NOW
    if last[0] != second:
        last = [second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))]
        _NOW[:] = last
    text: str = last[1]
    return text


def record_line(record: FileRecord, *, stamp: bool = True) -> bytes:
    """``record``'s manifest line (JSON and a newline), ``finished`` stamped now if empty (and ``stamp``).

    Encoded once and kept with the record (it travels with it from a worker process, which
    encodes its files' lines in parallel): the manifest, its rewrite and the report reuse it.
    Setting any field drops it.
    """
    line: bytes | None = record.__dict__.get("_line")
    if line is None:
        if stamp and not record.finished:
            record.finished = _now()
        line = json.dumps(record.to_dict(), default=str).encode() + b"\n"
        record.__dict__["_line"] = line
    return line


def record_json(record: FileRecord) -> str:
    """``record`` as one line of JSON (no newline), from :func:`record_line`'s encoding when there is one."""
    line: bytes | None = record.__dict__.get("_line")
    return line[:-1].decode() if line is not None else json.dumps(record.to_dict(), default=str)


class Manifest:
    """Reader and appender of ``DST/migration.jsonl``.

    Parameters
    ----------
    path
        The manifest file.
    durable
        fsync the lines: each batch of :meth:`append_many`, and lines of :meth:`append` every
        :data:`SYNC_LINES` lines and at :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False) -> None:
        self.path = Path(path)
        self.durable = durable
        self._fh: Any = None
        self._pending = 0

    def read(self) -> dict[str, FileRecord]:
        """The last complete line of each source (empty when there is no manifest yet).

        Raises
        ------
        MetadataError
            When a complete line (not the torn last one) is not a record: the file is not
            a migration manifest, or it was edited by hand.
        """
        if not self.path.exists():
            return {}
        return parse_manifest(self.path.read_bytes(), str(self.path))

    def append(self, record: FileRecord) -> None:
        """Write one line; it survives a kill of this process once this returns.

        With ``durable``, the lines are fsynced every :data:`SYNC_LINES` lines (and at
        :meth:`sync` and :meth:`close`), not after each one.

        Raises
        ------
        StorageFullError
            The disk is full: the line is not written (the file is cut back to its last
            complete line), so the manifest stays consistent.
        """
        self._append([record], sync_every=SYNC_LINES)

    def append_many(self, records: Sequence[FileRecord]) -> None:
        """Write one line per record in one write (all or none), then one fsync when durable.

        A kill during the write can leave the last line torn; :meth:`read` ignores it and
        the next append cuts it off, so every whole line is a finished file.

        Raises
        ------
        StorageFullError
            As :meth:`append`: no line of the batch is written.
        """
        self._append(records, sync_every=1)

    def _append(self, records: Sequence[FileRecord], sync_every: int) -> None:
        if not records:
            return
        lines = [record_line(record) for record in records]
        try:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a+b", buffering=0)  # noqa: SIM115 - kept open across appends
                self._cut_torn_line()
            self._write_line(b"".join(lines))
            self._pending += 1
            if self.durable and self._pending >= sync_every:
                self.sync()
        except OSError as exc:
            _fsutil.raise_if_full(exc, self.path, "appending to the migration manifest")
            raise

    def _write_line(self, line: bytes) -> None:
        """Write all of ``line`` or nothing: a failed write is cut back off the file."""
        fd = self._fh.fileno()
        start = os.lseek(fd, 0, os.SEEK_END)
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise

    def _cut_torn_line(self) -> None:
        """Drop a last line torn by a kill (no newline), so that appended lines stay whole."""
        fd = self._fh.fileno()
        size = os.fstat(fd).st_size
        if size == 0:
            return
        self._fh.seek(max(0, size - (1 << 20)))
        tail = self._fh.read(min(size, 1 << 20))
        if tail.endswith(b"\n"):
            return
        nl = tail.rfind(b"\n")
        if nl < 0 and size > len(tail):  # a torn line over 1 MiB long: keep it, end it
            os.write(fd, b"\n")
            return
        os.ftruncate(fd, size - len(tail) + nl + 1)

    def sync(self) -> None:
        """fsync the lines written so far."""
        if self._fh is not None and self._pending:
            try:
                os.fsync(self._fh.fileno())
            except OSError as exc:
                _fsutil.raise_if_full(exc, self.path, "syncing the migration manifest")
                raise
            self._pending = 0

    def close(self) -> None:
        """Close (fsync first when durable)."""
        if self._fh is not None:
            if self.durable:
                self.sync()
            self._fh.close()
            self._fh = None

    def rewrite(self, records: dict[str, FileRecord]) -> None:
        """Replace the manifest with one line per source, atomically (temporary file + rename)."""
        self.close()
        body = b"".join(record_line(r, stamp=False) for _, r in sorted(records.items()))
        _fsutil.atomic_write_bytes(self.path, body, durable=self.durable)
