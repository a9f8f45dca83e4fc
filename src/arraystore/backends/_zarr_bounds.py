"""Decompression-bomb guard: every compressed chunk is checked before zarr decodes it.

zarr-python hands a chunk's bytes to its codecs, and numcodecs allocates whatever a
frame header claims (zstd, blosc, lz4) or inflates without limit (gzip, zlib, bz2,
lzma). :class:`BoundedStore` wraps the store an array is read through; its ``get``
inspects every chunk (or shard) it returns against the chunk's *expected decoded size*
(chunk shape × item size, after any ``astype``-like filter) and raises
:class:`~arraystore.errors.UnsafeInputError` before zarr decodes a byte of it.

How each codec is bounded
-------------------------
``zstd``
    Every frame is walked (RFC 8878): a frame's ``Frame_Content_Size`` when present
    (numcodecs allocates the first frame's), else the sum over its blocks of the raw
    and RLE sizes and 128 KiB (the largest a compressed block can decode to) per
    compressed block. Frames without a content size written in blocks smaller than
    128 KiB may therefore be refused although they would fit; zarr-python and
    numcodecs always write the content size. No data is decoded.
``blosc``
    the header's ``nbytes`` (bytes 4..8, little-endian). No data is decoded.
``lz4`` (numcodecs)
    the 4-byte little-endian size prefix. No data is decoded.
``gzip``, ``zlib``, ``bz2``, ``lzma``
    their size fields are absent or only modulo 2**32, so the stream is decoded once
    here with ``max_length`` = expected + 1 and refused as soon as it would exceed;
    zarr decodes it again (a second decode of these codecs only).
``crc32c``
    its 4 trailing bytes are set aside (zarr verifies them).
other codecs between a compressor and the stored bytes (``shuffle``, checksums)
    decoded with their own numcodecs codec (their output is never larger than their
    input); a codec that cannot be decoded here stops the check for that chunk.

A compressor below another bytes-to-bytes codec is decoded (bounded) to reach the next
one; its limit is the expected size plus the worst-case growth of compression
(1/64 + 64 KiB). Shards (``sharding_indexed``): a whole shard read has its index
parsed (``bytes`` + optional ``crc32c`` index codecs) and every inner chunk checked;
an inner chunk read by byte range is checked on its own. A shard whose index codecs
are anything else is passed unchecked when read whole (documented limitation).
"""

from __future__ import annotations

import asyncio
import bz2
import contextlib
import lzma
import math
import os
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from zarr.abc.store import ByteRequest, RangeByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import WrapperStore

from ..errors import ArrayStoreError, MetadataError, UnsafeInputError
from ._zarr_guard import check_inside

__all__ = ["BoundedStore", "ChunkRule", "blosc_truncated", "check_chunk", "chunk_rule", "declared_size"]

_METADATA_NAMES = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"})
_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_BLOCK_MAX = 128 * 1024
_EMPTY = 2**64 - 1
#: Chunks below this size are checked in the event loop; larger ones that need decoding in a thread.
_THREAD_BYTES = 64 * 1024
_STREAM_CODECS = frozenset({"gzip", "zlib", "bz2", "lzma"})
_HEADER_CODECS = frozenset({"zstd", "blosc", "lz4"})


@dataclass(frozen=True)
class Stage:
    """One bytes-to-bytes codec: its name and, when known, a numcodecs object that decodes it."""

    name: str
    codec: Any = None


@dataclass(frozen=True)
class ShardRule:
    """How to find and check the inner chunks of a shard."""

    n_chunks: int
    index_size: int
    index_at_start: bool
    index_endian: str | None  # None: index codecs not understood, whole-shard reads pass unchecked
    inner: ChunkRule


@dataclass(frozen=True)
class ChunkRule:
    """What a stored chunk must decode to: bytes-to-bytes stages (encode order) over ``decoded`` bytes."""

    stages: tuple[Stage, ...]
    decoded: int
    shard: ShardRule | None = None

    @property
    def heavy(self) -> bool:
        """True when checking needs a decode (stream codecs, or stages below the outermost one)."""
        names = [s.name for s in self.stages]
        return (
            bool(_STREAM_CODECS & set(names)) or len(names) > 1 or (self.shard is not None and self.shard.inner.heavy)
        )


def _bytes_view(a: np.ndarray[Any, Any]) -> memoryview:
    return memoryview(a.view(np.uint8).reshape(-1))  # type: ignore[arg-type]  # numpy arrays are buffers


def _grow(n: int) -> int:
    return n + n // 64 + 65536


# -- rules from zarr metadata ------------------------------------------------------------


def _stage(codec: Any) -> Stage:
    if hasattr(codec, "codec_id"):  # numcodecs (v2 metadata)
        return Stage(str(codec.codec_id), codec)
    name = str(codec.to_dict().get("name", "")).removeprefix("numcodecs.")
    return Stage(name, getattr(codec, "_codec", None))


def _spec_bytes(spec: Any) -> int:
    return int(math.prod(spec.shape)) * int(spec.dtype.to_native_dtype().itemsize)


def _v3_rule(codecs: Any, spec: Any) -> ChunkRule:
    from zarr.abc.codec import ArrayArrayCodec, BytesBytesCodec
    from zarr.codecs import ShardingCodec

    codecs = list(codecs)
    for codec in codecs:
        if isinstance(codec, ArrayArrayCodec):
            spec = codec.resolve_metadata(spec)
    array_bytes = next(c for c in codecs if not isinstance(c, (ArrayArrayCodec, BytesBytesCodec)))
    stages = tuple(_stage(c) for c in codecs if isinstance(c, BytesBytesCodec))
    if not isinstance(array_bytes, ShardingCodec):
        return ChunkRule(stages, _spec_bytes(spec))
    inner_spec = array_bytes._get_chunk_spec(spec)
    inner = _v3_rule(array_bytes.codecs, inner_spec)
    per_shard = tuple(s // c for s, c in zip(spec.shape, array_bytes.chunk_shape))
    n = math.prod(per_shard)
    index_size = int(array_bytes._shard_index_size(per_shard))
    names = [_stage(c).name for c in array_bytes.index_codecs]
    endian = None
    if names and names[0] == "bytes" and all(x == "crc32c" for x in names[1:]):
        index_bytes: Any = array_bytes.index_codecs[0]
        endian = getattr(index_bytes.endian, "value", "little") or "little"
        if index_size != 16 * n + 4 * (len(names) - 1):
            endian = None
    at_start = getattr(array_bytes.index_location, "value", "end") == "start"
    shard = ShardRule(n, index_size, at_start, endian, inner)
    return ChunkRule(stages, n * _grow(inner.decoded) + index_size, shard)


def _v2_rule(md: Any) -> ChunkRule:
    itemsize = int(md.dtype.to_native_dtype().itemsize)
    for f in md.filters or ():
        for attr in ("astype", "encode_dtype", "dtype"):
            value = getattr(f, attr, None)
            if value is not None:
                itemsize = max(itemsize, np.dtype(value).itemsize)
    stages = (_stage(md.compressor),) if md.compressor is not None else ()
    return ChunkRule(stages, math.prod(md.chunks) * itemsize)


def chunk_rule(arr: Any) -> ChunkRule | None:
    """The check for an opened zarr array's stored chunks, or None when nothing needs checking."""
    md = arr.metadata
    if md.zarr_format == 2:
        rule = _v2_rule(md)
    else:
        from zarr.core.array_spec import ArrayConfig
        from zarr.core.buffer import default_buffer_prototype

        spec = md.get_chunk_spec(
            (0,) * len(arr.shape),
            ArrayConfig.from_dict({"order": "C", "write_empty_chunks": False}),
            default_buffer_prototype(),
        )
        rule = _v3_rule(md.codecs, spec)
    return rule if rule.stages or rule.shard is not None else None


# -- checks ------------------------------------------------------------------------------


def _bomb(what: str, n_in: int, verb: str, n_out: int | None, limit: int) -> UnsafeInputError:
    size = f"{verb} {n_out:,} bytes, more than" if n_out is not None else f"{verb} more than"
    return UnsafeInputError(
        f"{what}: a chunk of {n_in:,} compressed bytes {size} the chunk's {limit:,} bytes: a decompression bomb "
        "or a damaged file; refused before decoding. Read it with zarr directly only if you trust its origin"
    )


def _damaged(what: str, codec: str, why: str) -> MetadataError:
    return MetadataError(
        f"{what}: a chunk could not be decoded: expected a {codec} stream, found {why}; the chunk is damaged: "
        "re-create or restore the array"
    )


def _zstd_bound(data: memoryview, limit: int, what: str, exact: bool = False) -> int | None:
    """Refuse a stream that would decode to more than ``limit``; the total content size (None: a frame has none)."""
    n, pos, total = len(data), 0, 0
    sized = True

    def need(k: int) -> None:
        if pos + k > n:
            raise _damaged(what, "zstd", f"a frame truncated at byte {n:,}")

    while pos < n:
        need(4)
        magic = int.from_bytes(data[pos : pos + 4], "little")
        if 0x184D2A50 <= magic <= 0x184D2A5F:  # skippable frame
            need(8)
            pos += 8 + int.from_bytes(data[pos + 4 : pos + 8], "little")
            continue
        if magic != _ZSTD_MAGIC:
            raise _damaged(what, "zstd", f"magic {magic:#010x} at byte {pos:,}")
        need(5)
        fhd = data[pos + 4]
        single = (fhd >> 5) & 1
        fcs_len = (1 if single else 0, 2, 4, 8)[fhd >> 6]
        p = pos + 5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3]
        pos = p
        need(fcs_len)
        fcs = int.from_bytes(data[p : p + fcs_len], "little") + (256 if fcs_len == 2 else 0) if fcs_len else None
        if fcs is None:
            sized = False
            if exact:
                return None
        if fcs is not None and total + fcs > limit:
            raise _bomb(what, n, "declares", total + fcs, limit)
        pos = p + fcs_len
        blocks = 0
        while True:
            need(3)
            hdr = int.from_bytes(data[pos : pos + 3], "little")
            kind, size = (hdr >> 1) & 3, hdr >> 3
            if kind == 3:
                raise _damaged(what, "zstd", f"a reserved block type at byte {pos:,}")
            pos += 3 + (1 if kind == 1 else size)
            blocks += _ZSTD_BLOCK_MAX if kind == 2 else size
            if fcs is None and total + blocks > limit:
                raise _bomb(what, n, "may decode to (block sizes) at least", total + blocks, limit)
            if hdr & 1:
                break
        pos += 4 * ((fhd >> 2) & 1)  # content checksum
        total += fcs if fcs is not None else blocks
    return total if sized else None


def declared_size(name: str, data: memoryview) -> int | None:
    """What a ``zstd`` stream (every frame has its content size) or a ``blosc`` buffer says it decodes to, else None."""
    if name == "blosc":
        return int.from_bytes(data[4:8], "little") if len(data) >= 16 else None
    try:
        total = _zstd_bound(data, 2**63, "", exact=True)
    except ArrayStoreError:
        return None
    return total


def blosc_truncated(data: memoryview) -> str | None:
    """What is wrong when a ``blosc`` buffer is shorter than its header, or than the compressed size (``cbytes``)
    its header declares; else None.

    c-blosc 1 reads ``cbytes`` bytes whatever the buffer's length: a truncated chunk decodes to wrong
    values (or reads past the buffer) without an error, in numcodecs and so in zarr-python.
    """
    if len(data) < 16:
        return f"{len(data)} bytes, shorter than its 16-byte header"
    cbytes = int.from_bytes(data[12:16], "little")
    if cbytes > len(data):
        return f"{len(data):,} bytes where its header declares {cbytes:,} (the chunk is cut short)"
    return None


def _header_bound(name: str, data: memoryview, limit: int, what: str) -> None:
    if name == "zstd":
        _zstd_bound(data, limit, what)
        return
    start, size = (4, 16) if name == "blosc" else (0, 4)
    if len(data) < size:
        raise _damaged(what, name, f"{len(data)} bytes, shorter than its {size}-byte header")
    why = blosc_truncated(data) if name == "blosc" else None
    if why is not None:
        raise _damaged(what, name, why)
    declared = int.from_bytes(data[start : start + 4], "little")
    if declared > limit:
        raise _bomb(what, len(data), "declares", declared, limit)


def _decompressor(stage: Stage) -> tuple[Callable[[], Any], bool]:
    """A factory of incremental decoders for a stream codec, and whether members may follow one another."""
    if stage.name == "gzip":
        return (lambda: zlib.decompressobj(31)), True
    if stage.name == "zlib":
        return zlib.decompressobj, False
    if stage.name == "bz2":
        return bz2.BZ2Decompressor, True
    fmt = getattr(stage.codec, "format", lzma.FORMAT_AUTO)
    filters = getattr(stage.codec, "filters", None) if fmt == lzma.FORMAT_RAW else None
    return (lambda: lzma.LZMADecompressor(format=fmt, filters=filters)), True


def _inflate(stage: Stage, data: memoryview, limit: int, what: str, keep: bool) -> bytes | None:
    make, multi = _decompressor(stage)
    total, parts, view = 0, [], data
    try:
        while True:
            dec = make()
            out = dec.decompress(view, max_length=limit - total + 1)
            total += len(out)
            if total > limit:
                raise _bomb(what, len(data), "decodes to", None, limit)
            if keep:
                parts.append(out)
            if not dec.eof:
                raise _damaged(what, stage.name, "a stream that ends before its end marker (truncated)")
            rest = bytes(dec.unused_data).lstrip(b"\0") if multi else b""
            if not rest:
                break
            view = memoryview(rest)
    except ArrayStoreError:
        raise
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        raise _damaged(what, stage.name, f"{type(exc).__name__}: {exc}") from None
    return b"".join(parts) if keep else None


def _undo(stage: Stage, data: memoryview, limit: int, what: str, keep: bool) -> memoryview | None:
    """Check one stage's stored bytes; with ``keep``, return what it decodes to (None: cannot go deeper)."""
    if stage.name == "crc32c":
        return data[:-4] if len(data) >= 4 else None
    if stage.name in _HEADER_CODECS:
        _header_bound(stage.name, data, limit, what)
    elif stage.name in _STREAM_CODECS:
        out = _inflate(stage, data, limit, what, keep)
        return memoryview(out) if out is not None else None
    if not keep or stage.codec is None:
        return None
    try:
        decoded = stage.codec.decode(data)
    except Exception as exc:  # any codec failure means the chunk is damaged
        raise _damaged(what, stage.name, f"{type(exc).__name__}: {exc}") from None
    return _bytes_view(np.ascontiguousarray(decoded))


def check_chunk(data: memoryview, rule: ChunkRule, what: str) -> None:
    """Refuse a stored chunk (or shard) that would decode to more than ``rule`` allows.

    Raises
    ------
    UnsafeInputError
        A size header or the bounded decode exceeds the chunk's expected decoded size.
    MetadataError
        The chunk is not a valid stream of its codec.
    """
    view: memoryview | None = data
    for i in range(len(rule.stages) - 1, -1, -1):
        last = i == 0
        limit = rule.decoded if last else _grow(rule.decoded)
        keep = not last or rule.shard is not None
        assert view is not None
        view = _undo(rule.stages[i], view, limit, what, keep)
        if view is None:
            return
    if rule.shard is not None and view is not None:
        _check_shard(view, rule.shard, what)


def _check_shard(data: memoryview, shard: ShardRule, what: str) -> None:
    if shard.index_endian is None or len(data) < shard.index_size:
        return
    index = data[: shard.index_size] if shard.index_at_start else data[len(data) - shard.index_size :]
    dtype = np.dtype("<u8" if shard.index_endian == "little" else ">u8")
    pairs = np.frombuffer(index, dtype=dtype, count=2 * shard.n_chunks).reshape(-1, 2)
    for offset, length in pairs.tolist():
        if offset == _EMPTY and length == _EMPTY:
            continue
        if offset + length > len(data):
            continue  # zarr reports the bad index
        check_chunk(data[offset : offset + length], shard.inner, what)


# -- the store wrapper -------------------------------------------------------------------


class BoundedStore(WrapperStore[Store]):
    """A zarr store whose reads of one array's chunks pass :func:`check_chunk` first.

    Parameters
    ----------
    store
        The store zarr would otherwise read (``LocalStore``, ``ZipStore``).
    where
        How messages name the array.
    prefix
        The array's path inside the store (``""`` for the root).

    root
        The resolved folder of a directory store: every key read, written or deleted
        must resolve (through symlinks) inside it (``_zarr_guard.check_inside``).

    Metadata passes the size checks unchecked; :attr:`rule` is set once the array's
    metadata is known.
    """

    def __init__(self, store: Store, where: str = "", prefix: str = "", root: str | None = None) -> None:
        super().__init__(store)
        self.where = where
        self.prefix = f"{prefix}/" if prefix else ""
        self.rule: ChunkRule | None = None
        self.root = root
        self._folders_inside: set[str] = set()

    def _with_store(self, store: Store) -> BoundedStore:
        other = type(self)(store, self.where, self.prefix.rstrip("/"), self.root)
        other.rule = self.rule
        return other

    def _inside(self, key: str) -> None:
        root = self.root
        if root is None:
            return
        full = os.path.join(root, key)
        folder = os.path.dirname(full)
        if folder not in self._folders_inside:  # folders resolved once per store; files lstat-ed each time
            check_inside(root, folder, self.where)
            if len(self._folders_inside) > 65536:
                self._folders_inside.clear()
            self._folders_inside.add(folder)
        if os.path.islink(full):
            check_inside(root, full, self.where)

    def local_path(self, key: str) -> str | None:
        """The file holding ``key`` when the wrapped store is a local folder (checked to resolve inside), else None."""
        from zarr.storage import LocalStore

        if self.root is None or not isinstance(self._store, LocalStore):
            return None
        self._inside(key)
        return os.path.join(self.root, key)

    @property
    def put_stream(self) -> Callable[..., contextlib.AbstractContextManager[BinaryIO]] | None:
        """The wrapped store's ``put_stream`` (a write piece by piece, :class:`ModeKeepingLocalStore`) for keys that
        resolve inside the store, or None when the wrapped store has none."""
        inner = getattr(self._store, "put_stream", None)
        if inner is None:
            return None

        def put_stream(key: str, **options: Any) -> contextlib.AbstractContextManager[BinaryIO]:
            self._inside(key)
            return inner(key, **options)  # type: ignore[no-any-return]

        return put_stream

    def _rule_for(self, key: str, byte_range: ByteRequest | None) -> ChunkRule | None:
        rule = self.rule
        if rule is None or not key.startswith(self.prefix) or key.rsplit("/", 1)[-1] in _METADATA_NAMES:
            return None
        if byte_range is None:
            return rule
        shard = rule.shard
        if shard is None or rule.stages or not isinstance(byte_range, RangeByteRequest):
            return None  # zarr reads non-shard chunks whole; suffix reads are a shard's index
        if shard.index_at_start and byte_range.start == 0 and byte_range.end == shard.index_size:
            return None
        return shard.inner

    async def _checked(self, key: str, byte_range: ByteRequest | None, buf: Buffer | None) -> Buffer | None:
        rule = self._rule_for(key, byte_range) if buf is not None else None
        if rule is None or buf is None:
            return buf
        view = _bytes_view(np.ascontiguousarray(buf.as_numpy_array()))
        what = f"{self.where}: chunk {key.removeprefix(self.prefix)!r}"
        if rule.heavy and len(view) > _THREAD_BYTES:
            await asyncio.to_thread(check_chunk, view, rule, what)
        else:
            check_chunk(view, rule, what)
        return buf

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        """Read ``key`` from the wrapped store and check it when it is one of the array's chunks."""
        self._inside(key)
        return await self._checked(key, byte_range, await self._store.get(key, prototype, byte_range))

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        """Read several ranges and check those that are the array's chunks."""
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            self._inside(key)
        bufs = await self._store.get_partial_values(prototype, key_ranges)
        return [await self._checked(k, r, b) for (k, r), b in zip(key_ranges, bufs)]

    async def exists(self, key: str) -> bool:
        """Whether ``key`` exists, refusing keys that resolve outside the store."""
        self._inside(key)
        return await self._store.exists(key)

    async def set(self, key: str, value: Buffer) -> None:
        """Write ``key``, refusing keys that resolve outside the store."""
        self._inside(key)
        await self._store.set(key, value)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        """Write ``key`` unless it exists, refusing keys that resolve outside the store."""
        self._inside(key)
        await self._store.set_if_not_exists(key, value)

    async def delete(self, key: str) -> None:
        """Delete ``key``, refusing keys that resolve outside the store."""
        self._inside(key)
        await self._store.delete(key)
