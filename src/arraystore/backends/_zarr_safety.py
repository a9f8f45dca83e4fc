"""Input checks for Zarr stores, and zarr-python's exceptions mapped into arraystore's tree.

What is refused, with :class:`~arraystore.errors.UnsafeInputError` unless noted:

* keys (``data.zarr::/grp/arr``) that are absolute after their leading ``/``, hold
  ``..`` or ``.`` segments, backslashes, NUL bytes or empty segments;
* metadata documents (``zarr.json``, ``.zarray``, ``.zattrs``) over
  :data:`MAX_METADATA_BYTES`, and zip members larger than a chunk can be;
* codecs outside :data:`SAFE_CODECS` (``pickle`` and friends can run code when a
  chunk is decoded);
* chunk grids that are not regular, do not match the array's rank, or whose chunk
  would decode to more than ``max_chunk_bytes`` (a decompression bomb or a typo);
* inconsistent shapes, codecs or data types found by zarr-python while parsing:
  :class:`~arraystore.errors.MetadataError`; a data type *name* zarr-python does not know
  (TensorStore's ``bfloat16``, ``int4``, ``float8_*``, or ``complex512``):
  :class:`~arraystore.errors.UnsupportedDtypeError`, like an unknown ENVI or HDF5 type.
* metadata documents that would parse into more than ``_fsutil.MAX_JSON_ITEMS``
  values or nest deeper than ``_fsutil.MAX_JSON_DEPTH`` (checked before zarr-python
  parses them, also inside zip stores);
* chunk, shard and metadata files that are or pass through symlinks leading outside
  the store (``_zarr_guard``);
* metadata documents that are not JSON objects, and chunks that do not decode:
  :class:`~arraystore.errors.MetadataError`. Chunks whose codecs would decode to more
  than the chunk holds are refused by ``_zarr_bounds`` as they are read.
"""

from __future__ import annotations

import contextlib
import errno
import json
import lzma
import math
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import _fsutil
from ..errors import ArrayNotFoundError, ArrayStoreError, MetadataError, UnsafeInputError, UnsupportedDtypeError
from ._zarr_layout import check_chunk_bytes

__all__ = ["MAX_METADATA_BYTES", "SAFE_CODECS", "check_array", "check_key", "check_zip", "zarr_errors"]

#: Largest metadata document read.
MAX_METADATA_BYTES = 16 * 1024 * 1024

#: Codec names whose decoding only transforms bytes (v3 names; v2/numcodecs ids).
SAFE_CODECS = frozenset(
    {
        "bytes", "transpose", "zstd", "blosc", "gzip", "crc32c", "sharding_indexed",
        "zlib", "bz2", "lzma", "lz4", "crc32", "adler32", "fletcher32", "jenkins_lookup3",
        "delta", "shuffle", "bitround", "quantize", "fixedscaleoffset", "packbits", "astype",
    }
)  # fmt: skip

_METADATA_NAMES = ("zarr.json", ".zarray", ".zattrs", ".zgroup")


def check_key(key: str | None) -> str:
    """The store path for a ``::`` key, or ``""`` for the root; refuse unsafe keys."""
    if key is None or key in ("", "/"):
        return ""
    body = key[1:] if key.startswith("/") else key
    problems = []
    if "\\" in body:
        problems.append("a backslash")
    if "\x00" in body:
        problems.append("a NUL byte")
    segments = body.split("/")
    if any(s == "" for s in segments):
        problems.append("an empty segment (// or a leading/trailing /)")
    if any(s in (".", "..") for s in segments):
        problems.append("a '.' or '..' segment")
    if any(s.startswith("__") for s in segments):
        problems.append("a segment starting with '__' (reserved by the Zarr spec)")
    if problems:
        raise UnsafeInputError(
            f"expected a key such as '/group/array' of plain names separated by '/', found {key!r} with "
            f"{', '.join(problems)}; name the array by its path inside the hierarchy"
        )
    return body


def check_metadata_file(path: Path) -> None:
    """Refuse an oversized metadata document, or one that is not a JSON object, before zarr parses it."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size > MAX_METADATA_BYTES:
        raise UnsafeInputError(
            f"{path}: a metadata document of {size:,} bytes, over the limit of {MAX_METADATA_BYTES:,}; "
            "real Zarr metadata is a few kilobytes: this file is damaged or hostile"
        )
    if not path.is_file():
        return
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    doc = _fsutil.loads_json(raw, str(path), "JSON object (Zarr metadata)")
    if not isinstance(doc, dict):
        raise MetadataError(
            f"{path}: expected a JSON object (Zarr metadata), found a JSON {type(doc).__name__}; the file is damaged "
            "or not Zarr metadata: restore it"
        )


def check_zip(zf: zipfile.ZipFile, where: str, max_member_bytes: int) -> None:
    """Refuse zip members with oversized metadata or chunks, before zarr reads any."""
    for info in zf.infolist():
        name = info.filename.rsplit("/", 1)[-1]
        limit = MAX_METADATA_BYTES if name in _METADATA_NAMES else max_member_bytes
        if info.file_size > limit:
            raise UnsafeInputError(
                f"{where}: zip member {info.filename!r} expands to {info.file_size:,} bytes, over the limit of "
                f"{limit:,}; pass max_chunk_bytes= a larger value if you trust this file"
            )
        if name in _METADATA_NAMES:
            _fsutil.check_json_size(zf.read(info), f"{where}: zip member {info.filename!r}", "Zarr metadata document")


def _codec_names(codecs: Any) -> Iterator[str]:
    for codec in codecs or ():
        if hasattr(codec, "codec_id"):  # a numcodecs codec (zarr v2 metadata)
            yield str(codec.codec_id)
            continue
        name = str(codec.to_dict().get("name", "")) if hasattr(codec, "to_dict") else type(codec).__name__
        yield name.removeprefix("numcodecs.")
        yield from _codec_names(getattr(codec, "codecs", ()))
        yield from _codec_names(getattr(codec, "index_codecs", ()))


def check_array(arr: Any, where: str, max_chunk_bytes: int) -> None:
    """Check an opened zarr array's metadata: codecs allow-listed, chunk grid sane and bounded."""
    md = arr.metadata
    if md.zarr_format == 3:
        codecs: Any = md.codecs
        grid = md.chunk_grid
        if type(grid).__name__ != "RegularChunkGrid":
            raise UnsafeInputError(f"{where}: expected a regular chunk grid, found {type(grid).__name__}")
        if getattr(md, "storage_transformers", ()):
            raise UnsafeInputError(
                f"{where}: storage transformers are not supported; found {md.storage_transformers!r}"
            )
    else:
        codecs = [*(md.filters or ()), *([md.compressor] if md.compressor is not None else [])]
    unsafe = sorted({n for n in _codec_names(codecs) if n not in SAFE_CODECS})
    if unsafe:
        raise UnsafeInputError(
            f"{where}: refusing codec(s) {', '.join(unsafe)}: only byte-transforming codecs are decoded "
            f"({', '.join(sorted(SAFE_CODECS))}); 'pickle'-like codecs can run code. Read it with zarr "
            "directly only if you trust its origin"
        )
    shape = tuple(arr.shape)
    for name, unit in (("chunk", arr.chunks), ("shard", arr.shards)):
        if unit is None:
            continue
        if len(unit) != len(shape) or any(int(c) < 1 for c in unit):
            raise MetadataError(
                f"{where}: expected a {name} shape of {len(shape)} positive extents for shape {shape}, found {unit}"
            )
    check_chunk_bytes(arr.chunks, arr.dtype.itemsize, max_chunk_bytes, where)
    if arr.shards is not None and any(s % c for s, c in zip(arr.shards, arr.chunks)):
        raise MetadataError(f"{where}: shard shape {arr.shards} is not a multiple of its chunk shape {arr.chunks}")
    if math.prod(shape) and arr.dtype.itemsize == 0:
        raise MetadataError(f"{where}: a data type of zero-sized items")


#: zarr's registry error for a data type *name* it does not know: "... matches 'bfloat16'".
_UNKNOWN_NAME = re.compile(r"No Zarr data type found that matches '[^']+'\Z")


def _unknown_data_type(exc: BaseException) -> bool:
    """True when ``exc`` is zarr's data-type registry not knowing a named type (TensorStore's ``bfloat16``).

    Other registry failures stay invalid metadata: a number or object as the data type, and a v2
    array whose codec zarr takes for an object codec (``pickle``: the message then holds a dict).
    """
    tb = exc.__traceback__
    module = ""
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return module.startswith("zarr.core.dtype") and _UNKNOWN_NAME.search(str(exc)) is not None


def _undecodable(where: str, exc: BaseException) -> MetadataError:
    """The error of a chunk a codec could not decode."""
    return MetadataError(f"{where}: a chunk could not be decoded: {type(exc).__name__}: {exc}; the chunk is damaged: "
                         "re-create or restore the array")


@contextlib.contextmanager
def zarr_errors(where: str, *, reading_chunks: bool = False) -> Iterator[None]:
    """Map zarr-python's (and its codecs') exceptions into arraystore's tree."""
    import zarr.errors

    try:
        with warnings.catch_warnings():
            # arraystore documents which data types lack a Zarr v3 spec (fidelity notes).
            warnings.simplefilter("ignore", zarr.errors.UnstableSpecificationWarning)
            yield
    except ArrayStoreError:
        raise
    except (zarr.errors.ContainsGroupError, zarr.errors.NodeTypeValidationError) as exc:
        raise MetadataError(
            f"{where}: a Zarr group, not an array; name an array inside it with '::/path/to/array' ({exc})"
        ) from None
    except (zarr.errors.NodeNotFoundError, FileNotFoundError) as exc:
        raise ArrayNotFoundError(f"{where}: no Zarr array there ({exc})") from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            _fsutil.raise_if_full(exc, where, "writing")
        if exc.errno is None:  # a codec's error (gzip.BadGzipFile, also in a write's read-modify-write)
            raise _undecodable(where, exc) from None
        raise
    except (
        ValueError, TypeError, KeyError, IndexError, AttributeError, json.JSONDecodeError, zipfile.BadZipFile,
        RuntimeError, zlib.error, EOFError, lzma.LZMAError,
    ) as exc:  # fmt: skip
        if isinstance(exc, ValueError) and _unknown_data_type(exc):
            # e.g. TensorStore's "bfloat16" or a v2 dtype string numpy does not have
            raise UnsupportedDtypeError(
                f"{where}: the array's Zarr data type has no numpy equivalent arraystore can hold ({exc}); "
                "read it with the tool that wrote it, or rewrite it with a supported data type"
            ) from None
        if reading_chunks:
            raise _undecodable(where, exc) from None
        raise MetadataError(f"{where}: invalid Zarr metadata: expected a zarr.json (or .zarray) that describes an "
                            f"array, found one zarr-python refuses ({type(exc).__name__}: {exc}); restore it, or "
                            "re-create the array") from None
