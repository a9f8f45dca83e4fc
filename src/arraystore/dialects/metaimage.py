"""MetaImage (ITK MetaIO) headers: ``.mhd`` beside the data, or ``.mha`` with the data inline.

The header is ``Key = Value`` lines ending with ``ElementDataFile``; for ``LOCAL`` the
data follows that line in the same file. ``DimSize`` lists the fastest axis first, so the
C-order shape is its reverse, plus a trailing channel axis when
``ElementNumberOfChannels`` > 1. Compressed data (``CompressedData = True``), ASCII data
(``BinaryData = False``) and the multi-file forms (``LIST``, file-name patterns) are refused.
"""

from __future__ import annotations

import math
import posixpath
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MetadataError, SizeMismatchError, UnsafeInputError, UnsupportedDtypeError
from ..meta import MAX_NDIM
from ._common import (
    MAX_HEADER_BYTES,
    ParsedHeader,
    check_shape,
    data_size,
    decode_text,
    ensure_inside,
    find_beside,
    make_parsed,
    numbers_or_text,
    read_header_bytes,
    sniff_bytes,
    to_int,
)

__all__ = ["METAIMAGE_DTYPES", "MetaImageDialect"]

#: MetaIO element types (MET_LONG/MET_ULONG are 32-bit in MetaIO, as ITK reads them).
METAIMAGE_DTYPES: dict[str, str] = {
    "MET_CHAR": "i1",
    "MET_UCHAR": "u1",
    "MET_SHORT": "i2",
    "MET_USHORT": "u2",
    "MET_INT": "i4",
    "MET_UINT": "u4",
    "MET_LONG": "i4",
    "MET_ULONG": "u4",
    "MET_LONG_LONG": "i8",
    "MET_ULONG_LONG": "u8",
    "MET_FLOAT": "f4",
    "MET_DOUBLE": "f8",
}

_STRUCTURAL = {
    "ndims",
    "dimsize",
    "elementtype",
    "elementnumberofchannels",
    "binarydata",
    "binarydatabyteordermsb",
    "elementbyteordermsb",
    "headersize",
    "elementdatafile",
    "compresseddata",
}

_AXIS_NAMES = ("x", "y", "z", "t")
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def read_metaimage_fields(path: Path) -> tuple[dict[str, tuple[str, str]], int]:
    """``lower-case key -> (key, value)`` up to ``ElementDataFile``, and the header's byte length."""
    buf = read_header_bytes(path, prefix_ok=True)
    fields: dict[str, tuple[str, str]] = {}
    pos = 0
    lineno = 0
    while pos < len(buf):
        nl = buf.find(b"\n", pos)
        end = len(buf) if nl < 0 else nl + 1
        if nl < 0 and len(buf) == MAX_HEADER_BYTES:
            break
        raw, pos, lineno = buf[pos:end], end, lineno + 1
        line = decode_text(raw, path).strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY_RE.match(key):
            raise MetadataError(
                f"{path}:{lineno}: expected 'Key = Value', found {line[:60]!r}; this is not a MetaImage header"
            )
        if key.lower() in fields and key.lower() in _STRUCTURAL:
            raise MetadataError(f"{path}:{lineno}: {key} is given twice; keep the right one")
        fields[key.lower()] = (key, value)
        if key.lower() == "elementdatafile":
            return fields, pos
    raise MetadataError(
        f"{path}: expected a MetaImage header ending with 'ElementDataFile = ...' within the first "
        f"{MAX_HEADER_BYTES:,} bytes, found none; add it (LOCAL for data in the same file)"
    )


def _bool(fields: dict[str, tuple[str, str]], key: str, path: Path) -> bool | None:
    if key not in fields:
        return None
    name, value = fields[key]
    v = value.strip().lower()
    if v in ("true", "t", "1"):
        return True
    if v in ("false", "f", "0"):
        return False
    raise MetadataError(f"{path}: expected True or False for {name}, found {value!r}; fix the header")


def _attr_value(value: str) -> Any:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    items = numbers_or_text(value.split())
    if not items or isinstance(items[0], str):
        return value
    return items[0] if len(items) == 1 else items


def _safe_data_path(header: Path, value: str) -> Path:
    if value.upper() == "LIST" or value.upper().startswith("LIST "):
        raise MetadataError(
            f"{header}: 'ElementDataFile = LIST' (one file per slice) is not supported; join the slices "
            "into one file (e.g. with SimpleITK) and point ElementDataFile at it"
        )
    if "%" in value and len(value.split()) > 1:
        raise MetadataError(
            f"{header}: the file-name pattern {value!r} (one file per slice) is not supported; join the "
            "slices into one file and point ElementDataFile at it"
        )
    rel = value.replace("\\", "/")
    normal = posixpath.normpath(rel)
    if rel.startswith("/") or re.match(r"[A-Za-z]:", rel) or normal == ".." or normal.startswith("../"):
        raise UnsafeInputError(
            f"{header}: ElementDataFile {value!r} points outside the header's folder; refused. Move the "
            "data beside the header and name it relative to the header"
        )
    return ensure_inside(header.parent / normal, header.parent, "ElementDataFile", header)


class MetaImageDialect:
    """MetaImage ``.mhd`` + data file, or ``.mha`` with ``ElementDataFile = LOCAL``."""

    name = "metaimage"

    def find_header(self, data_path: Path) -> Path | None:
        """The ``.mha`` itself, or ``<stem>.mhd`` / ``<data>.mhd`` beside the data, if present."""
        if data_path.suffix.lower() == ".mha":
            return data_path if data_path.is_file() else None
        return find_beside(data_path, (".mhd", ".MHD"))

    def sniff(self, header_path: Path) -> bool:
        """True when the file opens with MetaIO ``Key = Value`` lines including ``NDims``."""
        head = sniff_bytes(header_path)
        text = head.split(b"ElementDataFile", 1)[0]
        return b"\x00" not in text and re.search(rb"(?mi)^\s*NDims\s*=", text) is not None

    def parse(self, header_path: Path, data_path: Path | None = None, *, allow_compressed: bool = False) -> ParsedHeader:
        """Parse a MetaImage header; see ``docs/dialects.md`` for what is refused.

        ``allow_compressed=True`` accepts ``CompressedData = True``: the result's offset is then
        where the zlib stream starts and ``extra["CompressedDataSize"]`` its length (when the
        header gives it); the data cannot be mapped, only decompressed (a copying migration).
        """
        header_path = Path(header_path)
        fields, header_len = read_metaimage_fields(header_path)
        path = header_path
        missing = [k for k in ("NDims", "DimSize", "ElementType") if k.lower() not in fields]
        if missing:
            raise MetadataError(f"{path}: the MetaImage header lacks {', '.join(missing)}; add them")
        object_type = fields.get("objecttype", ("", "Image"))[1]
        if object_type.lower() != "image":
            raise MetadataError(f"{path}: expected ObjectType = Image, found {object_type!r}")
        compressed = bool(_bool(fields, "compresseddata", path))
        if compressed and not allow_compressed:
            raise MetadataError(
                f"{path}: CompressedData = True (zlib) cannot be read in place; decompress it first, e.g. "
                "SimpleITK.WriteImage(SimpleITK.ReadImage(path), 'out.mha', useCompression=False)"
            )
        if _bool(fields, "binarydata", path) is False:
            raise MetadataError(f"{path}: BinaryData = False (ASCII pixel values) is not supported")
        ndims = to_int(fields["ndims"][1], "NDims", path, minimum=1, maximum=MAX_NDIM - 1)
        dims = fields["dimsize"][1].split()
        if len(dims) != ndims:
            raise MetadataError(f"{path}: expected {ndims} DimSize values (NDims), found {len(dims)}")
        dim_sizes = [to_int(d, "DimSize", path) for d in dims]
        etype = fields["elementtype"][1].upper()
        if etype not in METAIMAGE_DTYPES:
            raise UnsupportedDtypeError(
                f"{path}: ElementType {etype} is not supported (known: {', '.join(METAIMAGE_DTYPES)})"
            )
        channels = to_int(
            fields.get("elementnumberofchannels", ("", "1"))[1], "ElementNumberOfChannels", path, minimum=1
        )
        dtype = np.dtype(METAIMAGE_DTYPES[etype])
        msb = {k: _bool(fields, k, path) for k in ("binarydatabyteordermsb", "elementbyteordermsb")}
        given = {v for v in msb.values() if v is not None}
        if len(given) > 1:
            raise MetadataError(f"{path}: BinaryDataByteOrderMSB and ElementByteOrderMSB disagree; fix one")
        if not given and dtype.itemsize > 1:
            raise MetadataError(
                f"{path}: the header has no BinaryDataByteOrderMSB for {dtype.itemsize}-byte data; add "
                "'BinaryDataByteOrderMSB = False' (little-endian) or '= True' (big-endian)"
            )
        dtype = dtype.newbyteorder(">" if True in given else "<")
        shape = dim_sizes[::-1] + ([channels] if channels > 1 else [])
        axes = [_AXIS_NAMES[i] if i < len(_AXIS_NAMES) else f"dim{i}" for i in range(ndims)][::-1]
        axes += ["channel"] if channels > 1 else []
        header_size = to_int(fields.get("headersize", ("", "0"))[1], "HeaderSize", path, minimum=-1)
        element_file = fields["elementdatafile"][1]
        local = element_file.upper() == "LOCAL"
        target = header_path if local else _safe_data_path(header_path, element_file)
        if data_path is not None and Path(data_path).resolve() != target.resolve():
            raise MetadataError(
                f"{path}: the header describes {target.name}, not {Path(data_path).name}; open the file "
                "it names, or fix ElementDataFile"
            )
        check_shape(shape, dtype.itemsize, path)
        size = data_size(target, header_path)
        nbytes = math.prod(shape) * dtype.itemsize
        if compressed and header_size == -1:
            raise MetadataError(f"{path}: HeaderSize = -1 with CompressedData = True names no start of the data")
        if compressed:
            offset = header_len if local else header_size
        elif header_size == -1:
            if size < nbytes:
                raise SizeMismatchError(str(target), nbytes, size, dtype.itemsize)
            offset = size - nbytes
        elif local:
            if 0 < header_size < header_len:
                raise MetadataError(
                    f"{path}: HeaderSize {header_size} would start the LOCAL data inside the "
                    f"{header_len}-byte header; remove HeaderSize or fix it"
                )
            offset = header_size or header_len
        else:
            offset = header_size
        extra = {name: _attr_value(value) for key, (name, value) in fields.items() if key not in _STRUCTURAL}
        return make_parsed(
            self.name, header_path, target, shape, dtype, offset, axes=axes, extra=extra, size=size, check=not compressed
        )
