"""The ``virtual`` backend: one array of a virtual store, opened read-only through the registry.

``arraystore.open("DST/virtual.json::/a/scan.dat")`` (kerchunk) or
``arraystore.open("DST/virtual.icechunk::/a/scan.dat")`` reads the array through its own
references (fsspec's reference file system, or icechunk), after the checks a store made by
someone else needs: every reference of the store stays inside the archive root (symbolic
links resolved; :func:`.kerchunk.read_references`), the reference file is bounded in size,
and the file behind the array still has the size and modification time recorded when it
was referenced. ``root=`` names the archive root when the archive moved. Arrays the
migration copied (:mod:`.fallback`) read from their copies. Nothing is ever written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._attrs import decode_attrs
from ..errors import ArrayNotFoundError, MetadataError, ReadOnlyError
from ..fidelity import Fidelity
from ..location import Location
from ..meta import ArrayMeta, dtype_from_json
from ..store import ArrayStore
from ._array import check_referenced_file
from ._detect import looks_virtual
from .fallback import COPIED_KEY
from .refs import VIRTUAL_KEY

__all__ = ["VirtualStore"]

class VirtualStore(ArrayStore):
    """A read-only array of a virtual store (kerchunk reference file or icechunk repository)."""

    backend: ClassVar[str] = "virtual"
    suffixes: ClassVar[tuple[str, ...]] = (".virtual.json", ".icechunk")
    fidelity: ClassVar[Fidelity] = Fidelity({})  # read-only: it stores nothing (create is refused)
    layouts: ClassVar[frozenset[str]] = frozenset({"chunked"})
    holds_attrs: ClassVar[bool] = True
    locks: ClassVar[None] = None
    supports_dimension_names: ClassVar[bool] = True
    supports_create: ClassVar[bool] = False
    _pickled_options: ClassVar[frozenset[str]] = frozenset({"root"})

    def __init__(self, location: Location, meta: ArrayMeta, array: Any, notes: list[str], options: dict[str, Any]):
        super().__init__(location, "r", meta, options=options)
        self._array = array
        self.encoding_notes = tuple(notes)

    @classmethod
    def guess_can_open(cls, location: Location) -> bool:
        """A kerchunk reference document or an icechunk repository, by content or suffix."""
        return looks_virtual(location)

    @classmethod
    def _open(  # type: ignore[override]  # backends take their own options
        cls,
        location: Location,
        mode: str,
        *,
        root: str | os.PathLike[str] | None = None,
        allow_incomplete: bool = False,
        io: str = "auto",
    ) -> VirtualStore:
        # allow_incomplete, io: accepted as every backend does; a virtual store is published whole and read by zarr
        if mode != "r":
            raise ReadOnlyError(
                f"{location}: a virtual store is read-only (its chunks are the archive's files); open it with "
                "mode='r', or materialise it with `arraystore convert STORE::/array out.zarr`"
            )
        from . import open_virtual

        store = location.file
        group = open_virtual(store, root)
        key = (location.key or "").strip("/")
        if not key:
            names = _array_names(group)
            if len(names) != 1:
                raise ArrayNotFoundError(
                    f"{store}: holds {len(names)} arrays; name one as {store}::/<array> "
                    f"(e.g. {', '.join(names[:3]) or 'none'})"
                )
            key = names[0]
        try:
            array = group[key]
        except KeyError:
            raise ArrayNotFoundError(f"{store}: no array {key!r} in this virtual store") from None
        if not hasattr(array, "shape"):
            raise ArrayNotFoundError(f"{store}::{key}: a group, not an array; name an array inside it")
        attrs = dict(array.attrs)
        notes: list[str]
        encoding = "references"
        if VIRTUAL_KEY in attrs:
            rec = attrs.pop(VIRTUAL_KEY)
            real_root = _root(store, root)
            check_referenced_file(store, key, rec, real_root)
            dtype = dtype_from_json(rec["dtype"])
            order = rec.get("order", "C")
            notes = [
                f"virtual: chunks are byte ranges of {real_root / str(rec['source'])} from byte {rec['offset']} "
                "(size and modification time checked on open)"
            ]
        elif COPIED_KEY in attrs:
            from ..backends.zarr import _describe

            rec = attrs.pop(COPIED_KEY)
            copied, _, encoding, _ = _describe(array, f"{store}::{key}")  # arraystore's Zarr encodings decoded
            attrs = {k: v for k, v in copied.attrs.items() if k != COPIED_KEY}
            dtype, order = copied.dtype, copied.order
            notes = [f"copied by the migration from {rec.get('source')}: {rec.get('reason')}"]
        else:
            raise MetadataError(f"{store}::{key}: no {VIRTUAL_KEY} or {COPIED_KEY} record; not written by arraystore")
        if tuple(array.shape) != tuple(rec.get("shape", array.shape)):
            raise MetadataError(f"{store}::{key}: the array's shape {array.shape} contradicts its record {rec['shape']}")
        if encoding == "references":  # the migration wrote the attrs in their JSON form (numpy values encoded)
            attrs = decode_attrs(attrs, f"{store}::{key} attributes")
        meta = ArrayMeta(tuple(array.shape), dtype, order, attrs)
        options = {"root": os.fspath(root)} if root is not None else {}
        out = cls(Location(store, key), meta, array, notes, options)
        out._encoding = encoding
        return out

    @classmethod
    def _create(cls, location: Location, meta: ArrayMeta, **options: Any) -> VirtualStore:
        raise ReadOnlyError(
            f"{location}: virtual stores are written by `arraystore migrate --virtual`, not created array by array"
        )

    @classmethod
    def _staging(cls, location: Location) -> Location | None:
        return None

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """The chunk shape of the virtual array."""
        return tuple(int(c) for c in self._array.chunks)

    @property
    def dimension_names(self) -> tuple[str | None, ...] | None:
        """The array's ``dimension_names``."""
        names = self._array.metadata.dimension_names
        return tuple(names) if names is not None else None

    _encoding: str = "references"

    def _read(self, sel: Any) -> np.ndarray[Any, Any]:
        out = np.asarray(self._array[sel])
        if self._encoding != "references":
            from ..backends._zarr_layout import decode

            return np.asarray(decode(out, self.dtype, self._encoding))
        return out.astype(self.dtype, copy=False)

    def _write(self, sel: Any, value: np.ndarray[Any, Any]) -> None:
        raise ReadOnlyError(f"{self.path}: a virtual store is read-only")

    def _set_attrs(self, attrs: dict[str, Any]) -> None:
        raise ReadOnlyError(f"{self.path}: a virtual store is read-only")


def _array_names(group: Any) -> list[str]:
    return sorted(name for name, node in group.members(max_depth=None) if hasattr(node, "shape"))


def _root(store: Path, root: str | os.PathLike[str] | None) -> Path:
    """The archive root the store's references resolve against (``root``, else the one recorded)."""
    if root is not None:
        return Path(root).resolve()
    if store.is_dir():
        from .verify import _recorded_icechunk_root

        return _recorded_icechunk_root(store).resolve()
    from .kerchunk import read_references

    return Path(read_references(store)["templates"]["root"][len("file://") :]).resolve()
