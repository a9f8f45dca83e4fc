"""Npy backend: NumPy's ``.npy`` format (versions 1.0, 2.0, 3.0), memory-mapped.

The header is read with numpy's own functions and validated (no object arrays,
no pickles, a size that matches the header) before anything is mapped.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import tokenize
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.lib import format as npformat

from .. import _fsutil
from .._fsutil import raise_if_full
from .._lock import lock_open_file, writer_active
from ..errors import ArrayStoreError, BackendError, IncompleteArrayError, MetadataError, UnsafeInputError
from ..meta import ArrayMeta
from ..registry import Location
from ._mapped import MappedFileStore, check_size
from ._signatures import npy_signature

__all__ = ["NpyStore", "StagedWhole", "incomplete_marker", "read_npy_header"]

# numpy 2 keeps the implementation (with the version-3.0 helpers) in a private module.
_fmt_impl: Any = getattr(np.lib, "_format_impl", npformat)

#: numpy's own default cap on header size (``max_header_size``).
MAX_HEADER_SIZE = 10000


def read_npy_header(path: str) -> tuple[ArrayMeta, int, tuple[int, int]]:
    """Read and validate a ``.npy`` header without reading the data.

    Returns
    -------
    meta, offset, version

    Raises
    ------
    MetadataError
        Not a ``.npy`` file, an unknown version, or a malformed or truncated header.
    UnsafeInputError
        Object arrays (which ``np.load`` would unpickle) and headers over numpy's size cap.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.pread(fd, _CACHED_HEADER_BYTES, 0)
    finally:
        os.close(fd)
    end = _header_end(head)
    if end is not None:
        try:  # the same header bytes always parse the same way: parsed once per process
            shape, fortran, dtype, version = _parse_cached(head[:end])
        except ArrayStoreError:
            pass  # parsed again below, for the error that names the file
        else:
            return ArrayMeta(shape, dtype, "F" if fortran else "C"), end, version
    with open(path, "rb") as f:
        shape, fortran, dtype, version = _parse_header(f, path)
        offset = f.tell()
    return ArrayMeta(shape, dtype, "F" if fortran else "C"), offset, version


#: Headers of at most this many bytes (all but arrays with huge structured dtypes) are parsed once per
#: process and remembered by their bytes (:func:`_parse_cached`).
_CACHED_HEADER_BYTES = 4096


def _header_end(head: bytes) -> int | None:
    """Where the data start after the header at the start of ``head``; None when ``head`` does not hold
    a whole header of a known version (then the file is parsed the slow way, which says what is wrong)."""
    if len(head) < 12 or head[:6] != b"\x93NUMPY":
        return None
    if head[6] == 1 and head[7] == 0:
        end = 10 + int.from_bytes(head[8:10], "little")
    elif head[6] in (2, 3) and head[7] == 0:
        end = 12 + int.from_bytes(head[8:12], "little")
    else:
        return None
    return end if end <= len(head) else None


@functools.lru_cache(maxsize=256)
def _parse_cached(header: bytes) -> tuple[tuple[int, ...], bool, np.dtype[Any], tuple[int, int]]:
    return _parse_header(BytesIO(header), "(.npy header)")


def _parse_header(f: Any, path: str) -> tuple[tuple[int, ...], bool, np.dtype[Any], tuple[int, int]]:
    """Shape, Fortran order, dtype and version of the header ``f`` is positioned at."""
    try:
        version = npformat.read_magic(f)
    except ValueError as exc:
        raise MetadataError(
            f"{path}: expected a .npy file (magic \\x93NUMPY and version 1, 2 or 3): {exc}"
        ) from None
    try:
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(f, max_header_size=MAX_HEADER_SIZE)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(f, max_header_size=MAX_HEADER_SIZE)
        elif version == (3, 0):  # 2.0's layout with a UTF-8 header; numpy reads it with a private helper
            shape, fortran, dtype = _fmt_impl._read_array_header(f, version, max_header_size=MAX_HEADER_SIZE)
        else:
            raise MetadataError(f"{path}: unsupported .npy version {version}; expected 1.0, 2.0 or 3.0")
    except ValueError as exc:
        if "max_header_size" in str(exc) or "Header info length" in str(exc):
            raise UnsafeInputError(
                f"{path}: the .npy header is larger than numpy's cap of {MAX_HEADER_SIZE:,} bytes; "
                "such headers can take very long to parse, so the file is refused"
            ) from None
        raise MetadataError(f"{path}: malformed .npy header: {exc}") from None
    except (EOFError, SyntaxError, TypeError, KeyError, RecursionError, MemoryError, tokenize.TokenError) as exc:
        raise MetadataError(f"{path}: malformed or truncated .npy header: {exc!r}") from None
    if dtype.hasobject:
        raise UnsafeInputError(
            f"{path}: the .npy file holds Python objects (dtype {dtype}); loading it would unpickle "
            "arbitrary code, so arraystore refuses it. Load it with np.load(allow_pickle=True) only if you trust it"
        )
    return tuple(shape), bool(fortran), dtype, version


def _write_header(f: Any, header: dict[str, Any]) -> None:
    """Write the oldest header version that can hold ``header`` (1.0, else 2.0, else 3.0)."""
    try:
        npformat.write_array_header_1_0(f, header)
        return
    except ValueError:  # header longer than 65535 bytes
        pass
    f.seek(0)
    f.truncate(0)
    try:
        npformat.write_array_header_2_0(f, header)
    except UnicodeEncodeError:  # non-latin-1 field names need 3.0
        f.seek(0)
        f.truncate(0)
        _fmt_impl._write_array_header(f, header, (3, 0))


@functools.lru_cache(maxsize=256)
def _header_bytes(dtype: np.dtype[Any], fortran: bool, shape: tuple[int, ...]) -> bytes:
    """The header :func:`_write_header` writes for this layout, remembered (a migration writes many alike)."""
    f = BytesIO()
    _write_header(f, {"descr": npformat.dtype_to_descr(dtype), "fortran_order": fortran, "shape": shape})
    return f.getvalue()


@functools.lru_cache(maxsize=256)
def _meta_of(shape: tuple[int, ...], dtype: np.dtype[Any], fortran: bool) -> ArrayMeta:
    """The (immutable) layout of a header read back, made and checked once per layout (a migration writes many
    alike)."""
    return ArrayMeta(shape, dtype, "F" if fortran else "C")


def _read_back(fd: int, path: str | os.PathLike[str], size: int) -> tuple[ArrayMeta, np.ndarray[Any, Any]]:
    """The layout and the data of the ``.npy`` file open at ``fd`` (``size`` bytes long), read back.

    Its header is parsed and validated as :func:`read_npy_header` does (numpy's own
    functions); a file of another size than ``size`` is refused.
    """
    raw = os.pread(fd, size + 1, 0)
    end = _header_end(raw)
    if end is not None:
        try:
            shape, fortran, dtype, _version = _parse_cached(raw[:end])
        except ArrayStoreError:
            end = None
    if end is None:
        f = BytesIO(raw)
        shape, fortran, dtype, _version = _parse_header(f, str(path))
        end = f.tell()
    meta = _meta_of(shape, dtype, fortran)
    if len(raw) != end + meta.nbytes or len(raw) != size:
        raise MetadataError(
            f"{path}: read back {len(raw):,} bytes, expected {size:,} ({end:,} of header and {meta.nbytes:,} of "
            "data): the file was changed while it was written; nothing was published"
        )
    data = np.ndarray(meta.shape, meta.dtype, buffer=raw, offset=end, order=meta.order)
    return meta, data


def _pwrite_all(fd: int, data: Any, offset: int) -> None:
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def _pwritev_all(fd: int, head: bytes, view: memoryview) -> None:
    """``head`` then ``view`` from the start of ``fd``, in one ``pwritev`` (the rest, if it writes less, as
    :func:`_pwrite_all` does)."""
    done = os.pwritev(fd, [head, view], 0) if hasattr(os, "pwritev") else 0
    if done < len(head):
        _pwrite_all(fd, memoryview(head)[done:], done)
        done = len(head)
    _pwrite_all(fd, view[done - len(head):], done)


def incomplete_marker(path: str | os.PathLike[str]) -> Path:
    """``a.npy`` -> ``a.npy.incomplete``: present while a writer has changed the file and not closed it."""
    p = Path(path)
    return p.with_name(p.name + ".incomplete")


def _remove_marker(path: Path) -> None:
    """Remove ``path``'s incomplete marker if there is one (one ``unlink`` when it is a file or absent)."""
    try:
        os.unlink(f"{path}.incomplete")
    except FileNotFoundError:
        pass
    except OSError:  # a folder, or not ours to remove: as remove_path does
        _fsutil.remove_path(incomplete_marker(path))


class StagedWhole:
    """A checked staging file of :meth:`NpyStore._write_whole` (``defer=``), open and locked until it is
    renamed into place (:meth:`publish`) or removed (:meth:`discard`); exactly one of the two, once."""

    def __init__(self, fd: int, staged: Path, final: Path) -> None:
        self.fd, self.staged, self.final = fd, staged, final

    def publish(self, durable: bool = False) -> None:
        """Rename the staging file over the final name (then fsync its folder when ``durable``)."""
        published = False
        try:
            _fsutil.replace_path(self.staged, self.final, durable=durable)
            published = True
            _remove_marker(self.final)
        finally:
            if not published:
                _fsutil.remove_path(self.staged)
            os.close(self.fd)

    def discard(self) -> None:
        """Remove the staging file: nothing is published."""
        try:
            _fsutil.remove_path(self.staged)
        finally:
            os.close(self.fd)


MARKER_FORMAT = "arraystore.npy-incomplete"


class NpyStore(MappedFileStore):
    """A ``.npy`` file, memory-mapped (or read in large blocks on network file systems).

    The ``.npy`` format has no place to say "being written". So that a writer killed
    in the middle of an ``r+`` session does not leave torn rows that open as complete,
    the first write of such a session first writes (durably) a marker file
    ``<name>.npy.incomplete`` beside it; a clean ``close()`` removes it. An open that
    finds the marker raises :class:`~arraystore.errors.IncompleteArrayError` (saying
    whether the writer is still alive, by its lock) unless ``allow_incomplete=True``.
    """

    backend: ClassVar[str] = "npy"
    suffixes: ClassVar[tuple[str, ...]] = (".npy",)
    holds_attrs: ClassVar[bool] = False
    writes_whole_files: ClassVar[bool] = True
    _npy_header: ClassVar[bool] = True

    @classmethod
    def guess_can_open(cls, location: Location) -> bool:
        return super().guess_can_open(location) or npy_signature(location)

    def __init__(self, *args: Any, complete: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._complete = complete
        self._dirty = False

    @property
    def complete(self) -> bool:
        """False when the file carries an incomplete marker (opened with ``allow_incomplete=True``)."""
        return self._complete

    @classmethod
    def _open(  # type: ignore[override]  # backends take their own options
        cls, location: Location, mode: str, *, io: str = "auto", durable: bool = False, allow_incomplete: bool = False
    ) -> NpyStore:
        cls._single_array(location)
        path = str(location.file)
        meta, offset, _version = read_npy_header(path)
        check_size(path, offset, meta)
        complete = not os.path.exists(path + ".incomplete")  # incomplete_marker(path)
        if not complete and not allow_incomplete:
            marker = incomplete_marker(path)
            if writer_active(path):
                raise IncompleteArrayError(
                    f"{path}: another process is writing it right now (it holds the writer lock and {marker.name} "
                    "marks the data as being changed); wait for it to close, or pass allow_incomplete=True to "
                    "read it anyway"
                )
            raise IncompleteArrayError(
                f"{path}: a writer changed it and never closed it (crash or kill?): {marker.name} is still there "
                "and some rows may be half-written. Pass allow_incomplete=True to read it anyway, or to open it "
                f"with mode='r+' and rewrite the data (a clean close then removes {marker.name})"
            )
        return cls(location, mode, meta, offset, io=io, durable=durable, allow_incomplete=allow_incomplete,
                   complete=complete)

    def _before_write(self) -> None:
        if self._mode == "c" or self._dirty or self._staged is not None:
            return
        self._dirty = True
        if self._complete:  # durably, before the first byte of data changes
            doc = {"format": MARKER_FORMAT, "version": 1, "pid": os.getpid()}
            try:
                _fsutil.atomic_write_bytes(
                    incomplete_marker(self._data_file()), json.dumps(doc).encode(), durable=True, like=self._data_file()
                )
            except OSError as exc:
                raise_if_full(exc, self._data_file(), "marking incomplete")
                raise
            self._complete = False

    def _flush(self, durable: bool) -> None:
        super()._flush(durable)
        if durable and self._dirty and self._staged is None:
            self._mark_complete()

    def _close(self) -> None:
        super()._close()
        if self._mode == "r+" and self._dirty and not self._abandoned:
            self._mark_complete()

    def _mark_complete(self) -> None:
        if self._options.get("durable"):
            super()._flush(True)
        _fsutil.remove_path(incomplete_marker(self._data_file()))
        if self._options.get("durable"):
            _fsutil.fsync_dir(Path(self._data_file()).parent)
        self._complete = True
        self._dirty = False

    def _publish(self, final: Location, durable: bool) -> None:
        super()._publish(final, durable)
        _fsutil.remove_path(incomplete_marker(final.file))  # a crashed r+ writer's marker of the replaced file

    @classmethod
    def _remove(cls, location: Location) -> None:
        _fsutil.remove_path(location.file)
        _fsutil.remove_path(incomplete_marker(location.file))

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
    ) -> NpyStore:
        cls._single_array(location, chunks, compression)
        if meta.attrs:
            raise BackendError(
                "the .npy format has no place for attributes; drop attrs= or use the raw, hdf5 or zarr backend"
            )
        path = str(location.file)
        header = {"descr": npformat.dtype_to_descr(meta.dtype), "fortran_order": meta.order == "F", "shape": meta.shape}
        try:
            with open(path, "r+b") as f:
                f.truncate(0)
                _write_header(f, header)
                offset = f.tell()
                f.truncate(offset + meta.nbytes)
            if meta.nbytes and hasattr(os, "posix_fallocate"):
                fd = os.open(path, os.O_RDWR)
                try:
                    os.posix_fallocate(fd, offset, meta.nbytes)
                except OSError as exc:
                    raise_if_full(exc, path, "preallocating")
                finally:
                    os.close(fd)
        except OSError as exc:
            raise_if_full(exc, path, "creating")
            raise
        return cls(location, "w+", meta, offset, io=io, durable=durable, complete=True)

    def _set_attrs(self, attrs: dict[str, Any]) -> None:
        raise BackendError(f"{self.path}: the .npy format has no place for attributes; use raw, hdf5 or zarr")

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
        """Header and bytes in one write to ``<name>.partial`` (the staging name), checked, renamed into place.

        The same bytes as ``create()`` + writes make; the staging file is the one a killed
        run leaves behind, so the next write of the same array replaces it. With ``defer``,
        the checked staging file is left open and locked and a :class:`StagedWhole` that
        renames it into place is appended to ``defer`` instead.
        """
        cls._single_array(location)
        if meta.attrs:
            raise BackendError("the .npy format has no place for attributes; drop attrs= or use the raw, hdf5 or zarr backend")
        view = memoryview(data).cast("B")
        if view.nbytes != meta.nbytes:
            raise BackendError(f"{location}: expected {meta.nbytes:,} bytes of data, found {view.nbytes:,}")
        final = location.file
        staged = f"{final}.partial"  # _fsutil.partial_path(final), without a Path
        head = _header_bytes(meta.dtype, meta.order == "F", meta.shape)
        try:  # never through a link planted at the staging name: it would truncate what it points to
            fd = os.open(staged, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeInputError(
                    f"{staged}: expected no file or a regular file at this staging name, found a symbolic link; "
                    "refused (writing would go through it): remove the link and write again"
                ) from None
            raise_if_full(exc, staged, "creating")
            raise
        published = owned = handed = False
        try:
            try:
                lock_open_file(fd, staged)
                owned = True  # from here the staging file is ours to remove
                st = os.fstat(fd)
                if st.st_size:  # a killed run's leftover (a new file is not truncated: ext4 flushes
                    os.ftruncate(fd, 0)   # a file truncated to 0 when it is closed, at a cost per file)
                _pwritev_all(fd, head, view)
                if mode is not None and st.st_mode & 0o7777 != mode:
                    _fsutil.set_mode(fd, mode)
                if durable:
                    os.fsync(fd)
            except OSError as exc:
                raise_if_full(exc, staged, "writing")
                raise
            if check is not None:
                check(*_read_back(fd, staged, len(head) + view.nbytes))
            if defer is not None:
                defer.append(StagedWhole(fd, Path(staged), final))
                handed = True
                return
            _fsutil.replace_path(staged, final, durable=durable)
            published = True
            _remove_marker(final)  # a crashed r+ writer's marker of the replaced file
        finally:
            if not handed:
                if owned and not published:
                    _fsutil.remove_path(staged)  # still locked: no other writer has it
                os.close(fd)

    @classmethod
    def _exists(cls, location: Location) -> bool:
        return location.file.is_file()
