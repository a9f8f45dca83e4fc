"""The copying fallback of a virtual migration: a file that cannot be referenced is copied into the hierarchy.

What a chunk reference cannot express — a dtype with no Zarr v3 core type (byte and unicode
strings, structured, extended precision), data that must be decoded first (MetaImage
``CompressedData = True``) — is converted by copying into a real Zarr array,
``DST/virtual.copies/<file's relative path>``, and takes its place in the virtual hierarchy:
the kerchunk reference file names its metadata inline and its chunks as references to
those chunk files (template ``{{copies}}``); an icechunk repository gets its chunks as real
chunks. Each such file is reported ``converted`` with the note ``copied: <reason>``; a file
that copying cannot help either (a dtype no Zarr array can hold, a file outside the archive)
fails with the reason. ``migrate(..., fallback=False)`` refuses instead of copying.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..checksums import StreamHasher, checksum
from ..errors import ArrayStoreError, MetadataError, UnsupportedDtypeError
from ..meta import ArrayMeta

__all__ = ["COPIED_KEY", "COPIES_NAME", "CopiedArray", "copies_root", "copy_file", "copy_reason", "decodable"]

#: Folder of the destination holding the arrays a virtual migration copied.
COPIES_NAME = "virtual.copies"
#: Attribute under which a copied array records its source and why it was copied.
COPIED_KEY = "arraystore.copied"
#: Decoders a copy job may name (``Job.decode``).
DECODERS = ("zlib", "strided:<byte strides>")
_INFLATE_READ = 4 << 20


def copies_root(dst: str | os.PathLike[str]) -> Path:
    """Where a virtual migration into ``dst`` writes the arrays it copied."""
    return Path(dst) / COPIES_NAME


def copy_reason(meta: ArrayMeta) -> str | None:
    """Why ``meta`` cannot be referenced in place (so must be copied), or None when it can."""
    from .refs import check_expressible

    try:
        check_expressible(meta.dtype)
    except UnsupportedDtypeError:
        return f"dtype {meta.dtype.str} ({meta.dtype}) has no Zarr v3 core data type to reference its bytes with"
    return None


def decodable(path: str | os.PathLike[str]) -> tuple[ArrayMeta, Path, int, str, str] | None:
    """A file no reference can express but a decoder can read: ``(meta, data file, offset, decoder, reason)``.

    ``path`` is a header or its data file. Two cases today: a MetaImage header with
    ``CompressedData = True`` (decoder ``"zlib"``), and an ESRI EHdr raster whose rows or bands
    are padded (decoder ``"strided:<byte strides>"``: each item read where the padding puts
    it). None for any other file, or a header that is wrong for another reason too.
    """
    p = Path(path)
    if not p.is_file():
        return None
    for find in (_compressed_metaimage, _padded_ehdr):
        try:
            found = find(p)
        except ArrayStoreError:
            found = None
        if found is not None:
            return found
    return None


def _compressed_metaimage(p: Path) -> tuple[ArrayMeta, Path, int, str, str] | None:
    from ..dialects.metaimage import MetaImageDialect, read_metaimage_fields

    dialect = MetaImageDialect()
    header = p if p.suffix.lower() in (".mhd", ".mha") else dialect.find_header(p)
    if header is None or not dialect.sniff(header):
        return None
    fields, _ = read_metaimage_fields(header)
    if fields.get("compresseddata", ("", ""))[1].strip().lower() not in ("true", "1", "yes"):
        return None
    parsed = dialect.parse(header, allow_compressed=True)
    if header != p and Path(parsed.data_path).resolve() != p.resolve():
        return None
    reason = "MetaImage CompressedData = True (zlib): compressed bytes cannot be referenced as Zarr chunks"
    return parsed.meta, Path(parsed.data_path), parsed.offset, "zlib", reason


def _padded_ehdr(p: Path) -> tuple[ArrayMeta, Path, int, str, str] | None:
    from ..dialects.ehdr import EhdrDialect

    dialect = EhdrDialect()
    header = p if p.suffix.lower() == ".hdr" else dialect.find_header(p)
    if header is None or not dialect.sniff(header):
        return None
    parsed, strides = dialect.parse_padded(header, None if header == p else p)
    dense = tuple(int(parsed.meta.dtype.itemsize * np.prod(parsed.meta.shape[i + 1 :], dtype=np.int64))
                  for i in range(parsed.meta.ndim))
    if strides == dense:
        return None  # no padding: referenced in place as usual (it failed for another reason)
    reason = (
        "EHdr rows or bands padded (BANDROWBYTES/TOTALROWBYTES/BANDGAPBYTES): a Zarr chunk cannot skip the "
        "padding inside it"
    )
    return parsed.meta, Path(parsed.data_path), parsed.offset, "strided:" + ",".join(map(str, strides)), reason


def copy_file(
    src_path: str,
    meta: ArrayMeta,
    offset: int,
    out: Path,
    *,
    options: Any,
    own_sidecar: bool = False,
    decode: str | None = None,
) -> dict[str, Any]:
    """Convert one file into the Zarr array ``out``; ``{source_checksum, destination_checksum, verified}``.

    ``options`` is the migration's :class:`~arraystore.conversion.ConvertOptions`
    (compression, verification, memory budget); the destination is always Zarr.

    Raises
    ------
    UnsupportedDtypeError
        No Zarr array holds this dtype either: the file is refused.
    MetadataError
        The decoded data is shorter or longer than the header says.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    if decode == "zlib":
        return _inflate(src_path, meta, offset, out, options)
    if decode is not None and decode.startswith("strided:"):
        strides = tuple(int(s) for s in decode[len("strided:") :].split(","))
        return _strided(src_path, meta, offset, strides, out, options)
    if decode is not None:
        raise MetadataError(f"{src_path}: expected a decoder among {', '.join(DECODERS)}, found {decode!r}")
    from .._open import open as open_store
    from ..conversion import convert

    with open_store(src_path, "r", backend="raw", meta=meta, offset=offset, use_sidecar=own_sidecar) as src:
        report = convert(src, out, options.replace(backend="zarr", resume=True, overwrite=True))
    return {
        "source_checksum": report.checksum,
        "destination_checksum": report.checksum if report.verified else None,
        "verified": bool(report.verified),
    }


def _strided(
    src_path: str, meta: ArrayMeta, offset: int, strides: tuple[int, ...], out: Path, options: Any
) -> dict[str, Any]:
    """Copy items laid out with byte ``strides`` (padding between them) into a new Zarr array, in slabs of the first axis."""
    from .._open import create

    if len(strides) != meta.ndim or any(s < 0 for s in strides):
        raise MetadataError(f"{src_path}: expected {meta.ndim} non-negative byte strides, found {strides}")
    hasher = StreamHasher(meta.dtype)
    with create(
        out, meta.shape, meta.dtype, backend="zarr", attrs=meta.attrs, overwrite=True, compression=options.compression
    ) as dst:
        if meta.nbytes:
            mm = np.memmap(src_path, np.uint8, "r")
            view: np.ndarray[Any, Any] = np.ndarray(meta.shape, meta.dtype, buffer=mm, offset=offset, strides=strides)
            row = max(1, meta.nbytes // max(1, meta.shape[0]))
            step = max(1, int(options.max_memory) // (2 * row)) if meta.ndim else 1
            for start in range(0, meta.shape[0], step):
                block = np.ascontiguousarray(view[start : start + step])
                dst[start : start + step] = block
                hasher.update(block)
            del view, mm
    digest = hasher.result()
    got = checksum(out, decoded=True) if options.verify else None
    if got is not None and got.get("value") != digest.get("value"):
        raise MetadataError(f"{out}: read back differently from {src_path}; report this as a bug")
    return {"source_checksum": digest, "destination_checksum": got, "verified": got is not None}


def _pieces(f: Any, name: str, at: int) -> Any:
    """The decompressed bytes of the zlib stream read from ``f``, in pieces of at most ``_INFLATE_READ`` bytes."""
    inflater = zlib.decompressobj()
    data = b""
    while not inflater.eof:
        if not data:
            data = f.read(_INFLATE_READ)
            if not data:  # the stream ends early (the caller counts the bytes); what zlib still holds
                try:
                    tail = inflater.flush()
                except zlib.error as exc:
                    raise MetadataError(f"{name}: expected a zlib stream at byte {at}, found {exc}") from None
                if tail:
                    yield tail
                return
        try:
            piece = inflater.decompress(data, _INFLATE_READ)
        except zlib.error as exc:
            raise MetadataError(f"{name}: expected a zlib stream at byte {at}, found {exc}") from None
        data = inflater.unconsumed_tail
        if piece:
            yield piece


def _inflate(src_path: str, meta: ArrayMeta, offset: int, out: Path, options: Any) -> dict[str, Any]:
    """Decompress a zlib stream into a new Zarr array, whole rows (first axis) at a time."""
    from .._open import create

    dtype = meta.dtype
    shape = meta.shape or (1,)
    row = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    total = meta.nbytes
    hasher = StreamHasher(dtype)
    pending = bytearray()
    done = 0
    over = False
    with create(
        out, meta.shape, dtype, backend="zarr", attrs=meta.attrs, overwrite=True, compression=options.compression
    ) as dst, open(src_path, "rb") as f:
        f.seek(offset)
        for piece in _pieces(f, src_path, offset):
            pending += piece
            if done + len(pending) > total:
                over = True
                break
            rows = len(pending) // row if row else 0
            if rows:
                block = np.frombuffer(bytes(pending[: rows * row]), dtype).reshape((rows, *shape[1:]))
                start = done // row
                if meta.ndim:
                    dst[start : start + rows] = block
                else:
                    dst[()] = block[0]
                hasher.update(block)
                del pending[: rows * row]
                done += rows * row
        if done + len(pending) != total:
            raise MetadataError(
                f"{src_path}: the compressed data decodes to {'more than ' if over else ''}"
                f"{done + len(pending):,} bytes, expected {total:,} ({meta.dtype} {meta.shape}); the file is "
                "truncated or its header is wrong"
            )
    digest = hasher.result()
    got = checksum(out, decoded=True) if options.verify else None
    if got is not None and got.get("value") != digest.get("value"):
        raise MetadataError(f"{out}: read back differently from the decompressed {src_path}; report this as a bug")
    return {"source_checksum": digest, "destination_checksum": got, "verified": got is not None}


class CopiedArray:
    """An array a virtual migration copied: its place in the hierarchy and its Zarr folder.

    Parameters
    ----------
    path
        The array's path in the virtual hierarchy (the file's relative path).
    folder
        The Zarr array written by :func:`copy_file` (``DST/virtual.copies/<path>``).
    record
        What its attrs record under :data:`COPIED_KEY` (source, reason, size, time, checksum).
    """

    def __init__(self, path: str, folder: Path, record: dict[str, Any]) -> None:
        self.path, self.folder, self.record = path, folder, record

    def metadata(self) -> dict[str, Any]:
        """The array's ``zarr.json`` with :data:`COPIED_KEY` added to its attributes."""
        import json

        doc: dict[str, Any] = json.loads((self.folder / "zarr.json").read_bytes())
        doc["attributes"] = {**(doc.get("attributes") or {}), COPIED_KEY: self.record}
        return doc

    def chunk_keys(self) -> list[str]:
        """Every stored chunk file, relative to the array (``c/0/0``), sorted."""
        out = []
        for folder, _, files in os.walk(self.folder):
            for name in files:
                rel = (Path(folder) / name).relative_to(self.folder).as_posix()
                if rel != "zarr.json" and not name.startswith("."):
                    out.append(rel)
        return sorted(out)
