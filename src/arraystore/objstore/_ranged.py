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
from ..errors import (
    ArrayNotFoundError,
    IncompleteArrayError,
    MetadataError,
    NotMemoryMappableError,
    SizeMismatchError,
    UnsafeInputError,
)
from ..fidelity import Fidelity
from ..location import Location
from ..meta import ArrayMeta
from ..sidecar import MAX_SIDECAR_BYTES, Sidecar
from ..store import ArrayStore
from . import object_store, store_errors
from ._dialects import detect_remote
from ._rangefile import check_if_match, get_range

__all__ = ["RangedStore", "exists_ranged", "open_ranged", "split_url"]

#: Bytes fetched to find a ``.npy`` header (numpy's own limit on header size is 10,000).
NPY_HEAD = 65536


class RangedStore(ArrayStore):
    """A read-only raw or ``.npy`` array in an object store, read by byte ranges."""

    backend: ClassVar[str] = "raw"
    fidelity: ClassVar[Fidelity] = Fidelity.everything_exact("stored byte for byte")
    layouts: ClassVar[frozenset[str]] = frozenset({"contiguous"})
    locks: ClassVar[Any] = None
    _pickled_options: ClassVar[frozenset[str]] = frozenset({"io", "storage_options", "dialect"})

    def __init__(self, location: Location, meta: ArrayMeta, *, ostore: Any, name: str, offset: int,
                 options: dict[str, Any], etag: str | None = None) -> None:
        super().__init__(location, "r", meta, options=options)
        self._ostore = ostore
        self._name = name
        self._offset = offset
        self._etag = etag
        #: Bytes fetched by reads so far (not counting the metadata).
        self.bytes_fetched = 0

    @classmethod
    def _open(cls, location: Location, mode: str, **options: Any) -> RangedStore:  # pragma: no cover
        raise NotImplementedError("use open_ranged")

    @classmethod
    def _create(cls, location: Location, meta: ArrayMeta, **options: Any) -> RangedStore:  # pragma: no cover
        raise NotImplementedError("read-only")

    def _read(self, sel: Selection) -> np.ndarray[Any, Any]:
        """One range: leading storage axes with one index fixed, then the run the next axis spans."""
        meta = self._meta
        shape = meta.shape
        if not shape:
            return self._fetch(0, meta.itemsize).view(meta.dtype).reshape(())
        axes = list(range(len(shape))) if meta.order == "C" else list(range(len(shape)))[::-1]
        sshape = [shape[a] for a in axes]  # storage order: the last axis is contiguous
        ssel = [sel[a] for a in axes]
        spans = [_span(s) for s in ssel]
        strides = [int(np.prod(sshape[i + 1 :])) for i in range(len(sshape))]
        base, k = 0, 0
        while k < len(sshape) - 1 and spans[k][1] - spans[k][0] == 1:
            base += spans[k][0] * strides[k]
            k += 1
        lo, hi = spans[k]
        nbytes = (hi - lo) * strides[k] * meta.itemsize
        start = (base + lo * strides[k]) * meta.itemsize
        data = self._fetch(start, nbytes) if hi > lo else np.empty(0, np.uint8)
        block = data.view(meta.dtype).reshape([1] * k + [hi - lo] + sshape[k + 1 :])
        local: list[int | slice] = []
        for i, s in enumerate(ssel):
            first = spans[i][0] if i <= k else 0
            local.append(s - first if isinstance(s, int) else slice(s.start - first, s.stop - first, s.step))
        out = block[tuple(local)]
        if meta.order == "F":
            out = out.T  # the axes left are in storage order: reverse them back
        return np.array(out, order="C").reshape(selection_shape(sel))

    def _fetch(self, start: int, length: int) -> np.ndarray[Any, Any]:
        if length == 0:
            return np.empty(0, np.uint8)
        lo = self._offset + start
        got = get_range(self._ostore, self._name, lo, lo + length, etag=self._etag, where=self.path,
                        storage_options=self._options.get("storage_options"))
        self.bytes_fetched += length
        return np.frombuffer(got, np.uint8)

    @property
    def dialect(self) -> str | None:
        """The header dialect the metadata came from (``"envi"``, ...), or None."""
        return self._options.get("dialect_name")

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


def split_url(location: Location) -> tuple[Location, str]:
    """The folder URL (where the store is rooted) and the object's name in it."""
    assert location.url is not None
    scheme, rest = location.url.split("://", 1)
    folder, _, name = rest.rpartition("/")
    if not folder or not name:
        raise ArrayNotFoundError(f"{location}: expected a URL naming an object inside a bucket (scheme://bucket/name)")
    return Location(location.file.parent, None, f"{scheme}://{folder}"), name


def _span(s: int | slice) -> tuple[int, int]:
    """The first index a normalised selection takes and one past its last (equal when it takes none)."""
    if isinstance(s, int):
        return s, s + 1
    n = len(range(s.start, s.stop, s.step))
    return (s.start, s.start + (n - 1) * s.step + 1) if n else (s.start, s.start)


def _head(ostore: Any, name: str) -> dict[str, Any] | None:
    import obstore
    import obstore.exceptions as oe

    try:
        return dict(obstore.head(ostore, name))
    except (oe.NotFoundError, FileNotFoundError):
        return None


def exists_ranged(location: Location, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True when the object exists."""
    folder, name = split_url(location)
    ostore = object_store(folder, storage_options)
    with store_errors(str(location), storage_options):
        return _head(ostore, name) is not None


def open_ranged(location: Location, *, npy: bool, storage_options: Mapping[str, Any] | None = None,
                dialect: str | None = None, io: str = "auto", allow_incomplete: bool = False) -> RangedStore:
    """Open a ``.npy`` file (``npy=True``) or a raw file at a URL, read-only.

    A raw file opens with its ``.json`` sidecar, else with a header dialect found beside it
    (ENVI, EHdr, MetaImage, IDX; ``dialect=`` names one); ``location`` may name the header.
    """
    import obstore

    where = str(location)
    folder, name = split_url(location)
    ostore = object_store(folder, storage_options)
    options = {"allow_incomplete": allow_incomplete}  # what the sidecar reader takes
    found_dialect: str | None = None
    with store_errors(where, storage_options):
        found = _head(ostore, name)
        if found is None:
            raise ArrayNotFoundError(f"{where}: no such object in the store")
        size = int(found["size"])
        if npy:
            head = bytes(obstore.get_range(ostore, name, start=0, length=min(size, NPY_HEAD)))
            meta, offset = _npy_header(head, where)
        else:
            sidecar = _head(ostore, name + ".json") if dialect is None else None
            if sidecar is not None:
                meta, offset = _read_sidecar(ostore, name, int(sidecar["size"]), where, options)
            else:
                header = detect_remote(ostore, name, folder_url=str(folder.url), dialect=dialect,
                                       storage_options=storage_options)
                if header is None:
                    raise MetadataError(
                        f"{where}: expected a sidecar object {name}.json (or a header such as ENVI .hdr, MetaImage "
                        ".mhd) beside it, found none; a raw file alone cannot say what it holds (download it and "
                        "use `arraystore inspect`)"
                    )
                meta, offset, found_dialect = header.meta, header.offset, header.dialect
                if header.data_name != name:  # opened by its header: the store is the data object's
                    name = header.data_name
                    location = Location(location.file.parent / name, None, f"{folder.url}/{name}")
                    where = str(location)
                    found = _head(ostore, name)
                    if found is None:  # pragma: no cover - the shadow folder saw it a moment ago
                        raise ArrayNotFoundError(f"{where}: no such object in the store")
                    size = int(found["size"])
    if size - offset != meta.nbytes:
        raise SizeMismatchError(where, meta.nbytes, max(0, size - offset), meta.itemsize, meta.shape)
    check_if_match(ostore, name, found, where, storage_options)
    opts = {"io": io, "storage_options": dict(storage_options) if storage_options else None,
            "dialect_name": found_dialect, "dialect": dialect}
    cls = RangedNpy if npy else RangedStore
    return cls(location, meta, ostore=ostore, name=name, offset=offset, options=opts, etag=found.get("e_tag"))


def _read_sidecar(ostore: Any, name: str, size: int, where: str, options: Mapping[str, Any]) -> tuple[ArrayMeta, int]:
    import obstore

    if size > MAX_SIDECAR_BYTES:
        raise UnsafeInputError(f"{where}.json: a sidecar of {size:,} bytes, over {MAX_SIDECAR_BYTES:,}")
    try:
        doc = json.loads(bytes(obstore.get(ostore, name + ".json").bytes()))
    except (ValueError, RecursionError) as exc:
        raise MetadataError(f"{where}.json: expected a JSON object, found invalid JSON ({exc})") from None
    sidecar = Sidecar.from_dict(doc, source=f"{where}.json")
    if not sidecar.complete and not options.get("allow_incomplete"):
        raise IncompleteArrayError(f"{where}: its sidecar says a writer did not finish it")
    return sidecar.meta, sidecar.offset


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
