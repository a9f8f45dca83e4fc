"""Check a virtual store's references against the files they point into.

Each virtual array records its file under ``attrs["arraystore.virtual"]``: path relative to the
archive root, offset, data length, size, modification time and (unless ``--no-checksum``) the
``xxh3_128`` of the file's content. :func:`verify_virtual` reports every file that is missing,
truncated (shorter than its last reference), changed (size, modification time or content) or
outside the archive root; an array the copying fallback wrote is read back against its
checksum, and its source checked for changes since it was copied; it raises :class:`~arraystore.errors.VerificationError` naming them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import MetadataError, UnsafeInputError, VerificationError
from .fallback import COPIED_KEY
from .refs import VIRTUAL_KEY

__all__ = ["find_store", "verify_virtual"]


def find_store(path: str | os.PathLike[str]) -> Path | None:
    """The virtual store at ``path``: a ``virtual.json``/``virtual.icechunk``, or a migration folder holding one."""
    from ._migrate import STORE_NAMES

    p = Path(path)
    if p.is_dir():
        for name in STORE_NAMES.values():
            if (p / name).exists():
                return p / name
        if (p / "refs").is_dir() and (p / "snapshots").is_dir():  # an icechunk repository
            return p
        return None
    if p.suffix == ".json" and p.is_file():
        with open(p, "rb") as f:
            head = f.read(64)
        if head.lstrip().startswith(b"{") and b'"version"' in head:
            return p
    return None


def _records_kerchunk(path: Path, root: str | os.PathLike[str] | None) -> tuple[Path, list[dict[str, Any]]]:
    from .kerchunk import read_references

    doc = read_references(path, root)
    root_path = Path(doc["templates"]["root"][len("file://") :])
    refs = doc["refs"]
    out = []
    for key, value in refs.items():
        if key.endswith("zarr.json") and isinstance(value, str):
            meta = json.loads(value)
            attrs = meta.get("attributes") or {}
            rec = attrs.get(VIRTUAL_KEY)
            if meta.get("node_type") == "array" and isinstance(rec, dict):
                out.append({**rec, "array": key[: -len("/zarr.json")]})
            elif meta.get("node_type") == "array" and isinstance(attrs.get(COPIED_KEY), dict):
                out.append({**attrs[COPIED_KEY], "array": key[: -len("/zarr.json")], "copied": True})
    ends: dict[str, int] = {}
    for value in refs.values():
        if isinstance(value, list) and len(value) == 3:
            rel = value[0].split("/", 1)[1]
            ends[rel] = max(ends.get(rel, 0), int(value[1]) + int(value[2]))
    for rec in out:
        rec["end"] = ends.get(str(rec.get("source")), 0)
    return root_path, out


def _recorded_icechunk_root(path: Path) -> Path:
    """The archive root an icechunk virtual store was made with (its one ``file://`` container)."""
    from .icechunk import recorded_root

    return recorded_root(path)


def _records_icechunk(path: Path, root: str | os.PathLike[str] | None) -> tuple[Path, list[dict[str, Any]]]:
    from .icechunk import open_icechunk

    group = open_icechunk(path, root)
    if root is None:
        root = _recorded_icechunk_root(path)
    out = []
    for name, arr in group.members(max_depth=None):
        rec = arr.attrs.get(VIRTUAL_KEY) if hasattr(arr, "shape") else None
        copied = arr.attrs.get(COPIED_KEY) if hasattr(arr, "shape") else None
        if isinstance(rec, dict):
            out.append({**rec, "array": name, "end": int(rec["offset"]) + int(rec["nbytes"])})
        elif isinstance(copied, dict):
            out.append({**copied, "array": name, "copied": True})
    return Path(root), out


def _check_copy(
    store: Path, rec: dict[str, Any], source: Path, root: str | os.PathLike[str] | None, checksum: bool,
    problems: list[str],
) -> int:
    """An array the fallback copied: its source unchanged since, and the copy reading back to its checksum."""
    from .._open import open as open_store
    from ..checksums import checksum as array_checksum
    from ..errors import ArrayStoreError

    try:
        st = source.stat()
        if (st.st_size, st.st_mtime_ns) != (rec.get("size"), rec.get("mtime_ns")):
            problems.append(f"{source}: changed since it was copied into array {rec['array']} (the copy holds the "
                            "old content); migrate again")
    except FileNotFoundError:
        problems.append(f"{source}: missing (copied into array {rec['array']}, which still reads)")
    if not (checksum and rec.get("checksum")):
        return 0
    try:
        with open_store(f"{store}::/{rec['array']}", "r", backend="virtual", root=root) as arr:
            got = array_checksum(arr, decoded=True)
    except (ArrayStoreError, OSError) as exc:
        problems.append(f"{store}::{rec['array']}: the copy does not read: {exc}")
        return 1
    if got.get("value") != rec["checksum"].get("value"):
        problems.append(f"{store}::{rec['array']}: the copy's content changed: checksum {got['value']} != "
                        f"recorded {rec['checksum']['value']}")
    return 1


def verify_virtual(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None, *, checksum: bool = True
) -> dict[str, Any]:
    """Check every file a virtual store references.

    Parameters
    ----------
    path
        ``virtual.json``, ``virtual.icechunk`` or the migration folder holding one.
    root
        The archive root (default: the one recorded; pass it when the archive moved).
    checksum
        Recompute each file's content checksum where one was recorded (one read of each file).

    Returns
    -------
    dict
        ``{"path", "root", "arrays", "files_checked", "checksummed"}`` when every file matches.

    Raises
    ------
    VerificationError
        Some files are missing, truncated or changed; the message names each with the reason.
    UnsafeInputError
        A reference leads outside the archive root.
    MetadataError
        ``path`` is not a virtual store.
    """
    from ._migrate import file_checksum

    store = find_store(path)
    if store is None:
        raise MetadataError(f"{path}: expected a virtual store (virtual.json or virtual.icechunk), found none")
    root_path, records = (_records_icechunk if store.is_dir() else _records_kerchunk)(store, root)
    real_root = root_path.resolve()
    problems: list[str] = []
    summed = 0
    for rec in records:
        src = str(rec["source"])
        f = real_root / src
        target = f.resolve()
        if real_root not in target.parents:
            raise UnsafeInputError(f"{store}: {src} resolves to {target}, outside the archive root {real_root}; refused")
        if rec.get("copied"):
            summed += _check_copy(store, rec, f, root, checksum, problems)
            continue
        try:
            st = f.stat()
        except FileNotFoundError:
            problems.append(f"{f}: missing (array {rec['array']})")
            continue
        end = max(int(rec.get("end", 0)), int(rec["offset"]) + int(rec["nbytes"]))
        if st.st_size < end:
            problems.append(f"{f}: truncated: {st.st_size:,} bytes, references reach byte {end:,} (array {rec['array']})")
        elif st.st_size != rec["size"] or st.st_mtime_ns != rec["mtime_ns"]:
            problems.append(
                f"{f}: changed since it was referenced (size {rec['size']:,} -> {st.st_size:,} bytes, "
                f"or its modification time) (array {rec['array']})"
            )
        elif checksum and rec.get("checksum"):
            summed += 1
            got = file_checksum(f)
            if got.get("value") != rec["checksum"].get("value"):
                problems.append(f"{f}: content changed: checksum {got['value']} != recorded {rec['checksum']['value']}")
    if problems:
        raise VerificationError(
            f"{store}: {len(problems)} of {len(records)} referenced files no longer match; "
            "their arrays read wrong or fail: restore the files or migrate again:\n  " + "\n  ".join(problems)
        )
    return {"path": str(store), "root": str(real_root), "arrays": len(records), "files_checked": len(records), "checksummed": summed}
