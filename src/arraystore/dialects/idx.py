"""IDX files (the MNIST format): a binary header and big-endian data in one file.

Layout: two zero bytes, a type byte, a rank byte, then ``rank`` big-endian uint32
dimensions (slowest first), then the data in C order, big-endian.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from ..errors import MetadataError, UnsupportedDtypeError
from ..meta import MAX_NDIM
from ._common import ParsedHeader, data_size, make_parsed, sniff_bytes

__all__ = ["IDX_DTYPES", "IdxDialect", "is_idx_name"]

#: IDX type byte -> dtype (always big-endian).
IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

_NAME_RE = re.compile(r"(\.idx|[.-]idx\d+-ubyte)\Z", re.IGNORECASE)
_GZ_RE = re.compile(r"(\.idx|[.-]idx\d+-ubyte)\.gz\Z", re.IGNORECASE)


def is_idx_name(path: Path) -> bool:
    """True for ``*.idx`` and MNIST-style ``*-idx3-ubyte`` / ``*.idx1-ubyte`` names."""
    return _NAME_RE.search(path.name) is not None


class IdxDialect:
    """IDX: types 0x08 u1, 0x09 i1, 0x0B >i2, 0x0C >i4, 0x0D >f4, 0x0E >f8."""

    name = "idx"

    def find_header(self, data_path: Path) -> Path | None:
        """The file itself when its name is an IDX name (the header is inline)."""
        if _GZ_RE.search(data_path.name) and data_path.is_file():
            raise MetadataError(f"{data_path}: a gzip-compressed IDX file cannot be read in place; gunzip it first")
        return data_path if is_idx_name(data_path) and data_path.is_file() else None

    def sniff(self, header_path: Path) -> bool:
        """True when the file starts with ``00 00 <known type> <rank>`` and holds the dimensions."""
        head = sniff_bytes(header_path)
        return len(head) >= 4 and head[:2] == b"\x00\x00" and head[2] in IDX_DTYPES and len(head) >= 4 + 4 * head[3]

    def parse(self, header_path: Path, data_path: Path | None = None) -> ParsedHeader:
        """Parse an IDX file's header (the first ``4 + 4 * rank`` bytes only)."""
        path = Path(header_path)
        if data_path is not None and Path(data_path).resolve() != path.resolve():
            raise MetadataError(f"{path}: an IDX file holds its own data; do not pass another data file")
        size = data_size(path, path)
        with open(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[:2] != b"\x00\x00":
                raise MetadataError(
                    f"{path}: expected the IDX magic 00 00 <type> <rank>, found {magic.hex(' ') or 'an empty file'}"
                    "; this is not an IDX file (is it gzip-compressed?)"
                )
            code, rank = magic[2], magic[3]
            if code not in IDX_DTYPES:
                known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
                raise UnsupportedDtypeError(f"{path}: unknown IDX type code 0x{code:02X} (known: {known})")
            if rank > MAX_NDIM:
                raise MetadataError(f"{path}: expected at most {MAX_NDIM} IDX dimensions, found {rank}")
            raw = f.read(4 * rank)
        if len(raw) < 4 * rank:
            raise MetadataError(
                f"{path}: the IDX header announces {rank} dimensions but the file ends after "
                f"{size} bytes; the file is truncated"
            )
        shape = list(struct.unpack(f">{rank}I", raw))
        dtype = np.dtype(IDX_DTYPES[code]).newbyteorder(">")
        return make_parsed(self.name, path, path, shape, dtype, 4 + 4 * rank, axes=None, extra={}, size=size)
