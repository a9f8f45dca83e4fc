"""The resume journal: which blocks of a conversion are done, beside the half-built destination.

A JSON-lines file ``<dst>.partial.journal.jsonl`` (``<dst>.partial.<key>.journal.jsonl``
for an array inside an HDF5 file or Zarr group). The first line is a header::

    {"journal": "arraystore.convert", "version": 1, "source": {...fingerprint...}, "options": {...plan key...}}

and every further line records one finished block and a digest of its bytes::

    {"block": 17, "digest": "9c0f..."}

A block is journaled only after its bytes were handed to the destination (and,
for destinations that cache writes in the process, flushed), so a kill can lose
journal lines but never claim a block that is not on disk. A torn last line is
ignored. A journal whose header does not match the current source fingerprint and
options is discarded and the conversion restarts from scratch, with a message.

A ``durable`` journal is fsynced when it starts, then at most every
:data:`SYNC_INTERVAL` seconds and when it is closed: a power cut loses at most that
much progress (the blocks are rewritten on resume: every journaled block is checked
against its digest anyway), where an fsync per block would make each block wait for
the disk (ext4's ordered mode writes the destination's pending data with the journal's).

A conversion of a single block has nothing to resume: its journal is *disabled*
(``enabled=False``): no file is written, and a stale one left by an earlier run with
other options is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from .. import _fsutil
from .._fsutil import partial_path, remove_path
from ..errors import MetadataError
from ..registry import Location

__all__ = ["SYNC_INTERVAL", "Journal", "journal_path", "source_fingerprint", "tree_state"]

#: Seconds between fsyncs of a durable journal's records.
SYNC_INTERVAL = 1.0

MAGIC = "arraystore.convert"
VERSION = 1


def journal_path(dst: Location) -> Path:
    """Where the journal of a conversion to ``dst`` lives."""
    base = partial_path(dst.file)
    if dst.key:
        tag = hashlib.sha1(dst.key.encode()).hexdigest()[:10]
        return base.with_name(f"{base.name}.{tag}.journal.jsonl")
    return base.with_name(f"{base.name}.journal.jsonl")


def tree_state(path: Path) -> tuple[int, int, int]:
    """Total size and newest modification and status-change times of a file, or of every file under a folder
    (zeros for a path that does not exist)."""
    size, mtime, ctime = 0, 0, 0
    if path.is_dir():
        for root, _dirs, files in os.walk(path):
            for name in files:
                try:
                    st = os.stat(os.path.join(root, name))
                except FileNotFoundError:  # pragma: no cover - concurrent change
                    continue
                size += st.st_size
                mtime = max(mtime, st.st_mtime_ns)
                ctime = max(ctime, st.st_ctime_ns)
    elif path.exists():
        st = path.stat()
        size, mtime, ctime = st.st_size, st.st_mtime_ns, st.st_ctime_ns
    return size, mtime, ctime


def source_fingerprint(location: Location, backend: str, meta: dict[str, Any],
                       version: dict[str, Any] | None = None, *,
                       state: tuple[int, int, int] | None = None) -> dict[str, Any]:
    """Size, modification and status-change times and metadata of a source, and ``version`` (the store's
    ``_version()``: an object's ETag...) when it has one: a resume must see the same.

    The status-change time (the newest of a folder's files) tells a file rewritten in place with its size and
    modification time put back (``os.utime``), which no unprivileged program can set: its journaled blocks are
    of the old bytes. ``state``: the location's :func:`tree_state` when the caller has just taken it.
    """
    size, mtime, ctime = tree_state(location.file) if state is None else state
    found = {"path": str(location), "backend": backend, "size": size, "mtime_ns": mtime, "ctime_ns": ctime,
             "meta": meta}
    if version:
        found["version"] = version
    return found


class Journal:
    """An append-only record of finished blocks."""

    def __init__(self, path: Path, header: dict[str, Any], done: dict[int, str], *, durable: bool,
                 enabled: bool = True) -> None:
        self.path = path
        self.header = header
        self.done = done
        self.durable = durable
        self.enabled = enabled
        self._f: Any = None
        self._on_disk = False
        self._synced = time.monotonic()  # when the records were last fsynced (durable)
        self._unsynced = False

    @classmethod
    def open(
        cls, path: Path, source: dict[str, Any], options: dict[str, Any], *, resume: bool, durable: bool = False,
        enabled: bool = True,
    ) -> tuple[Journal, str | None]:
        """Load a matching journal (resume) or start a new one; returns it and a restart message, if any.

        With ``enabled=False`` nothing is read or written (a stale journal is removed).
        """
        header = {"journal": MAGIC, "version": VERSION, "source": source, "options": options}
        message = None
        done: dict[int, str] = {}
        exists = os.path.lexists(path)
        if not enabled:
            if exists:
                remove_path(path)
            return cls(path, header, done, durable=durable, enabled=False), None
        if exists:
            if not resume:
                message = "resume disabled: starting from scratch"
            else:
                old, done = _read(path)
                if old is None:
                    message = f"{path.name}: unreadable journal; starting from scratch"
                elif _canon(old.get("source")) != _canon(source):
                    message = ("the source changed since the interrupted conversion (size, modification or "
                               "status-change time, or metadata); starting from scratch")
                elif _canon(old.get("options")) != _canon(options):
                    message = "the conversion options changed since the interrupted conversion; starting from scratch"
                if message is not None:
                    done = {}
        journal = cls(path, header, done, durable=durable)
        journal._on_disk = exists
        if message is not None or not done:
            journal._start()
        return journal, message

    def _start(self) -> None:
        self.close()
        self.done = {}
        if not self.enabled:
            if self._on_disk or os.path.lexists(self.path):
                remove_path(self.path)
            self._on_disk = False
            return
        data = json.dumps(self.header, sort_keys=True) + "\n"
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            if self.durable:
                os.fsync(f.fileno())
        self._on_disk = True

    def restart(self, options: dict[str, Any], *, enabled: bool) -> None:
        """Start again from scratch with new options (the plan changed after the destination was created)."""
        self.header["options"] = options
        self.enabled = enabled
        self._start()

    @property
    def fresh(self) -> bool:
        """True when no finished block was recorded."""
        return not self.done

    def record(self, block: int, digest: str) -> None:
        """Append one finished block."""
        if not self.enabled:
            self.done[block] = digest
            return
        if self._f is None:
            self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across blocks
        self._f.write(json.dumps({"block": block, "digest": digest}) + "\n")
        self._f.flush()
        if self.durable:
            self._unsynced = True
            if time.monotonic() - self._synced >= SYNC_INTERVAL:
                self._sync()
        self.done[block] = digest

    def _sync(self) -> None:
        os.fsync(self._f.fileno())
        self._synced = time.monotonic()
        self._unsynced = False

    def forget(self, block: int) -> None:
        """Drop a block whose bytes did not read back as journaled (it will be rewritten)."""
        self.done.pop(block, None)

    def close(self) -> None:
        """Close the file (the journal stays for a later resume)."""
        if self._f is not None:
            if self._unsynced:
                self._sync()
            self._f.close()
            self._f = None

    def remove(self) -> None:
        """Delete the journal (the conversion finished or was abandoned for good)."""
        self._unsynced = False  # nothing to keep: no fsync
        self.close()
        if self.enabled or self._on_disk:
            remove_path(self.path)
            self._on_disk = False


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _read(path: Path) -> tuple[dict[str, Any] | None, dict[int, str]]:
    done: dict[int, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None, {}
    if not lines:
        return None, {}
    try:
        header = _fsutil.loads_json(lines[0], str(path), "conversion journal header")
    except MetadataError:  # also an over-large (hostile) line
        return None, {}
    if not isinstance(header, dict) or header.get("journal") != MAGIC or header.get("version") != VERSION:
        return None, {}
    for line in lines[1:]:
        try:
            rec = _fsutil.loads_json(line, str(path), "conversion journal record")
            done[int(rec["block"])] = str(rec["digest"])
        except (MetadataError, KeyError, TypeError, ValueError):
            continue  # a line torn by a kill
    return header, done
