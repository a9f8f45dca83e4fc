"""Long-running writers that survive a crash: a flush policy and a durable checkpoint.

An :class:`ArrayWriter` wraps a writable store. It counts writes and flushes by
policy — every N writes (``flush_every``), every T seconds (``flush_every_seconds``,
checked at each write), both, or only at close — and at each flush it records a
:class:`Checkpoint`: how many rows were appended, how many writes were made, and a
small dict of the caller's own state. The data is flushed (``durable=True``: fsynced)
*before* the checkpoint is written, so everything up to the last checkpoint is on
disk whatever happens afterwards.

Where the checkpoint lives
--------------------------
Beside the array, as ``<file>.checkpoint.json`` (``<file>.<key hash>.checkpoint.json``
for an array inside an HDF5 file or a Zarr hierarchy), written atomically (temporary
file, fsync, rename, fsync of the folder). One place that works for every backend,
that never touches the array's own metadata, and that a reader of the array never
sees. After a clean close the file stays, marked ``complete``, so that a rerun of the
same job knows it has nothing left to do; :meth:`ArrayWriter.clear` removes it.

Resuming::

    w = ArrayWriter.create("frames.dat", (n, 512), "f4", flush_every=100, durable=True, resume=True)
    with w:
        for i in range(w.rows, n):        # w.rows: where the last checkpoint got to
            w.append(frame(i)[None])

A new array is built under a temporary name and published at close (see
:func:`arraystore.create`); ``resume=True`` reopens that half-built array.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _fsutil
from ._open import create
from .errors import (
    AccessError,
    AlreadyExistsError,
    BroadcastError,
    ClosedStoreError,
    MetadataError,
    ModeError,
    SelectionError,
    ZeroDimensionalError,
)
from .location import Location, parse_location
from .registry import backend_class, detect_backend

if TYPE_CHECKING:
    from .store import ArrayStore

__all__ = ["CHECKPOINT_FORMAT", "ArrayWriter", "Checkpoint", "checkpoint_path"]

CHECKPOINT_FORMAT = "arraystore.checkpoint"
CHECKPOINT_VERSION = 1
#: A checkpoint is a few hundred bytes; anything larger is not one.
_MAX_CHECKPOINT_BYTES = 1 << 20

_open_writers: weakref.WeakSet[ArrayWriter] = weakref.WeakSet()


@atexit.register
def _checkpoint_open_writers() -> None:
    # Registered after store.py's handler, so it runs first (atexit is LIFO): the
    # data is flushed and a checkpoint recorded while the stores are still open.
    for writer in list(_open_writers):
        with contextlib.suppress(Exception):
            writer.checkpoint()


@dataclass(frozen=True)
class Checkpoint:
    """How far a writer got, as recorded at its last flush.

    Attributes
    ----------
    path
        The array (its final path, ``file::key`` inside hierarchies).
    rows
        Rows appended with :meth:`ArrayWriter.append` (along axis 0); every row
        before this one is on disk.
    writes
        Calls to :meth:`ArrayWriter.write` and :meth:`ArrayWriter.append` made before the checkpoint.
    user
        The caller's own state (JSON), as last given to ``write``/``append``/``checkpoint``.
    complete
        True when the writer was closed cleanly and the array published.
    shape, dtype
        The array's shape and dtype (``dtype.str``), to refuse a checkpoint of another array.
    sequence
        Number of checkpoints recorded so far (1 for the first).
    time
        When it was recorded (seconds since the epoch).
    """

    path: str
    rows: int = 0
    writes: int = 0
    user: dict[str, Any] = field(default_factory=dict)
    complete: bool = False
    shape: tuple[int, ...] = ()
    dtype: str = ""
    sequence: int = 0
    time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to disk."""
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "path": self.path,
            "rows": self.rows,
            "writes": self.writes,
            "user": self.user,
            "complete": self.complete,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "sequence": self.sequence,
            "time": self.time,
        }

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "checkpoint") -> Checkpoint:
        """Parse and validate a checkpoint object; raises :class:`MetadataError`."""
        if not isinstance(d, dict) or d.get("format") != CHECKPOINT_FORMAT:
            raise MetadataError(f'{source}: expected a JSON object with "format": "{CHECKPOINT_FORMAT}"; '
                                "this is not an arraystore checkpoint: remove it to start afresh")
        if d.get("version") != CHECKPOINT_VERSION:
            raise MetadataError(f"{source}: expected checkpoint version {CHECKPOINT_VERSION}, found "
                                f"{d.get('version')!r}; finish the job with the arraystore that started it")

        def count(key: str) -> int:
            v = d.get(key, 0)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise MetadataError(f'{source}: expected a non-negative integer "{key}", found {v!r}')
            return v

        shape = d.get("shape", [])
        if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                  for n in shape):
            raise MetadataError(f'{source}: expected "shape" as a list of non-negative integers, found {shape!r}')
        user, complete, stamp = d.get("user", {}), d.get("complete", False), d.get("time", 0.0)
        if not isinstance(user, dict) or not isinstance(complete, bool) or not isinstance(stamp, (int, float)):
            raise MetadataError(f'{source}: expected "user" an object, "complete" true/false and "time" a '
                                f"number, found {user!r}, {complete!r}, {stamp!r}")
        return cls(str(d.get("path", "")), count("rows"), count("writes"), user, complete, tuple(shape),
                   str(d.get("dtype", "")), count("sequence"), float(stamp))


def checkpoint_path(path: str | os.PathLike[str]) -> Path:
    """Where the checkpoint of the array at ``path`` is kept (beside its file or folder)."""
    loc = parse_location(path)
    name = loc.file.name
    if loc.key and loc.key.strip("/"):
        name += "." + hashlib.sha1(loc.key.strip("/").encode()).hexdigest()[:12]
    return loc.file.with_name(name + ".checkpoint.json")


def _read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint | None:
    cp = checkpoint_path(path)
    d = _fsutil.read_json_file(cp, _MAX_CHECKPOINT_BYTES, "checkpoint")
    if d is None:
        return None
    return Checkpoint.from_dict(d, source=str(cp))


class ArrayWriter:
    """Write an array over a long time, flushing by policy and checkpointing at each flush.

    Parameters
    ----------
    store
        A writable store (from :func:`arraystore.create` or ``arraystore.open(path, "r+")``).
        The writer owns it from now on: closing the writer closes (and publishes) it.
    flush_every
        Flush and checkpoint after every N writes; ``None`` for no count-based flush.
    flush_every_seconds
        Flush and checkpoint at the first write at least T seconds after the last
        checkpoint; ``None`` for no time-based flush. With both set, whichever comes first.
        With neither, data is flushed only at :meth:`checkpoint` and close.
    durable
        fsync data (and the checkpoint) at each flush; without it a flush reaches the
        operating system only, which survives a killed process but not a power cut.
    start
        The checkpoint to continue from (what :meth:`resume` returned), or None.

    Notes
    -----
    The time-based policy is checked when a write happens: a writer that sits idle
    is not flushed behind its back (no thread touches the store).
    """

    def __init__(
        self,
        store: ArrayStore,
        *,
        flush_every: int | None = None,
        flush_every_seconds: float | None = None,
        durable: bool = False,
        start: Checkpoint | None = None,
    ) -> None:
        if store.closed or store.mode not in ("r+", "w+", "w-"):
            raise ModeError(f"{store.path}: an ArrayWriter needs a store open for writing (mode r+ or w+), "
                            f"found mode {store.mode!r}{' (closed)' if store.closed else ''}")
        if flush_every is not None and (not isinstance(flush_every, (int, np.integer)) or isinstance(flush_every, bool)
                                        or flush_every < 1):
            raise AccessError(f"flush_every: expected a positive number of writes or None, found {flush_every!r}; "
                              "pass e.g. flush_every=1000")
        if flush_every_seconds is not None and (not isinstance(flush_every_seconds, (int, float, np.number))
                                                or isinstance(flush_every_seconds, bool)
                                                or not float(flush_every_seconds) > 0):
            raise AccessError(f"flush_every_seconds: expected a positive number or None, found "
                              f"{flush_every_seconds!r}; pass e.g. flush_every_seconds=30")
        self._store = store
        self._flush_every = None if flush_every is None else int(flush_every)
        self._flush_seconds = None if flush_every_seconds is None else float(flush_every_seconds)
        self._durable = bool(durable)
        self._path = store.path
        self._cp_file = checkpoint_path(self._path)
        self._rows = start.rows if start else 0
        self._writes = start.writes if start else 0
        self._sequence = start.sequence if start else 0
        self._user: dict[str, Any] = dict(start.user) if start else {}
        self._since = 0
        self._last = time.monotonic()
        self._last_checkpoint = start
        self._closed = False
        if start is not None and store.shape and start.rows > store.shape[0]:
            raise MetadataError(f"{self._cp_file}: the checkpoint says {start.rows} rows were written, but the "
                                f"array has {store.shape[0]}; it belongs to another array: remove it")
        _open_writers.add(self)

    # -- construction helpers ------------------------------------------------

    @staticmethod
    def resume(path: str | os.PathLike[str]) -> Checkpoint | None:
        """The last checkpoint recorded for the array at ``path``, or None when there is none.

        Raises
        ------
        MetadataError
            A checkpoint file exists but is not a valid checkpoint.
        """
        return _read_checkpoint(path)

    @staticmethod
    def clear(path: str | os.PathLike[str]) -> None:
        """Remove the checkpoint of the array at ``path`` (missing is fine)."""
        _fsutil.remove_path(checkpoint_path(path))

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        shape: Any,
        dtype: Any,
        *,
        flush_every: int | None = None,
        flush_every_seconds: float | None = None,
        durable: bool = False,
        resume: bool = False,
        **create_options: Any,
    ) -> ArrayWriter:
        """Create a new array (or, with ``resume=True``, continue an interrupted one) and wrap it.

        With ``resume=True`` and a checkpoint of an unfinished writer of the same shape
        and dtype, the half-built array is reopened and :attr:`rows`, :attr:`writes`
        and :attr:`user` start where the checkpoint left them. Without a checkpoint the
        array is created afresh.

        Raises
        ------
        AlreadyExistsError
            With ``resume=True``, when the checkpoint says the array was finished and published.
        MetadataError
            The checkpoint describes another array (shape or dtype differ).
        """
        start = _read_checkpoint(path) if resume else None
        dt = np.dtype(dtype)
        shp = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
        if start is not None and (start.shape, start.dtype) != (shp, dt.str):
            raise MetadataError(
                f"{checkpoint_path(path)}: the checkpoint is for shape {start.shape} {start.dtype}, not "
                f"{shp} {dt.str}; resume with the same shape and dtype, or clear it (ArrayWriter.clear)"
            )
        if start is not None:
            staged = _staged_exists(path, create_options.get("backend"))
            if start.complete or (not staged and parse_location(path).file.exists()):
                raise AlreadyExistsError(
                    f"{path}: the writer that checkpointed it finished and published it; there is nothing to "
                    "resume (clear the checkpoint and pass overwrite=True to write it again)"
                )
            if not staged:
                start = None  # nothing was left to continue: start afresh
        store = create(path, shp, dt, durable=durable, resume=start is not None, **create_options)
        if start is None:
            cls.clear(path)
        return cls(store, flush_every=flush_every, flush_every_seconds=flush_every_seconds, durable=durable,
                   start=start)

    # -- state ---------------------------------------------------------------

    @property
    def store(self) -> ArrayStore:
        """The store being written."""
        return self._store

    @property
    def rows(self) -> int:
        """Rows appended so far (the next :meth:`append` writes at this row)."""
        return self._rows

    @property
    def writes(self) -> int:
        """Writes made so far (``write`` and ``append`` calls)."""
        return self._writes

    @property
    def user(self) -> dict[str, Any]:
        """The caller's state, recorded with each checkpoint (a copy)."""
        return dict(self._user)

    @property
    def last_checkpoint(self) -> Checkpoint | None:
        """The checkpoint recorded last (or the one the writer started from)."""
        return self._last_checkpoint

    @property
    def checkpoint_file(self) -> Path:
        """Where the checkpoint is kept."""
        return self._cp_file

    # -- writing -------------------------------------------------------------

    def write(self, sel: Any, value: Any, *, user: dict[str, Any] | None = None) -> None:
        """``store[sel] = value``, then flush and checkpoint if the policy says so.

        ``user`` (JSON) replaces the state recorded with the next checkpoint.
        """
        self._check_open()
        self._store[sel] = value
        self._wrote(user)

    def append(self, rows: Any, *, user: dict[str, Any] | None = None) -> None:
        """Write ``rows`` (an array of ``k`` rows, axis 0) at row :attr:`rows` and advance by ``k``."""
        self._check_open()
        arr = np.asarray(rows)
        if not self._store.shape:
            raise ZeroDimensionalError(f"{self._path}: append() needs an array with at least one axis, found a "
                                       "0-d array; write it with write((), value)")
        if arr.ndim != self._store.ndim or arr.shape[1:] != self._store.shape[1:]:
            raise BroadcastError(f"{self._path}: append() expects {self._store.ndim}-d blocks of rows "
                                 f"(shape (k, {', '.join(map(str, self._store.shape[1:]))})), found shape {arr.shape}")
        k = arr.shape[0]
        if self._rows + k > self._store.shape[0]:
            raise SelectionError(f"{self._path}: appending {k} rows at row {self._rows} passes the array's "
                                 f"{self._store.shape[0]} rows; append at most {self._store.shape[0] - self._rows}")
        self._store[self._rows:self._rows + k] = arr
        self._rows += k
        self._wrote(user)

    def _wrote(self, user: dict[str, Any] | None) -> None:
        self._writes += 1
        self._since += 1
        if user is not None:
            self._user = dict(user)
        due = self._flush_every is not None and self._since >= self._flush_every
        if not due and self._flush_seconds is not None:
            due = time.monotonic() - self._last >= self._flush_seconds
        if due:
            self.checkpoint()

    def checkpoint(self, user: dict[str, Any] | None = None) -> Checkpoint:
        """Flush now (fsync when ``durable``), then record a checkpoint; returns it."""
        self._check_open()
        if user is not None:
            self._user = dict(user)
        self._store.flush(durable=self._durable)
        return self._record(complete=False)

    def _record(self, *, complete: bool) -> Checkpoint:
        self._sequence += 1
        cp = Checkpoint(self._path, self._rows, self._writes, dict(self._user), complete,
                        tuple(self._store.shape), self._store.dtype.str, self._sequence, time.time())
        text = json.dumps(cp.to_dict(), indent=1, allow_nan=False) + "\n"
        like = self._store._staged[1].file if self._store._staged else self._store._location.file
        _fsutil.atomic_write_bytes(self._cp_file, text.encode(), durable=self._durable, like=like)
        self._since = 0
        self._last = time.monotonic()
        self._last_checkpoint = cp
        return cp

    # -- ending --------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True after :meth:`close` or :meth:`abandon`."""
        return self._closed

    def close(self) -> Checkpoint:
        """Close (and publish) the store, then record a final checkpoint marked complete."""
        if self._closed:
            assert self._last_checkpoint is not None
            return self._last_checkpoint
        self._closed = True
        _open_writers.discard(self)
        self._store.close()
        return self._record(complete=True)

    def abandon(self) -> None:
        """Stop without publishing: flush and checkpoint, then release the store so a rerun can resume it."""
        if self._closed:
            return
        try:
            self.checkpoint()
        finally:
            self._closed = True
            _open_writers.discard(self)
            self._store.abandon()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedStoreError(f"{self._path}: the writer is closed")

    def __enter__(self) -> ArrayWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
            return
        # Keep what was written (the error may be transient; a rerun resumes). If even the
        # checkpoint fails (a full disk), the original error is the one to report.
        with contextlib.suppress(Exception):
            self.abandon()

    def __repr__(self) -> str:
        policy = []
        if self._flush_every:
            policy.append(f"every {self._flush_every} writes")
        if self._flush_seconds:
            policy.append(f"every {self._flush_seconds:g} s")
        return (f"<ArrayWriter {self._path!r} rows={self._rows} writes={self._writes} "
                f"flush={' or '.join(policy) or 'at close'}{' durable' if self._durable else ''}>")


def _staged_exists(path: str | os.PathLike[str], backend: str | None) -> bool:
    location = parse_location(path)
    cls = backend_class(backend or detect_backend(location, must_exist=False))
    staging: Location | None = cls._staging(location)
    return staging is not None and _fsutil.nonempty(staging.file)

