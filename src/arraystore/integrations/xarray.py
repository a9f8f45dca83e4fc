"""xarray backend: ``xarray.open_dataarray("frames.dat", engine="arraystore")`` opens any store lazily.

Registered through the ``xarray.backends`` entry-point group as ``arraystore``. The
array is wrapped in a :class:`~xarray.backends.BackendArray`; xarray's
``explicit_indexing_adapter`` turns every indexer into basic selections (which the
store reads) plus an in-memory step for fancy indices, so nothing is read before it is
indexed or loaded. Dimension names come from the attrs ``"dims"`` or
``"_ARRAY_DIMENSIONS"`` (a list of names, one per axis; the key is not repeated in the
variable's attrs), else the store's recorded names, else a header dialect's ``axes``, else
``dim_0``, ``dim_1``, ... Attributes are the store's attrs, decoded by
xarray's CF decoder as its own engines decode them (``mask_and_scale``, ``decode_times``,
``decode_timedelta``, ``use_cftime``; ``decode_cf=False`` turns it off): a netCDF variable opened
through arraystore (``"model.nc::pr"``) is masked and unpacked as ``xr.open_dataset`` shows it.
Characters are not joined (``concat_characters=False`` unless asked): an ``S1`` array is an array.

The variable's ``encoding["preferred_chunks"]`` is the storage chunk shape, so
``chunks={}`` gives Dask chunks that match the storage, as xarray's zarr backend
does, instead of one chunk of the whole array. A contiguous store larger than
:data:`PREFERRED_CHUNK_BYTES` prefers runs of about that size along its slowest
axis; a smaller one is one chunk.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._optional import missing

try:
    import xarray as xr
    from xarray.backends import BackendArray, BackendEntrypoint
    from xarray.core import indexing
except ImportError as _exc:
    raise missing(_exc, "the xarray integration (engine='arraystore')") from _exc

from .._dimnames import dialect_dimension_names
from .._open import open as open_store
from ..blocks import contiguous_chunks
from ..errors import ArrayStoreError, MetadataError
from ..registry import BACKENDS, SUFFIXES
from ..store import ArrayStore

__all__ = ["DIMS_KEYS", "PREFERRED_CHUNK_BYTES", "ArrayStoreBackendArray", "ArrayStoreBackendEntrypoint"]

#: Target size of a preferred chunk of a contiguous store (Dask's own default chunk size).
PREFERRED_CHUNK_BYTES = 128 * 1024 * 1024

#: Attribute keys that name the dimensions, in the order they are looked up.
DIMS_KEYS: tuple[str, ...] = ("dims", "_ARRAY_DIMENSIONS")

# Suffixes this engine claims when xarray guesses an engine: formats that need no library of
# their own (raw, npy). Those that do (HDF5, Zarr) are left to xarray's own engines (h5netcdf,
# zarr), which read them with their conventions.
_GUESS_SUFFIXES = tuple(s for s, b in SUFFIXES.items() if BACKENDS[b].library is None)


class ArrayStoreBackendArray(BackendArray):
    """A store seen by xarray: shape, dtype, and basic-indexing reads on demand."""

    def __init__(self, store: ArrayStore):
        self._store = store
        self.shape = store.shape
        self.dtype = store.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray[Any, Any]:
        out: np.ndarray[Any, Any] = indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._raw_getitem
        )
        return out

    def _raw_getitem(self, key: tuple[Any, ...]) -> np.ndarray[Any, Any]:
        return self._store[key]


def _dims(store: ArrayStore, attrs: dict[str, Any], dims: Iterable[str] | None) -> tuple[str, ...]:
    names: Any = dims
    source = "dims="
    if names is None:
        for key in DIMS_KEYS:
            if key in attrs:
                names, source = attrs[key], f"attribute {key!r}"
                break
    if names is None:
        names = getattr(store, "dimension_names", None)  # Zarr v3 metadata, where the backend exposes it
        names = names if names is not None else dialect_dimension_names(attrs, store.ndim)  # ENVI band, line, ...
        source = "the array's dimension_names"
        if names is None or any(n is None for n in names):
            return tuple(f"dim_{i}" for i in range(store.ndim))
    if isinstance(names, str) or len(list(names)) != store.ndim or not all(isinstance(n, str) for n in names):
        raise MetadataError(
            f"{store.path}: expected {source} to name the {store.ndim} dimensions with a list of strings, "
            f"found {names!r}; fix the attribute or pass dims=[...] to open_dataset"
        )
    return tuple(names)


def _preferred_chunks(store: ArrayStore, dims: tuple[str, ...]) -> dict[str, int]:
    chunks = store.chunks
    if chunks is None:
        if store.nbytes <= PREFERRED_CHUNK_BYTES:
            return {}  # one chunk; and explicit chunks split nothing worth a warning
        chunks = contiguous_chunks(store.shape, store.dtype.itemsize, store.order, PREFERRED_CHUNK_BYTES)
    return {dim: max(1, min(c, n)) for dim, c, n in zip(dims, chunks, store.shape)}


def _variable_name(store: ArrayStore, attrs: dict[str, Any]) -> str:
    name = attrs.get("name")
    if isinstance(name, str) and name:
        return name
    path = store.path
    if "::" in path:
        return path.rsplit("/", 1)[-1] or "data"
    stem = Path(path).name
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return re.sub(r"\W", "_", stem) or "data"


class ArrayStoreBackendEntrypoint(BackendEntrypoint):
    """``engine="arraystore"``: any arraystore array (raw, npy, HDF5, Zarr, plugins) as a one-variable Dataset."""

    description: ClassVar[str] = "Open raw+sidecar, .npy, HDF5 and Zarr arrays through arraystore"
    url: ClassVar[str] = "https://example.invalid/arraystore"
    open_dataset_parameters: ClassVar[tuple[str, ...]] = (
        "filename_or_obj", "drop_variables", "backend", "variable_name", "dims",
        "mask_and_scale", "decode_times", "decode_timedelta", "use_cftime", "concat_characters",
    )  # fmt: skip

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        backend: str | None = None,
        variable_name: str | None = None,
        dims: Iterable[str] | None = None,
        mask_and_scale: bool = True,
        decode_times: Any = True,
        decode_timedelta: Any = None,
        use_cftime: bool | None = None,
        concat_characters: bool = False,
    ) -> xr.Dataset:
        """Open an array lazily as a Dataset with one variable.

        Parameters
        ----------
        filename_or_obj
            A path (``"file.h5::/a/b"`` for arrays inside hierarchies) or an open store.
        drop_variables
            Names to leave out (the variable is dropped when its name is listed).
        backend
            arraystore backend name, when the path does not tell.
        variable_name
            The variable's name; default: the ``"name"`` attribute, else the file's stem.
        dims
            Dimension names; default: from the attrs (``"dims"``, ``"_ARRAY_DIMENSIONS"``), else ``dim_i``.
        mask_and_scale, decode_times, decode_timedelta, use_cftime, concat_characters
            xarray's CF decoding of the variable (``xarray.conventions.decode_cf_variable``), with
            xarray's defaults but ``concat_characters=False``; ``decode_cf=False`` sets them all False.
        """
        if isinstance(filename_or_obj, ArrayStore):
            store, owned = filename_or_obj, False
        elif isinstance(filename_or_obj, (str, os.PathLike)):
            store, owned = open_store(filename_or_obj, "r", backend=backend), True
        else:
            raise ArrayStoreError(
                f"engine='arraystore' expects a path or an arraystore store, found {type(filename_or_obj).__name__}"
            )
        try:
            attrs = dict(store.attrs)
            names = _dims(store, attrs, dims)
            for key in DIMS_KEYS:
                attrs.pop(key, None)
            name = variable_name or _variable_name(store, attrs)
            drop = {drop_variables} if isinstance(drop_variables, str) else set(drop_variables or ())
            data = indexing.LazilyIndexedArray(ArrayStoreBackendArray(store))
            encoding = {"preferred_chunks": _preferred_chunks(store, names)}
            variables = {} if name in drop else {name: xr.conventions.decode_cf_variable(
                name, xr.Variable(names, data, attrs, encoding=encoding), concat_characters=concat_characters,
                mask_and_scale=mask_and_scale, decode_times=decode_times, decode_endianness=False,
                stack_char_dim=concat_characters, use_cftime=use_cftime, decode_timedelta=decode_timedelta,
            )}  # fmt: skip
            ds = xr.Dataset(variables)
        except BaseException:
            if owned:
                store.close()
            raise
        if owned:
            ds.set_close(store.close)
        return ds

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """True for raw and ``.npy`` paths (HDF5 and Zarr are left to xarray's own engines)."""
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        path = os.fspath(filename_or_obj).split("::", 1)[0].lower()
        return path.endswith(_GUESS_SUFFIXES) or os.path.exists(path + ".json")
