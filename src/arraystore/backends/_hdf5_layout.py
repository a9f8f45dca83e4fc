"""Chunk shapes and compression filters for new HDF5 datasets.

``compression`` accepts ``"gzip"`` / ``"gzip:LEVEL"`` (0-9, default 4), ``"lzf"``,
``"zstd"`` / ``"zstd:LEVEL"`` and ``"blosc"`` / ``"blosc:CNAME"`` / ``"blosc:CNAME:LEVEL"``
(CNAME one of blosclz, lz4, lz4hc, zlib, zstd; default lz4, level 5). zstd and blosc
are HDF5 plugin filters, provided by the ``hdf5plugin`` package, imported only when
one of them is asked for (or found in a file being opened).
"""

from __future__ import annotations

import math
from typing import Any

import h5py
import numpy as np

from ..errors import BackendError, MissingDependencyError

__all__ = ["chunk_shape", "filter_options", "load_plugin_filters"]

_BUILTIN_FILTERS = frozenset(
    {1, 2, 3, 4, 5, 6, 32000}
)  # deflate, shuffle, fletcher32, szip, nbit, scaleoffset, lzf
_BLOSC_NAMES = ("blosclz", "lz4", "lz4hc", "zlib", "zstd")
_CODECS = "gzip[:LEVEL], lzf, zstd[:LEVEL], blosc[:CNAME[:LEVEL]]"


def _hdf5plugin() -> Any:
    try:
        import hdf5plugin
    except ImportError as exc:
        raise MissingDependencyError(
            "zstd and blosc compression in HDF5 need the hdf5plugin package, which is not installed; "
            "install it with: pip install hdf5plugin (or use compression='gzip' or 'lzf')"
        ) from exc
    return hdf5plugin


def _level(text: str, lo: int, hi: int, spec: str) -> int:
    try:
        level = int(text)
    except ValueError:
        level = lo - 1
    if not lo <= level <= hi:
        raise BackendError(f"expected a compression level from {lo} to {hi} in {spec!r}, found {text!r}")
    return level


def filter_options(compression: str | None, shuffle: bool, dtype: np.dtype[Any]) -> dict[str, Any]:
    """Keyword arguments for ``h5py.Group.create_dataset`` selecting the filters.

    Raises
    ------
    BackendError
        An unknown codec or level.
    MissingDependencyError
        zstd or blosc without ``hdf5plugin``.
    """
    if compression is None:
        return {"shuffle": True} if shuffle else {}
    if not isinstance(compression, str):
        raise BackendError(f"expected compression as a string ({_CODECS}) or None, found {compression!r}")
    name, _, rest = compression.lower().partition(":")
    if name == "gzip":
        return {
            "compression": "gzip",
            "compression_opts": _level(rest, 0, 9, compression) if rest else 4,
            "shuffle": shuffle,
        }
    if name == "lzf" and not rest:
        return {"compression": "lzf", "shuffle": shuffle}
    if name == "zstd":
        level = _level(rest, 1, 22, compression) if rest else 3
        return {**_hdf5plugin().Zstd(clevel=level), "shuffle": shuffle}
    if name == "blosc":
        cname, _, lvl = rest.partition(":")
        cname = cname or "lz4"
        if cname not in _BLOSC_NAMES:
            raise BackendError(
                f"expected a blosc compressor among {', '.join(_BLOSC_NAMES)}, found {cname!r}"
            )
        plugin = _hdf5plugin()
        level = _level(lvl, 0, 9, compression) if lvl else 5
        mode = plugin.Blosc.SHUFFLE if shuffle else plugin.Blosc.NOSHUFFLE
        return dict(plugin.Blosc(cname=cname, clevel=level, shuffle=mode))
    raise BackendError(f"unknown HDF5 compression {compression!r}; expected one of {_CODECS}, or None")


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
