"""Header dialects (ENVI, EHdr, MetaImage, IDX) for raw files in object storage.

The parsers of :mod:`arraystore.dialects` work on a folder; here they work on a
*shadow* of the object's folder: a temporary local folder holding, for every object
whose name starts with the data's stem (and the file a MetaImage header names), a file
of the object's size. Header objects (``.hdr``, ``.mhd``, at most
:data:`~arraystore.dialects.MAX_HEADER_BYTES`) are downloaded whole; objects that start
with their header (``.mha``, IDX) contribute their first :data:`INLINE_HEAD` bytes; data
objects are sparse files (their size only, no bytes). The same parsers, the same checks
(sizes, paths inside the folder, hostile headers), and not one byte of data fetched;
messages name the URLs, never the temporary folder.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dialects import MAX_HEADER_BYTES, detect
from ..dialects.idx import is_idx_name
from ..errors import ArrayStoreError
from ..meta import ArrayMeta
from . import store_errors

__all__ = ["DIALECT_SUFFIXES", "INLINE_HEAD", "RemoteHeader", "detect_remote", "names_a_dialect"]

#: Bytes fetched from an object whose header is inline (``.mha``, IDX): its header lies in them.
INLINE_HEAD = 64 * 1024
#: Suffixes that name a header file, or a data file a dialect describes.
DIALECT_SUFFIXES = (".hdr", ".mhd", ".mha", ".idx", ".img", ".bil", ".bsq", ".bip")
_HEADERS = (".hdr", ".mhd")
_DATA_FILE = re.compile(rb"^\s*ElementDataFile\s*=\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
#: Objects beside the data that a shadow folder holds at most (names sharing the data's stem).
MAX_SHADOW = 1000


@dataclass(frozen=True)
class RemoteHeader:
    """What a dialect header says about a raw object: its metadata, and where its bytes are."""

    dialect: str
    data_name: str
    meta: ArrayMeta
    offset: int
    size: int


def names_a_dialect(name: str) -> bool:
    """True when an object name is a header, or data a dialect describes, by its suffix."""
    return name.lower().endswith(DIALECT_SUFFIXES) or is_idx_name(Path(name))


def _stem(name: str) -> str:
    return name.split(".", 1)[0] if not name.startswith(".") else name


def detect_remote(ostore: Any, name: str, *, folder_url: str, dialect: str | None = None,
                  storage_options: Mapping[str, Any] | None = None) -> RemoteHeader | None:
    """The dialect header for the object ``name`` (a data object or a header), or None when there is none.

    Raises what :func:`arraystore.dialects.detect` raises, with the URLs in its messages.
    """
    import obstore

    where = f"{folder_url}/{name}"
    stem = _stem(name)
    with store_errors(where, storage_options):
        listing = obstore.list_with_delimiter(ostore)
        sizes = {str(o["path"]): int(o["size"]) for o in listing["objects"]
                 if str(o["path"]).startswith(stem) and "/" not in str(o["path"])}
        if len(sizes) > MAX_SHADOW:
            sizes = {k: v for k, v in sizes.items() if k == name or k.startswith(name)}
        with tempfile.TemporaryDirectory(prefix="arraystore-shadow-") as tmp:
            root = Path(tmp)
            fetched: dict[str, bytes] = {}
            for obj, size in sizes.items():
                try:
                    fetched[obj] = _shadow(ostore, root, obj, size)
                except OSError:  # a name no local file can have (too long...): not a file a header can name
                    continue
            for obj, head in list(fetched.items()):  # the file a MetaImage header names, if it has another stem
                if obj.lower().endswith(".mhd"):
                    try:
                        _add_named_file(ostore, root, head, sizes)
                    except OSError:  # a name no local file can have: the parser says the data is missing
                        pass
            try:
                parsed = detect(root / name, dialect)
            except ArrayStoreError as exc:
                raise _renamed(exc, str(root), folder_url) from None
            if parsed is None:
                return None
            data_name = parsed.data_path.relative_to(root).as_posix()
            return RemoteHeader(parsed.dialect, data_name, parsed.meta, parsed.offset, sizes.get(data_name, 0))


def _shadow(ostore: Any, root: Path, obj: str, size: int) -> bytes:
    """Write the shadow of one object; returns the bytes fetched (none for a data object)."""
    import obstore

    lower = obj.lower()
    if lower.endswith(_HEADERS) and size <= MAX_HEADER_BYTES:
        head = bytes(obstore.get(ostore, obj).bytes()) if size else b""
    elif lower.endswith(".mha") or is_idx_name(Path(obj)):
        head = bytes(obstore.get_range(ostore, obj, start=0, length=min(size, INLINE_HEAD))) if size else b""
    else:
        head = b""
    with open(root / obj, "wb") as f:
        f.write(head)
        f.truncate(size)  # a sparse file: the size the parsers check, no data
    return head


def _add_named_file(ostore: Any, root: Path, header: bytes, sizes: dict[str, int]) -> None:
    import obstore
    import obstore.exceptions as oe

    match = _DATA_FILE.search(header)
    if match is None:
        return
    named = match.group(1).decode("utf-8", "replace")
    if named in sizes or "/" in named or "\\" in named or named.upper() in ("LOCAL", "LIST") or named.startswith("."):
        return  # already there, or not one plain name in this folder (the parser says what is wrong)
    try:
        size = int(obstore.head(ostore, named)["size"])
    except (oe.NotFoundError, FileNotFoundError):
        return
    sizes[named] = size
    _shadow(ostore, root, named, size)


def _renamed(exc: ArrayStoreError, tmp: str, folder_url: str) -> ArrayStoreError:
    """``exc`` with the shadow folder's path replaced by the folder's URL in its message."""
    out = type(exc).__new__(type(exc))
    out.__dict__.update(exc.__dict__)
    out.args = tuple(a.replace(tmp, folder_url) if isinstance(a, str) else a for a in exc.args)
    for name in ("path", "filename"):
        value = getattr(out, name, None)
        if isinstance(value, str):
            setattr(out, name, value.replace(tmp, folder_url))
    return out
