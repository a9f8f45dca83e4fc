"""ENVI headers: a ``.hdr`` text file starting with ``ENVI`` beside a raw raster.

The header is ``key = value`` lines; a value in braces may span lines. Keys are
case-insensitive and are kept lower-cased, with runs of blanks folded to one space.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MetadataError, UnsupportedDtypeError
from ._common import (
    ParsedHeader,
    data_for_header,
    decode_text,
    find_beside,
    make_parsed,
    number,
    numbers_or_text,
    read_header_bytes,
    sniff_bytes,
    to_int,
)

__all__ = ["ENVI_DTYPES", "EnviDialect"]

#: ENVI ``data type`` codes (native order; the byte order is applied from ``byte order``).
ENVI_DTYPES: dict[int, str] = {
    1: "u1",
    2: "i2",
    3: "i4",
    4: "f4",
    5: "f8",
    6: "c8",
    9: "c16",
    12: "u2",
    13: "u4",
    14: "i8",
    15: "u8",
}

#: Shape and axis names for each interleave, from samples (s), lines (l), bands (b).
_INTERLEAVES: dict[str, tuple[str, str, str]] = {
    "bsq": ("band", "line", "sample"),
    "bil": ("line", "band", "sample"),
    "bip": ("line", "sample", "band"),
}

#: Keys turned into shape, dtype and offset; they do not go into attrs.
_STRUCTURAL = ("samples", "lines", "bands", "data type", "byte order", "header offset", "interleave")

#: Brace values that are free text, never comma-separated lists.
_FREE_TEXT = ("description", "coordinate system string")

#: Data-file suffixes tried, in order, when only the header is given.
_DATA_SUFFIXES = (".img", ".dat", ".raw", ".bin", ".bsq", ".bil", ".bip", ".envi")


def parse_envi_fields(text: str, path: Path) -> dict[str, str]:
    """The raw ``key -> value`` strings of an ENVI header (braces kept on brace values)."""
    lines = text.splitlines()
    if not lines or not lines[0].strip().upper().startswith("ENVI"):
        first = lines[0].strip()[:40] if lines else ""
        raise MetadataError(f"{path}: expected an ENVI header starting with 'ENVI', found {first!r}")
    fields: dict[str, str] = {}
    i = 1
    while i < len(lines):
        line = lines[i]
        lineno = i + 1
        i += 1
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise MetadataError(f"{path}:{lineno}: expected 'key = value', found {line.strip()[:60]!r}; fix the header")
        key = " ".join(key.split()).lower()
        value = value.strip()
        if value.startswith("{"):
            parts = [value]
            while "}" not in parts[-1]:
                if i >= len(lines):
                    raise MetadataError(f"{path}:{lineno}: the '{{' opened for {key!r} is never closed; fix the header")
                parts.append(lines[i].strip())
                i += 1
            value = " ".join(parts)
            value = value[: value.rindex("}") + 1]
        if key in _STRUCTURAL and key in fields and fields[key] != value:
            raise MetadataError(
                f"{path}: {key!r} is given twice with different values ({fields[key]!r}, {value!r}); keep the right one"
            )
        fields[key] = value
    return fields


def _attr_value(key: str, value: str) -> Any:
    if value.startswith("{") and value.endswith("}"):
        inner = value[1:-1].strip()
        if key in _FREE_TEXT:
            return inner
        if not inner:
            return []
        return numbers_or_text(inner.split(","))
    n = number(value)
    return value if n is None else n


class EnviDialect:
    """ENVI ``.hdr`` + raw data (``data type`` codes 1-6, 9, 12-15; BSQ, BIL, BIP)."""

    name = "envi"

    def find_header(self, data_path: Path) -> Path | None:
        """``<data>.hdr`` (``scene.img.hdr``) or ``<stem>.hdr`` (``scene.hdr``), if present."""
        return find_beside(data_path, (".hdr", ".HDR"))

    def sniff(self, header_path: Path) -> bool:
        """True when the file starts with ``ENVI`` (after any blanks or a byte-order mark)."""
        head = sniff_bytes(header_path)[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
        return head[:4].upper() == b"ENVI"

    def parse(self, header_path: Path, data_path: Path | None = None) -> ParsedHeader:
        """Parse an ENVI header; see ``docs/dialects.md`` for what is refused."""
        header_path = Path(header_path)
        fields = parse_envi_fields(decode_text(read_header_bytes(header_path), header_path), header_path)

        missing = [k for k in ("samples", "lines", "bands", "data type") if k not in fields]
        if missing:
            raise MetadataError(f"{header_path}: the ENVI header lacks {', '.join(missing)}; add them")
        file_type = fields.get("file type", "ENVI Standard").strip()
        if not file_type.upper().startswith("ENVI") or "META" in file_type.upper():
            raise MetadataError(
                f"{header_path}: expected an ENVI raw raster ('file type = ENVI Standard'), found "
                f"file type {file_type!r}; open the file it describes with a reader for that format"
            )
        samples = to_int(fields["samples"], "samples", header_path)
        lines = to_int(fields["lines"], "lines", header_path)
        bands = to_int(fields["bands"], "bands", header_path)
        code = to_int(fields["data type"], "data type", header_path, maximum=2**31)
        if code not in ENVI_DTYPES:
            known = ", ".join(str(c) for c in ENVI_DTYPES)
            raise UnsupportedDtypeError(
                f"{header_path}: ENVI data type {code} is not supported (known: {known}); "
                "convert the file with ENVI or GDAL first"
            )
        dtype = np.dtype(ENVI_DTYPES[code])
        if "byte order" in fields:
            order = to_int(fields["byte order"], "byte order", header_path, maximum=1)
            dtype = dtype.newbyteorder(">" if order == 1 else "<")
        elif dtype.itemsize > 1:
            raise MetadataError(
                f"{header_path}: the ENVI header has no 'byte order' for {dtype.itemsize}-byte data; "
                "add 'byte order = 0' (little-endian) or 'byte order = 1' (big-endian)"
            )
        else:
            dtype = dtype.newbyteorder("<")
        offset = to_int(fields.get("header offset", "0"), "header offset", header_path)
        interleave = fields.get("interleave", "bsq" if bands == 1 else "").strip().lower()
        if interleave not in _INTERLEAVES:
            raise MetadataError(
                f"{header_path}: expected 'interleave' to be bsq, bil or bip, found {interleave or 'none'!r}"
                "; add the interleave the file was written with"
            )
        axes = _INTERLEAVES[interleave]
        sizes = {"band": bands, "line": lines, "sample": samples}
        extra = {k: _attr_value(k, v) for k, v in fields.items() if k not in _STRUCTURAL}
        extra["interleave"] = interleave
        if data_path is None:
            data_path = data_for_header(header_path, (*_DATA_SUFFIXES, f".{interleave}"))
        return make_parsed(
            self.name,
            header_path,
            Path(data_path),
            [sizes[a] for a in axes],
            dtype,
            offset,
            axes=axes,
            extra=extra,
        )
