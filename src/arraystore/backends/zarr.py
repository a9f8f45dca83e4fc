"""Zarr backend: directory stores (``*.zarr``), zip stores (``*.zarr.zip``), arrays inside hierarchies.

Reads Zarr v2 and v3 arrays; writes Zarr v3 through zarr-python's synchronous API.

Layout choices
--------------
* **Order.** An F-order array is stored with the v3 ``transpose`` codec (reversed
  axes), so every Zarr reader sees the same logical array while chunks hold
  column-major bytes; the order is also recorded in the reserved attribute. v2
  arrays report the ``order`` of their ``.zarray``.
* **Dtypes.** The real numpy dtype is recorded in the reserved attribute and the
  values stored through the ``native``, ``be``, ``le`` or ``raw`` encoding of
  :mod:`arraystore.backends._zarr_layout` (zarr-python hands back native-endian
  values and loses structured byte order, zarr-python #4141). Arrays written by
  other tools whose ``bytes`` codec is big-endian open with a big-endian dtype.
* **Chunks and shards.** ``chunks=None`` follows the rule in ``_zarr_layout``;
  ``shards=`` turns sharding on. :attr:`ZarrStore.chunks` is the unit that must be
  written whole: the **shard** shape when sharding is on (the inner chunk shape is
  :attr:`ZarrStore.inner_chunks`).
* **Compression.** zstd, blosc and gzip in the grammar of :mod:`arraystore.compression`
  (``"zstd:3"``, ``"blosc:lz4:5"``, ``"gzip"``, ...); ``None`` stores uncompressed. ``checksum=True`` adds a CRC32C codec.
  Chunks are always written, even when they equal the fill value, so that every
  bit pattern (``-0.0``, NaN payloads) survives.
* **Reserved attribute.** ``"_arraystore"`` holds, as JSON text (every attribute stays one
  that xarray can copy into a netCDF file), ``version``, ``shape``, ``dtype``,
  ``encoding``, ``order``, the ``incomplete`` flag (set by the first write of an
  ``r+`` session, cleared at close or a durable flush) and the recorded
  ``checksum``. It never shows in :attr:`ArrayStore.attrs`. A record whose shape or
  stored data type is not the array's was copied onto another array (xarray keeps
  attributes through ``isel`` or ``astype``): it is ignored.

Reading safely
--------------
Arrays are opened through :class:`~arraystore.backends._zarr_bounds.BoundedStore`:
every stored chunk (and every inner chunk of a shard) is checked against its
expected decoded size before zarr decodes it, so a decompression bomb is refused with
``UnsafeInputError`` (see ``_zarr_bounds`` for how each codec is bounded). Every key
must resolve, through symlinks, inside the store (``_zarr_guard.check_inside``); the
array folder's identity is checked around every read and write, so a reader of an
array replaced by another process gets ``ArrayChangedError`` instead of a mixture
(``_zarr_guard.Generation``); selections touching more than 4096 chunks reach zarr in
bounded calls (``_zarr_pieces``).

Reading
-------
v3 arrays of numbers in a local folder are read by :class:`~arraystore.backends._zarr_read.ChunkReader`
(chunk files read whole, bomb-checked, decoded on a thread per core, straight into the
result where the codecs allow); v2 arrays, zip stores, object storage and other data
types are read by zarr-python.

Staging and locking
-------------------
A new ``x.zarr`` is built in ``x.zarr.partial/`` and renamed at close. A new
``x.zarr.zip`` is built as a directory store in ``x.zarr.zip.partial/`` and packed
(uncompressed zip entries; the chunks are already compressed) into place at close;
zip stores are read-only afterwards. An array created inside a directory hierarchy
(``x.zarr::/grp/new``) is built in a sibling folder ``x.zarr.<quoted key>.partial/``
and renamed into place at close, after group metadata is written for missing
parents. The writer lock of an existing array is a ``flock`` on its *folder*:
zarr-python replaces ``zarr.json`` atomically on every attribute write, so a lock
on that file would stop protecting anything after the first write.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import numpy as np
import zarr
import zarr.codecs
import zarr.storage
from zarr.core.array_spec import ArrayConfig

from .. import _fsutil
from .._attrs import decode_attrs, encode_attrs
from .._dimnames import xarray_names
from .._selection import Selection, selection_shape
from ..compression import Compression
from ..errors import (
    AlreadyExistsError,
    ArrayStoreError,
    IncompleteArrayError,
    MetadataError,
    ModeError,
    UnsupportedDtypeError,
)
from ..fidelity import FAMILIES, Fidelity, Support
from ..meta import ArrayMeta, dtype_from_json, dtype_to_json
from ..registry import Location
from ..store import ArrayStore
from ._cf import counts_of
from ._signatures import zarr_folder
from ._zarr_bounds import BoundedStore, chunk_rule
from ._zarr_files import check_parents, ensure_groups, fsync_tree, pack_zip
from ._zarr_guard import Generation, check_inside
from ._zarr_layout import (
    DEFAULT_MAX_CHUNK_BYTES,
    auto_chunks,
    check_chunk_bytes,
    check_chunks,
    compression_codecs,
    decode,
    encode,
    inner_chunks_for_shards,
    storage_dtype,
)
from ._zarr_modes import ModeKeepingLocalStore
from ._zarr_names import consolidate_root, read_dimension_names
from ._zarr_pieces import CHUNK_OVERHEAD_BYTES, MAX_CHUNKS_PER_CALL, chunks_touched, pieces
from ._zarr_portable import (
    CF_KEYS,
    CF_SCALARS,
    FILL_ATTR,
    NAT,
    cf_attrs,
    from_xarray_fill_value,
    portable_storage,
    xarray_fill_value,
)
from ._zarr_read import ChunkReader, cores, readable_array
from ._zarr_safety import check_array, check_key, check_metadata_file, check_zip, zarr_errors

__all__ = ["FIDELITY", "RESERVED_ATTR", "ZarrStore", "read_record", "record_text"]

#: Attribute name reserved for arraystore's own metadata.
RESERVED_ATTR = "_arraystore"
#: Write chunks that equal the fill value too: zarr's comparison would drop e.g. complex -0.0.
_WRITE_ALL_CHUNKS = ArrayConfig(order="C", write_empty_chunks=True)
_RESERVED_VERSION = 1

_LE_NOTE = "zarr's own data type, byte for byte"
_BIG_NOTE = "zarr's data type with the bytes codec's endian 'big': numpy's bytes, byte for byte"
_BIG_STRUCT_NOTE = (
    "fields converted to little-endian (zarr-python #4141 loses structured byte order); the dtype is recorded "
    "and restored on read"
)
_RAW_NOTE = "stored as zarr raw_bytes (opaque to other Zarr readers) with the dtype recorded; same-platform layout"


def _fidelity() -> Fidelity:
    table: dict[tuple[str, str], tuple[Support, str]] = {}
    for family in FAMILIES:
        table[(family, "*")] = (Support.EXACT, _LE_NOTE)
        table[(family, "big")] = (Support.EXACT, _BIG_NOTE)
    for family in ("longdouble", "clongdouble"):
        table[(family, "*")] = (Support.ENCODED, "no zarr data type: " + _RAW_NOTE)
        table.pop((family, "big"))
    for family in ("datetime64", "timedelta64"):
        for order, note in (("*", _LE_NOTE), ("big", _BIG_NOTE)):
            table[(family, order)] = (Support.EXACT, note + " (generic-unit values: " + _RAW_NOTE + ")")
    table[("bytes", "*")] = (Support.EXACT, "zarr null_terminated_bytes, byte for byte")
    table[("void", "*")] = (Support.EXACT, "zarr raw_bytes, byte for byte")
    table[("structured", "*")] = (
        Support.EXACT,
        "zarr structured data type, byte for byte; padded, titled or overlapping layouts and sub-array or "
        "raw-byte fields: " + _RAW_NOTE,
    )
    table[("structured", "mixed")] = (Support.ENCODED, _BIG_STRUCT_NOTE)
    table[("structured", "big")] = (Support.ENCODED, _BIG_STRUCT_NOTE)
    return Fidelity(table)


#: What the Zarr backend stores exactly, through an encoding, or not at all.
FIDELITY: Fidelity = _fidelity()


def _is_zip(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".zip") or name.endswith(".zip.partial") or (path.is_file() and zipfile.is_zipfile(path))


def _node_dir(location: Location) -> Path:
    key = check_key(location.key)
    return location.file / key if key else location.file


#: Folders of a group :func:`_arrays_below` looks into at most (a hierarchy of millions is not walked for a message).
_LISTED_FOLDERS = 2000


def _node_type(node: Path) -> str | None:
    """``node_type`` of ``node/zarr.json`` (read as every metadata document is: bounded), or None (none, unreadable)."""
    meta = node / "zarr.json"
    try:
        check_metadata_file(meta)
        kind = _fsutil.loads_json(meta.read_bytes(), str(meta), "Zarr metadata").get("node_type")
    except (OSError, ArrayStoreError):
        return None
    return kind if isinstance(kind, str) else None


def _arrays_below(node: Path, most: int = 10) -> list[str]:
    """Paths (from ``node``) of up to ``most`` Zarr v3 arrays in the group at ``node``, in sorted order."""
    found: list[str] = []
    todo, seen = [node], 0
    while todo and len(found) < most and seen < _LISTED_FOLDERS:
        folder = todo.pop(0)
        seen += 1
        try:
            entries = sorted((e for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            kind = _node_type(Path(entry.path))
            if kind == "array":
                found.append("/" + Path(entry.path).relative_to(node).as_posix())
            elif kind == "group":
                todo.append(Path(entry.path))
    return sorted(found)[:most]


def _codec_text(codec: Any) -> str:
    d: dict[str, Any] = codec.to_dict() if hasattr(codec, "to_dict") else {"name": type(codec).__name__}
    config: dict[str, Any] = d.get("configuration") or {}
    conf = {k: v for k, v in config.items() if k in ("level", "cname", "clevel")}
    return str(d.get("name", type(codec).__name__)) + (
        "(" + ", ".join(f"{k}={v}" for k, v in conf.items()) + ")" if conf else ""
    )


class ZarrStore(ArrayStore):
    """A Zarr array (v3 written; v2 and v3 read), in a directory or zip store.

    Open and create through :func:`arraystore.open` / :func:`arraystore.create`.
    Backend options: ``shards=`` (tuple), ``checksum=True`` (CRC32C codec) and
    ``max_chunk_bytes=`` (largest decoded chunk accepted, default 1 GiB).
    """

    backend: ClassVar[str] = "zarr"
    supports_memmap: ClassVar[bool] = False
    supports_copy_on_write: ClassVar[bool] = False
    supports_dimension_names: ClassVar[bool] = True
    fidelity: ClassVar[Fidelity] = FIDELITY
    codecs: ClassVar[frozenset[str]] = frozenset({"gzip", "zstd", "blosc"})
    _staging_is_dir: ClassVar[bool] = True
    parallel_chunk_writers: ClassVar[bool] = True
    suffixes: ClassVar[tuple[str, ...]] = (".zarr", ".zarr.zip")
    writes_go_through: ClassVar[bool] = True
    thread_safe_writes: ClassVar[bool] = True

    @classmethod
    def guess_can_open(cls, location: Location) -> bool:
        return super().guess_can_open(location) or zarr_folder(location)
    _chunk_overhead: ClassVar[int] = CHUNK_OVERHEAD_BYTES

    def __init__(
        self,
        location: Location,
        mode: str,
        meta: ArrayMeta,
        arr: Any,
        *,
        reserved: dict[str, Any],
        encoding: str,
        stored: np.dtype[Any],
        store: Any,
        options: dict[str, Any],
    ) -> None:
        super().__init__(location, mode, meta, options=options)
        self._arr = arr
        self._reserved = reserved
        self._encoding = encoding
        self._stored = stored
        self._zstore = store
        self._dirty = False
        self._generation: Generation | None = None
        self._reader: ChunkReader | Literal[False] | None = False  # False: not looked for yet

    # -- properties ---------------------------------------------------------

    @property
    def chunks(self) -> tuple[int, ...]:
        """The unit written whole: the shard shape when sharded, else the chunk shape."""
        return tuple(self._arr.shards or self._arr.chunks)

    @property
    def inner_chunks(self) -> tuple[int, ...]:
        """The Zarr chunk shape (inside a shard when sharding is on)."""
        return tuple(self._arr.chunks)

    @property
    def shards(self) -> tuple[int, ...] | None:
        """The shard shape, or None without sharding."""
        return tuple(self._arr.shards) if self._arr.shards is not None else None

    @property
    def compression(self) -> str | None:
        """The compressors' names and settings (``"zstd(level=3)"``), or None when uncompressed."""
        codecs = [c for c in self._arr.compressors if type(c).__name__ != "Crc32cCodec"]
        return ", ".join(_codec_text(c) for c in codecs) or None

    @property
    def zarr_array(self) -> Any:
        """The open ``zarr.Array`` (for what arraystore does not wrap, e.g. the conversion's own chunk writes)."""
        self._check_open()
        return self._arr

    @property
    def stored_dtype(self) -> np.dtype[Any]:
        """The dtype zarr holds the values as (see :attr:`encoding`)."""
        return self._stored

    @property
    def dimension_names(self) -> tuple[str | None, ...] | None:
        """Names given at creation (Zarr v3 ``dimension_names``; v2 ``_ARRAY_DIMENSIONS``), or None.

        Arrays arraystore creates always carry ``dimension_names`` for xarray (``dim_0``, ...
        where none were given); those defaults are not reported as names.
        """
        return read_dimension_names(self._arr, self._reserved, self.path)

    @property
    def zarr_format(self) -> int:
        """2 or 3."""
        return int(self._arr.metadata.zarr_format)

    @property
    def encoding(self) -> str:
        """How values are held: ``native``, ``le`` or ``raw`` (see ``_zarr_layout``)."""
        return self._encoding

    @property
    def complete(self) -> bool:
        """False when an ``r+`` writer never closed the array."""
        return not self._reserved.get("incomplete", False)

    @property
    def recorded_checksum(self) -> dict[str, str] | None:
        """The checksum recorded in the reserved attribute, if any."""
        value = self._reserved.get("checksum")
        return dict(value) if isinstance(value, dict) else None

    def set_checksum(self, checksum: dict[str, str]) -> None:
        """Record a content checksum (``{"algorithm", "value"}``) in the reserved attribute."""
        self._check_writable()
        self._reserved["checksum"] = {"algorithm": str(checksum["algorithm"]), "value": str(checksum["value"])}
        self._write_attrs(dict(self._meta.attrs))

    # -- opening ------------------------------------------------------------

    @classmethod
    def _open(  # type: ignore[override]  # the base takes **options; these are the ones we know
        cls,
        location: Location,
        mode: str,
        *,
        allow_incomplete: bool = False,
        io: str = "auto",
        durable: bool = False,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    ) -> ZarrStore:
        key = check_key(location.key)
        where = str(location)
        is_zip = _is_zip(location.file)
        if is_zip and mode != "r":
            raise ModeError(
                f"{where}: zip stores are written once, when created; open with mode='r', or convert it to a "
                "directory store (.zarr) to change it"
            )
        generation: Generation | None = None
        try:
            with zarr_errors(where):
                root: str | None = None
                if is_zip:
                    with zipfile.ZipFile(location.file) as zf:
                        check_zip(zf, where, max_chunk_bytes + 65536)
                    store: Any = zarr.storage.ZipStore(location.file, mode="r")
                else:
                    node = _node_dir(location)
                    root = os.path.realpath(location.file)
                    check_inside(root, node, where)
                    if not (node / "zarr.json").is_file() and not (node / ".zarray").is_file():
                        what = (
                            "a Zarr group"
                            if (node / ".zgroup").is_file() or (node / "zarr.json").exists()
                            else "no Zarr array"
                        )
                        raise MetadataError(
                            f"{where}: expected a Zarr array (zarr.json or .zarray), found {what}; name an array "
                            "inside a hierarchy with '::/path/to/array'"
                        )
                    generation = Generation(node, where)
                    for name in ("zarr.json", ".zarray", ".zattrs"):
                        check_inside(root, node / name, where)
                        check_metadata_file(node / name)
                    if _node_type(node) == "group":
                        base = "/" + key.strip("/") if key else ""
                        arrays = [base + a for a in _arrays_below(node)]
                        inside = (f"its arrays include {', '.join(arrays)}; name one after '::', e.g. "
                                  f"'{location.file}::{arrays[0]}'" if arrays
                                  else "it holds no Zarr v3 array; name an array inside it with '::/path/to/array'")
                        raise MetadataError(f"{where}: expected a Zarr array, found a Zarr group: {inside}")
                    store = ModeKeepingLocalStore(location.file, read_only=(mode == "r"))
                bounded = BoundedStore(store, where, key, root)
                arr = zarr.open_array(bounded, path=key, mode="r" if mode == "r" else "r+")
                meta, reserved, encoding, stored = _describe(arr, where)
                check_array(arr, where, max_chunk_bytes)
                bounded.rule = chunk_rule(arr)
                if generation is not None:
                    generation.check()  # the metadata came from the folder whose identity is kept
        except BaseException:
            if generation is not None:
                generation.close()
            raise
        if reserved.get("incomplete") and not allow_incomplete:
            if generation is not None:
                generation.close()
            raise IncompleteArrayError(
                f"{where}: its '{RESERVED_ATTR}' attribute says a writer did not finish it (crash or kill?); "
                "re-create it, resume the writer, or pass allow_incomplete=True to read it anyway"
            )
        if mode != "r":
            arr = arr.with_config(_WRITE_ALL_CHUNKS)
        options = {
            "io": io,
            "durable": durable,
            "allow_incomplete": allow_incomplete,
            "max_chunk_bytes": max_chunk_bytes,
        }
        self = cls(
            location, mode, meta, arr, reserved=reserved, encoding=encoding, stored=stored, store=store, options=options
        )
        self._generation = generation
        return self

    @classmethod
    def _create(  # type: ignore[override]
        cls,
        location: Location,
        meta: ArrayMeta,
        *,
        chunks: Any = None,
        compression: Compression | None = None,
        durable: bool = False,
        shards: Any = None,
        checksum: bool = False,
        io: str = "auto",
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
        dimension_names: tuple[str | None, ...] | None = None,
        portable: bool = False,
    ) -> ZarrStore:
        if RESERVED_ATTR in meta.attrs:
            raise MetadataError(f"the attribute name {RESERVED_ATTR!r} is reserved by arraystore; rename it")
        key = check_key(location.key)
        where = str(location)
        stored, encoding = storage_dtype(meta.dtype)
        cf = portable_storage(meta.dtype, meta.attrs, where) if portable else None
        if cf is not None:
            stored, encoding = np.dtype("<i8"), "cf"
        ndim, itemsize = meta.ndim, meta.itemsize
        shard_shape = None if shards is None else check_chunks(shards, ndim, "shards")
        if shard_shape is not None and stored.kind == "V":
            raise UnsupportedDtypeError(
                f"{where}: zarr-python {zarr.__version__} cannot shard arrays of void or structured items "
                f"({meta.dtype}): its sharding codec fails on their fill value; create it without shards="
            )
        if chunks is not None:
            inner = check_chunks(chunks, ndim)
        elif shard_shape is not None:
            inner = inner_chunks_for_shards(shard_shape, itemsize, meta.order)
        else:
            inner = auto_chunks(meta.shape, itemsize, meta.order)
        check_chunk_bytes(inner, itemsize, max_chunk_bytes, where)
        if shard_shape is not None and any(s % c for s, c in zip(shard_shape, inner)):
            axes = "; ".join(f"axis {i}: {s} is not a multiple of {c}"
                             for i, (s, c) in enumerate(zip(shard_shape, inner)) if s % c)
            fitting = tuple(max(c, s - s % c) for s, c in zip(shard_shape, inner))
            raise MetadataError(  # not named by `where`: the staging path of an array being created
                f"expected shards that are whole multiples of the chunks, found shards {shard_shape} and chunks "
                f"{inner} ({axes}): give shards={','.join(map(str, fitting))}, or chunks that divide the shards"
            )
        filters = [zarr.codecs.TransposeCodec(order=tuple(range(ndim))[::-1])] if meta.order == "F" and ndim > 1 else []
        reserved = {
            "version": _RESERVED_VERSION,
            "shape": list(meta.shape),
            "dtype": dtype_to_json(meta.dtype),
            "encoding": encoding,
            "order": meta.order,
            **cls._initial_reserved(),
        }
        if dimension_names is None:
            reserved["default_dimension_names"] = True
        elif None in dimension_names:  # Zarr writes every name: keep which ones were given
            reserved["dimension_names"] = list(dimension_names)
        compressors = compression_codecs(compression, checksum=checksum)
        serializer: Any = zarr.codecs.BytesCodec(endian="big") if encoding == "be" else "auto"
        store = cls._new_zarr_store(location, key)
        with zarr_errors(where):
            arr = zarr.create_array(
                store,
                name=key or None,
                shape=meta.shape,
                dtype=stored,
                chunks=inner,
                shards=shard_shape,
                filters=filters,
                serializer=serializer,
                compressors=compressors,
                attributes={**_user_attrs(meta.attrs, meta.dtype, reserved), **(cf or {}), RESERVED_ATTR: record_text(reserved)},
                fill_value=NAT if cf is not None else None,
                zarr_format=3,
                config=_WRITE_ALL_CHUNKS,
                dimension_names=xarray_names(dimension_names, ndim),
            )
        options = {"io": io, "durable": durable, "max_chunk_bytes": max_chunk_bytes, "portable": portable}
        return cls(
            location, "w+", meta, arr, reserved=reserved, encoding=encoding, stored=stored, store=store, options=options
        )

    @classmethod
    def _reopen_staged(cls, location: Location, meta: ArrayMeta, **options: Any) -> ZarrStore | None:
        """The half-built array at ``location`` if it is the one asked for, else None.

        The options only a creation takes (``shards``, ``dimension_names``, ``portable``, ``checksum``) are not
        opening options: those given are compared with the staged array's (``chunks`` then are the chunks inside the
        shards; without ``shards``, the unit written, as :attr:`chunks` says: a shared handle's reference).
        """
        chunks = options.pop("chunks", None)
        creation = {k: options.pop(k) for k in ("shards", "dimension_names", "portable", "checksum") if k in options}
        store = super()._reopen_staged(location, meta, **options)
        if store is None:
            return None
        same = True
        if "shards" in creation:
            shards = creation["shards"]
            same = store.shards == (None if shards is None else tuple(shards))
            same = same and (chunks is None or store.inner_chunks == tuple(chunks))
        elif chunks is not None:
            same = store.chunks == tuple(chunks)
        if "dimension_names" in creation:
            names = creation["dimension_names"]
            same = same and store.dimension_names == (None if names is None else tuple(names))
        if "portable" in creation:
            encoding = storage_dtype(meta.dtype)[1]
            if creation["portable"] and portable_storage(meta.dtype, meta.attrs, str(location)) is not None:
                encoding = "cf"
            same = same and store.encoding == encoding
        if not same:
            store._close()
            return None
        return store

    @classmethod
    def _initial_reserved(cls) -> dict[str, Any]:
        """Entries of the reserved attribute a new array starts with (object stores: incomplete, generation)."""
        return {}

    @classmethod
    def _new_zarr_store(cls, location: Location, key: str) -> Any:
        """The zarr store a new array is created in, its parent groups written."""
        if key:
            ensure_groups(location.file, key.split("/")[:-1])
        return ModeKeepingLocalStore(location.file)

    object_storage: ClassVar[Literal["read", "read-write"] | None] = "read-write"
    #: Zarr at URLs is RemoteZarrStore (a subclass; named, not imported, so the import graph stays acyclic).
    url_class: ClassVar[str | None] = "arraystore.backends._zarr_remote:RemoteZarrStore"

    # -- data ---------------------------------------------------------------

    def _read(self, sel: Selection) -> np.ndarray[Any, Any]:
        gen = self._generation
        if gen is not None:
            gen.check()
        shape = selection_shape(sel)
        reader = self._chunk_reader()
        if reader is not None:
            try:
                with zarr_errors(self.path, reading_chunks=True):
                    result = reader.read(sel)
            except ArrayStoreError:
                if gen is not None:
                    gen.check()  # a chunk read while the array was being replaced: say that, not "damaged"
                raise
            if gen is not None:
                gen.check()
            return result
        with zarr_errors(self.path, reading_chunks=True):
            if chunks_touched(sel, self.inner_chunks) <= MAX_CHUNKS_PER_CALL:
                out = self._arr[sel]
            else:  # many small chunks: bounded calls (see _zarr_pieces)
                out = np.empty(shape, dtype=self._stored)
                for dest, piece in pieces(sel, self.inner_chunks, self.order, MAX_CHUNKS_PER_CALL):
                    out[dest] = np.asarray(self._arr[piece]).reshape(out[dest].shape)
        if gen is not None:
            gen.check()
        result = decode(out, self.dtype, self._encoding)
        return result if result.shape == shape else result.reshape(shape)

    def _chunk_reader(self) -> ChunkReader | None:
        """The reader that decodes this array's chunks here (local v3 arrays of numbers; ``_zarr_read``), or None."""
        if self._reader is False:
            reader = None
            if readable_array(self._arr, self._stored):
                bounded = self._arr.store_path.store
                if isinstance(bounded, BoundedStore) and bounded.local_path(bounded.prefix + "zarr.json"):
                    reader = ChunkReader(self._arr, self.dtype, self._stored, self._encoding, self.path, cores())
            self._reader = reader
        return self._reader

    def _write(self, sel: Selection, value: np.ndarray[Any, Any]) -> None:
        self._before_write()
        gen = self._generation
        if gen is not None:
            gen.check()
        stored = encode(value, self._stored, self._encoding)
        with zarr_errors(self.path):
            if chunks_touched(sel, self.inner_chunks) <= MAX_CHUNKS_PER_CALL:
                self._arr[sel] = stored
            else:
                for dest, piece in pieces(sel, self.inner_chunks, self.order, MAX_CHUNKS_PER_CALL):
                    self._arr[piece] = stored[dest]
        if gen is not None:
            gen.check()

    def _before_write(self) -> None:
        """Flag an array written in place as incomplete before its first chunk changes."""
        if not self._dirty:
            if self._staged is None:
                self._reserved["incomplete"] = True
                try:
                    self._write_attrs(dict(self._meta.attrs))
                except BaseException:  # e.g. a full disk: nothing was written, the array is still complete
                    self._reserved.pop("incomplete", None)
                    raise
            self._dirty = True

    def _set_attrs(self, attrs: dict[str, Any]) -> None:
        if RESERVED_ATTR in attrs:
            raise MetadataError(f"the attribute name {RESERVED_ATTR!r} is reserved by arraystore; rename it")
        if self._encoding == "cf" and any(k in attrs for k in CF_KEYS):
            raise MetadataError(
                f"{self.path}: the attributes {list(CF_KEYS)} hold the unit of this portable time array; "
                "use other names"
            )
        self._write_attrs(attrs)

    def _write_attrs(self, attrs: dict[str, Any]) -> None:
        cf = cf_attrs(self.dtype) if self._encoding == "cf" else {}
        with zarr_errors(self.path):
            user = _user_attrs(attrs, self.dtype, self._reserved)
            self._arr.attrs.put({**user, **cf, RESERVED_ATTR: record_text(self._reserved)})

    def _flush(self, durable: bool) -> None:
        if durable:
            fsync_tree(self._array_dir())
            if self._dirty and self._staged is None:
                self._mark_complete()
                fsync_tree(self._array_dir(), files=("zarr.json",))

    def _close(self) -> None:
        if self._dirty and self._staged is None and self._mode != "r" and not self._abandoned:
            self._mark_complete()
        in_group = bool(self._location.key) and not _is_zip(self._location.file)
        if in_group and self._mode != "r" and self._staged is None and not self._abandoned:
            consolidate_root(self._location.file)  # attributes or completeness changed inside a group
        if self._reader:
            self._reader.close()
        if isinstance(self._zstore, zarr.storage.ZipStore):
            self._zstore.close()
        if self._generation is not None:
            self._generation.close()

    def _mark_complete(self) -> None:
        self._reserved.pop("incomplete", None)
        self._write_attrs(dict(self._meta.attrs))
        self._dirty = False

    def _array_dir(self) -> Path:
        return _node_dir(self._location)

    def stored_bytes(self) -> int | None:
        """Bytes under the array's own folder (a group's other arrays not counted); a zip's size."""
        if self._location.remote:
            return None
        if self._location.key and not _is_zip(self._location.file):
            return _fsutil.tree_bytes(self._array_dir())
        return super().stored_bytes()

    # -- staging, publishing, locking ----------------------------------------

    @classmethod
    def _exists(cls, location: Location) -> bool:
        key = check_key(location.key)
        if _is_zip(location.file):
            if not location.file.is_file() or not key:
                return location.file.exists()
            with zarr_errors(str(location)), zipfile.ZipFile(location.file) as zf:
                return any(n.startswith(key + "/") for n in zf.namelist())
        node = _node_dir(location)
        _fsutil.recover_replace(node)
        return node.exists()

    @classmethod
    def _staging(cls, location: Location) -> Location | None:
        key = check_key(location.key)
        file = location.file
        if _is_zip(file):
            if key and file.exists():
                raise AlreadyExistsError(
                    f"{location}: a zip store cannot take new arrays after it is written; create a new zip, or "
                    "use a directory store (.zarr)"
                )
            return Location(_fsutil.partial_path(file), key or None)
        if not key:
            return Location(_fsutil.partial_path(file), None)
        check_parents(file, key.split("/")[:-1], str(location))
        return Location(file.with_name(f"{file.name}.{quote(key, safe='')}.partial"), None)

    @classmethod
    def _lock_file(cls, location: Location) -> str | None:
        if _is_zip(location.file):
            return str(location.file) if location.file.is_file() else None
        node = _node_dir(location)
        if (node / "zarr.json").is_file() or (node / ".zarray").is_file():
            return str(node)
        return None

    def _publish(self, final: Location, durable: bool) -> None:
        assert self._staged is not None
        staging = self._staged[0].file
        if _is_zip(final.file):
            packed = staging / ".arraystore-packed.zip"
            pack_zip(staging, packed, durable=durable)
            _fsutil.replace_path(packed, final.file, durable=durable)
            _fsutil.remove_path(staging)
            return
        key = check_key(final.key)
        if not key:
            super()._publish(final, durable)
            return
        segments = key.split("/")
        check_parents(final.file, segments[:-1], str(final))
        ensure_groups(final.file, segments[:-1])
        _fsutil.replace_path(staging, final.file / key, durable=durable)
        consolidate_root(final.file)  # xarray finds the group's arrays through it


    @classmethod
    def _remove(cls, location: Location) -> None:
        if _is_zip(location.file):
            _fsutil.remove_path(location.file)
        else:
            _fsutil.remove_path(_node_dir(location))


def _user_attrs(attrs: Mapping[str, Any], dtype: np.dtype[Any], reserved: dict[str, Any]) -> dict[str, Any]:
    """The user attrs as stored: a ``_FillValue`` in xarray's Zarr v3 form, its exact value kept in ``reserved``;
    the CF scalars (:data:`CF_SCALARS`) given as one-number lists (netCDF-4's form) as that number, the lists
    named in ``reserved``."""
    encoded = encode_attrs(dict(attrs))
    reserved.pop("fill_value_attr", None)
    reserved.pop("one_item_lists", None)
    if FILL_ATTR in attrs and (xr_form := xarray_fill_value(attrs[FILL_ATTR], dtype)) is not None:
        reserved["fill_value_attr"] = encoded[FILL_ATTR]
        encoded[FILL_ATTR] = xr_form
    listed = [k for k in CF_SCALARS if _one_number(encoded.get(k))]
    if listed:
        reserved["one_item_lists"] = listed
        for key in listed:
            encoded[key] = encoded[key][0]
    return encoded


def _one_number(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 1 and type(value[0]) in (int, float)


def read_record(attrs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """arraystore's record in an array's attributes (``{}`` without one).

    Written as JSON text, so that every attribute of the array is one a netCDF file can hold (xarray copies
    them all when it writes a dataset opened from the array); read as text or, as earlier versions wrote it,
    an object.
    """
    raw = attrs.get(RESERVED_ATTR)
    if raw is None:
        return {}
    found = raw
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            pass
    if not isinstance(raw, dict):
        raise MetadataError(
            f"{where}: expected the {RESERVED_ATTR!r} attribute to be a JSON object (arraystore's record of the "
            f"array), found {found!r}; remove the attribute to read the array as its Zarr metadata describes it"
        )
    return dict(raw)


def record_text(reserved: Mapping[str, Any]) -> str:
    """The ``_arraystore`` attribute's value for ``reserved``: compact JSON text."""
    return json.dumps(dict(reserved), separators=(",", ":"), sort_keys=True)


def _describe(arr: Any, where: str) -> tuple[ArrayMeta, dict[str, Any], str, np.dtype[Any]]:
    """ArrayMeta, reserved attribute, encoding and storage dtype of an opened zarr array.

    A record that describes another array (its ``shape`` or stored data type differ from the array's own:
    another tool, e.g. xarray, wrote a changed copy with the attributes copied) is not this array's: the array
    is read as its Zarr metadata describes it, as every other reader does.
    """
    attrs = dict(arr.attrs.asdict())
    reserved = read_record(attrs, where)
    attrs.pop(RESERVED_ATTR, None)
    if not _describes(reserved, arr):
        reserved = {}
    if FILL_ATTR in attrs and isinstance(arr.dtype, np.dtype):
        exact = decode_attrs({FILL_ATTR: reserved["fill_value_attr"]}).get(FILL_ATTR) \
            if "fill_value_attr" in reserved else None
        if exact is not None and attrs[FILL_ATTR] == xarray_fill_value(exact, arr.dtype):
            attrs[FILL_ATTR] = reserved["fill_value_attr"]  # as written, not edited since: the exact value
        elif (number := from_xarray_fill_value(attrs[FILL_ATTR], arr.dtype)) is not None:
            attrs[FILL_ATTR] = number  # xarray's base64 text of a float (xarray wrote it, or edited it since)
    listed = reserved.get("one_item_lists")
    for key in listed if isinstance(listed, list) else ():
        if isinstance(key, str) and type(attrs.get(key)) in (int, float):
            attrs[key] = [attrs[key]]  # given as a one-item list (netCDF-4's form), stored as its number
    zdtype = arr.dtype
    if not isinstance(zdtype, np.dtype) or zdtype.hasobject or zdtype.kind not in "biufcmMSUV":
        raise UnsupportedDtypeError(
            f"{where}: the Zarr data type {arr.metadata.dtype if hasattr(arr.metadata, 'dtype') else zdtype} has no "
            "fixed-size numpy equivalent (variable-length strings or objects); arraystore cannot hold it"
        )
    if "dtype" in reserved:
        dtype, stored, encoding = _recorded_storage(reserved)
        if encoding == "cf":
            for k in CF_KEYS:  # the unit is the dtype's: not a user attribute
                attrs.pop(k, None)
    elif _big_endian_serializer(arr) and zdtype.itemsize > 1 and zdtype.names is None and zdtype.kind not in "SV":
        dtype, stored, encoding = zdtype.newbyteorder(">"), zdtype, "be"
    else:
        dtype, stored, encoding = zdtype, zdtype, "native"
    recorded = reserved.get("order") or _native_order(arr)
    if recorded not in ("C", "F"):
        raise MetadataError(f"{where}: expected order 'C' or 'F' in {RESERVED_ATTR!r}, found {recorded!r}")
    order: Literal["C", "F"] = "F" if recorded == "F" else "C"
    try:
        meta = ArrayMeta(tuple(arr.shape), dtype, order, decode_attrs(attrs))
    except MetadataError as exc:
        raise MetadataError(f"{where}: {exc}") from None
    return meta, dict(reserved), encoding, stored


def _recorded_storage(reserved: Mapping[str, Any]) -> tuple[np.dtype[Any], np.dtype[Any], str]:
    """The dtype a record names, the Zarr data type and encoding that hold it."""
    dtype = dtype_from_json(reserved["dtype"])
    stored, encoding = storage_dtype(dtype)
    if reserved.get("encoding") == "cf" and dtype.kind in "Mm":
        stored, encoding = np.dtype("<i8"), "cf"
    return dtype, stored, encoding


def _describes(reserved: Mapping[str, Any], arr: Any) -> bool:
    """Whether arraystore's record is about ``arr``: its shape (when recorded) and stored data type are the array's."""
    shape = reserved.get("shape")
    if shape is not None and (not isinstance(shape, list) or tuple(shape) != tuple(arr.shape)):
        return False
    if "dtype" not in reserved:
        return True
    try:
        dtype, stored, encoding = _recorded_storage(reserved)
    except (MetadataError, TypeError, ValueError):
        return False
    if encoding == "cf":  # times as CF counts: in the units arraystore wrote, not ones another tool chose
        attrs = arr.attrs
        return stored == arr.dtype and counts_of(dtype, attrs.get("units"), attrs.get("calendar"))
    return encoding == reserved.get("encoding") and stored == arr.dtype


def _serializer(arr: Any) -> Any:
    codecs = list(arr.metadata.codecs)
    if codecs and isinstance(codecs[0], zarr.codecs.ShardingCodec):
        codecs = list(codecs[0].codecs)
    return next((c for c in codecs if isinstance(c, zarr.codecs.BytesCodec)), None)


def _big_endian_serializer(arr: Any) -> bool:
    """True for v3 arrays whose ``bytes`` codec stores big-endian values."""
    if arr.metadata.zarr_format != 3:
        return False
    codec = _serializer(arr)
    return codec is not None and codec.endian is not None and codec.endian.value == "big"


def _native_order(arr: Any) -> str:
    md = arr.metadata
    if md.zarr_format == 2:
        return str(md.order)
    codecs = list(md.codecs)
    if codecs and isinstance(codecs[0], zarr.codecs.ShardingCodec):
        codecs = list(codecs[0].codecs)
    ndim = len(arr.shape)
    transposed = ndim > 1 and codecs and isinstance(codecs[0], zarr.codecs.TransposeCodec)
    return "F" if transposed and tuple(codecs[0].order) == tuple(range(ndim))[::-1] else "C"
