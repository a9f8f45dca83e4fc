"""Shared machinery of the byte-range backends (raw and npy): one file, one contiguous region."""

from __future__ import annotations

import contextlib
import errno
import math
import os
from typing import Any, ClassVar, Literal

import numpy as np

from .._fsutil import raise_if_full
from .._selection import Selection, selection_shape
from ..errors import BackendError, ModeError, NotMemoryMappableError, OptionError, SizeMismatchError
from ..fidelity import Fidelity
from ..meta import ArrayMeta
from ..registry import Location
from ..store import ArrayStore

__all__ = ["MappedFileStore", "choose_io", "preallocate"]

IO_CHOICES = ("auto", "mmap", "buffered")


def choose_io(path: str, io: str) -> str:
    """``"mmap"`` or ``"buffered"`` for ``io``; ``auto`` asks the locality detector."""
    if io not in IO_CHOICES:
        raise ModeError(f"expected io= one of {', '.join(IO_CHOICES)}, found {io!r}")
    try:
        from ..filesystems import choose_io as _choose
    except ImportError:  # pragma: no cover - locality ships with arraystore
        return "mmap" if io == "auto" else io
    return _choose(path, io)  # type: ignore[arg-type]


def check_memmap(path: str, stacklevel: int) -> None:
    """Warn (or refuse, by policy) before memory-mapping a file on a network file system."""
    try:
        from ..filesystems import check_memmap as _check
    except ImportError:  # pragma: no cover
        return
    _check(path, stacklevel=stacklevel + 1)


def preallocate(fd: int, nbytes: int, path: str) -> None:
    """Reserve ``nbytes`` so that a full disk fails now, not as a SIGBUS on a later page fault."""
    try:
        if nbytes and hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, 0, nbytes)
                return
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
        os.ftruncate(fd, nbytes)
    except OSError as exc:
        raise_if_full(exc, path, "preallocating")
        raise


def check_size(path: str, offset: int, meta: ArrayMeta) -> None:
    """Refuse a data file whose size is not ``offset + meta.nbytes``."""
    actual = os.stat(path).st_size - offset
    if actual != meta.nbytes:
        raise SizeMismatchError(path, meta.nbytes, max(actual, 0), meta.itemsize, meta.shape)


def _bytes_view(arr: np.ndarray[Any, Any]) -> memoryview:
    """The bytes of a contiguous array (memoryview refuses datetime and some structured dtypes)."""
    flat: Any = arr.reshape(-1, order="A").view(np.uint8)
    return memoryview(flat)


def _pread_into(fd: int, buf: np.ndarray[Any, Any], pos: int, path: str) -> None:
    view = _bytes_view(buf)
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], pos + done)
        if n == 0:
            raise SizeMismatchError(path, pos + len(view), pos + done)  # the file shrank under us
        done += n


class MappedFileStore(ArrayStore):
    """An array that is one contiguous byte range of one file: memory-mapped or read in large blocks."""

    supports_memmap: ClassVar[bool] = True
    supports_copy_on_write: ClassVar[bool] = True
    fidelity: ClassVar[Fidelity] = Fidelity.everything_exact("stored byte for byte")
    memory_mappable: ClassVar[bool] = True
    layouts: ClassVar[frozenset[str]] = frozenset({"contiguous"})
    writes_go_through: ClassVar[bool] = True
    thread_safe_writes: ClassVar[bool] = True
    object_storage: ClassVar[Literal["read", "read-write"] | None] = "read"  # byte ranges: objstore/_ranged.py
    #: True when the data follows a ``.npy`` header (else: raw bytes described by a sidecar or dialect).
    _npy_header: ClassVar[bool] = False

    @classmethod
    def _open_url(cls, location: Location, mode: str, **options: Any) -> ArrayStore:
        from ..objstore._ranged import open_ranged

        options.pop("lock_timeout", None)
        OptionError.check("open", cls.backend, options, open_ranged)
        return open_ranged(location, npy=cls._npy_header, **options)

    @classmethod
    def _exists_url(cls, location: Location, storage_options: Any = None) -> bool:
        from ..objstore._ranged import exists_ranged

        return exists_ranged(location, storage_options)

    def __init__(
        self, location: Location, mode: str, meta: ArrayMeta, offset: int, *, io: str = "auto", **options: Any
    ):
        super().__init__(location, mode, meta, options={"io": io, **options})
        self._offset = offset
        self._io = choose_io(str(location.file), io)
        self._map: np.ndarray[Any, Any] | None = None
        self._fd: int | None = None
        if meta.nbytes:
            # Hold the file opened now, not at the first read: a replace (os.replace of a new
            # file) in between must not get the new bytes read with this metadata.
            with contextlib.suppress(OSError):
                self._get_fd()

    @classmethod
    def _single_array(cls, location: Location, chunks: Any = None, compression: Any = None) -> None:
        """Refuse what a one-file, one-byte-range format cannot hold: keys, chunks, compression."""
        if location.key:
            raise BackendError(f"{location}: {cls.backend} files hold one array; drop the '::{location.key}' part")
        if chunks is not None or compression is not None:
            raise BackendError(
                f"the {cls.backend} backend stores one contiguous uncompressed byte range: chunks= and "
                "compression= need the hdf5 or zarr backend"
            )

    @property
    def data_file(self) -> str:
        """The file holding the bytes (for a dialect header, the data file it names)."""
        return str(self._location.file)

    @property
    def offset(self) -> int:
        """Byte offset of the data in the file."""
        return self._offset

    @property
    def io(self) -> str:
        """``"mmap"`` or ``"buffered"``: how reads are done."""
        return self._io

    def _take_in_memory(self, indices: np.ndarray[Any, Any], axis: int) -> np.ndarray[Any, Any] | None:
        from ._mapped_access import take_in_memory

        return take_in_memory(self, indices, axis)

    def _take_sorted(self, indices: np.ndarray[Any, Any], axis: int, max_bytes: int, mode: str = "auto",
                     calibration: Any = None) -> np.ndarray[Any, Any]:
        outer = 0 if self.order == "C" else self.ndim - 1
        if axis == outer and self.nbytes:
            from ._mapped_access import gather_contiguous

            return gather_contiguous(self, indices, axis, max_bytes, mode, calibration)
        return super()._take_sorted(indices, axis, max_bytes, mode, calibration)

    def _advise(self, advice: str) -> bool:
        from ._mapped_access import advise_mapped

        return advise_mapped(self, advice)

    def _data_file(self) -> str:
        return str(self._location.file)

    def _get_map(self, *, stacklevel: int = 3) -> np.ndarray[Any, Any]:
        if self._map is None:
            if self.nbytes == 0:
                self._map = np.empty(self.shape, self.dtype, order=self.order)  # nothing to map
            else:
                if self._io == "mmap" or self._options.get("io") == "mmap":
                    check_memmap(self._data_file(), stacklevel=stacklevel + 1)
                mode = {"r": "r", "c": "c"}.get(self._mode, "r+")
                # Map the file held open since the store opened (the generation it read the metadata of).
                with os.fdopen(os.dup(self._get_fd()), "rb" if mode in ("r", "c") else "r+b") as f:
                    self._map = np.memmap(  # type: ignore[call-overload]
                        f,
                        dtype=self.dtype,
                        mode=mode,
                        offset=self._offset,
                        shape=self.shape,
                        order=self.order,
                    )
        return self._map

    def _memmap(self) -> np.memmap[Any, Any]:
        if self.nbytes == 0:
            raise NotMemoryMappableError(f"{self.path}: an empty array has no bytes to map; use store[...]")
        if self._io == "buffered" and self._options.get("io") == "auto":
            check_memmap(self._data_file(), stacklevel=4)
        m = self._get_map(stacklevel=4)
        assert isinstance(m, np.memmap)
        if self._mode in ("r+", "w+", "w-"):
            self._before_write()  # a writable map may be written at any time: mark incomplete first
        return m

    def _read(self, sel: Selection) -> np.ndarray[Any, Any]:
        if self._mode != "c" and self.nbytes and (
            self._io == "buffered" or (self._map is None and self._large_contiguous(sel))
        ):
            return self._read_buffered(sel)
        # A trailing Ellipsis keeps a 0-d result an array: indexing with ints alone
        # would return a numpy scalar, which comes back in native byte order.
        return np.array(self._get_map()[sel + (Ellipsis,)], copy=True)

    def _rows(self, sel: Selection) -> tuple[int, int, int, int]:
        """The run of rows (outermost storage axis) a selection touches: axis, first, end, row bytes."""
        axis = 0 if self.order == "C" else self.ndim - 1
        s = sel[axis]
        if isinstance(s, int):
            lo, hi = s, s + 1
        else:
            lo, hi = s.start, s.start + (len(range(s.start, s.stop, s.step)) - 1) * s.step + 1
        row_bytes = math.prod(self.shape) // self.shape[axis] * self.dtype.itemsize
        return axis, lo, hi, row_bytes

    def _whole_rows(self, local: tuple[int | slice, ...], axis: int) -> bool:
        """True when a selection is a contiguous run of whole rows (full extent on every other axis)."""
        return all(
            isinstance(s, slice) and s.step == 1 and (i == axis or s.stop - s.start == n)
            for i, (s, n) in enumerate(zip(local, self.shape))
        )

    def _local(self, sel: Selection, axis: int, lo: int) -> tuple[int | slice, ...]:
        s = sel[axis]
        local = list(sel)
        local[axis] = s - lo if isinstance(s, int) else slice(s.start - lo, s.stop - lo, s.step)
        return tuple(local)

    def _read_rows(self, axis: int, lo: int, hi: int, row_bytes: int) -> np.ndarray[Any, Any]:
        rows_shape = list(self.shape)
        rows_shape[axis] = hi - lo
        buf = np.empty(math.prod(rows_shape), self.dtype)
        _pread_into(self._get_fd(), buf, self._offset + lo * row_bytes, self._data_file())
        return buf.reshape(rows_shape, order=self.order)  # type: ignore[call-overload,no-any-return]

    def _large_contiguous(self, sel: Selection) -> bool:
        """Whole rows of at least 1 MiB: one pread into a buffer beats page faults on a fresh map."""
        if self.ndim == 0:
            return False
        axis, lo, hi, row_bytes = self._rows(sel)
        return self._whole_rows(self._local(sel, axis, lo), axis) and (hi - lo) * row_bytes >= 1 << 20

    def _read_buffered(self, sel: Selection) -> np.ndarray[Any, Any]:
        """Read the rows (outermost storage axis) the selection touches, in one large pread."""
        shape = selection_shape(sel)
        if math.prod(shape) == 0:
            return np.empty(shape, self.dtype)
        if self.ndim == 0:
            buf = np.empty((), self.dtype)
            _pread_into(self._get_fd(), buf, self._offset, self._data_file())
            return buf
        axis, lo, hi, row_bytes = self._rows(sel)
        rows = self._read_rows(axis, lo, hi, row_bytes)
        # A trailing Ellipsis keeps a 0-d result an array in the store's byte order, as _read does.
        out: np.ndarray[Any, Any] = rows[self._local(sel, axis, lo) + (Ellipsis,)]
        return out if out.size == rows.size else out.copy()  # do not pin a large buffer for a small view

    def _write_buffered(self, sel: Selection, value: np.ndarray[Any, Any]) -> None:
        """Write with pwrite: whole rows directly, partial rows by read-modify-write."""
        if value.size == 0:
            return
        rows: np.ndarray[Any, Any]
        if self.ndim == 0:
            rows = np.array(value, dtype=self.dtype).reshape(1)
            axis, lo, row_bytes = 0, 0, self.dtype.itemsize
        else:
            axis, lo, hi, row_bytes = self._rows(sel)
            local = self._local(sel, axis, lo)
            if self._whole_rows(local, axis):
                rows = np.asarray(value, dtype=self.dtype).reshape(
                    [hi - lo if i == axis else n for i, n in enumerate(self.shape)]
                )
            else:
                rows = self._read_rows(axis, lo, hi, row_bytes)
                rows[local] = value
        data = _bytes_view(np.asarray(rows, order=self.order))
        fd, pos, done = self._get_fd(), self._offset + lo * row_bytes, 0
        while done < len(data):
            try:
                done += os.pwrite(fd, data[done:], pos + done)
            except OSError as exc:
                raise_if_full(exc, self.path, "writing")
                raise

    def _get_fd(self) -> int:
        if self._fd is None:
            flags = os.O_RDWR if self._mode in ("r+", "w+", "w-") else os.O_RDONLY
            self._fd = os.open(self._data_file(), flags)
        return self._fd

    def _write(self, sel: Selection, value: np.ndarray[Any, Any]) -> None:
        self._before_write()
        if self._io == "buffered" and self._mode != "c" and self.nbytes:
            self._write_buffered(sel, value)
            return
        self._get_map()[sel] = value

    def _before_write(self) -> None:
        """Hook: the raw backend marks its sidecar incomplete before the first write."""

    def _flush(self, durable: bool) -> None:
        if isinstance(self._map, np.memmap) and self._mode != "c":
            self._map.flush()
        if durable and self.nbytes:
            fd = os.open(self._data_file(), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _flush_at_close(self, durable: bool) -> None:
        # Unmapping hands dirty pages to the kernel's write-back, as closing a file does;
        # an msync here would make every close wait for the disk. durable=True still does.
        if durable:
            self._flush(True)

    def _close(self) -> None:
        # Dropping the reference unmaps once no user view (from as_memmap) is alive;
        # closing the mmap by force would crash such views.
        self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
