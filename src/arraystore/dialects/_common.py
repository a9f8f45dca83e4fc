"""Pieces every header dialect shares: the result type, bounded reading, checked numbers."""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .._attr_bounds import bound_attrs
from .._fsutil import read_at_most
from .._listing import may_exist_in, may_exist_with_suffix, real_folder, real_path
from ..errors import ArrayNotFoundError, MetadataError, SizeMismatchError, UnsafeInputError
from ..meta import MAX_NDIM, ArrayMeta

__all__ = [
    "MAX_HEADER_BYTES",
    "HeaderDialect",
    "ParsedHeader",
]

#: Header files larger than this are refused unread: real headers are a few KiB.
MAX_HEADER_BYTES = 1 << 20

#: An array whose byte count reaches this cannot be addressed by any file API.
MAX_NBYTES = 2**63

#: How much of a file ``sniff`` looks at.
SNIFF_BYTES = 64 * 1024

#: attrs keys the dialects set themselves; a header field of the same name is kept as "header:<name>".
RESERVED_ATTRS = ("dialect", "axes")


@dataclass(frozen=True)
class ParsedHeader:
    """What a header dialect learnt from a header: enough to map the data in place.

    Parameters
    ----------
    dialect
        ``"envi"``, ``"ehdr"``, ``"metaimage"`` or ``"idx"``.
    header_path
        The header file (the data file itself for IDX and ``.mha``).
    data_path
        The raw data file.
    meta
        Shape, dtype (byte order explicit) and order. ``meta.attrs`` holds ``"dialect"``,
        ``"axes"`` (axis names, where the dialect names them) and every other header field.
    offset
        Byte offset of the first element in ``data_path``.
    extra
        The header's fields that are not expressed by shape, dtype, order or offset (also in
        ``meta.attrs``).

    Examples
    --------
    >>> p = detect("scene.img")  # doctest: +SKIP
    >>> np.memmap(p.data_path, p.meta.dtype, "r", p.offset, p.meta.shape, p.meta.order)  # doctest: +SKIP
    """

    dialect: str
    header_path: Path
    data_path: Path
    meta: ArrayMeta
    offset: int
    extra: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class HeaderDialect(Protocol):
    """A parser for one kind of header that describes a raw binary file."""

    name: str

    def find_header(self, data_path: Path) -> Path | None:
        """Where this dialect's header for ``data_path`` is, if one exists there."""
        ...

    def sniff(self, header_path: Path) -> bool:
        """Whether ``header_path``'s content looks like this dialect (cheap, never raises)."""
        ...

    def parse(self, header_path: Path, data_path: Path | None = None) -> ParsedHeader:
        """Parse ``header_path`` (and check its data file) or raise a typed error."""
        ...


# ---------------------------------------------------------------------------- reading


def _regular_file_size(path: Path, what: str) -> int:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ArrayNotFoundError(f"{path}: the {what} does not exist") from None
    except OSError as exc:
        raise MetadataError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise MetadataError(
            f"{path}: expected the {what} to be a regular file, found "
            f"{'a directory' if stat.S_ISDIR(st.st_mode) else 'a special file'}; pass the file itself"
        )
    return st.st_size


def read_header_bytes(path: Path, *, prefix_ok: bool = False) -> bytes:
    """At most :data:`MAX_HEADER_BYTES` of a header file.

    With ``prefix_ok`` (a header followed by inline data, like ``.mha`` or IDX) a longer
    file is fine and only its first bytes are returned; otherwise it is refused.
    """
    size = _regular_file_size(path, "header file")
    if size > MAX_HEADER_BYTES and not prefix_ok:
        raise MetadataError(
            f"{path}: expected a header of at most {MAX_HEADER_BYTES:,} bytes, found {size:,} bytes; "
            "this is not a text header (is it the data file?)"
        )
    try:
        return read_at_most(path, MAX_HEADER_BYTES)
    except OSError as exc:
        raise MetadataError(f"{path}: cannot read the header: {exc.strerror or exc}") from None


def sniff_bytes(path: Path) -> bytes:
    """The first :data:`SNIFF_BYTES` of a regular file, or ``b""`` if it cannot be read."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return b""
        with open(path, "rb") as f:
            return f.read(SNIFF_BYTES)
    except OSError:
        return b""


def decode_text(data: bytes, path: Path) -> str:
    """Header bytes as text; NUL bytes mean a binary file, which is refused."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise MetadataError(
            f"{path}: expected a text header, found binary content (a NUL byte at position {nul}); "
            "check that this is the header and not the data file"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# ---------------------------------------------------------------------------- values

_INT_RE = re.compile(r"[+-]?\d+\Z")
_FLOAT_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z|[+-]?(nan|inf|infinity)\Z", re.IGNORECASE)


def number(text: str) -> int | float | None:
    """``text`` as an int or float if it is one literally, else ``None``."""
    t = text.strip()
    if _INT_RE.match(t):
        return int(t)
    if _FLOAT_RE.match(t):
        return float(t)
    return None


def numbers_or_text(items: Sequence[str]) -> list[Any]:
    """All items as numbers if every one is numeric (ints stay ints), else the stripped strings."""
    parsed = [number(s) for s in items]
    if items and all(p is not None for p in parsed):
        return parsed
    return [s.strip() for s in items]


def to_int(text: str, key: str, path: Path, *, minimum: int = 0, maximum: int = MAX_NBYTES) -> int:
    """A header field that must be an integer in ``[minimum, maximum]``."""
    t = text.strip()
    if not _INT_RE.match(t):
        raise MetadataError(f"{path}: expected an integer for {key!r}, found {text.strip()!r}; fix the header")
    value = int(t)
    if not minimum <= value <= maximum:
        raise MetadataError(
            f"{path}: expected {key!r} between {minimum} and {maximum:,}, found {value:,}; fix the header"
        )
    return value


def check_shape(shape: Sequence[int], itemsize: int, path: Path) -> tuple[int, ...]:
    """Refuse too many dimensions, and a shape whose byte count no file can hold."""
    if len(shape) > MAX_NDIM:
        raise MetadataError(f"{path}: expected at most {MAX_NDIM} dimensions, found {len(shape)}")
    nbytes = math.prod(shape) * itemsize
    if nbytes >= MAX_NBYTES:
        raise MetadataError(
            f"{path}: the header's shape {tuple(shape)} of {itemsize}-byte items needs {nbytes:,} bytes, "
            f"more than any file can hold (2**63); the header is corrupt or hostile"
        )
    return tuple(shape)


# ---------------------------------------------------------------------------- files


def ensure_inside(path: Path, folder: Path, what: str, named_by: Path) -> Path:
    """Refuse ``path`` when it, with every symbolic link on the way resolved, lies outside ``folder``.

    The lexical check (no ``..``, no absolute path) comes first, in the dialect; this one
    catches a file, or a folder on its path, that is a symbolic link pointing elsewhere.

    Returns
    -------
    Path
        ``path`` unchanged.

    Raises
    ------
    UnsafeInputError
        The resolved path is not inside the resolved ``folder``.
    """
    real = real_path(path)
    base = real_folder(folder)
    if real != base and base not in real.parents:
        raise UnsafeInputError(
            f"{path}: the {what} named by {named_by} resolves through a symbolic link to {real}, outside "
            f"{folder}; refused. Copy the file into that folder instead of linking to it"
        )
    return path



def find_beside(data_path: Path, suffixes: Sequence[str]) -> Path | None:
    """The first existing ``<data>.<suffix>`` then ``<stem>.<suffix>``, for each suffix in turn."""
    folder = os.path.dirname(os.fspath(data_path)) or "."  # str(data_path.parent), without a Path
    if not any(may_exist_with_suffix(folder, suffix) for suffix in suffixes):
        return None  # no listed name ends with one: no candidate to check (the usual raw file)
    name, own = data_path.name, data_path.suffix
    if not name or own.lower() in [s.lower() for s in suffixes]:
        return None
    for suffix in suffixes:
        if not may_exist_with_suffix(folder, suffix):  # no listed name ends with it: no candidate to check
            continue
        for candidate in (name + suffix, name[: -len(own)] + suffix) if own else (name + suffix,):
            if may_exist_in(folder, candidate):  # absent from the folder's listing: no Path, no stat
                c = data_path.with_name(candidate)
                if c.is_file():
                    return ensure_inside(c, data_path.parent, "header", data_path)
    return None


#: Files that sit beside raw data but are never the data.
_NOT_DATA = {
    ".hdr",
    ".json",
    ".xml",
    ".aux",
    ".sta",
    ".stx",
    ".ovr",
    ".enp",
    ".txt",
    ".mhd",
    ".mha",
    ".prj",
    ".clr",
    ".blw",
    ".bpw",
    ".rep",
    ".md5",
    ".sha256",
    ".tmp",
    ".lock",
}


def data_for_header(header: Path, preferred: Sequence[str]) -> Path:
    """The data file a ``.hdr`` describes: ``<stem>`` itself, else ``<stem>.<ext>`` beside it.

    ``preferred`` suffixes win; otherwise exactly one candidate must exist.
    """
    stem_path = header.with_suffix("")
    if stem_path.is_file():
        return ensure_inside(stem_path, header.parent, "data file", header)
    try:
        siblings = [
            p
            for p in header.parent.iterdir()
            if p.name.startswith(stem_path.name + ".") and p != header and p.is_file()
        ]
    except OSError as exc:
        raise MetadataError(f"{header.parent}: cannot list the folder: {exc.strerror or exc}") from None
    candidates = [
        p
        for p in siblings
        if p.suffix.lower() not in _NOT_DATA
        and not p.name.lower().endswith(".aux.xml")
        and p.name[len(stem_path.name) + 1 :].count(".") == 0
    ]
    for suffix in preferred:
        hits = [p for p in candidates if p.suffix.lower() == suffix]
        if len(hits) == 1:
            return ensure_inside(hits[0], header.parent, "data file", header)
    if len(candidates) == 1:
        return ensure_inside(candidates[0], header.parent, "data file", header)
    if not candidates:
        raise ArrayNotFoundError(
            f"{header}: found no data file for this header (looked for {stem_path.name} and "
            f"{stem_path.name}.<ext>); pass the data file's path instead of the header's"
        )
    names = ", ".join(sorted(p.name for p in candidates))
    raise MetadataError(
        f"{header}: several files could be this header's data ({names}); pass the data file's path "
        "instead of the header's"
    )


def data_size(data_path: Path, header_path: Path) -> int:
    """The byte size of the data file the header names; typed errors if it is missing or odd."""
    if data_path == header_path:
        return _regular_file_size(data_path, "file")
    try:
        return _regular_file_size(data_path, f"data file described by {header_path.name}")
    except ArrayNotFoundError:
        raise ArrayNotFoundError(
            f"{data_path}: the data file described by {header_path} does not exist; restore it "
            "beside the header or pass its path"
        ) from None


def check_extent(data_path: Path, size: int, offset: int, nbytes: int, itemsize: int) -> None:
    """Refuse an offset past the end of the file and a data region of the wrong size."""
    if offset > size:
        raise MetadataError(
            f"{data_path}: the header puts the data at byte offset {offset:,}, past the end of the "
            f"{size:,}-byte file; the header does not belong to this file or is corrupt"
        )
    if size - offset != nbytes:
        raise SizeMismatchError(os.fspath(data_path), nbytes, size - offset, itemsize)


def make_parsed(
    dialect: str,
    header_path: Path,
    data_path: Path,
    shape: Sequence[int],
    dtype: np.dtype[Any],
    offset: int,
    *,
    axes: Sequence[str] | None,
    extra: Mapping[str, Any],
    size: int | None = None,
    check: bool = True,
) -> ParsedHeader:
    """Check the data file against the header and build the :class:`ParsedHeader`.

    ``check=False`` skips the extent check (compressed data is shorter than the array).
    """
    shape = check_shape(shape, dtype.itemsize, header_path)
    if size is None:
        size = data_size(data_path, header_path)
    if check:
        check_extent(data_path, size, offset, math.prod(shape) * dtype.itemsize, dtype.itemsize)
    attrs: dict[str, Any] = {"dialect": dialect}
    if axes is not None:
        attrs["axes"] = list(axes)
    kept = bound_attrs({(f"header:{k}" if k in RESERVED_ATTRS else k): v for k, v in extra.items()})
    attrs.update(kept)
    meta = ArrayMeta(tuple(shape), dtype, "C", attrs)
    return ParsedHeader(
        dialect=dialect,
        header_path=header_path,
        data_path=data_path,
        meta=meta,
        offset=offset,
        extra={k: meta.attrs[k] for k in kept},
    )
