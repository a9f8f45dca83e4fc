"""Open one array of a virtual store as an arraystore array: the original file, with the recorded layout.

``arraystore convert virtual.json::/group/array out.zarr`` materialises a virtual array this
way: the bytes come from the legacy file itself (through the raw backend, with its fast paths),
after the file is checked against the size and time recorded when it was referenced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._attrs import decode_attrs
from ..errors import ArrayNotFoundError, MetadataError, UnsafeInputError, VerificationError
from ..meta import ArrayMeta, dtype_from_json
from .fallback import COPIED_KEY
from .refs import VIRTUAL_KEY

__all__ = ["check_referenced_file", "open_virtual_array", "split_virtual"]


def split_virtual(spec: str | os.PathLike[str]) -> tuple[Path, str] | None:
    """``(store, array path)`` when ``spec`` is ``<virtual store>::/group/array``, else None."""
    from .verify import find_store

    text = os.fspath(spec)
    if "::" not in text:
        return None
    head, _, key = text.partition("::")
    store = find_store(head)
    if store is None:
        return None
    return store, key.strip("/")


def _record(
    store: Path, key: str, root: str | os.PathLike[str] | None
) -> tuple[Path, dict[str, Any] | None, dict[str, Any]]:
    if store.is_dir():
        from .icechunk import open_icechunk
        from .verify import _records_icechunk

        group = open_icechunk(store, root)
        try:
            attrs = dict(group[key].attrs)
        except KeyError:
            raise ArrayNotFoundError(f"{store}: no array {key!r} in this virtual store") from None
        root_path, _ = _records_icechunk(store, root) if root is None else (Path(root), [])
    else:
        import json

        from .kerchunk import read_references

        doc = read_references(store, root)
        raw = doc["refs"].get(f"{key}/zarr.json")
        if not isinstance(raw, str):
            raise ArrayNotFoundError(f"{store}: no array {key!r} in this virtual store")
        attrs = json.loads(raw).get("attributes") or {}
        root_path = Path(doc["templates"]["root"][len("file://") :])
    rec = attrs.pop(VIRTUAL_KEY, None)
    if rec is None and COPIED_KEY in attrs:
        return root_path, None, attrs
    if not isinstance(rec, dict) or not {"source", "dtype", "shape", "order", "offset"} <= set(rec):
        raise MetadataError(f"{store}::{key}: no {VIRTUAL_KEY} record with the layout; not written by arraystore")
    return root_path, rec, attrs


def open_virtual_array(
    store: str | os.PathLike[str], key: str, root: str | os.PathLike[str] | None = None
) -> Any:
    """The legacy file behind ``store::key``, opened read-only with the layout the store records.

    Raises
    ------
    VerificationError
        The file changed (size or modification time) since it was referenced.
    UnsafeInputError
        The file resolves outside the archive root.

    An array the migration copied (:mod:`.fallback`) opens through the ``virtual`` backend.
    ArrayNotFoundError
        No such array, or its file is gone.
    """
    from .._open import open as open_store

    root_path, rec, attrs = _record(Path(store), key, root)
    if rec is None:  # copied by the fallback: a real Zarr array of the store, read through the registry
        return open_store(f"{store}::/{key}", "r", backend="virtual", root=root)
    real_root = root_path.resolve()
    check_referenced_file(Path(store), key, rec, real_root)
    path = real_root / str(rec["source"])
    meta = ArrayMeta(tuple(rec["shape"]), dtype_from_json(rec["dtype"]), rec["order"], decode_attrs(attrs, f"{store}::{key}"))
    return open_store(path, "r", backend="raw", meta=meta, offset=int(rec["offset"]), use_sidecar=False)


def check_referenced_file(store: Path, key: str, rec: dict[str, Any], real_root: Path) -> None:
    """The file behind a referenced array: inside the root, present, unchanged since it was referenced."""
    path = real_root / str(rec["source"])
    if real_root not in path.resolve().parents:
        raise UnsafeInputError(f"{store}::{key}: {path} resolves outside the archive root {real_root}; refused")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ArrayNotFoundError(
            f"{path}: referenced by {store}::{key} but missing; restore it (or pass root= if the archive moved)"
        ) from None
    if (st.st_size, st.st_mtime_ns) != (rec.get("size"), rec.get("mtime_ns")):
        raise VerificationError(
            f"{path}: changed since {store} referenced it (size {rec.get('size')} -> {st.st_size} bytes, or its "
            "modification time); run `arraystore verify` and migrate again"
        )
