"""Chunk shapes and compression filters for new HDF5 datasets.

``compression`` is parsed by :mod:`arraystore.compression` (one grammar and the same
defaults for every backend); HDF5 writes gzip, lzf, zstd and blosc. zstd and blosc
are HDF5 plugin filters, provided by the ``hdf5plugin`` package, imported only when
one of them is asked for (or found in a file being opened).
"""

from __future__ import annotations

import math
import os
from typing import Any

import h5py
import numpy as np

from ..compression import parse_compression
from ..errors import BackendError, CompressionError, MissingDependencyError

__all__ = ["chunk_shape", "compression_name", "dataset_options", "filter_options", "load_plugin_filters"]

_BUILTIN_FILTERS = frozenset(
    {1, 2, 3, 4, 5, 6, 32000}
)  # deflate, shuffle, fletcher32, szip, nbit, scaleoffset, lzf
_CODECS = "blosc, gzip, lzf, zstd"


#: The ``HDF5_PLUGIN_PATH`` for which hdf5plugin's filters were registered over the plugins found there.
_REGISTERED_OVER: list[str] = []


def _hdf5plugin() -> Any:
    """hdf5plugin, imported, its filters the ones HDF5 uses.

    With ``HDF5_PLUGIN_PATH`` set (netCDF4 points it at its own filter plugins when imported),
    HDF5 may have loaded a Blosc or Zstd plugin built for another HDF5 from there, whose
    set-up callback fails on hdf5plugin's options ("error during user callback" creating a
    dataset): hdf5plugin's filters are registered over it.
    """
    try:
        import hdf5plugin
    except ImportError as exc:
        raise MissingDependencyError(
            "zstd and blosc compression in HDF5 need the hdf5plugin package, which is not installed; "
            "install it with: pip install hdf5plugin (or use compression='gzip' or 'lzf')"
        ) from exc
    path = os.environ.get("HDF5_PLUGIN_PATH", "")
    if path and path != getattr(hdf5plugin, "PLUGIN_PATH", None) and path not in _REGISTERED_OVER:
        hdf5plugin.register(force=True)
        _REGISTERED_OVER.append(path)
    return hdf5plugin


def filter_options(compression: Any, shuffle: bool, dtype: np.dtype[Any]) -> dict[str, Any]:
    """Keyword arguments for ``h5py.Group.create_dataset`` selecting the filters.

    Raises
    ------
    CompressionError
        An unknown or malformed codec, or one HDF5 does not write.
    MissingDependencyError
        zstd or blosc without ``hdf5plugin``.
    """
    c = parse_compression(compression)
    if c is None:
        return {"shuffle": True} if shuffle else {}
    if c.codec == "gzip":
        return {"compression": "gzip", "compression_opts": c.level, "shuffle": shuffle}
    if c.codec == "lzf":
        return {"compression": "lzf", "shuffle": shuffle}
    if c.codec == "zstd":
        return {**_hdf5plugin().Zstd(clevel=c.level), "shuffle": shuffle}
    if c.codec == "blosc":
        plugin = _hdf5plugin()
        mode = plugin.Blosc.SHUFFLE if shuffle else plugin.Blosc.NOSHUFFLE
        return dict(plugin.Blosc(cname=c.option("cname"), clevel=c.level, shuffle=mode))
    raise CompressionError(f"the hdf5 backend does not write {c.codec} compression; it supports {_CODECS}")


def chunk_shape(chunks: Any, storage_shape: tuple[int, ...], *, needed: bool) -> Any:
    """The ``chunks=`` argument for h5py, in storage axis order (None, True or a tuple).

    0-d and empty arrays are always contiguous (HDF5 cannot chunk a scalar, and
    there is nothing to compress).
    """
    if not storage_shape or math.prod(storage_shape) == 0:
        return None
    if chunks is None:
        return True if needed else None
    if chunks == "auto" or chunks is True:
        return True
    try:
        out = tuple(int(c) for c in chunks)
    except (TypeError, ValueError):
        out = ()
    if len(out) != len(storage_shape) or any(c <= 0 for c in out):
        raise BackendError(
            f"expected chunks as {len(storage_shape)} positive integers, 'auto' or None (contiguous), found {chunks!r}"
        )
    return tuple(min(c, n) for c, n in zip(out, storage_shape))


def load_plugin_filters(ds: h5py.Dataset, where: str) -> None:
    """Import ``hdf5plugin`` when a dataset uses a filter HDF5 does not build in."""
    dcpl = ds.id.get_create_plist()
    for i in range(dcpl.get_nfilters()):
        code = dcpl.get_filter(i)[0]
        if code not in _BUILTIN_FILTERS and not h5py.h5z.filter_avail(code):
            try:
                _hdf5plugin()
            except MissingDependencyError as exc:
                raise MissingDependencyError(f"{where}: uses HDF5 filter {code}; {exc}") from None
            return


def compression_name(ds: h5py.Dataset) -> str | None:
    """The dataset's compression: h5py's name (``"gzip"``, ``"lzf"``), else the plugin filter's.

    h5py names only HDF5's built-in filters (it says ``"unknown"`` for zstd or blosc): a
    plugin filter is named as hdf5plugin names it (``"zstd"``, ``"blosc"``, ``"bzip2"``, ...),
    or ``"filter <id>"`` when hdf5plugin does not know it or is not installed.
    """
    name: str | None = ds.compression
    if name not in (None, "unknown"):
        return name
    dcpl = ds.id.get_create_plist()
    codes = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    plugins = [c for c in codes if c not in _BUILTIN_FILTERS]
    if not plugins:
        return name
    try:
        import hdf5plugin
    except ImportError:
        known: dict[int, str] = {}
    else:
        known = {code: text for text, code in hdf5plugin.FILTERS.items()}
    return ", ".join(known.get(c, f"filter {c}") for c in plugins)


def dataset_options(layout: Any, filters: dict[str, Any], shape: tuple[int, ...]) -> dict[str, Any]:
    """``create_dataset`` keywords: chunks and filters, or contiguous storage allocated at once (mappable)."""
    if layout is not None:
        return {**filters, "chunks": layout}
    if not math.prod(shape):
        return {}
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return {"dcpl": dcpl}
