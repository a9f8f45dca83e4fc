"""Zarr storage layout: the automatic chunk rule, compression specs, and dtype encodings.

Chunk rule
----------
``chunks=None`` picks chunks of at most :data:`AUTO_CHUNK_BYTES` (8 MiB) that span
whole *trailing* axes in storage order (the last axes for C order, the first axes
for F order) and split only the leading ones: walking from the fastest-varying axis,
each axis is taken whole while the chunk still fits, the first axis that does not
fit gets ``floor(8 MiB / bytes so far)`` (at least 1) and every slower axis gets 1.
Chunks are therefore whole-array for arrays up to 8 MiB and between 4 and 8 MiB
otherwise (unless one item alone is larger). With ``shards=`` and no ``chunks``, the
inner chunks follow the same rule with a 1 MiB target inside the shard, shrunk on
each axis to a divisor of the shard's extent.

Dtype encodings
---------------
zarr-python 3.1 stores every multi-byte number little-endian and gives back the
native dtype (zarr-python #4141: structured dtypes even lose their fields' byte
order). arraystore therefore records the array's real numpy dtype in its reserved
attribute and stores the values through one of three encodings:

``native``
    zarr's own data type for the dtype, byte for byte (little-endian dtypes).
``be``
    big-endian numbers, strings and times: zarr's data type with the ``bytes``
    codec's ``endian: "big"``, so the chunks hold numpy's big-endian bytes and any
    Zarr reader gets the right values; zarr-python hands back native values,
    converted to the recorded big-endian dtype on read.
``le``
    big-endian or mixed-order structured dtypes: the values converted to
    little-endian (``dtype.newbyteorder("<")``), stored as zarr's structured type,
    and converted back to the recorded dtype on read: lossless.
``raw``
    each item's bytes as zarr ``raw_bytes`` (numpy ``V<itemsize>``), viewed back as
    the recorded dtype on read: lossless, but other zarr readers see opaque bytes.
    Used where zarr-python has no data type that holds the dtype exactly:
    ``longdouble``/``clongdouble``, generic-unit ``datetime64``, structured
    dtypes with sub-array, raw-byte (``V``) or padded/overlapping/titled fields.
``cf``
    portable times (``create(..., portable=True)``, see ``_zarr_portable``):
    ``datetime64``/``timedelta64`` as little-endian int64 counts, viewed back as the
    recorded dtype on read.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..blocks import contiguous_chunks
from ..compression import parse_compression
from ..errors import CompressionError, MetadataError, UnsafeInputError
from ..fidelity import byte_order

__all__ = [
    "AUTO_CHUNK_BYTES",
    "DEFAULT_MAX_CHUNK_BYTES",
    "auto_chunks",
    "check_chunks",
    "compression_codecs",
    "decode",
    "encode",
    "storage_dtype",
]

#: Target size of an automatic chunk.
AUTO_CHUNK_BYTES = 8 * 1024 * 1024
#: Target size of an automatic inner chunk inside a shard.
AUTO_INNER_CHUNK_BYTES = 1024 * 1024
#: Largest decoded chunk accepted when creating or opening (``max_chunk_bytes=`` changes it).
DEFAULT_MAX_CHUNK_BYTES = 1024 * 1024 * 1024



def auto_chunks(shape: Sequence[int], itemsize: int, order: str, target: int = AUTO_CHUNK_BYTES) -> tuple[int, ...]:
    """The automatic chunk shape described in the module docstring."""
    return contiguous_chunks(shape, itemsize, order, target)


def inner_chunks_for_shards(shards: Sequence[int], itemsize: int, order: str) -> tuple[int, ...]:
    """Automatic inner chunks for a shard shape: each a divisor of the shard's extent."""
    guess = auto_chunks(shards, itemsize, order, AUTO_INNER_CHUNK_BYTES)
    return tuple(max(d for d in range(1, g + 1) if s % d == 0) for g, s in zip(guess, shards))


def check_chunks(value: Any, ndim: int, what: str = "chunks") -> tuple[int, ...]:
    """Validate a user chunk (or shard) shape: ``ndim`` positive integers."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and ndim == 1:
        value = (value,)
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise MetadataError(f"expected {what} as a tuple of {ndim} positive integers (or None), found {value!r}")
    out = []
    for c in value:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1:
            raise MetadataError(f"expected {what} as positive integers, found {c!r} in {tuple(value)!r}")
        out.append(int(c))
    if len(out) != ndim:
        raise MetadataError(
            f"expected {what} with one entry per dimension ({ndim}), found {len(out)}: {tuple(out)}; "
            "give one extent per axis, or None for the automatic rule"
        )
    return tuple(out)


def check_chunk_bytes(chunks: Sequence[int], itemsize: int, limit: int, where: str) -> None:
    """Refuse a chunk whose decoded size would exceed ``limit`` bytes."""
    nbytes = math.prod(chunks) * itemsize
    if nbytes > limit:
        raise UnsafeInputError(
            f"{where}: a chunk of shape {tuple(chunks)} holds {nbytes:,} bytes decoded, over the limit of "
            f"{limit:,} bytes; choose smaller chunks, or if you trust the array pass max_chunk_bytes= a larger value"
        )


def compression_codecs(compression: Any, *, checksum: bool = False) -> list[Any]:
    """zarr bytes-to-bytes codecs for a ``compression=`` value (see :mod:`arraystore.compression`).

    ``None`` and ``"none"`` mean uncompressed. ``checksum=True`` appends a CRC32C codec.

    Raises
    ------
    CompressionError
        An unknown or malformed codec, or one Zarr does not write (lzf).
    """
    from zarr.codecs import BloscCodec, Crc32cCodec, GzipCodec, ZstdCodec

    codecs: list[Any] = []
    c = parse_compression(compression)
    if c is not None:
        level = int(c.level or 0)  # every codec Zarr writes has levels (filled in by the parser)
        if c.codec == "zstd":
            codecs.append(ZstdCodec(level=level))
        elif c.codec == "gzip":
            codecs.append(GzipCodec(level=level))
        elif c.codec == "blosc":
            codecs.append(BloscCodec(cname=c.option("cname") or "lz4", clevel=level))  # type: ignore[arg-type]
        else:
            raise CompressionError(f"the zarr backend does not write {c.codec} compression; it supports blosc, gzip, zstd")
    if checksum:
        codecs.append(Crc32cCodec())
    return codecs


def _needs_raw(dtype: np.dtype[Any], inside_struct: bool = False) -> bool:
    if dtype.names is not None:
        fields = [dtype.fields[n] for n in dtype.names]  # type: ignore[index]
        packed = np.dtype([(n, f[0]) for n, f in zip(dtype.names, fields)])
        if packed.itemsize != dtype.itemsize or any(len(f) > 2 for f in fields):  # padding, overlap, titles
            return True
        if [f[1] for f in fields] != [packed.fields[n][1] for n in dtype.names]:  # type: ignore[index]
            return True
        return any(_needs_raw(f[0], True) for f in fields)
    if dtype.subdtype is not None:
        return True
    if dtype.kind in "fc" and dtype.itemsize > {"f": 8, "c": 16}[dtype.kind]:
        return True
    if dtype.kind in "Mm" and np.datetime_data(dtype)[0] == "generic":
        return True
    return dtype.kind == "V" and inside_struct


def storage_dtype(dtype: np.dtype[Any]) -> tuple[np.dtype[Any], str]:
    """The dtype handed to zarr for ``dtype``, and the encoding name (``native``, ``be``, ``le``, ``raw``)."""
    dtype = np.dtype(dtype)
    raw = np.dtype(f"V{dtype.itemsize}"), "raw"
    if _needs_raw(dtype):
        return raw
    if byte_order(dtype) in ("big", "mixed"):
        candidate, encoding = dtype.newbyteorder("<"), ("le" if dtype.names is not None else "be")
    else:
        candidate, encoding = dtype, "native"
    from zarr.core.dtype import parse_data_type
    from zarr.errors import UnstableSpecificationWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnstableSpecificationWarning)
            native = parse_data_type(candidate, zarr_format=3).to_native_dtype()
    except (TypeError, ValueError):
        return raw
    return (candidate, encoding) if native == candidate else raw


def encode(value: np.ndarray[Any, Any], stored: np.dtype[Any], encoding: str) -> np.ndarray[Any, Any]:
    """Values of the array's dtype as values of the storage dtype."""
    if encoding == "raw":
        flat = np.ascontiguousarray(value).reshape(-1)
        out: np.ndarray[Any, Any] = flat.view(stored).reshape(value.shape)
        return out
    if encoding == "cf":
        counts: np.ndarray[Any, Any] = np.asarray(value).astype(value.dtype.newbyteorder("=")).view(np.int64)
        return counts.astype(stored)
    if value.dtype != stored:
        return value.astype(stored)
    return value


def decode(stored_values: Any, dtype: np.dtype[Any], encoding: str) -> np.ndarray[Any, Any]:
    """Inverse of :func:`encode`: storage values back as the array's dtype."""
    arr = np.asarray(stored_values)
    if encoding == "raw":
        flat = np.ascontiguousarray(arr).reshape(-1)
        out: np.ndarray[Any, Any] = flat.view(dtype).reshape(arr.shape)
        return out
    if encoding == "cf":
        times: np.ndarray[Any, Any] = arr.astype(np.int64).view(dtype.newbyteorder("="))
        return times.astype(dtype)
    if arr.dtype != dtype:
        return arr.astype(dtype)
    return arr
