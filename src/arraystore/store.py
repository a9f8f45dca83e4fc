"""The ``ArrayStore`` contract.

A backend subclasses :class:`ArrayStore`, sets its class attributes and implements
hooks; everything else — modes, staging and atomic publish, selections (integer arrays
and masks as sorted gathers over basic reads), value checks on writes, pickling by reference, block iteration — is derived here once.
``arraystore.open()`` and ``arraystore.create()`` live in :mod:`arraystore._open`;
docs/adding-a-backend.md walks through a new backend.

Class attributes (capabilities; conversion, access, migration and the Dask path ask
these, never the backend's name): ``backend``, ``suffixes``, ``fidelity``,
``supports_memmap``, ``supports_copy_on_write``, ``memory_mappable``, ``layouts``,
``writes_go_through``, ``thread_safe_writes``, ``parallel_chunk_writers``,
``holds_attrs``, ``codecs``, ``publishes``, ``locks``, ``supports_dimension_names``,
``object_storage``, ``url_class``, ``writes_whole_files``, ``supports_create``, ``opens_with_meta``,
``overwrites_in_place``; and the classmethods ``guess_can_open(location)`` and
``storage_order(order, **options)``.

Hooks a backend must implement:

* ``_open(location, mode, **options)`` (classmethod): open an existing array;
* ``_create(location, meta, **options)`` (classmethod): create one (at its staging place);
* ``_read(sel)``, ``_write(sel, value)``: normalised selections;
* ``_set_attrs(attrs)``: persist the user attributes.

Hooks with defaults a backend may override:

* data: ``_flush(durable)``, ``_flush_at_close(durable)``, ``_close()``, ``_memmap()``, ``_check_generation()``,
  ``_keep_writing()``, ``_client_errors()``, ``chunks`` (property), ``recorded_checksum`` (property),
  ``set_checksum(checksum)``, ``stored_bytes()`` (what the array takes on disk);
* where the array is: ``_exists(location)``, ``_lock_file(location)``, ``_remove(location)``,
  ``_held_here(location)`` (why this process holds the writer lock's file through another library, e.g.
  an ``h5py.File``: a :class:`~arraystore.errors.LockedError` says so);
* staging and publishing: ``_staging(location)``, ``_staging_is_dir``,
  ``_reopen_staged(location, meta, **options)``, ``_publish(final, durable)``;
  ``_write_whole(location, meta, data, durable, check, mode, defer)`` (classmethod, with
  ``writes_whole_files``): a small array written, checked and renamed into place in one go
  (with ``defer``: left staged, its renaming appended to the list);
* object storage (URL locations; see :mod:`arraystore.objstore`): ``_open_url(location, mode, **options)``,
  ``_create_url(location, meta, **options)``, ``_exists_url(location, storage_options)``;
* access: ``_take_in_memory(indices, axis)``, ``_take_sorted(indices, axis, max_bytes, mode, calibration)``,
  ``_advise(advice)``;
* long writes through other handles: ``_keep_alive()`` (a creator whose chunks other
  processes write keeps its writer lock alive: object stores renew their lease),
  ``_before_sharing()`` (called by ``share_staged`` before other processes get the array: an
  object store deletes a replaced array's chunks kept for overwriting in place);
* pickling by reference: ``_reference_options()``, ``_pickled_options``;
* block planning: ``_chunk_overhead`` (bytes a chunk costs beyond its data, counted in budgets);
* layout: ``storage_order(order, **options)`` (classmethod), ``dimension_names`` (property);
* conversion: ``value_options(source, max_bytes)`` (classmethod): creation options that only the
  source's values tell (HDF5: the byte width of UTF-8 strings), read block by block; ``_version()``: what
  identifies the stored version beyond the metadata where a file's size and mtime cannot (object stores:
  ETags, arraystore's generation), recorded in a conversion's journal so that a resume over a changed
  source starts again.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import numpy as np

from . import _fsutil, access
from ._gather import gather, masked, scatter
from ._lock import WriterLock
from ._modes import CREATE_MODES, DEFAULT_BLOCK_BYTES, MODES, WRITABLE_MODES, Mode, _open_writers
from ._open import _reopen
from ._selection import BasicPlan, GatherPlan, Selection, plan_selection
from ._values import coerce_value
from .blocks import BlockPlan, plan_blocks
from .errors import (
    ArrayStoreError,
    BackendError,
    ClosedStoreError,
    CopyRequiredError,
    NetworkFilesystemError,
    NotMemoryMappableError,
    NotPersistedWarning,
    ReadOnlyError,
    SelectionError,
    ZeroDimensionalError,
)
from .fidelity import Fidelity
from .location import Location
from .meta import ArrayMeta, Order

if TYPE_CHECKING:
    from .writer import ArrayWriter

__all__ = ["CREATE_MODES", "DEFAULT_BLOCK_BYTES", "MODES", "WRITABLE_MODES", "ArrayStore", "Attributes", "Mode"]

#: Bytes read ahead by ``iter(store)``.
ITER_BLOCK_BYTES = 4 * 1024 * 1024

S = TypeVar("S", bound="ArrayStore")


class Attributes(MutableMapping[str, Any]):
    """A store's user attributes; assignments persist to the store."""

    def __init__(self, store: ArrayStore) -> None:
        self._store = store

    def _current(self) -> dict[str, Any]:
        # A deep copy: changing a returned list or array in place must not look persisted.
        return copy.deepcopy(dict(self._store.meta.attrs))

    def __getitem__(self, key: str) -> Any:
        return self._current()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        attrs = self._current()
        del attrs[key]
        self._store._replace_attrs(attrs)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set several attributes in one write to the store."""
        attrs = self._current()
        attrs.update(other, **kwargs)
        self._store._replace_attrs(attrs)

    def __repr__(self) -> str:
        return f"Attributes({self._current()!r})"


class ArrayStore(ABC):
    """An N-dimensional array stored on disk, read and written with numpy's indexing.

    Obtain one through :func:`arraystore.open` or :func:`arraystore.create`, not by
    calling the class. ``store[sel]`` reads into a new ``ndarray`` (ints, slices, ``...``
    and one integer array or mask, with numpy's result); ``store[sel] = x`` writes with
    numpy 2's value rules, refusing silent losses with typed errors; ``np.asarray(store)``
    reads everything (``copy=False`` shares a memory map or raises); ``iter(store)`` walks
    the first axis; the store is a context manager.
    Pickling a store pickles a reference (path, backend, options), never the data:
    the unpickled store is the same array opened read-only.

    Backends set the class attributes and implement the ``_``-prefixed hooks.
    """

    # -- capabilities: what conversion, access, migration and the Dask path ask, never the name --

    #: Registry name of the backend.
    backend: ClassVar[str]
    #: Suffixes that name this backend's files, lower case; the first is the one new files get.
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: True when :meth:`as_memmap` can give a zero-copy view (for some arrays).
    supports_memmap: ClassVar[bool] = False
    #: True when mode ``"c"`` (copy-on-write) is offered.
    supports_copy_on_write: ClassVar[bool] = False
    #: True when every array is one contiguous uncompressed byte range of one file, known without
    #: mapping it: instances have ``data_file`` and ``offset``, and chunks/compression are refused.
    memory_mappable: ClassVar[bool] = False
    #: Storage layouts ``create()`` can make: ``"contiguous"`` (what it makes when given no chunks
    #: and no compression) and/or ``"chunked"``.
    layouts: ClassVar[frozenset[str]] = frozenset({"chunked"})
    #: True when a write is in the file (page cache) as soon as ``store[sel] = x`` returns; False
    #: when the library buffers it until :meth:`flush` (conversion then flushes after each block).
    writes_go_through: ClassVar[bool] = False
    #: True when threads of one process may write distinct blocks at once without a lock.
    thread_safe_writes: ClassVar[bool] = False
    #: True when several processes may write distinct chunks of one staged array at once
    #: (each chunk its own object, chunk writes touch no shared metadata);
    #: see :func:`arraystore._open.share_staged`.
    parallel_chunk_writers: ClassVar[bool] = False
    #: True when ``create(..., overwrite=True, overwrite_in_place=True)`` may leave the replaced array's
    #: chunk objects at the keys of the new grid for a writer of every chunk to overwrite, instead of
    #: deleting them first (object stores: a PUT over an object is one request, a delete and a PUT two);
    #: conversions, which write or delete every chunk, ask for it.
    overwrites_in_place: ClassVar[bool] = False
    #: True when the format holds user attributes (``.npy`` does not).
    holds_attrs: ClassVar[bool] = True
    #: Which codecs ``create(compression=...)`` accepts (see :mod:`arraystore.compression`).
    codecs: ClassVar[frozenset[str]] = frozenset()
    #: How a new array becomes visible under its name: ``"rename"`` (built under a temporary
    #: name, renamed into place) or ``"metadata-last"`` (data first, the metadata written last
    #: is the commit point: object stores).
    publishes: ClassVar[Literal["rename", "metadata-last"]] = "rename"
    #: How one writer is enforced: ``"flock"`` (an advisory lock on a file), ``"lease"``
    #: (a conditionally written lease object: object stores) or None (not enforced).
    locks: ClassVar[Literal["flock", "lease"] | None] = "flock"
    #: What the backend offers at object-store URLs (``s3://``...): None (nothing), ``"read"``
    #: (read-only, by byte ranges) or ``"read-write"``; see :meth:`_open_url`.
    object_storage: ClassVar[Literal["read", "read-write"] | None] = None
    #: The class that implements the object-storage hooks, as ``"module:Class"`` (imported on
    #: first use, like an entry point); None: this class itself.
    url_class: ClassVar[str | None] = None
    #: What the backend stores exactly, through an encoding, or not at all.
    fidelity: ClassVar[Fidelity]
    #: False for a read-only backend (it opens arrays with mode ``"r"`` only and creates none):
    #: conversion and migration never choose it as a destination.
    supports_create: ClassVar[bool] = True
    #: True when ``create(..., dimension_names=...)`` records names the store reads back.
    supports_dimension_names: ClassVar[bool] = False
    #: True when :meth:`_write_whole` writes an array held in memory as one file in one write
    #: (header and bytes), renamed into place: no staged store, no lock file (small files).
    writes_whole_files: ClassVar[bool] = False
    #: True when ``open(path, meta=ArrayMeta(...), offset=...)`` reads a file that has no metadata
    #: of its own as the stated layout (a headerless raw file; the CLI's ``--dtype``/``--shape``).
    opens_with_meta: ClassVar[bool] = False

    @classmethod
    def guess_can_open(cls, location: Location) -> bool:
        """True when ``location`` looks like this backend's: by suffix, or by content (magic bytes).

        Cheap and never raising: the registry asks every backend in turn. The default
        answers by :attr:`suffixes`; backends with a signature override it.
        """
        return location.file.name.lower().endswith(cls.suffixes) if cls.suffixes else False

    def __init__(self, location: Location, mode: str, meta: ArrayMeta, *, options: Mapping[str, Any] | None = None):
        self._location = location
        self._mode = mode
        self._meta = meta
        self._options = dict(options or {})
        self._closed = False
        self._locks: list[WriterLock] = []
        self._abandoned = False  # closed without completing: backends keep their incomplete flags
        self._staged: tuple[Location, Location] | None = None  # (building at, publish to)

    # -- hooks for backends ------------------------------------------------

    @classmethod
    @abstractmethod
    def _open(cls: type[S], location: Location, mode: str, **options: Any) -> S:
        """Open an existing array (mode ``r``, ``r+`` or ``c``)."""

    @classmethod
    @abstractmethod
    def _create(cls: type[S], location: Location, meta: ArrayMeta, **options: Any) -> S:
        """Create a new array at ``location`` (already a staging location when staged)."""

    @abstractmethod
    def _read(self, sel: Selection) -> np.ndarray[Any, Any]:
        """Read a normalised selection into a new array."""

    @abstractmethod
    def _write(self, sel: Selection, value: np.ndarray[Any, Any]) -> None:
        """Write ``value`` (already of the store's dtype and the selection's shape)."""

    @abstractmethod
    def _set_attrs(self, attrs: dict[str, Any]) -> None:
        """Persist a new attribute dict."""

    def _client_errors(self) -> contextlib.AbstractContextManager[None]:
        """A context in which the storage client's exceptions become arraystore's.

        For readers and writers that fetch or put a store's chunks themselves (conversion's
        chunk readers and writers); the backend's own hooks map them already. The default maps
        nothing; an object store maps its client's errors to ObjectStoreError, secrets redacted.
        """
        return contextlib.nullcontext()

    def _keep_writing(self) -> None:
        """Called before each block that a writer puts into the store itself, bypassing :meth:`_write`.

        The default does nothing; an object store renews its writer's lease here.
        """

    def _version(self) -> dict[str, Any]:
        """What identifies the stored version of the array beyond its metadata, where the file's size and
        modification time cannot (object stores); a resumed conversion whose source gives another starts again."""
        return {}

    def _check_generation(self) -> None:
        """Raise ArrayChangedError when another writer replaced the array since this store opened it.

        The default checks nothing (a backend whose reads cannot mix generations). Readers that
        fetch a store's chunks themselves, bypassing :meth:`_read` (conversion's chunk readers),
        call it after each round of fetches.
        """

    def _flush(self, durable: bool) -> None:
        """Push written data to the file (and to stable storage when ``durable``)."""

    def _flush_at_close(self, durable: bool) -> None:
        """What ``close()`` flushes; by default the same as ``flush(durable)``."""
        self._flush(durable)

    def _close(self) -> None:
        """Release the backend's resources (files, maps, handles)."""

    def _memmap(self) -> np.memmap[Any, Any]:
        raise NotMemoryMappableError(
            f"{self.path}: the {self.backend} backend does not store data as one memory-mappable byte "
            "range; read blocks with store[...] or iter_blocks() instead"
        )

    @classmethod
    def _exists(cls, location: Location) -> bool:
        """True when an array (or the file holding it) exists at ``location``."""
        return location.file.exists()

    @classmethod
    def _staging(cls, location: Location) -> Location | None:
        """Where to build a new array before publishing it at ``location``; None to build in place."""
        return Location(_fsutil.partial_path(location.file), location.key)

    #: True when a staged array is a folder (Zarr), not a file.
    _staging_is_dir: ClassVar[bool] = False
    #: Bytes a read holds per chunk besides the data; block plans count it (see ``blocks.plan_blocks``).
    _chunk_overhead: ClassVar[int] = 0

    @classmethod
    def _lock_file(cls, location: Location) -> str | None:
        """An existing file whose lock stands for the array's writer lock."""
        return str(location.file) if location.file.is_file() else None

    @classmethod
    def _held_here(cls, location: Location) -> str | None:
        """What in this process holds the lock on :meth:`_lock_file` when it is not arraystore (and what to do), or
        None; asked only when the lock is refused."""
        return None

    @classmethod
    def _reopen_staged(cls: type[S], location: Location, meta: ArrayMeta, **options: Any) -> S | None:
        """Reopen a half-built array at a staging location, or None when it does not match ``meta``."""
        chunks = options.pop("chunks", None)
        options.pop("compression", None)
        try:
            store = cls._open(location, "r+", allow_incomplete=True, **options)
        except ArrayStoreError:
            return None
        same = (store.shape, store.dtype, store.order) == (meta.shape, meta.dtype, meta.order)
        if not same or (chunks is not None and store.chunks != tuple(chunks)):
            store._close()
            return None
        store._mode = "w+"
        store._meta = meta
        return store

    @classmethod
    def _write_whole(
        cls,
        location: Location,
        meta: ArrayMeta,
        data: Any,
        *,
        durable: bool = False,
        check: Callable[[ArrayMeta, np.ndarray[Any, Any]], None] | None = None,
        mode: int | None = None,
        defer: list[Any] | None = None,
    ) -> None:
        """Write an array held in memory as a new file at ``location``, atomically (``writes_whole_files``).

        ``data`` is the array's bytes in ``meta.order`` (a bytes-like object of
        ``meta.nbytes`` bytes). The file is written at its staging place (flock-ed while it
        is written), read back whole (its header parsed by the format's reader) and the
        layout and data read back are handed to ``check`` (which raises to refuse them:
        the staged file is removed), then renamed over ``location``; fsynced first when
        ``durable``. ``mode`` (permission bits, see :func:`arraystore._fsutil.kept_mode`), when
        given, is set on the staged file before it is checked, so the file is published with it. Used for small files, where a staged store's setup costs more than the
        data: no attrs, no chunks, no compression. With ``defer`` (a list), the checked staged
        file is not renamed: an object whose ``publish(durable)`` renames it into place and
        whose ``discard()`` removes it is appended, so that a caller can make many staged files
        durable with one file-system sync before publishing them (a migration's batch).
        """
        raise NotImplementedError(f"the {cls.backend} backend does not write whole files in one go")

    def _before_sharing(self) -> None:
        """Called before writers in other processes get this array being created (see ``share_staged``)."""

    def _keep_alive(self) -> None:
        """Keep this writer's lock alive while other processes write its chunks (a lease expires)."""

    def _publish(self, final: Location, durable: bool) -> None:
        """Move the staged array into place (called after ``_close``)."""
        assert self._staged is not None
        _fsutil.replace_path(self._staged[0].file, final.file, durable=durable)

    # -- object storage (locations with a URL; see :mod:`arraystore.objstore`) --

    @classmethod
    def _open_url(cls, location: Location, mode: str, **options: Any) -> ArrayStore:
        """Open an array at an object-store URL (``storage_options=`` and ``lock_timeout=`` among the options)."""
        raise BackendError(
            f"{location}: the {cls.backend} backend does not read from object storage; download it to a local file "
            "first, or store the array as Zarr (.zarr), which arraystore reads and writes there"
        )

    @classmethod
    def _create_url(cls, location: Location, meta: ArrayMeta, **options: Any) -> ArrayStore:
        """Create an array at an object-store URL, published by the backend's commit point."""
        raise BackendError(
            f"{location}: the {cls.backend} backend cannot write to object storage (objects cannot be written in "
            "place, block by block); name a .zarr destination, or write locally and upload the file"
        )

    @classmethod
    def _exists_url(cls, location: Location, storage_options: Mapping[str, Any] | None = None) -> bool:
        """True when an array of this backend is at the object-store URL."""
        cls._open_url(location, "r", storage_options=storage_options)  # raises for backends without object storage
        return True  # pragma: no cover

    @classmethod
    def _remove(cls, location: Location) -> None:
        """Remove an array (a published output that must not stay, e.g. one that does not reopen)."""
        _fsutil.remove_path(location.file)

    @classmethod
    def storage_order(cls, order: Order, **options: Any) -> Order:
        """The order an array created with ``order`` (and these creation options) is stored in.

        The default is ``order`` itself. A backend whose files other tools read in one
        order only (HDF5: C) returns that order unless an option asks otherwise; the
        array's shape and values never depend on it.
        """
        return order

    @classmethod
    def value_options(cls, source: ArrayStore, max_bytes: int) -> dict[str, Any]:
        """Options for ``create`` of a copy of ``source`` that depend on its values; by default none.

        :func:`arraystore.convert` asks before it creates the destination. A backend
        that sizes its storage by the values (HDF5: the byte width of UTF-8 strings, or
        the UTF-32 encoding when strings cannot hold them) reads ``source`` here, in
        blocks of at most ``max_bytes``.
        """
        return {}

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """Storage chunk shape, or ``None`` for contiguous data."""
        return None

    @property
    def dimension_names(self) -> tuple[str | None, ...] | None:
        """The name of each axis recorded with the array (``None`` for an unnamed axis), or ``None``.

        Backends that record names (HDF5 dimension scales, Zarr v3 ``dimension_names``)
        set ``supports_dimension_names`` and return them; conversions carry them over.
        """
        return None

    @property
    def recorded_checksum(self) -> dict[str, str] | None:
        """The content checksum recorded with the array (``{"algorithm", "value"}``), if any."""
        return None

    def stored_bytes(self) -> int | None:
        """Bytes the array takes on disk (data and metadata), or None when that cannot be told.

        The default counts the file (or every file under the folder) at the store's
        path; backends whose array is part of a file (an HDF5 dataset, a Zarr array in
        a group) or spread over several (raw data and its sidecar) override it.
        """
        if self._location.remote:
            return None
        return _fsutil.tree_bytes(self._location.file)

    def set_checksum(self, checksum: dict[str, str]) -> None:
        """Record a content checksum with the array (convert and verify use it)."""
        raise NotImplementedError(f"the {self.backend} backend does not record checksums")

    # -- the public surface ------------------------------------------------

    @property
    def meta(self) -> ArrayMeta:
        """Shape, dtype, order and attrs."""
        return self._meta

    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape."""
        return self._meta.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """The array's dtype, byte order included."""
        return self._meta.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self._meta.ndim

    @property
    def size(self) -> int:
        """Number of elements."""
        return self._meta.size

    @property
    def nbytes(self) -> int:
        """Bytes of array data (uncompressed)."""
        return self._meta.nbytes

    @property
    def order(self) -> Order:
        """``"C"`` or ``"F"``: the layout of the stored data."""
        return self._meta.order

    @property
    def attrs(self) -> Attributes:
        """User attributes; assignments persist (writable modes only)."""
        return Attributes(self)

    @property
    def mode(self) -> str:
        """The mode the store was opened with."""
        return self._mode

    @property
    def path(self) -> str:
        """The store's path, with ``::key`` for arrays inside a hierarchy."""
        return str(self._staged[1] if self._staged else self._location)

    @property
    def writable(self) -> bool:
        """True in modes ``r+``, ``w+`` and ``w-`` (and ``c``, whose writes stay in memory)."""
        return self._mode in WRITABLE_MODES or self._mode == "c"

    @property
    def complete(self) -> bool:
        """False when a writer never finished this array (opened with ``allow_incomplete=True``)."""
        return True

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def __len__(self) -> int:
        if not self.shape:
            raise ZeroDimensionalError(
                f"{self.path}: len() of unsized object (a 0-d array has no first axis); read its one value with "
                "store[()], or use store.size"
            )
        return self.shape[0]

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (
            f"<{type(self).__name__} {self.path!r} shape={self.shape} dtype={self.dtype.str if not self.dtype.names else self.dtype} "
            f"order={self.order!r} mode={self._mode!r}{state}>"
        )

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedStoreError(f"{self.path}: the store is closed; open it again with arraystore.open()")

    def _check_writable(self) -> None:
        self._check_open()
        if not self.writable:
            raise ReadOnlyError(f"{self.path}: opened read-only (mode {self._mode!r}); open with mode='r+' to write")

    def __getitem__(self, sel: Any) -> np.ndarray[Any, Any]:
        """Read ``store[sel]`` into a new ndarray of the store's dtype (byte order included).

        ``sel`` is what numpy takes, except several arrays or ``None`` in one key: ints,
        slices with any step, ``...``, one integer array (or list) on one axis, a boolean
        mask on one axis or of the array's full shape. The values, dtype and shape are
        numpy's; where numpy returns a scalar (an integer for every axis), the store
        returns a 0-d array, which keeps the stored byte order.
        """
        self._check_open()
        plan = self._plan(sel)
        if isinstance(plan, GatherPlan) and plan.partial:
            out = masked(self, plan)
        elif isinstance(plan, GatherPlan):
            out = gather(self, plan)[plan.local]
        else:
            out = self._read(plan.sel)
            if plan.flip:
                out = np.flip(out, axis=plan.flip).copy()
        return self._as_result(out, plan.shape)

    def _plan(self, sel: Any) -> BasicPlan | GatherPlan:
        try:
            return plan_selection(sel, self.shape)
        except SelectionError as exc:
            raise SelectionError(f"{self.path}: {exc}") from None

    def _as_result(self, out: Any, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
        # Every backend and I/O path gives the same thing: an ndarray of exactly the
        # store's dtype, never a numpy scalar (which would come back in native order).
        arr: np.ndarray[Any, Any] = np.asarray(out)
        if arr.dtype != self.dtype:
            arr = arr.astype(self.dtype)
        return arr if arr.shape == shape else arr.reshape(shape)

    def __setitem__(self, sel: Any, value: Any) -> None:
        """Write ``value`` into ``store[sel]`` (the selections of :meth:`__getitem__`).

        Python numbers are written when they fit the dtype (numpy 2's NEP 50 rule), else
        :class:`~arraystore.errors.ValueOutOfRangeError`; arrays are cast with numpy's
        ``same_kind`` rule, else :class:`~arraystore.errors.UnsupportedDtypeError`. With
        repeated indices the last value wins, as in numpy.
        """
        self._check_writable()
        plan = self._plan(sel)
        arr = coerce_value(
            value, self.dtype, plan.shape, scalar=isinstance(plan, BasicPlan) and plan.scalar, where=self.path
        )
        if isinstance(plan, GatherPlan):
            scatter(self, plan, arr)
            return
        if plan.flip:
            arr = np.flip(arr, axis=plan.flip)
        self._write(plan.sel, arr)

    def __iter__(self) -> Iterator[np.ndarray[Any, Any]]:
        """Iterate along the first axis, as numpy does (rows read a few at a time)."""
        self._check_open()
        if not self.shape:
            raise ZeroDimensionalError(
                f"{self.path}: iteration over a 0-d array (shape ()), which has no first axis to walk; read its "
                "one value with store[()]"
            )
        return self._iter_rows()

    def _iter_rows(self) -> Iterator[np.ndarray[Any, Any]]:
        row_bytes = max(self.nbytes // max(self.shape[0], 1), 1)
        step = max(1, ITER_BLOCK_BYTES // row_bytes)
        for lo in range(0, self.shape[0], step):
            block = self[lo : lo + step]
            for row in block:
                yield self._as_result(row, self.shape[1:])

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray[Any, Any]:
        """numpy's array protocol: ``copy=False`` shares the stored bytes (a memory map) or raises.

        ``np.asarray(store)`` and ``np.array(store)`` read the array; ``np.asarray(store,
        copy=False)`` returns :meth:`as_memmap` (read-only in mode ``r``, writing through
        to the file in ``r+``) where the data are one mappable byte range of the store's
        dtype, and raises ``ValueError`` otherwise, as numpy 2 asks of ``__array__``.
        """
        if copy is False:
            if dtype is not None and np.dtype(dtype) != self.dtype:
                raise CopyRequiredError(
                    f"{self.path}: np.asarray(store, dtype={np.dtype(dtype)}, copy=False) needs a copy (the "
                    f"store holds {self.dtype}); drop copy=False or the dtype"
                )
            self._check_open()
            if self.size == 0:
                return np.empty(self.shape, self.dtype)
            try:
                return self.as_memmap()
            except (NotMemoryMappableError, NetworkFilesystemError) as exc:
                raise CopyRequiredError(
                    f"{self.path}: np.asarray(store, copy=False) cannot share the stored bytes ({exc}); "
                    "drop copy=False to read a copy, and write changes back with store[...] = array"
                ) from None
        out = self[...]
        return out if dtype is None else out.astype(dtype, copy=False)

    def read(self) -> np.ndarray[Any, Any]:
        """Read the whole array into memory (``store[...]``)."""
        return self[...]

    def block_plan(self, max_bytes: int = DEFAULT_BLOCK_BYTES) -> BlockPlan:
        """The blocks :meth:`iter_blocks` walks: storage order, aligned to chunks."""
        return plan_blocks(
            self.shape,
            self.dtype.itemsize,
            max_bytes,
            chunks=self.chunks,
            order=self.order,
            chunk_overhead=self._chunk_overhead if self.chunks else 0,
        )

    def iter_blocks(
        self, max_bytes: int = DEFAULT_BLOCK_BYTES
    ) -> Iterator[tuple[tuple[slice, ...], np.ndarray[Any, Any]]]:
        """Yield ``(selection, block)`` pairs covering the array once, in storage order.

        Blocks are whole chunks (chunked stores) or contiguous runs (contiguous
        stores) of at most ``max_bytes`` where the chunk shape allows.
        """
        for sel in self.block_plan(max_bytes):
            yield sel, self[sel]

    def take(self, indices: Any, axis: int = 0, *, max_bytes: int = DEFAULT_BLOCK_BYTES, mode: str = "auto",
             calibration: Any = None) -> np.ndarray[Any, Any]:
        """Rows ``indices`` along ``axis`` (as ``np.take``), read in sorted runs; see :func:`arraystore.access.take`."""
        return access.take(self, indices, axis, max_bytes=max_bytes, mode=mode, calibration=calibration)

    def advise(self, advice: str) -> bool:
        """Tell the kernel the coming access pattern (``"sequential"``, ``"random"``, ``"willneed"``,
        ``"dontneed"``, ``"normal"``); see :func:`arraystore.access.advise`. False where it is a no-op."""
        return access.advise(self, advice)

    def sample_batches(
        self,
        batch_size: int,
        *,
        rng: Any = None,
        window: int | None = None,
        drop_last: bool = False,
        prefetch: bool = True,
    ) -> Iterator[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
        """Random ``(indices, batch)`` pairs drawn from random contiguous windows: one epoch, each row once.

        See :func:`arraystore.access.sample_batches`."""
        return access.sample_batches(self, batch_size, rng=rng, window=window, drop_last=drop_last, prefetch=prefetch)

    # -- access hooks: generic defaults, overridden where a backend reads its bytes itself --

    def _take_in_memory(self, indices: np.ndarray[Any, Any], axis: int) -> np.ndarray[Any, Any] | None:
        """Rows ``indices`` (in range, any order, repeats allowed) along ``axis`` in the order given, copied
        straight from memory when the store can tell that they all are there; None otherwise (then
        :func:`arraystore.access.take` sorts them and reads them with :meth:`_take_sorted`).

        The default returns None; memory-mapped backends copy from their map when a sample of the rows' pages
        is all in the page cache (one copy, as numpy's own fancy indexing on the map).
        """
        return None

    def _take_sorted(self, indices: np.ndarray[Any, Any], axis: int, max_bytes: int, mode: str = "auto",
                     calibration: Any = None) -> np.ndarray[Any, Any]:
        """Rows ``indices`` (sorted, unique, in range) along ``axis``, as one array.

        The default reads whole chunk rows (chunked stores) or runs of nearby rows
        along the outermost storage axis, and scans :meth:`iter_blocks` along others
        (``mode`` is ``"auto"`` here: :func:`arraystore.access.take` refuses other modes
        for stores without ``memory_mappable``); memory-mapped backends override it with a
        gather on their file chosen by a cost model calibrated on the file's device
        (``mode`` forces one way, ``calibration`` replaces the measured one).
        """
        return access.gather_sorted(self, indices, axis, max_bytes, mode, calibration)

    def _advise(self, advice: str) -> bool:
        """Pass a validated ``advice`` to the kernel; True when a hint reached it.

        The default advises ``willneed``/``dontneed`` through ``posix_fadvise`` on every
        file the array lives in; memory-mapped backends override it to advise their map.
        """
        return access.advise_files(self, advice)

    def writer(
        self,
        *,
        flush_every: int | None = None,
        flush_every_seconds: float | None = None,
        durable: bool = False,
        resume: bool = False,
    ) -> ArrayWriter:
        """A checkpointing writer over this store: flush every N writes and/or T seconds.

        With ``resume=True`` it continues from the last checkpoint recorded for this
        array (a crashed earlier writer's), ignoring one marked complete; see
        :class:`arraystore.writer.ArrayWriter`.
        """
        from .writer import ArrayWriter

        start = ArrayWriter.resume(self.path) if resume else None
        if start is not None and start.complete:
            start = None
        return ArrayWriter(
            self, flush_every=flush_every, flush_every_seconds=flush_every_seconds, durable=durable, start=start
        )

    def as_memmap(self) -> np.memmap[Any, Any]:
        """A zero-copy ``numpy.memmap`` of the stored bytes, where the format allows.

        Raises
        ------
        NotMemoryMappableError
            For chunked or compressed data, and for backends that never allow it.
        """
        self._check_open()
        return self._memmap()

    def flush(self, durable: bool = False) -> None:
        """Write buffered changes to the file; ``durable=True`` also fsyncs file and folder.

        In copy-on-write mode (``"c"``) nothing reaches the file and a
        :class:`~arraystore.errors.NotPersistedWarning` says so.
        """
        self._check_open()
        if self._mode == "c":
            warnings.warn(
                f"{self.path}: flush() in copy-on-write mode 'c' persists nothing: writes live only in "
                "this process's memory; open with mode='r+' to write to the file",
                NotPersistedWarning,
                stacklevel=2,
            )
            return
        if self._mode in WRITABLE_MODES:
            self._flush(durable)

    def close(self) -> None:
        """Flush, release the writer lock and, for a new array, publish it under its final name."""
        if self._closed:
            return
        self._closed = True
        _open_writers.discard(self)
        try:
            if self._mode in WRITABLE_MODES:
                self._flush_at_close(durable=bool(self._options.get("durable", False)))
            self._close()
            if self._staged is not None:
                self._publish(self._staged[1], bool(self._options.get("durable", False)))
                self._location = self._staged[1]
                self._staged = None
        finally:
            self._release_locks()

    def discard(self) -> None:
        """Close without publishing: a new array being created is removed."""
        if self._closed:
            return
        self._closed = True
        _open_writers.discard(self)
        try:
            self._close()
            if self._staged is not None:
                _fsutil.remove_path(self._staged[0].file)
                self._staged = None
        finally:
            self._release_locks()

    def _release_locks(self) -> None:
        for lock in self._locks:
            lock.release()
        self._locks = []

    def abandon(self) -> None:
        """Close without completing: flush the data, release the lock, publish nothing.

        A new array stays at its staging place, so a rerun with ``create(..., resume=True)``
        picks it up (:func:`arraystore.convert` does this when interrupted). An existing
        array opened ``r+`` and written keeps its *incomplete* mark, as after a crash. Stores
        that were never closed are abandoned when garbage-collected.
        """
        if self._closed:
            return
        self._closed = True
        self._abandoned = True
        _open_writers.discard(self)
        try:
            if self._mode in WRITABLE_MODES:
                with contextlib.suppress(Exception):  # the error that made us abandon matters more
                    self._flush(durable=False)
            self._close()
        finally:
            self._release_locks()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None and self._staged is not None:
            self.discard()
        else:
            self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):  # never raise from __del__
                if self._mode in WRITABLE_MODES:
                    self.abandon()  # never closed: not known to be complete
                else:
                    self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        if self._staged is not None:
            raise TypeError(f"{self.path}: a new array cannot be pickled before it is closed (published)")
        return (_reopen, (str(self._location), self.backend, self._reference_options()))

    def _reference_options(self) -> dict[str, Any]:
        """The options a pickled reference carries to the reopened store (see :attr:`_pickled_options`)."""
        return {k: v for k, v in self._options.items() if k in self._pickled_options}

    #: Options that a pickled reference carries to the reopened store.
    _pickled_options: ClassVar[frozenset[str]] = frozenset({"io", "allow_incomplete", "allow_external"})

    def _replace_attrs(self, attrs: dict[str, Any]) -> None:
        self._check_writable()
        if self._mode == "c":
            raise ReadOnlyError(f"{self.path}: attrs cannot be changed in copy-on-write mode 'c'; open with 'r+'")
        new = self._meta.replace(attrs=attrs)
        self._set_attrs(dict(new.attrs))
        self._meta = new
