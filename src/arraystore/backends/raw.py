"""Raw backend: a data file of bare bytes plus arraystore's JSON sidecar (``frames.dat.json``).

Files without a sidecar open with ``meta=ArrayMeta(...)`` (and ``write_sidecar=True``
records it), or through a header dialect (ENVI, EHdr, MetaImage, IDX) found beside them.
``create(..., header="envi")`` also writes an ENVI header (``frames.dat.hdr``) that GDAL,
QGIS, spectral and ENVI read, published with the data (see :mod:`arraystore.dialects.envi_write`).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from .. import _fsutil
from .._lock import writer_active
from ..errors import IncompleteArrayError, MetadataError, ModeError, ReadOnlyError
from ..meta import ArrayMeta, Order
from ..registry import Location
from ..sidecar import Sidecar, read_sidecar, sidecar_path, write_sidecar
from ._mapped import MappedFileStore, check_size, preallocate
from ._signatures import raw_side_evidence

__all__ = ["RawStore"]


class RawStore(MappedFileStore):
    """Raw bytes + JSON sidecar. See :mod:`arraystore.sidecar` for the sidecar format."""

    backend: ClassVar[str] = "raw"
    suffixes: ClassVar[tuple[str, ...]] = (".dat", ".raw", ".bin")
    opens_with_meta: ClassVar[bool] = True

    @classmethod
    def storage_order(cls, order: Order, *, header: str | None = None, **options: Any) -> Order:
        """``order``, except ``"C"`` with an ENVI header (ENVI describes row-major data only)."""
        return "C" if header is not None else order

    @classmethod
    def guess_can_open(cls, location: Location) -> bool:
        return super().guess_can_open(location) or raw_side_evidence(location)

    def _reference_options(self) -> dict[str, Any]:
        options = super()._reference_options()
        if self._sidecar is None and self.dialect is None:  # opened with meta=: the file alone cannot say
            options.update(meta=self.meta, offset=self.offset, use_sidecar=False)
        return options

    def __init__(
        self, location: Location, mode: str, meta: ArrayMeta, offset: int, *, sidecar: Sidecar | None, **options: Any
    ):
        super().__init__(location, mode, meta, offset, **options)
        self._sidecar = sidecar  # None when the metadata is not ours (meta= or a dialect)
        self._dirty = False

    def stored_bytes(self) -> int | None:
        """Bytes of the data file and of its sidecar, when there is one."""
        if self._location.remote:
            return None
        data = _fsutil.tree_bytes(self._location.file)
        side = _fsutil.tree_bytes(sidecar_path(self._location.file))
        return None if data is None else data + (side or 0)

    @property
    def sidecar(self) -> Sidecar | None:
        """The sidecar as read (or as it will be written), or None for foreign metadata."""
        return self._sidecar

    @property
    def complete(self) -> bool:
        """The sidecar's ``complete`` flag (True for foreign metadata)."""
        return self._sidecar.complete if self._sidecar is not None else True

    @property
    def dialect(self) -> str | None:
        """The header dialect the metadata came from (``"envi"``, ...), or None."""
        return self._options.get("dialect_name")

    @classmethod
    def _open(  # type: ignore[override]  # backends take their own options
        cls,
        location: Location,
        mode: str,
        *,
        meta: ArrayMeta | None = None,
        offset: int = 0,
        write_sidecar: bool = False,
        allow_incomplete: bool = False,
        dialect: str | None = None,
        use_sidecar: bool = True,
        io: str = "auto",
        durable: bool = False,
    ) -> RawStore:
        cls._single_array(location)
        data = str(location.file)
        if dialect is None and use_sidecar:
            _finish_publish(data)
        # use_sidecar=False: a legacy JSON file may sit where our sidecar would (scan.raw.json)
        sidecar = read_sidecar(data) if dialect is None and use_sidecar else None
        options: dict[str, Any] = {"io": io, "durable": durable, "allow_incomplete": allow_incomplete}
        if meta is not None:
            if sidecar is not None and (sidecar.meta.shape, sidecar.meta.dtype, sidecar.meta.order, sidecar.offset) != (
                meta.shape,
                meta.dtype,
                meta.order,
                offset,
            ):
                raise MetadataError(
                    f"{data}: meta= says shape {meta.shape} {meta.dtype.str} order {meta.order} offset {offset}, "
                    f"but its sidecar says shape {sidecar.meta.shape} {sidecar.meta.dtype.str} order "
                    f"{sidecar.meta.order} offset {sidecar.offset}; drop meta= to trust the sidecar, or fix it"
                )
            if write_sidecar and mode == "c":
                raise ModeError(
                    f"{data}: write_sidecar=True writes a file, and mode 'c' (copy-on-write) never touches one; "
                    "record the sidecar with mode='r' or 'r+' first"
                )
            if sidecar is None and write_sidecar:
                sidecar = Sidecar(meta, offset)
                check_size(data, offset, meta)
                write_sidecar_file(data, sidecar)
        elif sidecar is not None:
            meta, offset = sidecar.meta, sidecar.offset
        else:
            parsed = _find_dialect(data, dialect)
            if parsed is None:
                raise MetadataError(
                    f"{data}: expected a sidecar {sidecar_path(data).name} (or a header such as ENVI .hdr, "
                    "MetaImage .mhd) giving its dtype and shape, found none; a raw file alone cannot say what it "
                    "holds. Run `arraystore inspect` on it, then open it with meta=ArrayMeta(shape, dtype) "
                    "(and write_sidecar=True to record it)"
                )
            meta, offset = parsed.meta, parsed.offset
            data = str(parsed.data_path)
            location = Location(parsed.data_path)
            options["dialect_name"] = parsed.dialect
        check_size(data, offset, meta)
        if sidecar is not None and not sidecar.complete and not allow_incomplete:
            # In a writable mode this process already holds the writer lock: no one else can.
            if mode in ("r", "c") and writer_active(data):
                raise IncompleteArrayError(
                    f"{data}: another process is writing it right now (its sidecar says incomplete and it holds "
                    "the writer lock); wait for it to close, or pass allow_incomplete=True to read it anyway"
                )
            raise IncompleteArrayError(
                f"{data}: its sidecar says the data is incomplete and no process holds its writer lock: the "
                "writer that changed it is gone without closing it (crash or kill?); re-create it, resume the "
                "writer, or pass allow_incomplete=True to read what it holds"
            )
        return cls(location, mode, meta, offset, sidecar=sidecar, **options)

    @classmethod
    def _create(  # type: ignore[override]  # backends take their own options
        cls,
        location: Location,
        meta: ArrayMeta,
        *,
        chunks: Any = None,
        compression: Any = None,
        durable: bool = False,
        io: str = "auto",
        header: str | None = None,
    ) -> RawStore:
        cls._single_array(location, chunks, compression)
        path = str(location.file)
        envi = _envi_options(header, meta, path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            preallocate(fd, meta.nbytes, path)
        finally:
            os.close(fd)
        return cls(location, "w+", meta, 0, sidecar=Sidecar(meta, 0), io=io, durable=durable, **envi)

    @classmethod
    def _reopen_staged(cls, location: Location, meta: ArrayMeta, **options: Any) -> RawStore | None:
        # A staged raw file has no sidecar yet: its metadata is the one asked for.
        envi = _envi_options(options.get("header"), meta, str(location.file))
        try:
            check_size(str(location.file), 0, meta)
        except MetadataError:
            return None
        return cls(
            location,
            "w+",
            meta,
            0,
            sidecar=Sidecar(meta, 0),
            io=options.get("io", "auto"),
            durable=options.get("durable", False),
            **envi,
        )

    def _before_write(self) -> None:
        if self._mode == "c":  # copy-on-write: writes stay in this process's memory, files are untouched
            return
        if not self._dirty:
            if self._sidecar is not None and self._staged is None:
                # Until close (or a durable flush), the data on disk may be half-written.
                marked = Sidecar(self._meta, self._offset, complete=False, extra=self._sidecar.extra)
                write_sidecar_file(self._data_file(), marked)  # a full disk stops here, data untouched
                self._sidecar = marked
            self._dirty = True

    def _flush(self, durable: bool) -> None:
        super()._flush(durable)
        if durable and self._dirty and self._staged is None:
            self._mark_complete()

    def _close(self) -> None:
        super()._close()
        if self._mode in ("r+", "w+", "w-") and self._dirty and self._staged is None and not self._abandoned:
            self._mark_complete()

    def _mark_complete(self) -> None:
        if self._sidecar is not None:
            self._sidecar = Sidecar(self._meta, self._offset, complete=True, extra=self._sidecar.extra)
            write_sidecar_file(self._data_file(), self._sidecar, durable=bool(self._options.get("durable")))
        self._dirty = False

    def _set_attrs(self, attrs: dict[str, Any]) -> None:
        meta = self._meta.replace(attrs=attrs)
        if self._sidecar is None:
            raise MetadataError(
                f"{self.path}: its metadata comes from a foreign header; attrs cannot be stored without an "
                "arraystore sidecar (convert the array, or open it with meta=..., write_sidecar=True)"
            )
        self._sidecar = Sidecar(
            meta, self._offset, self._sidecar.complete, self._sidecar.checksum, extra=self._sidecar.extra
        )
        if self._staged is None:
            write_sidecar_file(self._data_file(), self._sidecar)

    def set_checksum(self, checksum: dict[str, str]) -> None:
        """Record a content checksum in the sidecar."""
        self._check_writable()
        if self._mode == "c":
            raise ReadOnlyError(f"{self.path}: a checksum cannot be recorded in copy-on-write mode 'c'; open with 'r+'")
        if self._sidecar is not None:
            s = self._sidecar
            self._sidecar = Sidecar(
                s.meta.replace(attrs=self._meta.attrs), s.offset, s.complete, checksum, extra=s.extra
            )
            if self._staged is None:
                write_sidecar_file(self._data_file(), self._sidecar)

    @property
    def recorded_checksum(self) -> dict[str, str] | None:
        """The checksum recorded in the sidecar, if any."""
        return dict(self._sidecar.checksum) if self._sidecar and self._sidecar.checksum else None

    def _publish(self, final: Location, durable: bool) -> None:
        assert self._sidecar is not None and self._staged is not None
        done = Sidecar(self._meta, 0, complete=True, checksum=self._sidecar.checksum, extra=self._sidecar.extra)
        # Every write that needs space happens before anything is published: the final
        # sidecar beside the staged data, then the "incomplete" mark over an old
        # sidecar (which must never describe the new bytes). A full disk there leaves
        # the destination as it was. Only renames follow.
        staged = self._staged[0].file
        interleave = self._options.get("envi_interleave")
        try:
            write_sidecar_file(str(staged), done, durable=durable)
            if interleave is not None:
                from ..dialects.envi_write import envi_fill_value, envi_header_text

                fill = envi_fill_value(self._meta.attrs, self._meta.dtype)
                text = envi_header_text(self._meta.shape, self._meta.dtype, interleave, 0, fill)
                _fsutil.atomic_write_bytes(envi_path(staged), text.encode("ascii"), durable=durable, like=staged)
            if sidecar_path(final.file).exists():
                write_sidecar_file(str(final.file), Sidecar(self._meta, 0, complete=False), durable=durable)
            # A header that described the old bytes must not describe the new ones, not even for a moment.
            _remove_own_envi_header(final.file)
        except BaseException:
            _fsutil.remove_path(sidecar_path(staged))
            _fsutil.remove_path(envi_path(staged))
            raise
        super()._publish(final, durable)
        if _fsutil._replace_hook is not None:
            _fsutil._replace_hook("raw data placed")
        _fsutil.replace_path(sidecar_path(staged), sidecar_path(final.file), durable=durable)
        if interleave is not None:  # the header last: never a header without its complete data
            _fsutil.replace_path(envi_path(staged), envi_path(final.file), durable=durable)
        self._sidecar = done

    @classmethod
    def _remove(cls, location: Location) -> None:
        _fsutil.remove_path(location.file)
        _fsutil.remove_path(sidecar_path(location.file))
        _remove_own_envi_header(location.file)

    @classmethod
    def _exists(cls, location: Location) -> bool:
        if location.file.is_file():
            _finish_publish(str(location.file))
            return True
        return False


def _finish_publish(data: str) -> None:
    """Finish a publish that a kill cut between renaming the data into place and renaming its sidecar.

    :meth:`RawStore._publish` writes the complete sidecar beside the staged data
    (``X.partial.json``) before it renames anything, then renames ``X.partial`` to ``X``,
    then the sidecar. Finding that complete sidecar with the staged data gone, ``X`` of
    exactly the size it describes and no writer holding ``X``'s lock means the kill came
    between the renames: the sidecar (and an ENVI header written with it) is renamed into
    place, as the killed writer would have. In any other state nothing is touched; ``X``
    then opens as before (no sidecar, or one that says incomplete) and says why.
    """
    staged = _fsutil.partial_path(data)
    staged_sidecar = sidecar_path(staged)
    if not os.path.lexists(staged_sidecar) or os.path.lexists(staged) or writer_active(data):
        return
    try:
        sidecar = read_sidecar(staged)
        if sidecar is None or not sidecar.complete or sidecar.offset != 0:
            return
        check_size(data, 0, sidecar.meta)
        _fsutil.replace_path(staged_sidecar, sidecar_path(data), durable=True)
        if os.path.lexists(envi_path(staged)):
            _fsutil.replace_path(envi_path(staged), envi_path(data), durable=True)
    except (MetadataError, OSError):
        return  # not the state a killed publish leaves, or another process finished it first


def envi_path(data: str | os.PathLike[str]) -> str:
    """Where the ENVI header of a raw file goes: ``<data>.hdr`` (GDAL, spectral and ENVI look there)."""
    return f"{os.fspath(data)}.hdr"


def _envi_options(header: str | None, meta: ArrayMeta, where: str) -> dict[str, Any]:
    """The store options of ``header=`` (checked: nothing is created for an array ENVI cannot describe)."""
    if header is None:
        return {}
    from ..dialects.envi_write import check_envi, check_header_choice, envi_interleave

    check_header_choice(header)
    check_envi(meta.shape, meta.dtype, where.removesuffix(".partial"))
    return {"envi_interleave": envi_interleave(header, len(meta.shape))}


def _remove_own_envi_header(data: str | os.PathLike[str]) -> None:
    """Remove an ENVI header arraystore wrote beside ``data`` (someone else's is left alone)."""
    from ..dialects.envi_write import WRITTEN_BY

    path = envi_path(data)
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return
    if WRITTEN_BY.encode() in head:
        _fsutil.remove_path(path)


def write_sidecar_file(data: str, sidecar: Sidecar, *, durable: bool = True) -> None:
    """Write a sidecar; a full disk becomes StorageFullError."""
    try:
        write_sidecar(data, sidecar, durable=durable)
    except OSError as exc:
        _fsutil.raise_if_full(exc, data, "writing the sidecar of")
        raise


def _find_dialect(data: str, dialect: str | None) -> Any:
    try:
        from .. import dialects
    except ImportError:  # pragma: no cover - dialects ship with arraystore
        return None
    return dialects.detect(data, dialect)
