"""The public entry points ``arraystore.open()`` and ``arraystore.create()``.

They pick the backend, check modes and fidelity, take the writer lock and stage new
arrays; everything after that is :class:`~arraystore.store.ArrayStore`'s.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from . import _fsutil
from ._append import check_same
from ._dimnames import named_axes, names_to_record
from ._lock import WriterLock, writer_active
from ._modes import CREATE_MODES, MODES, WRITABLE_MODES, _open_writers
from .compression import Compression, check_codec, parse_compression
from .errors import (
    AlreadyExistsError,
    ArrayChangedError,
    ArrayNotFoundError,
    ArrayStoreError,
    BackendError,
    DimensionError,
    LockedError,
    ModeError,
    OptionError,
    ReadOnlyError,
)
from .fidelity import check_fidelity
from .location import Location, parse_location
from .meta import ArrayMeta
from .registry import backend_class, detect_backend

if TYPE_CHECKING:
    from .store import ArrayStore

__all__ = ["StagedArray", "create", "exists", "open", "share_staged"]


def _reopen(path: str, backend: str, options: dict[str, Any]) -> ArrayStore:
    return open(path, "r", backend=backend, **options)


def _resolve_backend(location: Location, backend: str | None, *, must_exist: bool) -> type[ArrayStore]:
    return backend_class(backend or detect_backend(location, must_exist=must_exist))


def _not_found(cls: type[ArrayStore], location: Location) -> str:
    """Why nothing opens at ``location``: no file at all, or no array at the key inside an existing one."""
    note = _staging_note(cls, location)
    if location.url is None and location.key and os.path.lexists(location.file) and not note:
        return (
            f"{location}: {location.file.name} exists, but holds no {cls.backend} array at {location.key!r}; "
            f"check the name after '::' (keys are paths inside it, e.g. '{location.file}::/group/name')"
        )
    if location.url is None and not os.path.lexists(location.file) and not note:
        return f"{location}: no such file or folder; check the path"
    return f"{location}: no {cls.backend} array there{note}"


def _writer_lock(cls: type[ArrayStore], location: Location, lock_file: str, timeout: float) -> WriterLock:
    """The writer lock on ``lock_file``; a refusal names what in this process holds it, when the backend knows."""
    try:
        return WriterLock(lock_file, timeout=timeout)
    except LockedError as exc:
        held = cls._held_here(location)
        if held is None:
            raise
        raise LockedError(f"{location}: {held}") from exc


def _staging_note(cls: type[ArrayStore], location: Location) -> str:
    """What a ``.partial`` beside a missing array says: a writer at work, or one that died."""
    staging = cls._staging(location)
    if staging is None or not os.path.lexists(staging.file):
        return ""
    name = staging.file.name
    if writer_active(staging.file):
        return (
            f" yet: an array is being written there right now ({name}, whose writer holds its lock); "
            "it appears when its writer closes it: wait for that, then open it again"
        )
    return (
        f": an array was being written there ({name}) but its writer is gone (no process holds its lock: "
        "a crash or kill?); rerun the create or conversion to resume or replace it, or delete "
        f"{name}"
    )


def open(  # noqa: A001 - the natural name, like io.open and zarr.open
    path: str | os.PathLike[str],
    mode: str = "r",
    backend: str | None = None,
    *,
    lock_timeout: float = 0.0,
    **options: Any,
) -> ArrayStore:
    """Open an existing array.

    Parameters
    ----------
    path
        File or folder, or an object-store URL (``s3://bucket/x.zarr``); for arrays inside
        HDF5 files or Zarr hierarchies, ``"file::/group/name"``.
    mode
        ``"r"`` read-only; ``"r+"`` read-write, the array must exist; ``"a"`` read-write,
        created (with ``shape=`` and ``dtype=``) if missing; ``"w"``/``"w+"`` create,
        replacing what exists; ``"w-"``/``"x"`` create, failing if it exists; ``"c"``
        copy-on-write (memory-mappable backends only; never touches a file). The
        creating modes take ``shape=`` and ``dtype=`` (and :func:`create`'s other
        arguments) and forward to :func:`create`; the store they return has mode
        ``"w+"``, and ``"a"`` on an existing array gives mode ``"r+"``, as in h5py.
    backend
        ``"raw"``, ``"npy"``, ``"hdf5"``, ``"zarr"`` or a plugin's name; default:
        from the suffix, else from the content.
    lock_timeout
        Seconds to wait for another writer (writable modes); ``0`` fails at once.
    storage_options
        (In ``**options``.) For object-store URLs (``s3://``, ``gs://``, ``az://``,
        ``memory://``, ``http(s)://`` read-only): settings for the store client (see
        :mod:`arraystore.objstore`); default: the cloud's standard environment variables.
    **options
        Backend options, e.g. ``io="buffered"``, ``meta=ArrayMeta(...)`` (raw files
        without a sidecar), ``allow_incomplete=True``.

    Raises
    ------
    ArrayNotFoundError, MetadataError, SizeMismatchError, LockedError, ModeError, BackendError
    """
    if not isinstance(mode, str) or mode not in MODES:
        raise ModeError(
            f"expected a mode among {', '.join(MODES)}, found {mode!r}: 'r' reads, 'r+' writes an existing "
            "array, 'a' writes and creates if missing, 'w'/'w+' create or replace, 'w-'/'x' create new only"
        )
    if _is_url(path):
        from .objstore._dispatch import open_url

        return open_url(parse_location(path), mode, backend, lock_timeout=lock_timeout, **options)
    _no_storage_options(path, options)
    shape, dtype = options.pop("shape", None), options.pop("dtype", None)
    wanted: dict[str, Any] = {}
    if mode == "a":
        location = parse_location(path)
        cls = _resolve_backend(location, backend, must_exist=False)
        if not cls._exists(location):
            return _create_for_mode(path, mode, shape, dtype, backend, lock_timeout, options)
        mode = "r+"
        # Creation-only arguments: the layout ones are hints (as in h5py's require_dataset),
        # the others must match what exists.
        for name in ("chunks", "compression", "overwrite", "resume", *_creation_only(cls, options)):
            options.pop(name, None)
        wanted = {"shape": shape, "dtype": dtype, "order": options.pop("order", None), "attrs": options.pop("attrs", None)}
    elif mode in CREATE_MODES:
        return _create_for_mode(path, mode, shape, dtype, backend, lock_timeout, options)
    elif shape is not None or dtype is not None:
        raise ModeError(
            f"mode {mode!r} opens an existing array, whose shape and dtype come from the file; drop shape= and "
            "dtype=, or use mode='w' (create or replace), 'x' (create new) or 'a' (create if missing)"
        )
    location = parse_location(path)
    cls = _resolve_backend(location, backend, must_exist=True)
    if mode == "c" and not cls.supports_copy_on_write:
        raise ModeError(
            f"mode 'c' (copy-on-write) needs a memory-mappable backend (raw, npy); the {cls.backend} backend "
            "cannot offer it: open with 'r' and copy the blocks you change"
        )
    if not cls._exists(location):
        raise ArrayNotFoundError(_not_found(cls, location))
    lock = None
    if mode in WRITABLE_MODES and not _fsutil.writable(location.file):
        raise ReadOnlyError(
            f"{location}: cannot open it with mode {mode!r}: the file or its file system is read-only; "
            "open with mode='r'"
        )
    if mode in WRITABLE_MODES:
        lock_file = cls._lock_file(location)
        lock = _writer_lock(cls, location, lock_file, lock_timeout) if lock_file else None
    OptionError.check("open", cls.backend, options, cls._open)
    try:
        store = cls._open(location, mode, **options)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    store._locks = [lock] if lock is not None else []
    if mode in WRITABLE_MODES:
        _open_writers.add(store)
    if wanted:  # mode 'a' on an existing array: it must be the one asked for
        check_same(store, wanted)
    return store


def _creation_only(cls: type[ArrayStore], options: dict[str, Any]) -> list[str]:
    """Options the backend takes when creating (e.g. Zarr's ``shards=``) but not when opening."""
    opens = inspect.signature(cls._open).parameters
    creates = inspect.signature(cls._create).parameters
    return [k for k in options if k not in opens and k in creates]


def _create_for_mode(
    path: str | os.PathLike[str],
    mode: str,
    shape: Any,
    dtype: Any,
    backend: str | None,
    lock_timeout: float,
    options: dict[str, Any],
) -> ArrayStore:
    if shape is None or dtype is None:
        missing = " and ".join(n for n, v in (("shape=", shape), ("dtype=", dtype)) if v is None)
        why = "the array does not exist, so mode 'a' creates it" if mode == "a" else f"mode {mode!r} creates an array"
        raise ModeError(
            f"{os.fspath(path)}: {why} and needs its shape and dtype: pass {missing} "
            f"(e.g. arraystore.open(path, mode={mode!r}, shape=(1000, 64), dtype='<f4')), or call arraystore.create"
        )
    overwrite = mode in ("w", "w+")
    if options.pop("overwrite", overwrite) != overwrite:
        says = "replaces an existing array" if overwrite else "never replaces an existing array"
        raise ModeError(
            f"{os.fspath(path)}: mode {mode!r} {says}, and the overwrite argument contradicts it; "
            "leave overwrite out when opening with a mode"
        )
    return create(path, shape, dtype, backend=backend, overwrite=overwrite, lock_timeout=lock_timeout, **options)


def create(
    path: str | os.PathLike[str],
    shape: Any,
    dtype: Any,
    *,
    backend: str | None = None,
    chunks: Any = None,
    compression: str | Compression | Mapping[str, Any] | None = None,
    order: Literal["C", "F"] = "C",
    attrs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    durable: bool = False,
    lock_timeout: float = 0.0,
    resume: bool = False,
    dimension_names: Any = None,
    **options: Any,
) -> ArrayStore:
    """Create a new array, open for writing (mode ``"w+"``).

    The array is built under a temporary name beside its destination and renamed
    into place by :meth:`ArrayStore.close`, so nothing complete-looking exists until
    it is complete. Leaving a ``with`` block by an exception discards it.

    Parameters
    ----------
    path
        Destination; the backend comes from ``backend=`` or the suffix.
    shape, dtype
        The array. Dtypes the backend cannot store exactly (or through a documented
        lossless encoding) are refused before anything is written.
    chunks, compression
        Storage layout for chunked backends (HDF5, Zarr); contiguous backends refuse
        anything but ``None``. ``compression`` follows one grammar for every backend
        (``"zstd:3"``, ``"gzip"``, ``"blosc:lz4:5"``, ...; see :mod:`arraystore.compression`).
    order
        ``"C"`` or ``"F"`` layout.
    attrs
        JSON-serialisable attributes.
    overwrite
        Replace an existing array (only when the new one is published).
    durable
        fsync data, metadata and folder at close.
    resume
        Reopen the half-built array an interrupted earlier ``create`` left behind
        (same shape, dtype, order and layout) instead of starting afresh; used by
        :func:`arraystore.convert` together with its journal.
    dimension_names
        One name (str, or None for an unnamed axis) per axis, recorded where the
        backend can (``supports_dimension_names``: HDF5 dimension scales); read back as
        :attr:`ArrayStore.dimension_names`.

    Raises
    ------
    AlreadyExistsError, UnsupportedDtypeError, CompressionError, MetadataError, LockedError, StorageFullError
    """
    if _is_url(path):
        from .objstore._dispatch import create_url

        if dimension_names is not None:  # given only when asked for: a backend without names says so
            options["dimension_names"] = dimension_names
        return create_url(
            parse_location(path), shape, dtype, backend=backend, chunks=chunks, compression=compression, order=order,
            attrs=attrs, overwrite=overwrite, durable=durable, lock_timeout=lock_timeout, resume=resume, **options,
        )  # fmt: skip
    _no_storage_options(path, options)
    location = parse_location(path)
    cls = _resolve_backend(location, backend, must_exist=False)
    OptionError.check("create", cls.backend, options, cls._create)
    meta = ArrayMeta(shape, dtype, order, dict(attrs or {}))
    meta = dataclasses.replace(meta, order=cls.storage_order(meta.order, **options))
    if chunks is not None and not isinstance(chunks, (bool, int, str)):
        DimensionError.check("chunks", tuple(chunks), meta.shape)
    names = names_to_record(cls, location, dimension_names, len(meta.shape), "hdf5 or zarr")
    if names is not None:
        options["dimension_names"] = names
    check_fidelity(cls, meta.dtype)
    codec = parse_compression(compression)
    check_codec(cls, codec)
    if cls._exists(location) and not overwrite:
        raise AlreadyExistsError(f"{location}: an array already exists there; pass overwrite=True to replace it")
    staging = cls._staging(location)
    locks: list[WriterLock] = []
    try:
        lock_file = cls._lock_file(location)
        if lock_file:  # an existing array being replaced, or the file that will hold the new one
            locks.append(_writer_lock(cls, location, lock_file, lock_timeout))
        if staging is not None:
            # Lock the staging place itself, so that two processes creating the same
            # array cannot build over each other; then clear an earlier crash's leftovers.
            kind = "dir" if cls._staging_is_dir else "file"
            locks.append(WriterLock(staging.file, timeout=lock_timeout, create=kind))
            # Built with the permissions of the array it replaces, before a byte is written.
            mode = _fsutil.kept_mode(location.file)
            if mode is not None and kind == "dir" and not location.file.is_dir():  # a zip replaced by a folder
                mode |= (mode & 0o444) >> 2  # folders need search bits where they are readable
            _fsutil.set_mode(staging.file, mode)
        store = None
        # A staged folder holding a symbolic link is not as this library built it (writes would follow the link into
        # another of its files): built again.
        if (staging is not None and resume and _fsutil.nonempty(staging.file)
                and not (staging.file.is_dir() and _fsutil.holds_links(staging.file))):
            store = cls._reopen_staged(staging, meta, chunks=chunks, compression=codec, durable=durable, **options)
            if store is not None and cls.supports_dimension_names and named_axes(store.dimension_names) != named_axes(names):
                store._close()  # staged with other dimension names (or with names, none asked for): built again
                store = None
        if store is None:
            if staging is not None:
                _fsutil.clear_path(staging.file)
            store = cls._create(
                staging or location, meta, chunks=chunks, compression=codec, durable=durable, **options
            )
    except BaseException as exc:
        if staging is not None and locks and locks[-1].path == staging.file:
            _fsutil.remove_path(staging.file)
        for lock in locks:
            lock.release()
        if isinstance(exc, OSError) and not isinstance(exc, ArrayStoreError):
            _fsutil.raise_if_full(exc, str(location), "creating")
            _fsutil.raise_if_readonly(exc, str(location), "creating")
            folder = location.file.parent
            if isinstance(exc, FileNotFoundError) and not folder.is_dir():
                raise ArrayNotFoundError(
                    f"{location}: cannot create it: the folder {folder} does not exist; create the folder first"
                ) from exc
        raise
    store._locks = locks
    if staging is not None:
        store._staged = (staging, location)
    _open_writers.add(store)
    return store


def exists(
    path: str | os.PathLike[str] | Location, backend: str | None = None, *, storage_options: Any = None
) -> bool:
    """True when an array (of ``backend``, default: the one the path names) exists at ``path``.

    Unlike ``os.path.exists`` this asks the backend: an HDF5 file without the
    dataset named after ``::``, or a folder without ``zarr.json``, holds no array.
    """
    location = parse_location(path)
    if location.remote:
        from .objstore._dispatch import exists_url

        return exists_url(location, backend, storage_options)
    return _resolve_backend(location, backend, must_exist=False)._exists(location)


def _no_storage_options(path: str | os.PathLike[str], options: dict[str, Any]) -> None:
    """``storage_options=`` configures object stores; for a local path only ``None`` is accepted."""
    if options.pop("storage_options", None) is not None:
        raise BackendError(
            f"{os.fspath(path)}: storage_options= configures object-store URLs (s3://, gs://, az://...), and this "
            "is a local path; leave storage_options out, or name the array by its URL"
        )


def _is_url(path: str | os.PathLike[str] | Location) -> bool:
    """True for an object-store location (``s3://``, ``gs://``, ...); ``file://`` is a local path."""
    return parse_location(path).remote


@dataclass(frozen=True)
class StagedArray:
    """A picklable reference to an array that :func:`create` is building, for writers in other processes.

    Obtained from :func:`share_staged`; :meth:`open` gives a second handle on the
    half-built array (no writer lock: the creator holds it; no *incomplete* flag: the
    staged array is not yet visible under its name). Each handle must write distinct
    chunks and be closed with :meth:`~arraystore.ArrayStore.abandon`, which never
    publishes; the creator's handle publishes once every writer has finished.
    """

    backend: str
    staging: str
    final: str
    meta: ArrayMeta
    chunks: tuple[int, ...] | None
    #: Options the handle needs to reach the array (object stores: ``storage_options``).
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    def open(self) -> ArrayStore:
        """A writable handle on the staged array.

        Raises
        ------
        ArrayChangedError
            The staged array is gone or no longer matches (shape, dtype, order, chunks).
        """
        staging = parse_location(self.staging)
        if staging.remote:
            from .objstore._dispatch import url_class

            cls = url_class(staging, self.backend)
        else:
            cls = backend_class(self.backend)
        store = cls._reopen_staged(staging, self.meta, chunks=self.chunks, **self.options)
        if store is None:
            raise ArrayChangedError(
                f"{self.staging}: the staged array no longer matches the one being created (shape, dtype, order or "
                "chunks); another process changed it. Create it again"
            )
        store._staged = (staging, parse_location(self.final))  # a staged store writes no "incomplete" flag
        return store


def share_staged(store: ArrayStore) -> StagedArray:
    """A :class:`StagedArray` for a store returned by :func:`create` and not yet closed.

    Only backends whose class says ``parallel_chunk_writers`` (each chunk its own
    object, no shared metadata written by chunk writes) can be shared. A backend that
    ``publishes`` ``"metadata-last"`` (object stores) builds the array at its final place,
    invisible until its creator commits it; shared handles never write its metadata.

    Raises
    ------
    BackendError
        The backend does not allow writers in several processes, or the store is not being created.
    """
    cls = type(store)
    if not getattr(cls, "parallel_chunk_writers", False):
        raise BackendError(
            f"{store.path}: the {cls.backend} backend allows one writing process per array; write its blocks "
            "from the process that created it"
        )
    being_created = store.mode == "w+" and not store.closed
    if store._staged is not None:
        staging, final = store._staged
    elif cls.publishes == "metadata-last" and being_created:
        staging = final = store._location
    else:
        raise BackendError(
            f"{store.path}: not an array being created (it was created in place or is already published); "
            "share_staged() takes the store arraystore.create() returned, before close()"
        )
    store._before_sharing()
    so = store._options.get("storage_options")
    options = {"storage_options": dict(so)} if so else {}
    return StagedArray(cls.backend, str(staging), str(final), store.meta, store.chunks, options)
