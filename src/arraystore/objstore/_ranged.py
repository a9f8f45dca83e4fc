"""Raw (with its sidecar) and ``.npy`` files in object storage, read-only by byte ranges.

Opening reads the metadata only: the sidecar object (raw) or the first bytes of the
``.npy`` file (its header), plus a HEAD for the object's size. Each read then fetches
one byte range: the run of whole rows (C order; columns in F order) that covers the
selection along the slowest axis, never the whole object unless asked for it. There
is no file to memory-map: ``as_memmap()`` raises NotMemoryMappableError.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from .._selection import Selection, selection_shape
from ..errors import ArrayNotFoundError, MetadataError, NotMemoryMappableError, SizeMismatchError, UnsafeInputError
from ..fidelity import Fidelity
from ..location import Location
from ..meta import ArrayMeta
from ..sidecar import MAX_SIDECAR_BYTES, Sidecar
from ..store import ArrayStore
from . import object_store, store_errors

__all__ = ["RangedStore", "exists_ranged", "open_ranged"]

#: Bytes fetched to find a ``.npy`` header (numpy's own limit on header size is 10,000).
NPY_HEAD = 65536


class RangedStore(ArrayStore):
    """A read-only raw or ``.npy`` array in an object store, read by byte ranges."""

    backend: ClassVar[str] = "raw"
    fidelity: ClassVar[Fidelity] = Fidelity.everything_exact("stored byte for byte")
    layouts: ClassVar[frozenset[str]] = frozenset({"contiguous"})
    locks: ClassVar[Any] = None
    _pickled_options: ClassVar[frozenset[str]] = frozenset({"io", "storage_options"})

    def __init__(self, location: Location, meta: ArrayMeta, *, ostore: Any, name: str, offset: int,
                 options: dict[str, Any]) -> None:
        super().__init__(location, "r", meta, options=options)
        self._ostore = ostore
        self._name = name
        self._offset = offset
        #: Bytes fetched by reads so far (not counting the metadata).
        self.bytes_fetched = 0

    @classmethod
    def _open(cls, location: Location, mode: str, **options: Any) -> RangedStore:  # pragma: no cover
        raise NotImplementedError("use open_ranged")

    @classmethod
    def _create(cls, location: Location, meta: ArrayMeta, **options: Any) -> RangedStore:  # pragma: no cover
        raise NotImplementedError("read-only")

    def _read(self, sel: Selection) -> np.ndarray[Any, Any]:
        meta = self._meta
        shape = meta.shape
        if not shape:
            return self._fetch(0, meta.itemsize).view(meta.dtype).reshape(())
        axis = 0 if meta.order == "C" else len(shape) - 1
        first = sel[axis]
        if isinstance(first, int):
            lo, hi = first, first + 1
        else:  # normalised: start, stop and a positive step, the stop possibly past the last index taken
            n = len(range(first.start, first.stop, first.step))
            lo, hi = first.start, first.start + (n - 1) * first.step + 1 if n else first.start
        stride = meta.itemsize * int(np.prod(shape)) // shape[axis] if shape[axis] else 0
        block_shape = list(shape)
        block_shape[axis] = hi - lo
        data = self._fetch(lo * stride, (hi - lo) * stride) if hi > lo else np.empty(0, np.uint8)
        block = data.view(meta.dtype).reshape(block_shape, order=meta.order)
        local = list(sel)
        local[axis] = 0 if isinstance(first, int) else slice(0, hi - lo, first.step)
        out = np.array(block[tuple(local)], order="C")
        return out.reshape(selection_shape(sel))

    def _fetch(self, start: int, length: int) -> np.ndarray[Any, Any]:
        import obstore

        if length == 0:
            return np.empty(0, np.uint8)
        with store_errors(self.path, self._options.get("storage_options")):
            got = obstore.get_range(self._ostore, self._name, start=self._offset + start, length=length)
        self.bytes_fetched += length
        return np.frombuffer(bytes(got), np.uint8)

    def _write(self, sel: Selection, value: np.ndarray[Any, Any]) -> None:  # pragma: no cover - mode is 'r'
        raise AssertionError("read-only")

    def _set_attrs(self, attrs: dict[str, Any]) -> None:  # pragma: no cover - mode is 'r'
        raise AssertionError("read-only")

    def _memmap(self) -> np.memmap[Any, Any]:
        raise NotMemoryMappableError(
            f"{self.path}: a file in an object store has no local copy to memory-map (reads fetch byte ranges "
            "over the network); read with store[...] or iter_blocks(), or download it and open the local file"
        )


class RangedNpy(RangedStore):
    """A read-only ``.npy`` file in an object store."""

    backend: ClassVar[str] = "npy"
    holds_attrs: ClassVar[bool] = False


def _split(location: Location) -> tuple[Location, str]:
    """The folder URL (where the store is rooted) and the object's name in it."""
    assert location.url is not None
    scheme, rest = location.url.split("://", 1)
    folder, _, name = rest.rpartition("/")
    if not folder or not name:
        raise ArrayNotFoundError(f"{location}: expected a URL naming an object inside a bucket (scheme://bucket/name)")
    return Location(location.file.parent, None, f"{scheme}://{folder}"), name


def _size(ostore: Any, name: str) -> int | None:
    import obstore
    import obstore.exceptions as oe

    try:
        return int(obstore.head(ostore, name)["size"])
    except (oe.NotFoundError, FileNotFoundError):
        return None


def exists_ranged(location: Location, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True when the object exists."""
    folder, name = _split(location)
    ostore = object_store(folder, storage_options)
    with store_errors(str(location), storage_options):
        return _size(ostore, name) is not None


def open_ranged(location: Location, *, npy: bool, storage_options: Mapping[str, Any] | None = None,
                **options: Any) -> RangedStore:
    """Open a ``.npy`` file (``npy=True``) or a raw file with its ``.json`` sidecar at a URL, read-only."""
    import obstore

    where = str(location)
    folder, name = _split(location)
    ostore = object_store(folder, storage_options)
    with store_errors(where, storage_options):
        size = _size(ostore, name)
        if size is None:
            raise ArrayNotFoundError(f"{where}: no such object in the store")
        if npy:
            head = bytes(obstore.get_range(ostore, name, start=0, length=min(size, NPY_HEAD)))
            meta, offset = _npy_header(head, where)
        else:
            sidecar_size = _size(ostore, name + ".json")
            if sidecar_size is None:
                raise MetadataError(
                    f"{where}: expected a sidecar object {name}.json beside it, found none; a raw file in object "
                    "storage opens with its sidecar only (download it and use `arraystore inspect`)"
                )
            if sidecar_size > MAX_SIDECAR_BYTES:
                raise UnsafeInputError(f"{where}.json: a sidecar of {sidecar_size:,} bytes, over {MAX_SIDECAR_BYTES:,}")
            try:
                doc = json.loads(bytes(obstore.get(ostore, name + ".json").bytes()))
            except (ValueError, RecursionError) as exc:
                raise MetadataError(f"{where}.json: expected a JSON object, found invalid JSON ({exc})") from None
            sidecar = Sidecar.from_dict(doc, source=f"{where}.json")
            if not sidecar.complete and not options.get("allow_incomplete"):
                from ..errors import IncompleteArrayError

                raise IncompleteArrayError(f"{where}: its sidecar says a writer did not finish it")
            meta, offset = sidecar.meta, sidecar.offset
    if size - offset != meta.nbytes:
        raise SizeMismatchError(where, meta.nbytes, max(0, size - offset), meta.itemsize, meta.shape)
    opts = {"io": options.get("io", "auto"), "storage_options": dict(storage_options) if storage_options else None}
    cls = RangedNpy if npy else RangedStore
    return cls(location, meta, ostore=ostore, name=name, offset=offset, options=opts)


def _npy_header(head: bytes, where: str) -> tuple[ArrayMeta, int]:
    f = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise MetadataError(f"{where}: expected a .npy header, found {type(exc).__name__}: {str(exc)[:200]}") from None
    if dtype.hasobject:
        raise UnsafeInputError(f"{where}: a .npy file of Python objects (pickles) is refused; it could run code")
    return ArrayMeta(tuple(shape), dtype, "F" if fortran else "C", {}), f.tell()
