"""ESRI EHdr (BIL/BSQ/BIP) headers: ``KEY value`` lines in a ``.hdr`` beside the data.

Keys are case-insensitive (kept upper-cased). Defaults follow ESRI's description:
NBANDS 1, NBITS 8, PIXELTYPE unsigned integer, LAYOUT BIL, SKIPBYTES 0. BYTEORDER has
no agreed default (ESRI says the writing machine's, GDAL assumes M), so it is required
for items wider than one byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MetadataError, SizeMismatchError, UnsupportedDtypeError
from ._common import (
    ParsedHeader,
    data_for_header,
    data_size,
    decode_text,
    find_beside,
    make_parsed,
    numbers_or_text,
    read_header_bytes,
    sniff_bytes,
    to_int,
)

__all__ = ["EhdrDialect"]

_LAYOUTS: dict[str, tuple[str, str, str]] = {
    "BSQ": ("band", "row", "column"),
    "BIL": ("row", "band", "column"),
    "BIP": ("row", "column", "band"),
}

_PIXELTYPES = {"SIGNEDINT": "i", "UNSIGNEDINT": "u", "FLOAT": "f"}

_STRUCTURAL = (
    "NROWS",
    "NCOLS",
    "NBANDS",
    "NBITS",
    "PIXELTYPE",
    "BYTEORDER",
    "LAYOUT",
    "SKIPBYTES",
    "BANDROWBYTES",
    "TOTALROWBYTES",
    "BANDGAPBYTES",
)


def parse_ehdr_fields(text: str, path: Path) -> dict[str, str]:
    """The raw ``KEY -> value`` strings of an EHdr header."""
    fields: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split(None, 1)
        if not parts or parts[0].startswith(("#", ";")):
            continue
        key = parts[0].upper()
        value = parts[1].strip() if len(parts) > 1 else ""
        if key in fields and key in _STRUCTURAL and fields[key] != value:
            raise MetadataError(
                f"{path}:{lineno}: {key} is given twice with different values ({fields[key]!r}, "
                f"{value!r}); keep the right one"
            )
        fields[key] = value
    return fields


def _dtype(fields: dict[str, str], path: Path) -> np.dtype[Any]:
    nbits = to_int(fields.get("NBITS", "8"), "NBITS", path, maximum=2**31)
    pixeltype = fields.get("PIXELTYPE", "UNSIGNEDINT").upper()
    if pixeltype not in _PIXELTYPES:
        raise MetadataError(
            f"{path}: expected PIXELTYPE SIGNEDINT, UNSIGNEDINT or FLOAT, found {pixeltype!r}; fix the header"
        )
    kind = _PIXELTYPES[pixeltype]
    allowed = (32, 64) if kind == "f" else (8, 16, 32, 64)
    if nbits not in allowed:
        raise UnsupportedDtypeError(
            f"{path}: {nbits}-bit {pixeltype} pixels are not supported (expected NBITS in "
            f"{', '.join(map(str, allowed))}); sub-byte rasters must be unpacked with GDAL first"
        )
    dtype: np.dtype[Any] = np.dtype(f"{kind}{nbits // 8}")
    byteorder = fields.get("BYTEORDER", "").upper()
    if byteorder in ("I", "M"):
        swapped: np.dtype[Any] = dtype.newbyteorder("<" if byteorder == "I" else ">")
        return swapped
    if byteorder or dtype.itemsize > 1:
        raise MetadataError(
            f"{path}: expected BYTEORDER I (Intel, little-endian) or M (Motorola, big-endian) for "
            f"{nbits}-bit data, found {byteorder or 'none'!r}; add the byte order the file was written with"
        )
    little: np.dtype[Any] = dtype.newbyteorder("<")
    return little


def _check_padding(fields: dict[str, str], layout: str, ncols: int, nbands: int, itemsize: int, path: Path) -> None:
    band_row = ncols * itemsize
    expected = {
        "TOTALROWBYTES": band_row * (1 if layout == "BSQ" else nbands),
        "BANDGAPBYTES": 0,
    }
    if layout != "BIP":  # a band's row is not contiguous in BIP, so BANDROWBYTES means nothing there
        expected["BANDROWBYTES"] = band_row
    for key, want in expected.items():
        if key in fields:
            got = to_int(fields[key], key, path)
            if got != want:
                raise MetadataError(
                    f"{path}: {key} {got} implies padding between rows or bands (expected {want} for "
                    f"{layout} with {ncols} columns, {nbands} band(s) of {itemsize}-byte pixels); padded "
                    "rasters cannot be mapped as one array: rewrite the file without padding (e.g. with "
                    "gdal_translate)"
                )


def _padded_strides(
    fields: dict[str, str], layout: str, nrows: int, ncols: int, nbands: int, itemsize: int, path: Path
) -> tuple[int, ...]:
    """Byte strides of the (file-order) axes of a padded raster; refuses padding that would overlap items."""
    band_row = ncols * itemsize
    unit = band_row if layout != "BIP" else band_row * nbands
    brb = to_int(fields.get("BANDROWBYTES", str(band_row)), "BANDROWBYTES", path) if layout != "BIP" else unit
    trb = to_int(fields.get("TOTALROWBYTES", str(brb * (1 if layout == "BSQ" else nbands) if layout != "BIP" else unit)),
                 "TOTALROWBYTES", path)
    gap = to_int(fields.get("BANDGAPBYTES", "0"), "BANDGAPBYTES", path)
    need = {"BANDROWBYTES": (brb, band_row), "TOTALROWBYTES": (trb, brb * nbands if layout == "BIL" else unit)}
    for key, (got, least) in need.items():
        if got < least:
            raise MetadataError(f"{path}: {key} {got} is less than the {least} bytes one row holds; fix the header")
    if layout == "BSQ":
        return (nrows * trb + gap, trb, itemsize)
    if layout == "BIL":
        return (trb, brb, itemsize)
    return (trb, nbands * itemsize, itemsize)


def _attr_value(value: str) -> Any:
    items = numbers_or_text(value.split())
    if not items or isinstance(items[0], str):
        return value
    return items[0] if len(items) == 1 else items


class EhdrDialect:
    """ESRI ``.hdr`` + ``.bil``/``.bsq``/``.bip`` (8-64 bit integers, 32/64-bit floats)."""

    name = "ehdr"

    def find_header(self, data_path: Path) -> Path | None:
        """``<stem>.hdr`` (or ``<data>.hdr``) beside the data, if present."""
        return find_beside(data_path, (".hdr", ".HDR"))

    def sniff(self, header_path: Path) -> bool:
        """True for a text file not starting with ``ENVI`` whose keys include NROWS and NCOLS."""
        head = sniff_bytes(header_path)
        if b"\x00" in head or head.lstrip()[:4].upper() == b"ENVI":
            return False
        keys = {line.split(None, 1)[0].upper() for line in head.splitlines() if line.split()}
        return {b"NROWS", b"NCOLS"} <= keys

    def parse(self, header_path: Path, data_path: Path | None = None) -> ParsedHeader:
        """Parse an EHdr header; see ``docs/dialects.md`` for what is refused."""
        return self._parse(header_path, data_path, padded=False)[0]

    def parse_padded(self, header_path: Path, data_path: Path | None = None) -> tuple[ParsedHeader, tuple[int, ...]]:
        """Parse a header whose rows or bands are padded (``BANDROWBYTES``, ``TOTALROWBYTES``, ``BANDGAPBYTES``).

        Returns the header and the byte strides of its axes: the data cannot be mapped as one
        array, only read element by element through these strides (a copying migration).
        Refuses strides that would make elements overlap or reach past the end of the file.
        """
        return self._parse(header_path, data_path, padded=True)

    def _parse(
        self, header_path: Path, data_path: Path | None, *, padded: bool
    ) -> tuple[ParsedHeader, tuple[int, ...]]:
        header_path = Path(header_path)
        text = decode_text(read_header_bytes(header_path), header_path)
        if text.lstrip()[:4].upper() == "ENVI":
            raise MetadataError(f"{header_path}: this is an ENVI header, not an ESRI one; use dialect 'envi'")
        fields = parse_ehdr_fields(text, header_path)
        missing = [k for k in ("NROWS", "NCOLS") if k not in fields]
        if missing:
            raise MetadataError(f"{header_path}: the ESRI header lacks {' and '.join(missing)}; add them")
        nrows = to_int(fields["NROWS"], "NROWS", header_path)
        ncols = to_int(fields["NCOLS"], "NCOLS", header_path)
        nbands = to_int(fields.get("NBANDS", "1"), "NBANDS", header_path)
        dtype = _dtype(fields, header_path)
        layout = fields.get("LAYOUT", "BIL").upper()
        if layout not in _LAYOUTS:
            raise MetadataError(f"{header_path}: expected LAYOUT BIL, BSQ or BIP, found {layout!r}; fix the header")
        if not padded:
            _check_padding(fields, layout, ncols, nbands, dtype.itemsize, header_path)
        offset = to_int(fields.get("SKIPBYTES", "0"), "SKIPBYTES", header_path)
        axes = _LAYOUTS[layout]
        sizes = {"band": nbands, "row": nrows, "column": ncols}
        extra: dict[str, Any] = {}
        for key, value in fields.items():
            if key not in _STRUCTURAL:
                extra[key] = _attr_value(value)
        extra["LAYOUT"] = layout
        if data_path is None:
            data_path = data_for_header(header_path, (f".{layout.lower()}", ".bil", ".bsq", ".bip"))
        shape = [sizes[a] for a in axes]
        strides: tuple[int, ...] = ()
        if padded:
            strides = _padded_strides(fields, layout, nrows, ncols, nbands, dtype.itemsize, header_path)
            size = data_size(Path(data_path), header_path)
            end = offset + sum((n - 1) * st for n, st in zip(shape, strides, strict=True)) + dtype.itemsize
            if min(shape) > 0 and end > size:
                raise SizeMismatchError(str(data_path), end - offset, size - offset, dtype.itemsize)
        parsed = make_parsed(
            self.name,
            header_path,
            Path(data_path),
            shape,
            dtype,
            offset,
            axes=axes,
            extra=extra,
            check=not padded,
        )
        return parsed, strides
