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
DECODERS = ("zlib",)
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

    Today: a MetaImage header (``.mhd``/``.mha``) with ``CompressedData = True`` (a zlib stream).
    None for any other file, or a header that is wrong for another reason too.
    """
    from ..dialects.metaimage import MetaImageDialect, read_metaimage_fields

    p = Path(path)
    dialect = MetaImageDialect()
    if p.suffix.lower() not in (".mhd", ".mha") or not p.is_file():
        return None
    try:
        if not dialect.sniff(p):
            return None
        fields, _ = read_metaimage_fields(p)
        if fields.get("compresseddata", ("", ""))[1].strip().lower() not in ("true", "1", "yes"):
            return None
        parsed = dialect.parse(p, allow_compressed=True)
    except ArrayStoreError:
        return None
    reason = "MetaImage CompressedData = True (zlib): compressed bytes cannot be referenced as Zarr chunks"
    return parsed.meta, Path(parsed.data_path), parsed.offset, "zlib", reason


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


def _pieces(f: Any, name: str, at: int) -> Any:
    """The decompressed bytes of the zlib stream read from ``f``, in pieces of at most ``_INFLATE_READ`` bytes."""
    inflater = zlib.decompressobj()
    data = b""
    while not inflater.eof:
        if not data:
            data = f.read(_INFLATE_READ)
            if not data:
                return  # the stream ends early: the caller counts the bytes
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
    hasher = StreamHasher()
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
