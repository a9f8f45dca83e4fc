"""Header dialects: parsers that turn a real-world raw-binary header into an ``ArrayMeta``.

Four dialects are registered, each a :class:`HeaderDialect`:

========== ============================================== =====================================
name       files                                          header
========== ============================================== =====================================
envi       ``scene.img`` + ``scene.hdr``                  text, starts with ``ENVI``
ehdr       ``dem.bil`` / ``.bsq`` / ``.bip`` + ``dem.hdr`` text ``KEY value`` (NROWS, NCOLS...)
metaimage  ``ct.raw`` + ``ct.mhd``, or ``ct.mha``         text ``Key = Value``, data may be inline
idx        ``*.idx``, ``train-images-idx3-ubyte``         binary, inline
========== ============================================== =====================================

:func:`detect` finds and parses the header for a data file (or a header file) and checks
the data file's size. The result maps the data in place::

    p = detect("scene.img")
    a = np.memmap(p.data_path, p.meta.dtype, "r", p.offset, p.meta.shape, p.meta.order)

The arraystore JSON sidecar is not a dialect here: the raw backend reads it itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from ..errors import BackendError, MetadataError
from ._common import MAX_HEADER_BYTES, HeaderDialect, ParsedHeader
from .ehdr import EhdrDialect
from .envi import EnviDialect
from .idx import IdxDialect, is_idx_name
from .metaimage import MetaImageDialect

__all__ = [
    "DIALECTS",
    "MAX_HEADER_BYTES",
    "HeaderDialect",
    "ParsedHeader",
    "detect",
    "get_dialect",
]

#: The registered dialects by name (read-only). Order matters only for error messages.
DIALECTS: Mapping[str, HeaderDialect] = MappingProxyType(
    {d.name: d for d in (EnviDialect(), EhdrDialect(), MetaImageDialect(), IdxDialect())}
)

#: Suffixes that name a header file only (never data).
_HEADER_SUFFIXES = (".hdr", ".mhd")


def get_dialect(name: str) -> HeaderDialect:
    """The dialect registered under ``name`` (case-insensitive).

    Raises
    ------
    BackendError
        If no dialect has that name; the message lists the known ones.
    """
    key = str(name).strip().lower()
    if key not in DIALECTS:
        raise BackendError(f"unknown header dialect {name!r}; expected one of {', '.join(sorted(DIALECTS))}")
    return DIALECTS[key]


def detect(path: str | os.PathLike[str], dialect: str | None = None) -> ParsedHeader | None:
    """Find and parse the dialect header for ``path`` and check the data file against it.

    Parameters
    ----------
    path
        The data file (``scene.img``, ``dem.bil``, ``ct.raw``, ``ct.mha``,
        ``train-images-idx3-ubyte``) or the header file (``scene.hdr``, ``ct.mhd``).
    dialect
        Name of the one dialect to use: its header is parsed without the content check, so a
        malformed header gets the dialect's own error. By default every registered dialect is
        tried and a header is claimed by content (ENVI and EHdr ``.hdr`` files are told apart
        this way).

    Returns
    -------
    ParsedHeader or None
        ``None`` when no dialect header is found for ``path`` (including ``.json`` paths,
        which belong to arraystore's own sidecar). With an explicit ``dialect``, a missing
        header is an error instead.

    Raises
    ------
    MetadataError
        The header is malformed, ambiguous (two dialects claim the file), or not of the
        named dialect.
    SizeMismatchError
        The data file's size differs from ``offset + meta.nbytes``.
    UnsafeInputError
        The header points at a file outside its folder.
    UnsupportedDtypeError
        The header's data type has no numpy equivalent arraystore supports.
    ArrayNotFoundError
        A header was found but the data file it describes does not exist.
    BackendError
        ``dialect`` is not a registered name.
    """
    p = path if isinstance(path, Path) else Path(path)  # a migration passes a Path: not parsed again
    candidates = [get_dialect(dialect)] if dialect is not None else list(DIALECTS.values())
    if p.suffix.lower() == ".json":
        return None
    explicit = dialect is not None
    if p.suffix.lower() in _HEADER_SUFFIXES and p.is_file():
        claimed = candidates if explicit else [d for d in candidates if d.sniff(p)]
        if not claimed:
            names = ", ".join(d.name for d in candidates)
            raise MetadataError(f"{p}: not a header of the dialect(s) {names}; check the file, or name the dialect")
        return claimed[0].parse(p)
    found = []
    for d in candidates:
        header = d.find_header(p)
        if header is not None and (explicit or d.sniff(header)):
            found.append((d, header))
    if not found:
        if explicit:
            raise MetadataError(
                f"{p}: no {dialect} header found for this file; put the header beside it "
                f"(see docs/dialects.md) or omit the dialect"
            )
        # A file whose name promises an inline header (.mha, IDX) but whose content does not
        # match: parsing it gives the precise error rather than letting it pass as plain raw data.
        if p.suffix.lower() == ".mha" and p.is_file():  # the name first: no stat for the usual raw file
            return DIALECTS["metaimage"].parse(p)
        if is_idx_name(p) and p.is_file():
            return DIALECTS["idx"].parse(p)
        return None
    if len(found) > 1:
        listed = ", ".join(f"{d.name} ({h.name})" for d, h in found)
        raise MetadataError(f"{p}: several headers describe this file: {listed}; name the dialect to use")
    d, header = found[0]
    return d.parse(header, None if header == p else p)
