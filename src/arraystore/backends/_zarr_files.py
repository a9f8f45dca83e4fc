"""File-system side of the Zarr backend: group metadata for new parents, zip packing, fsync of a tree."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from .. import _fsutil
from ..errors import MetadataError
from ._zarr_guard import check_inside
from ._zarr_safety import check_metadata_file

__all__ = ["check_parents", "ensure_groups", "fsync_tree", "pack_zip"]


def check_parents(root: Path, parents: list[str], where: str) -> None:
    """Refuse to create an array under a v2 hierarchy, under an array, or through a symlink out of the store."""
    real_root = os.path.realpath(root)
    node = root
    for segment in [""] + parents:
        node = node / segment if segment else node
        check_inside(real_root, node, where)
        if (node / ".zgroup").exists() or (node / ".zarray").exists():
            raise MetadataError(
                f"{where}: {node} is part of a Zarr v2 hierarchy; arraystore writes v3 only: create the array in "
                "a new store"
            )
        meta = node / "zarr.json"
        if meta.is_file():
            check_metadata_file(meta)
            try:
                node_type = _fsutil.loads_json(meta.read_bytes(), str(meta), "Zarr metadata").get("node_type")
            except (ValueError, AttributeError):
                raise MetadataError(f"{meta}: not valid Zarr metadata") from None
            if node_type != "group":
                raise MetadataError(f"{where}: {node} is a Zarr {node_type}, not a group; arrays live inside groups")


def ensure_groups(root: Path, parents: list[str]) -> None:
    """Write Zarr v3 group metadata for the root and every missing parent group."""
    node = root
    for segment in [""] + parents:
        node = node / segment if segment else node
        node.mkdir(exist_ok=True)
        if not (node / "zarr.json").exists():
            doc = {"zarr_format": 3, "node_type": "group", "attributes": {}}
            _fsutil.atomic_write_bytes(node / "zarr.json", json.dumps(doc).encode(), durable=False)


def pack_zip(folder: Path, out: Path, *, durable: bool) -> None:
    try:
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for dirpath, dirnames, filenames in os.walk(folder):
                dirnames.sort()
                for name in sorted(filenames):
                    path = Path(dirpath) / name
                    if path == out:
                        continue
                    zf.write(path, path.relative_to(folder).as_posix())
        if durable:
            fd = os.open(out, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        _fsutil.remove_path(out)  # a half-written zip must not take the space or look like a store
        _fsutil.raise_if_full(exc, out, "packing the zip store")
        raise


def fsync_tree(folder: Path, files: tuple[str, ...] | None = None) -> None:
    """fsync the files (all, or the named ones at the top) and folders of an array."""
    if files is not None:
        for name in files:
            path = folder / name
            if path.is_file():
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsutil.fsync_dir(folder)
        return
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsutil.fsync_dir(dirpath)
