"""Legacy JSON metadata: per-file sidecars and folder-level manifests.

Per-file sidecars of a data file ``frames.dat``, looked for in this order:

* ``frames_meta.json``
* ``frames.json``
* ``frames.dat.json`` -- also the name of arraystore's own sidecar; a file whose
  ``format`` key starts with ``arraystore`` is arraystore's and read as such.

Folder manifests, ``meta.json`` or ``manifest.json`` in the data file's folder or any
folder above it up to the archive root, map names (relative to the manifest's
folder, ``/``-separated) to metadata, in any of these shapes::

    {"frames.dat": {...}, "sub/other.raw": {...}}
    {"files": {"frames.dat": {...}}}
    {"files": [{"file": "frames.dat", ...}]}        ("name" or "path" also work)
    [{"file": "frames.dat", ...}]

Metadata keys (anything else is kept as extra attributes): ``dtype`` (or
``data_type``), ``shape`` (or ``dims``), ``order`` or ``fortran_order``, ``offset`` or
``header_bytes``, ``byteorder`` or ``endian`` (or ``endianness``), ``attrs``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .. import _fsutil
from .._listing import may_exist_in, real_path
from ..errors import MetadataError, UnsafeInputError
from ._realdirs import real_root
from .evidence import (
    ByteOrder,
    Evidence,
    parse_byteorder,
    parse_dtype,
    parse_offset,
    parse_order,
    parse_shape,
)

__all__ = [
    "MANIFEST_NAMES",
    "MAX_JSON_BYTES",
    "evidence_from_mapping",
    "is_own_sidecar",
    "legacy_sidecar_names",
    "manifest_entries",
    "read_json",
    "sidecar_paths",
]

MANIFEST_NAMES = ("meta.json", "manifest.json")
#: Metadata files are small; a bigger "sidecar" is refused rather than parsed.
MAX_JSON_BYTES = 16 * 1024 * 1024

_ALIASES: dict[str, tuple[str, ...]] = {
    "dtype": ("dtype", "data_type"),
    "shape": ("shape", "dims"),
    "order": ("order", "fortran_order"),
    "offset": ("offset", "header_bytes"),
    "byteorder": ("byteorder", "endian", "endianness"),
}
_LAYOUT_KEYS = {k for names in _ALIASES.values() for k in names}
_NAME_KEYS = ("file", "name", "path")


def sidecar_paths(data_path: Path) -> list[Path]:
    """The per-file legacy sidecar names of ``data_path``, in priority order."""
    return [data_path.with_name(n) for n in legacy_sidecar_names(data_path.name)]


def legacy_sidecar_names(name: str) -> list[str]:
    """The names of :func:`sidecar_paths` for a data file named ``name`` (no folder)."""
    dot = name.rfind(".")
    stem = name[:dot] if 0 < dot < len(name) - 1 else name  # as ``Path.stem``
    return [stem + "_meta.json", stem + ".json", name + ".json"]


def read_json(path: Path) -> Any:
    """Parse a JSON file; ``MetadataError`` when it is missing, unreadable, too big or not JSON."""
    try:
        obj = _fsutil.read_json_file(path, MAX_JSON_BYTES, "JSON metadata")
    except OSError as exc:
        raise MetadataError(f"{path}: cannot read this metadata file ({exc.strerror or exc})") from None
    if obj is None:
        raise MetadataError(f"{path}: the metadata file disappeared while it was being read")
    return obj


def is_own_sidecar(obj: Any) -> bool:
    """Whether a parsed JSON object is arraystore's own sidecar (by its ``format`` key)."""
    return isinstance(obj, dict) and isinstance(obj.get("format"), str) and obj["format"].startswith("arraystore")


def _one(obj: dict[str, Any], fact: str, where: str) -> tuple[str, Any] | None:
    present = [k for k in _ALIASES[fact] if k in obj]
    if not present:
        return None
    if len(present) > 1:
        values = {k: obj[k] for k in present}
        parsed = {json.dumps(_parse(fact, k, v, where), default=str) for k, v in values.items()}
        if len(parsed) > 1:
            raise MetadataError(
                f"{where}: keys {' and '.join(map(repr, present))} disagree ({values}); keep one of them"
            )
    return present[0], obj[present[0]]


def _parse(fact: str, key: str, value: Any, where: str) -> Any:
    try:
        if fact == "dtype":
            return parse_dtype(value)
        if fact == "shape":
            return parse_shape(value)
        if fact == "order":
            if key == "fortran_order":
                if not isinstance(value, bool):
                    raise MetadataError(f"expected true or false, found {value!r}")
                return "F" if value else "C"
            return parse_order(value)
        if fact == "offset":
            return parse_offset(value)
        return parse_byteorder(value)
    except MetadataError as exc:
        raise MetadataError(f"{where}: key {key!r}: {exc}") from None


def evidence_from_mapping(
    obj: Any, *, source: str, where: str, file_size: int, strict: bool
) -> Evidence | None:
    """Evidence from one legacy metadata object.

    Parameters
    ----------
    obj
        The parsed JSON value.
    source, where
        The evidence's source label, and the place named in messages and details.
    file_size
        Size of the data file, for inferring a ``-1`` dimension.
    strict
        When true (a file named as metadata, a manifest entry), an object without any
        layout key is an error; when false (``<stem>.json``, which may be unrelated
        JSON), it is not evidence and ``None`` is returned.

    Raises
    ------
    MetadataError
        When a layout key holds an invalid value, two aliases disagree, or the dtype's
        byte order contradicts ``byteorder``.
    """
    if not isinstance(obj, dict) or not (_LAYOUT_KEYS & obj.keys()):
        if strict:
            found = f"keys {sorted(obj)[:8]}" if isinstance(obj, dict) else type(obj).__name__
            raise MetadataError(
                f"{where}: expected a JSON object with at least one of 'dtype', 'shape', 'order', "
                f"'offset', 'byteorder', found {found}"
            )
        return None
    facts: dict[str, Any] = {}
    keys: list[str] = []
    for fact in _ALIASES:
        item = _one(obj, fact, where)
        if item is not None:
            facts[fact] = _parse(fact, item[0], item[1], where)
            keys.append(item[0])
    dtype, stated = facts.pop("dtype", (None, None))
    byteorder: ByteOrder | None = facts.get("byteorder")
    if stated is not None and byteorder is not None and stated != byteorder:
        raise MetadataError(
            f"{where}: dtype {obj.get('dtype', obj.get('data_type'))!r} states byte order {stated!r} "
            f"but the byte order key says {byteorder!r}; keep one of them"
        )
    byteorder = byteorder or stated
    attrs = obj.get("attrs", {})
    if not isinstance(attrs, dict):
        raise MetadataError(f"{where}: expected 'attrs' as a JSON object, found {type(attrs).__name__}")
    extra = {k: v for k, v in obj.items() if k not in _LAYOUT_KEYS and k != "attrs"}
    offset = facts.get("offset")
    detail = f"{where} states " + ", ".join(f"{k}={obj[k]!r}" for k in keys)
    return Evidence.build(
        source,
        detail,
        data_bytes=file_size - (offset or 0),
        dtype=dtype,
        shape=facts.get("shape"),
        order=facts.get("order"),
        offset=offset,
        byteorder=byteorder,
        extra=extra,
        attrs=attrs,
    )


def _entries(obj: Any) -> Iterator[tuple[str, Any]]:
    """``(name, metadata)`` pairs of a manifest in any of the supported shapes."""
    if isinstance(obj, dict) and "files" in obj and isinstance(obj["files"], (dict, list)):
        obj = obj["files"]
    if isinstance(obj, dict):
        if _LAYOUT_KEYS & obj.keys():
            return  # one file's metadata (a <stem>.json named meta.json), not a manifest
        for name, meta in obj.items():
            if isinstance(meta, dict):
                yield name, meta
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict):
                for key in _NAME_KEYS:
                    if isinstance(item.get(key), str):
                        yield item[key], {k: v for k, v in item.items() if k != key}
                        break


@functools.lru_cache(maxsize=32)
def _manifest_index(path: str, mtime_ns: int, size: int) -> Mapping[str, Any]:
    """Name -> entry of one manifest, parsed once per version of the file (an archive has
    thousands of files under one manifest). ``mtime_ns`` and ``size`` are only cache keys."""
    index: dict[str, Any] = {}
    for name, meta in _entries(read_json(Path(path))):
        index.setdefault(name.removeprefix("./"), meta)
    return MappingProxyType(index)


def _none_listed(data_path: Path, root: Path | None) -> bool:
    """Whether no folder from ``data_path``'s up to ``root`` lists a manifest name (the usual archive), told from
    the folders' listings (:func:`~arraystore._listing.may_exist_in`) with strings only; False when any may hold
    one, when a folder is not listed, or when ``data_path`` is not spelled below ``root``."""
    if root is None:
        return False
    top, folder = os.fspath(root), os.path.dirname(os.fspath(data_path))
    if not (folder == top or folder.startswith(os.path.join(top, ""))):
        return False
    while True:
        if any(may_exist_in(folder, name) for name in MANIFEST_NAMES):
            return False
        if folder == top:
            return True
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent


def manifest_entries(data_path: Path, root: Path | None) -> Iterator[tuple[Path, Any]]:
    """``(manifest path, entry)`` for every folder manifest naming ``data_path``.

    Manifests are looked for in the data file's folder and each folder above it up to
    ``root`` (only the data file's folder when ``root`` is ``None``), nearest first.

    Raises
    ------
    MetadataError
        When a manifest that may hold the file's entry cannot be parsed.
    """
    if _none_listed(data_path, root):
        return
    folder = data_path.parent
    stop = real_root(root if root is not None else folder)
    while True:
        for name in MANIFEST_NAMES:
            if not may_exist_in(os.fspath(folder), name):  # absent from the folder's listing
                continue
            manifest = folder / name
            if manifest == data_path or not manifest.is_file():
                continue
            real = real_path(manifest)
            if stop not in real.parents:
                raise UnsafeInputError(
                    f"{manifest}: this folder manifest resolves through a symbolic link to {real}, outside "
                    f"{stop}; refused: copy it into the archive instead of linking to it"
                )
            rel = os.path.relpath(data_path, folder).replace(os.sep, "/")
            st = manifest.stat()
            index = _manifest_index(str(manifest), st.st_mtime_ns, st.st_size)
            if rel in index:
                yield manifest, index[rel]
        if folder == root or folder.parent == folder or real_root(folder) == stop:
            return
        folder = folder.parent
