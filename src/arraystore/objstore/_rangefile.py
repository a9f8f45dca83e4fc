"""A read-only, seekable file over one object, read by byte ranges through a bounded block cache.

h5py opens a Python file object with its ``fileobj`` driver; :class:`RangedFile` is
that object for a file in a bucket. Small reads (HDF5's object headers, B-tree nodes,
heaps) are served from blocks of :data:`BLOCK_BYTES` fetched once and kept in an LRU
cache of at most ``cache_bytes``; a read of at least :data:`DIRECT_BYTES` (a chunk, a
run of contiguous data) is fetched as exactly that range and not cached. Nothing ever
fetches the whole object unless a read asks for all of it.

Every request carries ``If-Match`` with the ETag the object had when it was opened, so
a request made after the object was replaced fails (412) and becomes
:class:`~arraystore.errors.ArrayChangedError`: every byte a reader returns, cached or
fetched, belongs to the generation it opened. A store that ignores ``If-Match`` (s3rver does)
would let a mixture through silently: :func:`check_if_match` refuses it at open, once per
bucket and process.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ..errors import ArrayChangedError, ArrayNotFoundError, ArrayStoreError, ObjectStoreUnsupportedError
from . import store_errors, trusts_conditions

__all__ = ["BLOCK_BYTES", "DIRECT_BYTES", "RangedFile", "check_if_match", "get_range", "head"]

#: Size of a cached block (a small read fetches the aligned block around it).
BLOCK_BYTES = 64 * 1024
#: Reads of at least this many bytes are fetched as they are, without the cache.
DIRECT_BYTES = 256 * 1024
#: Default bound of the block cache.
CACHE_BYTES = 4 * 1024 * 1024


def head(ostore: Any, name: str, where: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The object's metadata (``size``, ``e_tag``...); ArrayNotFoundError when it does not exist."""
    import obstore
    import obstore.exceptions as oe

    with store_errors(where, storage_options):
        try:
            return dict(obstore.head(ostore, name))
        except (oe.NotFoundError, FileNotFoundError):
            raise ArrayNotFoundError(f"{where}: no such object in the store") from None


def check_if_match(ostore: Any, name: str, meta: Mapping[str, Any], where: str,
                   storage_options: Mapping[str, Any] | None = None) -> None:
    """Refuse a store that ignores ``If-Match`` on a GET: one request for two bytes with an ETag no object has.

    Raises
    ------
    ObjectStoreUnsupportedError
        The store answered that request with data instead of refusing it (412).
    """
    if not meta.get("e_tag") or trusts_conditions(where, "get", storage_options):
        return
    import obstore
    import obstore.exceptions as oe

    options: dict[str, Any] = {"if_match": '"arraystore-probe-no-such-etag"'}
    if int(meta.get("size", 0)) > 0:
        options["range"] = (0, min(2, int(meta["size"])))  # not bytes=0-0: s3rver takes that for the whole object
    with store_errors(where, storage_options):
        try:
            obstore.get(ostore, name, options=options).bytes()  # type: ignore[arg-type]
        except oe.PreconditionError:
            trusts_conditions(where, "get", storage_options, honoured=True)
            return
    raise ObjectStoreUnsupportedError(
        f"{where}: the object store ignores If-Match on a GET, which arraystore's ranged reads need to never return a "
        "mixture of an object and its replacement. Expected a store that honours it (as AWS S3, MinIO, Google Cloud "
        "Storage and Azure do); download the file and open the local copy"
    )


def get_range(ostore: Any, name: str, start: int, end: int, *, etag: str | None, where: str,
              storage_options: Mapping[str, Any] | None = None) -> bytes:
    """Bytes ``[start, end)`` of the object, of the generation whose ETag is ``etag`` (``If-Match``).

    Raises
    ------
    ArrayChangedError
        The object was replaced or removed since ``etag`` was read, or returned another length.
    """
    import obstore
    import obstore.exceptions as oe

    options: dict[str, Any] = {"range": (start, end)}
    if etag:  # every byte returned is of the generation opened: a replaced object fails the request
        options["if_match"] = etag
    with store_errors(where, storage_options):
        try:
            data = bytes(obstore.get(ostore, name, options=options).bytes())  # type: ignore[arg-type]
        except (oe.PreconditionError, oe.NotFoundError, FileNotFoundError):
            raise ArrayChangedError(
                f"{where}: the object was replaced or removed after this store opened it; reading on "
                "could mix two versions. Open it again"
            ) from None
    if len(data) != end - start:
        raise ArrayChangedError(
            f"{where}: expected {end - start} bytes at offset {start}, the store returned {len(data)}; "
            "the object changed after this store opened it. Open it again"
        )
    return data


class RangedFile(io.RawIOBase):
    """A read-only binary file over the object ``name`` of ``ostore``, of ``size`` bytes.

    Parameters
    ----------
    ostore
        An obstore store.
    name
        The object's path in the store.
    meta
        The object's metadata from :func:`head` (its ``size`` and ``e_tag``).
    where
        The location, for messages.
    cache_bytes
        Bound of the block cache.
    storage_options
        Passed to the error mapping (its secrets are redacted from messages).
    """

    def __init__(self, ostore: Any, name: str, meta: Mapping[str, Any], where: str, *,
                 cache_bytes: int = CACHE_BYTES, storage_options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        check_if_match(ostore, name, meta, where, storage_options)
        self._ostore = ostore
        self._name = name
        self.size = int(meta["size"])
        self.etag: str | None = meta.get("e_tag")
        self._where = where
        self._options = storage_options
        self._pos = 0
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_blocks = max(1, cache_bytes // BLOCK_BYTES)
        #: The typed error of the last failed read (h5py turns it into an OSError on its way up).
        self.failure: ArrayStoreError | None = None
        #: GET requests made and bytes they fetched.
        self.requests = 0
        self.bytes_fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        try:
            return self._readinto(buffer)
        except ArrayStoreError as exc:
            self.failure = exc
            raise

    def _readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self.size - self._pos))
        if n == 0:
            return 0
        start = self._pos
        if n >= DIRECT_BYTES:
            view[:n] = self._get(start, start + n)
        else:
            done = 0
            while done < n:
                block = (start + done) // BLOCK_BYTES
                data = self._block(block)
                lo = start + done - block * BLOCK_BYTES
                take = min(n - done, len(data) - lo)
                view[done : done + take] = data[lo : lo + take]
                done += take
        self._pos = start + n
        return n

    def _block(self, index: int) -> bytes:
        data = self._cache.get(index)
        if data is not None:
            self._cache.move_to_end(index)
            return data
        lo = index * BLOCK_BYTES
        data = self._get(lo, min(self.size, lo + BLOCK_BYTES))
        self._cache[index] = data
        while len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)
        return data

    def _get(self, start: int, end: int) -> bytes:
        data = get_range(self._ostore, self._name, start, end, etag=self.etag, where=self._where,
                         storage_options=self._options)
        self.requests += 1
        self.bytes_fetched += len(data)
        return data

    def close(self) -> None:
        self._cache.clear()
        super().close()
