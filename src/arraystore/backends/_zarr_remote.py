"""Zarr arrays on object storage (S3, GCS, Azure, in-memory; HTTP read-only).

Same arrays, same fidelity and the same reserved attribute as
:mod:`arraystore.backends.zarr`; what changes is how an array is published, locked
and checked, because an object store has no rename and no ``flock``:

* **Publish without rename.** :func:`create_remote` writes ``zarr.json`` first with the
  reserved attribute's ``incomplete`` flag and a fresh ``generation`` id, then the
  chunks, and rewrites ``zarr.json`` without the flag at close: that last PUT is the
  commit point. Until then the array is *staged* (a ``staged`` flag too): ``exists`` says
  no and readers get :class:`ArrayNotFoundError`, as for a local array still in its
  ``.partial`` folder.
* **Generations.** A reader remembers the generation (and the ETag of ``zarr.json``)
  it opened; after every read it checks ``zarr.json`` again (a HEAD, a GET only when
  the ETag changed) and raises :class:`ArrayChangedError` when the array was replaced
  or is being rewritten, so a read never returns a mixture of two generations as if it
  were one.
* **One writer.** A lease object (:mod:`arraystore.objstore._lease`) instead of ``flock``.
* **Overwrite.** The old array's objects are deleted when the new one is created (there
  is no rename to swap them): from then on readers see an incomplete array, never
  the old one. docs/concepts.md states this difference. A conversion (which writes or
  deletes every chunk) creates with ``overwrite_in_place=True``: the old metadata is deleted
  first, then every object but the chunks at keys of the new grid; those *stale chunks*
  are overwritten by the chunk writer in place (one PUT instead of a delete and a PUT; on
  s3rver a third less server CPU per GiB), a stale chunk whose new value is all fill is
  deleted when its block is written, and whatever is still stale when the array is read,
  written through zarr or committed is deleted first (:meth:`RemoteZarrStore.drop_stale_chunks`).
* **Resume.** An interrupted create leaves the flag set; ``create(..., resume=True)``
  with the same shape, dtype, order and chunks reopens it and keeps its chunks; one
  that was overwriting in place (flagged ``overwriting``: it may hold old chunks) only when
  ``overwrite_in_place=True`` says the caller writes every chunk (a conversion, with its
  journal), else it starts afresh.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, ClassVar, Literal

import numpy as np
import zarr
import zarr.storage

from .._dimnames import named_axes
from .._selection import Selection
from ..compression import Compression, check_codec, parse_compression
from ..errors import (
    AlreadyExistsError,
    ArrayChangedError,
    ArrayNotFoundError,
    IncompleteArrayError,
    MetadataError,
    OptionError,
    UnsafeInputError,
)
from ..fidelity import check_fidelity
from ..location import Location
from ..meta import ArrayMeta
from ..objstore import check_writable, current_storage_options, object_store, store_errors
from ..objstore._lease import LEASE_KEY, Lease
from ._zarr_bounds import BoundedStore, chunk_rule
from ._zarr_layout import DEFAULT_MAX_CHUNK_BYTES
from ._zarr_safety import MAX_METADATA_BYTES, check_array, check_key, zarr_errors
from .zarr import _WRITE_ALL_CHUNKS, RESERVED_ATTR, ZarrStore, _describe, read_record

__all__ = ["RemoteZarrStore", "create_remote", "exists_remote", "open_remote"]


def _meta_key(key: str) -> str:
    return f"{key}/zarr.json" if key else "zarr.json"


def _head(ostore: Any, name: str) -> dict[str, Any] | None:
    import obstore
    import obstore.exceptions as oe

    try:
        return dict(obstore.head(ostore, name))
    except (oe.NotFoundError, FileNotFoundError):
        return None


class RemoteZarrStore(ZarrStore):
    """A Zarr v3 array in an object store; see the module docstring for how it differs from a local one."""

    publishes: ClassVar[Literal["rename", "metadata-last"]] = "metadata-last"
    locks: ClassVar[Literal["flock", "lease"] | None] = "lease"
    # Chunks are separate objects and shared writers never write zarr.json (see _reopen_staged).
    parallel_chunk_writers: ClassVar[bool] = True
    overwrites_in_place: ClassVar[bool] = True
    _pickled_options: ClassVar[frozenset[str]] = frozenset({"io", "allow_incomplete", "storage_options"})
    _generation_for_new: ClassVar[str | None] = None

    _ostore: Any = None
    _meta_etag: str | None = None
    _meta_modified: str | None = None  # when zarr.json was last written, as the store reported it at opening
    _creating: bool = False
    _lease: Lease | None = None
    #: Keys (from the store's root) of the replaced array's chunk objects not yet overwritten or deleted.
    stale_chunks: set[str] | None = None

    url_class: ClassVar[str | None] = None

    @classmethod
    def _open_url(cls, location: Location, mode: str, **options: Any) -> RemoteZarrStore:
        OptionError.check("open", cls.backend, options, open_remote)
        return open_remote(location, mode, **options)

    @classmethod
    def _create_url(cls, location: Location, meta: ArrayMeta, **options: Any) -> RemoteZarrStore:
        OptionError.check("create", cls.backend, options, create_remote, cls._create)
        return create_remote(location, meta, **options)

    @classmethod
    def _exists_url(cls, location: Location, storage_options: Any = None) -> bool:
        return exists_remote(location, storage_options)

    @classmethod
    def _remove(cls, location: Location) -> None:
        if not location.remote:
            super()._remove(location)
            return
        ostore = object_store(location, _options_of(location))
        with store_errors(str(location)):
            _delete_array_objects(ostore, check_key(location.key), str(location))

    @classmethod
    def _reopen_staged(cls, location: Location, meta: ArrayMeta, **options: Any) -> RemoteZarrStore | None:
        """A second handle on an array being created, for a writer of other chunks in another process.

        No lease (the creator holds it) and no metadata writes (the creator commits); None when
        the array is no longer the staged one asked for.
        """
        chunks = options.pop("chunks", None)
        options.pop("compression", None)
        try:
            store = open_remote(location, "r+", allow_incomplete=True, _shared=True, **options)
        except (MetadataError, ArrayNotFoundError):
            return None
        return _as_staged(store, meta, chunks)

    def _before_sharing(self) -> None:
        self.drop_stale_chunks()  # writers in other processes would not tell this handle what they overwrote

    def _keep_alive(self) -> None:
        if self._lease is not None:
            self._lease.renew_if_due()

    @classmethod
    def _initial_reserved(cls) -> dict[str, Any]:
        # "staged": being created, not yet published (what a local .partial folder is); "exists" says no.
        # "overwriting": chunks of the array it replaces may remain: only a writer of every chunk resumes it.
        reserved: dict[str, Any] = {"incomplete": True, "staged": True, "generation": uuid.uuid4().hex}
        if _creating_in_place.get():
            reserved["overwriting"] = True
        return reserved

    def _mark_complete(self) -> None:
        self._reserved.pop("staged", None)
        self._reserved.pop("overwriting", None)
        super()._mark_complete()

    @classmethod
    def _new_zarr_store(cls, location: Location, key: str) -> Any:
        return zarr.storage.ObjectStore(object_store(location, _options_of(location)), read_only=False)

    # -- reads checked against the generation ---------------------------------

    def drop_stale_chunks(self) -> None:
        """Delete the replaced array's chunk objects not overwritten yet: from now on they read as absent."""
        stale, self.stale_chunks = self.stale_chunks, None
        if stale and self._ostore is not None:
            import obstore

            with store_errors(self.path, self._options.get("storage_options")):
                obstore.delete(self._ostore, sorted(stale))

    def _read(self, sel: Selection) -> np.ndarray[Any, Any]:
        self.drop_stale_chunks()
        out = super()._read(sel)
        self._check_generation()
        return out

    def _version(self) -> dict[str, Any]:
        # A foreign array's chunks can change without its metadata: only a rewrite of zarr.json is seen.
        return {"generation": self._reserved.get("generation"), "metadata_etag": self._meta_etag,
                "metadata_modified": self._meta_modified}

    def _check_generation(self) -> None:
        if self._ostore is None:
            return
        key = check_key(self._location.key)
        with store_errors(self.path, self._options.get("storage_options")):
            head = _head(self._ostore, _meta_key(key))
            if head is not None and head.get("e_tag") == self._meta_etag:
                return
            reserved: dict[str, Any] = {}
            doc: Any = None
            if head is not None:
                import obstore

                doc = _load_json(bytes(obstore.get(self._ostore, _meta_key(key)).bytes()), self.path)
                attrs = doc.get("attributes") if isinstance(doc, dict) else None
                reserved = _lenient_record(attrs)
        ours = self._reserved.get("generation")
        # Changed: another generation, or a writer started changing it since it was opened complete; an array
        # without generations (another tool's) whose zarr.json now describes another array.
        started = bool(reserved.get("incomplete")) and not self._reserved.get("incomplete")
        foreign = ours is None and reserved.get("generation") is None
        if (head is None or reserved.get("generation") != ours or started
                or (foreign and self._describes_another_array(doc))):
            what = "deleted" if head is None else "replaced or is being rewritten"
            raise ArrayChangedError(
                f"{self.path}: the array was {what} by another writer since it was opened (generation {ours} is no "
                "longer the one stored); what was just read may mix two versions: open it again"
            )
        self._meta_etag = head.get("e_tag")

    def _describes_another_array(self, doc: Any) -> bool:
        """True when ``doc`` (the array's zarr.json as read now) describes another array than the one opened: its
        shape, data type, chunks, codecs or fill value (attributes aside; Zarr v3 metadata only)."""
        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.metadata import ArrayV3Metadata

        opened = self._arr.metadata
        if not isinstance(opened, ArrayV3Metadata):
            return False
        if not isinstance(doc, dict):
            return True
        try:
            now = ArrayV3Metadata.from_dict({**doc, "attributes": {}})
        except (ValueError, TypeError, KeyError):
            return True  # no longer an array's metadata

        def text(md: Any) -> bytes:
            return bytes(md.update_attributes({}).to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes())

        return text(now) != text(opened)

    # -- writes -----------------------------------------------------------------

    def _client_errors(self) -> contextlib.AbstractContextManager[None]:
        return store_errors(self.path, self._options.get("storage_options"))

    def _keep_writing(self) -> None:
        if self._lease is not None:
            self._lease.renew_if_due()

    def _write(self, sel: Selection, value: np.ndarray[Any, Any]) -> None:
        self.drop_stale_chunks()  # zarr would merge a partial chunk with the old one
        self._keep_writing()
        with store_errors(self.path, self._options.get("storage_options")):
            super()._write(sel, value)

    def _write_attrs(self, attrs: dict[str, Any]) -> None:
        with store_errors(self.path, self._options.get("storage_options")):
            super()._write_attrs(attrs)
            if self._ostore is not None:
                head = _head(self._ostore, _meta_key(check_key(self._location.key)))
                self._meta_etag = head.get("e_tag") if head else None

    def _flush(self, durable: bool) -> None:
        # A PUT is durable when it returns; a durable flush of an r+ session is a commit point.
        if durable and self._dirty and not self._creating:
            self._mark_complete()

    def _close(self) -> None:
        if self._dirty and self._mode != "r" and not self._abandoned:
            self.drop_stale_chunks()
            self._mark_complete()  # the commit point: zarr.json rewritten last, without the flag
        self._creating = False

    def discard(self) -> None:
        """Close without publishing: an array being created is deleted (its objects removed)."""
        if self._closed:
            return
        creating = self._creating
        self._abandoned = True
        try:
            super().discard()
        finally:
            if creating and self._ostore is not None:
                _delete_array_objects(self._ostore, check_key(self._location.key), self.path)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None and self._creating:
            self.discard()  # as a staged local array: never committed, removed
        else:
            self.close()

    def _memmap(self) -> np.memmap[Any, Any]:
        from ..errors import NotMemoryMappableError

        raise NotMemoryMappableError(
            f"{self.path}: an array in an object store has no local file to memory-map; read it with store[...] "
            "or iter_blocks(), or convert it to a local .npy/raw file first"
        )


def _load_json(data: bytes, where: str) -> Any:
    if len(data) > MAX_METADATA_BYTES:
        raise UnsafeInputError(
            f"{where}: a metadata document of {len(data):,} bytes, over the limit of {MAX_METADATA_BYTES:,}; real "
            "Zarr metadata is a few kilobytes: this object is damaged or hostile"
        )
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MetadataError(
            f"{where}: expected a JSON object (Zarr metadata), found text that is not valid JSON "
            f"({type(exc).__name__}); the object is damaged: restore it"
        ) from None


def _options_of(location: Location) -> Mapping[str, Any] | None:
    return _pending_options.get(location)


# storage_options travel beside the location for the create hook (locations are hashable, options are not).
_pending_options: dict[Location, Mapping[str, Any] | None] = {}
#: Set while an array that keeps the chunks of the one it replaces is created: its first zarr.json says so.
_creating_in_place: ContextVar[bool] = ContextVar("arraystore_creating_in_place", default=False)


def _check_metadata_objects(ostore: Any, key: str, where: str) -> bool:
    """True when an array's metadata is there; hostile sizes and non-JSON refused before zarr parses them."""
    import obstore

    found = False
    for name in ("zarr.json", ".zarray", ".zattrs"):
        full = f"{key}/{name}" if key else name
        head = _head(ostore, full)
        if head is None:
            continue
        if int(head.get("size", 0)) > MAX_METADATA_BYTES:
            raise UnsafeInputError(
                f"{where}: the metadata object {name} has {int(head['size']):,} bytes, over the limit of "
                f"{MAX_METADATA_BYTES:,}; real Zarr metadata is a few kilobytes: it is damaged or hostile"
            )
        doc = _load_json(bytes(obstore.get(ostore, full).bytes()), where)
        if not isinstance(doc, dict):
            raise MetadataError(f"{where}: expected a JSON object in {name}, found {type(doc).__name__}")
        if name != ".zattrs" and (name == ".zarray" or doc.get("node_type") == "array"):
            found = True
        elif name == "zarr.json":
            raise MetadataError(
                f"{where}: expected a Zarr array (zarr.json with node_type 'array'), found a Zarr group; name an "
                "array inside a hierarchy with '::/path/to/array'"
            )
    return found


def _state(ostore: Any, key: str, where: str) -> Literal["array", "staged"] | None:
    """``"array"`` (published), ``"staged"`` (being created, or its creator died) or None (nothing)."""
    import obstore

    if _head(ostore, f"{key}/.zarray" if key else ".zarray") is not None:
        return "array"
    head = _head(ostore, _meta_key(key))
    if head is None:
        return None
    if int(head.get("size", 0)) > MAX_METADATA_BYTES:
        return "array"  # opening it says what is wrong
    doc = _load_json(bytes(obstore.get(ostore, _meta_key(key)).bytes()), where)
    attrs = doc.get("attributes") if isinstance(doc, dict) else None
    return "staged" if _lenient_record(attrs).get("staged") else "array"


def _lenient_record(attrs: Any) -> dict[str, Any]:
    """arraystore's record in a ``zarr.json``'s attributes; ``{}`` where there is none or it is unreadable."""
    try:
        return read_record(attrs, "") if isinstance(attrs, dict) else {}
    except MetadataError:
        return {}


def exists_remote(location: Location, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True when a published Zarr array is at the object-store location (one being created does not count)."""
    key = check_key(location.key)
    ostore = object_store(location, storage_options)
    with store_errors(str(location), storage_options):
        return _state(ostore, key, str(location)) == "array"


def open_remote(
    location: Location,
    mode: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    lock_timeout: float = 0.0,
    allow_incomplete: bool = False,
    io: str = "auto",
    durable: bool = False,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    _lease: Lease | None = None,
    _shared: bool = False,
) -> RemoteZarrStore:
    """Open the Zarr array at an object-store location (modes ``r`` and ``r+``).

    ``_shared``: a writer of an array another handle is creating (and holds the lease of).
    """
    check_writable(location, mode)
    key = check_key(location.key)
    where = str(location)
    ostore = object_store(location, storage_options)
    lease = _lease
    with store_errors(where, storage_options):
        if not _check_metadata_objects(ostore, key, where):
            raise ArrayNotFoundError(f"{where}: no Zarr array there (no zarr.json or .zarray under the prefix)")
        if mode != "r" and lease is None and not _shared:
            lease = Lease(ostore, where, timeout=lock_timeout, storage_options=storage_options)
        try:
            head = _head(ostore, _meta_key(key))
            with zarr_errors(where):
                zstore = zarr.storage.ObjectStore(ostore, read_only=(mode == "r"))
                bounded = BoundedStore(zstore, where, key)
                arr = zarr.open_array(bounded, path=key, mode="r" if mode == "r" else "r+")
                meta, reserved, encoding, stored = _describe(arr, where)
                check_array(arr, where, max_chunk_bytes)
                bounded.rule = chunk_rule(arr)
            if reserved.get("staged") and not allow_incomplete:
                raise ArrayNotFoundError(
                    f"{where}: no array there yet: one is being created (or its writer died before publishing it); "
                    "it appears when its writer closes it; rerun the create or conversion to resume or replace it"
                )
            if reserved.get("incomplete") and not allow_incomplete:
                raise IncompleteArrayError(
                    f"{where}: its '{RESERVED_ATTR}' attribute says a writer did not finish it (being written now, "
                    "or its writer died); wait for the writer, resume it, or pass allow_incomplete=True to read it"
                )
        except BaseException:
            if lease is not None and _lease is None:
                lease.release()
            raise
    if mode != "r":
        arr = arr.with_config(_WRITE_ALL_CHUNKS)
    options = {
        "io": io,
        "durable": durable,
        "allow_incomplete": allow_incomplete,
        "max_chunk_bytes": max_chunk_bytes,
        "storage_options": dict(storage_options) if storage_options else None,
    }
    store = RemoteZarrStore(
        location, mode, meta, arr, reserved=reserved, encoding=encoding, stored=stored, store=zstore, options=options
    )
    store._ostore = ostore
    store._meta_etag = head.get("e_tag") if head else None
    store._meta_modified = str(head.get("last_modified")) if head else None
    if lease is not None:
        store._lease = lease
        store._locks = [lease]  # type: ignore[list-item]  # a lease releases like a WriterLock
    return store


def _delete_array_objects(ostore: Any, key: str, where: str) -> None:
    """Delete every object of the array (not the lease): the old generation of an overwrite."""
    import obstore

    prefix = f"{key}/" if key else None
    names: list[str] = []
    for batch in obstore.list(ostore, prefix=prefix):
        names.extend(str(m["path"]) for m in batch)
    lease_prefix = (f"{key}/" if key else "") + LEASE_KEY.split("/")[0] + "/"
    doomed = [n for n in names if not n.startswith(lease_prefix)]
    _delete_metadata_first(ostore, doomed)


def _delete_metadata_first(ostore: Any, doomed: list[str]) -> None:
    import obstore

    # zarr.json first: from that moment no reader takes what remains for an array. The rest
    # goes in bulk requests (S3's DeleteObjects: up to 1000 objects per request).
    first = [n for n in doomed if n.rsplit("/", 1)[-1] == "zarr.json"]
    for name in first:
        obstore.delete(ostore, name)
    rest = [n for n in doomed if n not in first]
    if rest:
        obstore.delete(ostore, rest)


def create_remote(
    location: Location,
    meta: ArrayMeta,
    *,
    storage_options: Mapping[str, Any] | None = None,
    chunks: Any = None,
    compression: Any = None,
    overwrite: bool = False,
    durable: bool = False,
    lock_timeout: float = 0.0,
    resume: bool = False,
    overwrite_in_place: bool = False,
    **options: Any,
) -> RemoteZarrStore:
    """Create a Zarr array at an object-store location, published by its last ``zarr.json`` write.

    ``overwrite_in_place``: the replaced array's chunk objects at keys of the new grid are kept as
    :attr:`RemoteZarrStore.stale_chunks` for the caller to overwrite (see the module docstring).
    """
    check_writable(location, "w")
    if storage_options is None:  # those of convert(storage_options=...): the store carries them to shared writers
        storage_options = current_storage_options()
    check_fidelity(RemoteZarrStore, meta.dtype)
    codec: Compression | None = parse_compression(compression)
    check_codec(RemoteZarrStore, codec)
    key = check_key(location.key)
    where = str(location)
    ostore = object_store(location, storage_options)
    with store_errors(where, storage_options):
        state = _state(ostore, key, where)
        if state == "array" and not overwrite:
            raise AlreadyExistsError(f"{where}: an array already exists there; pass overwrite=True to replace it")
        lease = Lease(ostore, where, timeout=lock_timeout, storage_options=storage_options)
        try:
            store = None
            there = _state(ostore, key, where)  # again, now that no other writer can change it
            if there == "array" and not overwrite:
                raise AlreadyExistsError(f"{where}: an array already exists there; pass overwrite=True to replace it")
            if there == "staged" and resume:
                store = _resume(location, meta, chunks, storage_options, lease, options, overwrite_in_place)
            if store is None:
                in_place = bool(there) and overwrite_in_place
                if in_place:  # from here on no reader takes what remains for an array
                    _delete_metadata_first(ostore, _metadata_names(ostore, key))
                elif there:
                    _delete_array_objects(ostore, key, where)
                _pending_options[location] = storage_options
                token = _creating_in_place.set(in_place)
                try:
                    created = RemoteZarrStore._create(
                        location, meta, chunks=chunks, compression=codec, durable=durable, **options
                    )
                finally:
                    _creating_in_place.reset(token)
                    _pending_options.pop(location, None)
                assert isinstance(created, RemoteZarrStore)
                store = created
                store._options["storage_options"] = dict(storage_options) if storage_options else None
                if in_place:
                    store.stale_chunks = _keep_chunk_objects(ostore, key, created.zarr_array)
        except BaseException:
            lease.release()
            raise
    store._ostore = ostore
    store._creating = True
    store._dirty = True  # flagged incomplete from the start; close() commits
    store._lease = lease
    store._locks = [lease]  # type: ignore[list-item]
    head = _head(ostore, _meta_key(key))
    store._meta_etag = head.get("e_tag") if head else None
    return store


def _metadata_names(ostore: Any, key: str) -> list[str]:
    """The array's metadata objects (Zarr v3 and v2) that exist."""
    names = [f"{key}/{n}" if key else n for n in ("zarr.json", ".zarray", ".zattrs")]
    return [n for n in names if _head(ostore, n) is not None]


def _keep_chunk_objects(ostore: Any, key: str, arr: Any) -> set[str]:
    """Delete the objects under the array's prefix that are not chunks of ``arr``'s grid; the chunks' keys.

    The lease, the journal and ``arr``'s own metadata stay.
    """
    import obstore

    md = arr.metadata
    grid = tuple(-(-int(s) // int(c)) for s, c in zip(md.shape, md.chunk_grid.chunk_shape))
    prefix = f"{key}/" if key else ""
    ours = {prefix + n for n in ("zarr.json", LEASE_KEY.split("/")[0])}
    kept: set[str] = set()
    doomed: list[str] = []
    for batch in obstore.list(ostore, prefix=prefix or None):
        for meta in batch:
            name = str(meta["path"])
            if name in ours or name.startswith(prefix + LEASE_KEY.split("/")[0] + "/"):
                continue
            (kept.add if _is_chunk_key(md, grid, name[len(prefix):]) else doomed.append)(name)
    if doomed:
        obstore.delete(ostore, doomed)
    return kept


def _is_chunk_key(md: Any, grid: tuple[int, ...], name: str) -> bool:
    """True when ``name`` is the key of a chunk (shard) inside the array's grid."""
    parts = name.split(str(getattr(md.chunk_key_encoding, "separator", "/")))[-len(grid):] if grid else []
    if not all(p.isdigit() for p in parts):  # (zarr 3.1's decode_chunk_key fails on its own "c/0/0")
        return False
    coords = tuple(int(p) for p in parts)
    return all(c < g for c, g in zip(coords, grid)) and bool(md.encode_chunk_key(coords) == name)


def _resume(
    location: Location,
    meta: ArrayMeta,
    chunks: Any,
    storage_options: Mapping[str, Any] | None,
    lease: Lease,
    options: dict[str, Any],
    writes_every_chunk: bool = False,
) -> RemoteZarrStore | None:
    """The half-built array an interrupted create left, when it is the one asked for; else None.

    One that was overwriting another in place may still hold chunks of the old array: only a
    writer of every chunk (``writes_every_chunk``: a conversion, its journal) resumes it.
    """
    try:
        store = open_remote(
            location, "r+", storage_options=storage_options, allow_incomplete=True, _lease=lease,
            max_chunk_bytes=options.get("max_chunk_bytes", DEFAULT_MAX_CHUNK_BYTES),
        )  # fmt: skip
    except (MetadataError, ArrayNotFoundError):
        return None
    if store._reserved.get("overwriting") and not writes_every_chunk:
        _drop_handle(store)
        return None
    shards = options.get("shards")
    if (named_axes(store.dimension_names) != named_axes(options.get("dimension_names"))
            or store.shards != (None if shards is None else tuple(shards))):
        _drop_handle(store)  # staged for another creation (other names or shards): built again
        return None
    return _as_staged(store, meta, chunks, inner=shards is not None)


def _as_staged(store: RemoteZarrStore, meta: ArrayMeta, chunks: Any, inner: bool = False) -> RemoteZarrStore | None:
    """``store`` as the writer of the staged array ``meta`` (and ``chunks``) describes; None, dropped, if it is not.

    ``chunks``: the unit written (:attr:`chunks`, a shared handle's reference), or with ``inner`` the chunks inside
    the shards (as ``create`` takes them beside ``shards``).
    """
    same = (store.shape, store.dtype, store.order) == (meta.shape, meta.dtype, meta.order)
    made = store.inner_chunks if inner else store.chunks
    if not store._reserved.get("staged") or not same or (chunks is not None and made != tuple(chunks)):
        _drop_handle(store)
        return None
    store._mode = "w+"
    store._meta = meta
    return store


def _drop_handle(store: RemoteZarrStore) -> None:
    """Forget a handle on a staged array without closing it (the lease stays with its holder: nothing released)."""
    store._locks = []
    store._abandoned = True
    store._closed = True
