"""HDF5 files in object storage, read-only, by byte ranges (``s3://bucket/run.h5::/group/ds``).

h5py opens the object through a :class:`~arraystore.objstore._rangefile.RangedFile`
(its ``fileobj`` driver): HDF5 reads the superblock, object headers and B-tree nodes
it needs as small ranges (kept in a bounded block cache) and each chunk or run of
contiguous data it reads as one range. Contiguous and chunked datasets with any filter
h5py can decode (gzip, shuffle, lzf, and plugin filters) read this way; the object is
never downloaded whole unless a read asks for all of it.

This build of h5py has no ``ros3`` driver (``h5py.registered_drivers()``), and ros3
reads only ``s3://``/``https://`` with its own credential handling, outside
arraystore's options, redaction and generation check; the file object serves every
scheme obstore serves with the same credentials as the other backends.

Every request carries ``If-Match`` with the ETag seen when the store opened: a read
after the object was replaced raises :class:`~arraystore.errors.ArrayChangedError`.
External links, external raw storage and virtual datasets are refused (they would read
other files, which have no place in a bucket). There is no file to memory-map:
``as_memmap()`` raises :class:`~arraystore.errors.NotMemoryMappableError`; writing
modes raise :class:`~arraystore.errors.ModeError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import h5py

from ..errors import ArrayStoreError, BackendError, MetadataError
from ..location import Location
from ..objstore import object_store, store_errors
from ..objstore._ranged import split_url
from ..objstore._rangefile import CACHE_BYTES, RangedFile, head
from ._hdf5_security import MAX_CHUNK_BYTES
from .hdf5 import HDF5Store

__all__ = ["RemoteHDF5Store"]


class RemoteHDF5Store(HDF5Store):
    """One dataset of an HDF5 file in an object store, read-only by byte ranges."""

    supports_memmap: ClassVar[bool] = False
    locks: ClassVar[Any] = None
    url_class: ClassVar[str | None] = None
    _pickled_options: ClassVar[frozenset[str]] = frozenset({"io", "allow_incomplete", "storage_options", "cache_bytes"})

    _reader: RangedFile

    @classmethod
    def _open_url(  # type: ignore[override]  # the options of a remote read
        cls,
        location: Location,
        mode: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        lock_timeout: float = 0.0,
        allow_incomplete: bool = False,
        allow_external: bool = False,
        allow_virtual: bool = False,
        max_chunk_bytes: int = MAX_CHUNK_BYTES,
        cache_bytes: int = CACHE_BYTES,
        io: str = "auto",
    ) -> RemoteHDF5Store:
        where = str(location)
        if allow_external or allow_virtual:
            raise BackendError(
                f"{where}: external links, external storage and virtual datasets are not followed from an HDF5 file "
                "in object storage (they name other files); drop allow_external/allow_virtual, or download the "
                "file and its sources and open them locally"
            )
        folder, name = split_url(location)
        ostore = object_store(folder, storage_options)
        reader = RangedFile(ostore, name, head(ostore, name, where, storage_options), where,
                            cache_bytes=cache_bytes, storage_options=storage_options)
        try:
            f = h5py.File(reader, "r")
        except OSError as exc:
            reader.close()
            if reader.failure is not None:
                raise reader.failure from None
            raise MetadataError(f"{where}: expected an HDF5 file, but HDF5 cannot open it ({exc})") from None
        options = {"io": io, "allow_incomplete": allow_incomplete,
                   "storage_options": dict(storage_options) if storage_options else None, "cache_bytes": cache_bytes}
        try:
            store = cls._from_file(f, location, "r", where, max_chunk_bytes=max_chunk_bytes, **options)
        except BaseException:
            reader.close()
            if reader.failure is not None:
                raise reader.failure from None
            raise
        assert isinstance(store, RemoteHDF5Store)
        store._reader = reader
        return store

    @classmethod
    def _exists_url(cls, location: Location, storage_options: Mapping[str, Any] | None = None) -> bool:
        import obstore
        import obstore.exceptions as oe

        folder, name = split_url(location)
        ostore = object_store(folder, storage_options)
        with store_errors(str(location), storage_options):
            try:
                obstore.head(ostore, name)
            except (oe.NotFoundError, FileNotFoundError):
                return False
        if location.key is None:
            return True
        try:
            cls._open_url(location, "r", storage_options=storage_options).close()
        except (ArrayStoreError, KeyError):
            return False
        return True

    @property
    def bytes_fetched(self) -> int:
        """Bytes fetched from the store since it opened, metadata included."""
        return self._reader.bytes_fetched

    @property
    def requests(self) -> int:
        """GET requests made since the store opened, metadata included."""
        return self._reader.requests

    def _version(self) -> dict[str, Any]:
        reader = getattr(self, "_reader", None)
        return {"etag": reader.etag, "size": reader.size} if reader is not None else {}

    def _check_generation(self) -> None:
        # Every request carries If-Match: a failed one left its typed error on the reader.
        failure = getattr(self, "_reader", None) and self._reader.failure
        if failure:
            self._reader.failure = None
            raise failure

    def _not_mappable_reason(self) -> str | None:
        return (
            "a file in an object store has no local copy to memory-map (reads fetch byte ranges over the "
            "network); download it and open the local file to map it"
        )

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            reader = getattr(self, "_reader", None)
            if reader is not None:
                reader.close()
