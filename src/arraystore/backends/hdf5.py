"""HDF5 backend (h5py): one dataset of an HDF5 file, named after ``::`` (``run.h5::/group/name``).

Paths
    ``run.h5::/a/b`` names dataset ``/a/b``; groups are created as needed. A file
    holding exactly one dataset may be opened without ``::key``; a new file created
    without one holds its dataset at ``/data``.

Atomicity
    A **new file** is built as ``run.h5.partial`` and renamed into place at
    ``close()``, like the raw and npy backends: a crash leaves only the
    ``.partial`` file. A new dataset inside an **existing file** cannot be staged
    by a rename: it is built in place and carries the reserved attribute
    ``_arraystore_incomplete`` until ``close()``; a crash leaves it flagged (opening
    it raises :class:`~arraystore.errors.IncompleteArrayError` unless
    ``allow_incomplete=True``) and ``discard()`` (or leaving a ``with`` block by an
    exception) deletes it. A dataset that **replaces** another in an existing file
    (``overwrite=True``) is built under a temporary name beside it
    (``/g/.name.arraystore-new``) and its link is moved over the old one at
    ``close()``: until then the old dataset stays readable; a leftover temporary
    dataset (a kill) is removed by the next create. HDF5 does not return the space
    of deleted datasets to the file system (``h5repack`` does). A dataset opened ``r+`` is flagged incomplete from its first
    write until ``close()`` or ``flush(durable=True)``.

Layout
    Contiguous by default, with storage allocated at creation so that
    :meth:`~arraystore.store.ArrayStore.as_memmap` can map it (the file offset comes
    from ``Dataset.id.get_offset()``; h5py #1607). ``chunks=`` (a shape, ``"auto"``)
    and ``compression=`` (see :mod:`arraystore.backends._hdf5_layout`) make it
    chunked; ``shuffle=True`` adds the byte-shuffle filter. 0-d and empty arrays are
    always contiguous.

Order
    Every dataset has the array's shape, in C order, so h5py, netCDF, xarray, MATLAB
    and HDFView see the same array: ``create(..., order="F")`` gives a C-layout
    dataset and a store whose ``order`` is ``"C"`` (order describes the storage; the
    shape and values are the array's). :func:`arraystore.convert` writes a
    Fortran-order source in chunks that are contiguous runs of the source, so reads
    and writes stay sequential. ``hdf5_layout="transposed"`` (with ``order="F"``)
    keeps the Fortran-order bytes for zero-copy memory maps instead: the dataset's
    shape is reversed, with the reserved attribute ``_arraystore_order = "F"``;
    arraystore reads it back as the array in order ``"F"``, **every other reader sees
    the transposed array** (shape ``(4, 5, 6)`` for a ``(6, 5, 4)`` array). Files
    written so before this layout became opt-in open as before. Chunk shapes are in
    the array's own axis order either way.

Dimensions and times
    netCDF-4 dimension scales (``dimension_names=``, else ``dim_0``, ...) and CF time
    attributes: see :mod:`arraystore.backends._hdf5_netcdf`.

Dtypes
    See :mod:`arraystore.backends._hdf5_dtypes` (datetime64/timedelta64, unicode and
    big-endian clongdouble go through lossless encodings). Unicode arrays are
    fixed-length UTF-8 strings (:mod:`arraystore.backends._hdf5_strings`):
    ``hdf5_strings="utf-32"`` keeps uint32 code units instead, ``hdf5_string_bytes``
    sets the byte width (default ``4 * n``; :func:`arraystore.convert` measures the
    source's values). A value UTF-8 strings cannot hold (an embedded NUL) makes a
    dataset being created switch to UTF-32; a published one refuses the write.

Attributes
    See :mod:`arraystore.backends._hdf5_attrs`: an exact JSON copy in
    ``_arraystore_attrs``, scalars and lists of numbers mirrored as native HDF5 attributes; foreign
    datasets expose their native attributes. The content checksum lives in
    ``_arraystore_checksum``.

Locking
    h5py always opens files with ``locking=False``: arraystore's own
    :class:`~arraystore._lock.WriterLock` flocks the file for the single writer (with
    its lock-file fallback where ``flock`` does not work), and HDF5's own flock on a
    second descriptor of the same file would conflict with it, or fail with "No locks
    available" on NFS without lockd (h5py #1082). Readers take no lock, like the
    other backends. One process cannot open a file for writing while it holds it
    open read-only (an HDF5 rule), nor write a file it holds open through h5py with
    HDF5's locking on (h5py's default: HDF5's lock is the writer's): both raise
    :class:`~arraystore.errors.LockedError`. Such a file is read with that handle's
    locking flags (HDF5 refuses one file open twice with different ones).
    A reader notices when another process changed the file's structure (its size or
    inode, through the open descriptor) and raises
    :class:`~arraystore.errors.ArrayChangedError` rather than read a mixture through
    HDF5's stale metadata; a file replaced by a rename is read at the generation opened.

Security
    External links and external raw storage are refused with
    :class:`~arraystore.errors.UnsafeInputError` unless ``allow_external=True``
    (h5py #2891); so are virtual datasets, unless ``allow_virtual=True`` and every
    source, recursively, lies inside the file's folder (see
    :mod:`arraystore.backends._hdf5_security`), and chunks over ``max_chunk_bytes``
    (1 GiB by default). Attributes are read only under the sidecar cap (16 MiB).
    The chunk cache holds one whole chunk, so small reads do not decompress it again.

Foreign types
    See :mod:`arraystore.backends._hdf5_types`: maps and byte copies only when the
    file type is byte for byte numpy's; HDF5 array types read as trailing axes.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, NoReturn

import h5py
import numpy as np

from .. import _fsutil
from .._selection import Selection, selection_shape
from ..compression import Compression
from ..errors import (
    ArrayChangedError,
    ArrayStoreError,
    BackendError,
    IncompleteArrayError,
    MetadataError,
    NotMemoryMappableError,
    StorageFullError,
)
from ..fidelity import Fidelity
from ..meta import ArrayMeta, Order, dtype_to_json
from ..registry import Location
from ..store import WRITABLE_MODES, ArrayStore
from . import _hdf5_attrs as A
from . import _hdf5_files as F
from . import _hdf5_netcdf as N
from ._hdf5_dtypes import HDF5_FIDELITY, contiguous, decode, encode, storage_dtype
from ._hdf5_layout import chunk_shape, compression_name, dataset_options, filter_options, load_plugin_filters
from ._hdf5_meta import logical_meta
from ._hdf5_new import check_string_options, init_dataset, rebuild_text
from ._hdf5_security import MAX_CHUNK_BYTES, check_dataset, resolve_dataset, temp_name
from ._hdf5_strings import UTF32_NOTE, decode_text, encode_text, scan_text, text_problem, text_storage
from ._hdf5_types import check_storable, not_mappable_reason
from ._mapped import check_memmap
from ._signatures import hdf5_signature

__all__ = ["DEFAULT_KEY", "HDF5Store"]

#: Dataset name of a new file created without ``::key``.
DEFAULT_KEY = "/data"


class HDF5Store(ArrayStore):
    """One dataset of an HDF5 file. See the module docstring for layout, encodings and safety."""

    backend: ClassVar[str] = "hdf5"
    supports_memmap: ClassVar[bool] = True
    supports_copy_on_write: ClassVar[bool] = False
    fidelity: ClassVar[Fidelity] = HDF5_FIDELITY
    supports_dimension_names: ClassVar[bool] = True
    _pickled_options: ClassVar[frozenset[str]] = ArrayStore._pickled_options | {"allow_virtual"}
    codecs: ClassVar[frozenset[str]] = frozenset({"gzip", "lzf", "zstd", "blosc"})
    suffixes: ClassVar[tuple[str, ...]] = (".h5", ".hdf5", ".he5", ".hdf")
    layouts: ClassVar[frozenset[str]] = frozenset({"contiguous", "chunked"})
    object_storage: ClassVar[Literal["read", "read-write"] | None] = "read"  # byte ranges: _hdf5_remote.py
    url_class: ClassVar[str | None] = "arraystore.backends._hdf5_remote:RemoteHDF5Store"

    @classmethod
    def guess_can_open(cls, location: Location) -> bool:
        return super().guess_can_open(location) or hdf5_signature(location)

    def __init__(
        self,
        location: Location,
        mode: str,
        meta: ArrayMeta,
        *,
        file: h5py.File,
        dataset: h5py.Dataset,
        storage: np.dtype[Any],
        new_in_place: bool = False,
        flagged: bool = False,
        trailing: int = 0,
        replaces: str | None = None,
        names: tuple[str | None, ...] | None = None,
        notes: tuple[str, ...] = (),
        scales: tuple[str, ...] = (),
        **options: Any,
    ) -> None:
        super().__init__(location, mode, meta, options=options)
        self._names = names
        self._notes = notes
        self._scales = scales  # dimension datasets made for this dataset: removed with it by discard()
        self._file = file
        self._ds = dataset
        self._storage = storage
        self._trailing = trailing  # axes of an HDF5 array type, read as the array's last axes
        self._replaces = replaces  # the dataset a new one (built under a temporary name) replaces at close
        self._generation = F.generation(file) if mode == "r" else None
        self._full = False  # a write or flush failed for want of space
        self._discarding = False
        self._new_in_place = new_in_place
        self._flagged = flagged  # the incomplete attribute is set on disk
        self._map: np.memmap[Any, Any] | None = None
        # A unicode array stored as fixed-length UTF-8 strings (not byte for byte numpy's)
        self._text = meta.dtype.kind == "U" and storage.kind == "S"
        if self._text:
            self._storage = text_storage(meta.dtype, storage.itemsize)

    # -- opening and creating ----------------------------------------------

    @classmethod
    def _held_here(cls, location: Location) -> str | None:
        if not any(_same_file(f, location.file) for f in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)):
            return None
        return ("this process has the file open through h5py with HDF5's file locking on (h5py.File's default), "
                "which holds the lock a writer needs; close that h5py.File first, or open it with "
                "h5py.File(path, 'a', locking=False)")

    @classmethod
    def _open(  # type: ignore[override]  # backends take their own options
        cls,
        location: Location,
        mode: str,
        *,
        allow_incomplete: bool = False,
        io: str = "auto",
        durable: bool = False,
        allow_external: bool = False,
        allow_virtual: bool = False,
        max_chunk_bytes: int = MAX_CHUNK_BYTES,
        shuffle: bool = False,  # creation options, passed along when create(resume=True) reopens
        hdf5_layout: str = "c",
        dimension_names: Any = None,
        hdf5_strings: str = "utf-8",
        hdf5_string_bytes: int | None = None,
    ) -> HDF5Store:
        path = str(location.file)
        f = F.open_file(path, "r" if mode == "r" else "r+")
        options: dict[str, Any] = {
            "io": io,
            "durable": durable,
            "allow_incomplete": allow_incomplete,
            "allow_external": allow_external,
            "allow_virtual": allow_virtual,
        }
        return cls._from_file(f, location, mode, path, max_chunk_bytes=max_chunk_bytes, **options)

    @classmethod
    def _from_file(cls, f: h5py.File, location: Location, mode: str, path: str, *, max_chunk_bytes: int,
                   **options: Any) -> HDF5Store:
        """The store of ``location.key`` in the opened file ``f`` (closed here when that fails)."""
        allow_external = bool(options.get("allow_external"))
        allow_virtual = bool(options.get("allow_virtual"))
        allow_incomplete = bool(options.get("allow_incomplete"))
        try:
            ds = resolve_dataset(f, location.key, where=path, allow_external=allow_external)
            where = f"{path}::{ds.name}"
            check_dataset(
                ds, path, allow_external=allow_external, allow_virtual=allow_virtual, max_chunk_bytes=max_chunk_bytes
            )
            load_plugin_filters(ds, where)
            ds = F.with_chunk_cache(f, ds)
            meta, stored, trailing = logical_meta(ds, where)
            names = N.read_dimension_names(ds, where, transposed=meta.order == "F")
            notes = N.read_notes(ds, where)
            flagged = A.INCOMPLETE in ds.attrs
            if flagged and not allow_incomplete:
                raise IncompleteArrayError(
                    f"{where}: the dataset is flagged incomplete (a writer did not close it: crash or kill?); "
                    "re-create it, resume the writer, or pass allow_incomplete=True to read it anyway"
                )
        except (RuntimeError, KeyError, ValueError, TypeError, OSError) as exc:
            f.close()
            if isinstance(exc, ArrayStoreError):
                raise
            raise MetadataError(
                f"{path}: HDF5 could not read the dataset's metadata ({type(exc).__name__}: {exc}); the file is "
                "damaged or being written by another process: open it again when the writer has finished"
            ) from None
        except BaseException:
            f.close()
            raise
        return cls(
            location, mode, meta, file=f, dataset=ds, storage=stored, flagged=flagged, trailing=trailing,
            names=names, notes=notes, **options,
        )

    @classmethod
    def _create(  # type: ignore[override]  # backends take their own options
        cls,
        location: Location,
        meta: ArrayMeta,
        *,
        chunks: Any = None,
        compression: Compression | None = None,
        durable: bool = False,
        io: str = "auto",
        shuffle: bool = False,
        allow_incomplete: bool = False,
        allow_external: bool = False,
        allow_virtual: bool = False,
        hdf5_layout: str = "c",
        dimension_names: tuple[str | None, ...] | None = None,
        hdf5_strings: str = "utf-8",
        hdf5_string_bytes: int | None = None,
    ) -> HDF5Store:
        path = str(location.file)
        if meta.ndim > 32:
            raise MetadataError(f"HDF5 holds at most 32 dimensions, found {meta.ndim} in shape {meta.shape}")
        storage = storage_dtype(meta.dtype)
        check_storable(storage, meta.dtype)
        extra_notes: list[str] = []
        if check_string_options(hdf5_strings, hdf5_string_bytes) == "utf-8" and meta.dtype.kind == "U":
            storage = text_storage(meta.dtype, hdf5_string_bytes)
        elif meta.dtype.kind == "U":
            extra_notes.append(UTF32_NOTE.format(dtype=meta.dtype.str, why=(
                "hdf5_strings='utf-32' was asked for (convert asks for it when a value holds an embedded NUL or "
                "a code point UTF-8 cannot encode)")))
        sshape = meta.shape[::-1] if meta.order == "F" else meta.shape
        user_chunks = (
            tuple(chunks)[::-1] if meta.order == "F" and isinstance(chunks, (tuple, list)) else chunks
        )
        filters = filter_options(compression, shuffle, meta.dtype)
        layout = chunk_shape(user_chunks, sshape, needed=bool(filters))
        in_place = location.file.is_file() and location.file.stat().st_size > 0
        key = location.key or DEFAULT_KEY
        f = F.open_file(path, "r+" if in_place else "w")
        build = key
        try:
            if in_place:
                replacing = key in f
                if replacing and f.get(key, getclass=True) is not h5py.Dataset:
                    raise MetadataError(f"{path}::{key} is a group; name a dataset to create")
                if temp_name(key) in f:  # left by an earlier, interrupted replacement
                    del f[temp_name(key)]
                if replacing:  # the old dataset stays readable until the new one is complete
                    build = temp_name(key)
            ds = f.create_dataset(build, shape=sshape, dtype=storage, **dataset_options(layout, filters, sshape))
            notes, scales = init_dataset(ds, meta, storage, dimension_names, key, extra_notes, flagged=in_place)
            f.flush()
        except ArrayStoreError:
            f.close()
            raise
        except (OSError, RuntimeError, ValueError) as exc:  # h5py raises ValueError for a filter's failed set-up
            f.close()
            F.raise_if_full(exc, path, "creating a dataset in")
            raise MetadataError(f"{path}::{key}: HDF5 could not create the dataset: {exc}") from None
        except BaseException:
            f.close()
            raise
        loc = Location(location.file, key) if in_place else location
        options: dict[str, Any] = {"io": io, "durable": durable, "allow_external": allow_external}
        return cls(
            loc,
            "w+",
            meta,
            file=f,
            dataset=ds,
            storage=storage,
            new_in_place=in_place,
            flagged=in_place,
            replaces=key if build != key else None,
            names=dimension_names,
            notes=tuple(notes),
            scales=tuple(scales),
            **options,
        )

    @classmethod
    def value_options(cls, source: ArrayStore, max_bytes: int) -> dict[str, Any]:
        """Unicode sources: the UTF-8 byte width their values need, or ``hdf5_strings="utf-32"`` when UTF-8
        strings cannot hold them (an embedded NUL); the source is read once, block by block."""
        if source.dtype.kind != "U":
            return {}
        # half the budget per block: the scan holds a block and its code-unit masks at once
        width, why = scan_text(block for _, block in source.iter_blocks(max(max_bytes // 2, 1)))
        return {"hdf5_strings": "utf-32"} if why else {"hdf5_string_bytes": width}

    @classmethod
    def storage_order(cls, order: Order, *, hdf5_layout: str = "c", **options: Any) -> Order:
        """``"C"``: every HDF5 dataset has the array's shape; ``"F"`` only with ``hdf5_layout="transposed"``.

        Raises
        ------
        BackendError
            ``hdf5_layout`` other than ``"c"`` or ``"transposed"``.
        """
        if hdf5_layout not in ("c", "transposed"):
            raise BackendError(
                f"expected hdf5_layout 'c' (datasets with the array's shape, what every HDF5 reader sees) or "
                f"'transposed' (Fortran-order bytes in a reversed-shape dataset, for zero-copy maps), found "
                f"{hdf5_layout!r}"
            )
        return "F" if order == "F" and hdf5_layout == "transposed" else "C"

    @classmethod
    def _exists(cls, location: Location) -> bool:
        if not location.file.exists():
            return False
        if location.key is None or not h5py.is_hdf5(str(location.file)):
            return True
        with F.open_file(str(location.file), "r") as f:
            try:
                return f.get(location.key, getlink=True) is not None
            except (KeyError, ValueError):
                return False
            except (OSError, RuntimeError):  # unreadable (being written?): opening it says why
                return True

    @classmethod
    def _staging(cls, location: Location) -> Location | None:
        if location.key is not None and location.file.is_file():
            return None  # a new dataset in an existing file is built in place
        return Location(_fsutil.partial_path(location.file), location.key)

    @classmethod
    def _remove(cls, location: Location) -> None:
        if location.key is None:
            _fsutil.remove_path(location.file)
            return
        with F.open_file(str(location.file), "r+") as f:
            if location.key in f:
                del f[location.key]

    # -- data ------------------------------------------------------------------

    def _hsel(self, sel: Selection) -> Selection:
        return sel[::-1] if self.order == "F" else sel

    def _read(self, sel: Selection) -> np.ndarray[Any, Any]:
        if self._map is not None:
            self._check_generation()
            view = np.asarray(self._map[sel])
            # a copy of the bytes: numpy copies structured items field by field, dropping padding
            mapped: np.ndarray[Any, Any] = view.view(np.dtype((np.void, view.dtype.itemsize))).copy().view(view.dtype)
            self._check_generation()
            return mapped
        shape = selection_shape(sel)
        if math.prod(shape) == 0:
            return np.empty(shape, self.dtype)
        self._check_generation()
        if self._trailing:
            lead, inner = self._split(sel)
            out = self._read_storage(lead, sel)[inner]
            self._check_generation()
            return contiguous(np.ascontiguousarray(out, dtype=self.dtype).reshape(shape))
        hsel = self._hsel(sel)
        # Integers become length-1 slices: h5py returns a point of a big-endian dataset byte-swapped
        # but labelled big-endian (and ds[()] a native-order numpy scalar).
        slices = tuple(slice(i, i + 1) if isinstance(i, int) else i for i in hsel)
        raw = self._read_storage(slices, sel)
        self._check_generation()
        if self._text:
            out = decode_text(raw, self.dtype, self.path).reshape(selection_shape(hsel))
        else:
            out = decode(raw, self.dtype, selection_shape(hsel))
        return contiguous(out.T) if self.order == "F" else out

    def _split(self, sel: Selection) -> tuple[Selection, tuple[Any, ...]]:
        """A selection of an array-type dataset: (dataset slices, index of the block h5py returns)."""
        k = len(sel) - self._trailing
        lead = tuple(slice(i, i + 1) if isinstance(i, int) else i for i in sel[:k])
        return lead, (slice(None),) * k + tuple(sel[k:])

    def _read_storage(self, slices: Selection, sel: Selection) -> np.ndarray[Any, Any]:
        try:
            return np.asarray(self._ds[slices if slices else ...])
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            self._check_generation()
            raise MetadataError(
                f"{self.path}: HDF5 could not read {sel}: {exc}; the file may be damaged"
            ) from None

    def _check_generation(self) -> None:
        """Refuse to go on reading a file another process changed since this store opened it."""
        if self._generation is not None and F.generation(self._file) != self._generation:
            raise ArrayChangedError(
                f"{self.path}: another writer changed the file's structure after this store opened it (a dataset "
                "was replaced, created or grown); reading on could mix two versions. Open it again"
            )

    def _write(self, sel: Selection, value: np.ndarray[Any, Any]) -> None:
        text = None
        if self._text and value.size:  # refused (or the encoding switched) before the dataset is touched
            text = self._encode_text(value.T if self.order == "F" else value)
        self._before_write()
        if self._map is not None:
            self._map[sel] = value
            return
        if value.size == 0:
            return
        if self.order == "F":
            value = value.T
        try:
            if self._trailing:
                lead, inner = self._split(sel)
                block = np.array(self._ds[lead if lead else ...], dtype=self.dtype)
                block[inner] = value.reshape(block[inner].shape)
                self._ds[lead if lead else ...] = block
                return
            hsel = self._hsel(sel)
            self._ds[hsel if hsel else ...] = text if text is not None else encode(value, self._storage)
        except (OSError, RuntimeError) as exc:
            self._raise_hdf5(exc, f"writing {sel}")

    def _encode_text(self, value: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """UTF-8 strings of ``value``; a dataset being created that cannot hold them switches encoding first."""
        if self._mode == "w+":
            nbytes, why = text_problem(value)
            if why is not None:
                self._switch_encoding(storage_dtype(self.dtype), UTF32_NOTE.format(dtype=self.dtype.str, why=why))
                return encode(value, self._storage)
            if nbytes > self._storage.itemsize:
                self._switch_encoding(text_storage(self.dtype), None)
        return encode_text(value, self._storage, self.path)

    def _switch_encoding(self, storage: np.dtype[Any], note: str | None) -> None:
        """Rebuild the dataset being created with another storage dtype, copying what was written block by block."""
        try:
            new, notes, scales = rebuild_text(self._file, self._ds, self._meta, storage, self._names,
                                              self._replaces or self._ds.name, note, self.path)
        except (OSError, RuntimeError) as exc:
            self._raise_hdf5(exc, "changing the string encoding of the dataset")
        self._ds, self._storage, self._text = new, storage, storage.kind == "S"
        self._notes = tuple(notes)
        self._scales = (*self._scales, *scales)

    def _before_write(self) -> None:
        if not self._flagged and self._staged is None:
            try:
                self._ds.attrs[A.INCOMPLETE] = 1
                self._file.flush()
            except (OSError, RuntimeError) as exc:
                self._raise_hdf5(exc, "flagging the dataset incomplete")
            self._flagged = True

    def _memmap(self) -> np.memmap[Any, Any]:
        if self._map is not None:
            return self._map
        why = self._not_mappable_reason()
        if why:
            raise NotMemoryMappableError(
                f"{self.path}: {why}; read blocks with store[...] or iter_blocks() instead"
            )
        check_memmap(str(self._location.file), stacklevel=4)
        self._file.flush()  # earlier writes leave HDF5's buffers; the file reaches its full size
        offset = self._ds.id.get_offset()
        if self._mode in WRITABLE_MODES:
            self._before_write()
        mode: Any = "r" if self._mode == "r" else "r+"
        self._map = np.memmap(
            str(self._location.file),
            dtype=self.dtype,
            mode=mode,
            offset=offset,
            shape=self.shape,
            order=self.order,
        )
        return self._map

    def _not_mappable_reason(self) -> str | None:
        if self._text:
            return "the dataset holds the strings as UTF-8, not as numpy's UTF-32 bytes"
        return not_mappable_reason(self._ds, str(self._location.file), self.nbytes)

    # -- attributes, checksum, completeness ------------------------------------

    def _set_attrs(self, attrs: dict[str, Any]) -> None:
        try:
            A.write_attrs(self._ds, attrs, dict(self._meta.attrs))
        except (OSError, RuntimeError) as exc:
            self._raise_hdf5(exc, "writing the attributes")

    @property
    def recorded_checksum(self) -> dict[str, str] | None:
        """The checksum in the reserved ``_arraystore_checksum`` attribute, if any.

        None when the shape or dtype recorded with it are not the dataset's: another tool (xarray's ``isel`` or
        ``astype``) wrote a changed copy and kept the attribute.
        """
        value = A.read_json(self._ds, A.CHECKSUM, self.path)
        if not isinstance(value, dict):
            return None
        if value.get("shape", list(self.shape)) != list(self.shape):
            return None
        if value.get("dtype", dtype_to_json(self.dtype)) != dtype_to_json(self.dtype):
            return None
        return {k: v for k, v in value.items() if k in ("algorithm", "value")}

    def set_checksum(self, checksum: dict[str, str]) -> None:
        """Record a content checksum in the reserved ``_arraystore_checksum`` attribute (with the array's shape and
        dtype, which tell a copy another tool changed)."""
        self._check_writable()
        try:
            self._ds.attrs[A.CHECKSUM] = _json({"algorithm": str(checksum["algorithm"]),
                                                "value": str(checksum["value"]), "shape": list(self.shape),
                                                "dtype": dtype_to_json(self.dtype)})
        except (OSError, RuntimeError) as exc:
            self._raise_hdf5(exc, "recording the checksum")

    @property
    def complete(self) -> bool:
        """False while the dataset carries the incomplete flag (a writer has not closed it)."""
        return not self._flagged

    def stored_bytes(self) -> int | None:
        """Bytes of the dataset's own storage (after compression), not the whole file's."""
        return int(self._ds.id.get_storage_size())

    @property
    def dataset(self) -> h5py.Dataset:
        """The open ``h5py.Dataset`` (for what arraystore does not wrap, e.g. direct chunk writes)."""
        self._check_open()
        return self._ds

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """Storage chunk shape in the array's axis order, or None for contiguous data."""
        c = self._ds.chunks
        if c is None:
            return None
        if self._trailing:  # an HDF5 array type: each chunk holds whole items
            return tuple(c) + self.shape[len(self.shape) - self._trailing :]
        return tuple(c)[::-1] if self.order == "F" else tuple(c)

    @property
    def dimension_names(self) -> tuple[str | None, ...] | None:
        """Names given at creation (``_arraystore_dimension_names``), else those of attached dimension scales."""
        return self._names

    @property
    def encoding_notes(self) -> tuple[str, ...]:
        """Why other readers do not see this dataset as netCDF/CF would (``arraystore info`` prints them)."""
        return self._notes

    @property
    def compression(self) -> str | None:
        """The dataset's compression filter: h5py's name (``"gzip"``, ``"lzf"``) or hdf5plugin's (``"zstd"``), if any."""
        return compression_name(self._ds)

    # -- flushing and closing -----------------------------------------------------

    def _flush(self, durable: bool) -> None:
        if self._map is not None:
            self._map.flush()
        if durable and self._flagged and self._staged is None and not self._new_in_place:
            self._clear_flag()
        try:
            self._file.flush()
        except (OSError, RuntimeError) as exc:
            self._raise_hdf5(exc, "flushing")
        if durable:
            F.fsync(str(self._location.file))

    def _flush_at_close(self, durable: bool) -> None:
        # As the raw backend's: writes through the map are in the page cache already, and an msync at every
        # close would wait for the disk. durable=True still does (and fsyncs).
        if durable or self._map is None:
            self._flush(durable)
            return
        mapped, self._map = self._map, None
        try:
            self._flush(False)
        finally:
            self._map = mapped

    def _clear_flag(self) -> None:
        if A.INCOMPLETE in self._ds.attrs:
            del self._ds.attrs[A.INCOMPLETE]
        self._flagged = False

    def _close(self) -> None:
        if not self._file.id.valid:
            return
        try:
            if self._mode in WRITABLE_MODES and self._flagged and not self._abandoned:
                try:
                    self._clear_flag()
                    if self._replaces is not None:
                        self._publish_replacement(self._replaces)
                except (OSError, RuntimeError) as exc:
                    self._raise_hdf5(exc, "completing the dataset")
            if self._map is not None and self._options.get("durable"):  # as the raw backend: an msync at
                self._map.flush()  # every close would wait for the disk; durable=True fsyncs below anyway
        finally:
            self._map = None  # user views from as_memmap() keep their own mapping alive
            self._close_file()
        if self._options.get("durable") and self._mode in WRITABLE_MODES:
            F.fsync(str(self._location.file))

    def _close_file(self) -> None:
        """Close the HDF5 file; on a full disk, without leaving HDF5 half-closed (see :func:`~arraystore.backends._hdf5_files.close_unwritable`).

        A flush that fails for want of space is detected before closing: HDF5 objects
        whose close failed crash the process when h5py releases them later.
        """
        reported = self._full  # a StorageFullError was already raised to the caller
        if self._mode in WRITABLE_MODES and not self._full:
            try:
                self._file.flush()
            except (OSError, RuntimeError) as exc:
                self._full = F.is_full(exc, self.path)
        if self._full:
            F.close_unwritable(self._file)
            if not (reported or self._abandoned or self._discarding):
                raise StorageFullError(
                    errno.ENOSPC,
                    f"no space left while closing {self.path!r}: free space on that file system or write "
                    "somewhere else; the array was not completed",
                )
            return
        try:
            self._file.close()
        except (OSError, RuntimeError) as exc:
            if F.is_full(exc, self.path):
                F.close_unwritable(self._file)
            self._raise_hdf5(exc, "closing")

    def _raise_hdf5(self, exc: BaseException, what: str) -> NoReturn:
        """Raise an h5py error of a write, flush or close as StorageFullError or MetadataError."""
        try:
            F.raise_if_full(exc, self.path, what)
        except StorageFullError:
            self._full = True
            raise
        raise MetadataError(f"{self.path}: HDF5 failed {what}: {exc}") from None

    def close(self) -> None:
        """Flush, close and publish (see :meth:`ArrayStore.close`); a failure leaves nothing half-published.

        When flushing or closing fails (a full disk: HDF5's ``Can't destroy cache``),
        the HDF5 file is still closed, and a new file being built is removed.
        """
        try:
            super().close()
        except BaseException as exc:
            self._map = None
            if self._file.id.valid:
                if isinstance(exc, StorageFullError) or self._full:
                    F.close_unwritable(self._file)
                with contextlib.suppress(OSError, RuntimeError):  # the error that got us here matters more
                    self._file.close()
            if self._staged is not None:
                _fsutil.remove_path(self._staged[0].file)
                self._staged = None
            raise

    def _publish_replacement(self, key: str) -> None:
        """Move the new dataset's link over the old one's (the old one's space is not returned to the disk)."""
        built = self._ds.name
        self._file.flush()  # the new dataset is complete on disk before the old one goes
        if key in self._file:
            old = self._file[key]
            if isinstance(old, h5py.Dataset):
                N.detach_scales(old)
            del self._file[key]
        self._file.move(built, key)
        self._replaces = None

    def discard(self) -> None:
        """Close without publishing: a new file is removed, a new dataset in an existing file deleted."""
        self._discarding = True
        if not self._closed and self._new_in_place and self._file.id.valid:
            name = self._ds.name
            self._map = None
            try:
                N.detach_scales(self._ds)
                del self._file[name]
                N.remove_unused_scales(self._file, self._scales)
            except (KeyError, OSError):  # pragma: no cover - already gone
                pass
            self._flagged = False
            self._new_in_place = False
        super().discard()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None and self._new_in_place:
            self.discard()
        else:
            super().__exit__(exc_type, exc, tb)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def _same_file(file_id: Any, path: Path) -> bool:
    """True when an open HDF5 file id is the file at ``path``."""
    try:
        return os.path.samefile(os.fsdecode(file_id.name), path)
    except (OSError, ValueError):
        return False
