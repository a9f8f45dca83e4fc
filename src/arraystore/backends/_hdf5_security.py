"""Finding a dataset inside an HDF5 file without leaving the file's folder.

h5py follows external links, reads external raw storage and virtual-dataset
sources wherever they point: a hostile file can make a reader read ``/etc/passwd``
(h5py #2891). These checks refuse such datasets with
:class:`~arraystore.errors.UnsafeInputError` unless the caller passes
``allow_external=True``, and refuse chunk shapes or dataspaces whose reading would
allocate absurd amounts of memory.
"""

from __future__ import annotations

import math
import os
from typing import Any

import h5py

from ..errors import ArrayNotFoundError, MetadataError, UnsafeInputError

__all__ = ["MAX_CHUNK_BYTES", "check_dataset", "list_datasets", "resolve_dataset"]

#: Largest chunk (uncompressed) a reader accepts by default; HDF5's own cap is 4 GiB.
MAX_CHUNK_BYTES = 1 << 30
#: Largest dataspace in bytes (numpy cannot index beyond it).
MAX_NBYTES = (1 << 63) - 1
_MAX_HOPS = 32
_ALLOW = "pass allow_external=True only if you trust the file"


def list_datasets(f: h5py.File) -> list[str]:
    """Paths of the datasets reachable by hard links (external and soft links are not followed)."""
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append("/" + name)

    f.visititems(visit)
    return found


def _components(key: str) -> list[str]:
    return [p for p in key.split("/") if p and p != "."]


def resolve_dataset(f: h5py.File, key: str | None, *, where: str, allow_external: bool) -> h5py.Dataset:
    """The dataset at ``key`` (or the file's only dataset), refusing external links.

    Raises
    ------
    ArrayNotFoundError
        No such object, or a file without datasets.
    MetadataError
        ``key`` names a group, or the file holds several datasets and ``key`` is None.
    UnsafeInputError
        The path crosses an external link and ``allow_external`` is False.
    """
    if key is None:
        names = list_datasets(f)
        if not names:
            raise ArrayNotFoundError(
                f"{where}: the HDF5 file holds no dataset; create one with arraystore.create"
            )
        if len(names) > 1:
            shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
            raise MetadataError(
                f"{where}: expected an HDF5 file holding one dataset, found {len(names)}: {shown}; "
                f"name one after '::', e.g. '{where}::{names[0]}'"
            )
        key = names[0]
    pending = _components(key)
    group: Any = f
    hops = 0
    while pending:
        name = pending.pop(0)
        if name == "..":
            group = group.parent
            continue
        link = group.get(name, getlink=True)
        if link is None:
            raise ArrayNotFoundError(
                f"{where}: no object {key!r} in the HDF5 file ({name!r} is missing in {group.name})"
            )
        if isinstance(link, h5py.SoftLink):
            hops += 1
            if hops > _MAX_HOPS:
                raise MetadataError(f"{where}: more than {_MAX_HOPS} soft links resolving {key!r} (a cycle?)")
            pending = _components(link.path) + pending
            if link.path.startswith("/"):
                group = f
            continue
        if isinstance(link, h5py.ExternalLink) and not allow_external:
            raise UnsafeInputError(
                f"{where}: {key!r} is reached through an external link to {link.filename}::{link.path}; "
                f"following it would read another file. Open that file directly, or {_ALLOW}"
            )
        try:
            group = group[name]
        except KeyError as exc:  # a dangling external link, for instance
            raise ArrayNotFoundError(f"{where}: cannot resolve {key!r}: {exc}") from None
        if not isinstance(group, (h5py.Group, h5py.Dataset)):  # pragma: no cover - datatypes
            raise MetadataError(f"{where}: {key!r} is not a dataset but a {type(group).__name__}")
        if pending and not isinstance(group, h5py.Group):
            raise ArrayNotFoundError(f"{where}: no object {key!r}: {group.name} is a dataset, not a group")
    if not isinstance(group, h5py.Dataset):
        inside = list_datasets(group) if isinstance(group, h5py.Group) else []
        raise MetadataError(
            f"{where}: expected {key!r} to name a dataset, found a group"
            + (f" holding {', '.join(inside[:10])}" if inside else "")
            + "; name a dataset after '::'"
        )
    return group


def check_dataset(
    ds: h5py.Dataset, file: str, *, allow_external: bool, max_chunk_bytes: int = MAX_CHUNK_BYTES
) -> None:
    """Refuse external storage, virtual sources outside the folder, and absurd sizes."""
    where = f"{file}::{ds.name}"
    if not allow_external:
        external = ds.external
        if external:
            names = ", ".join(str(e[0]) for e in external[:5])
            raise UnsafeInputError(
                f"{where}: the dataset keeps its bytes in external raw file(s) {names}; reading it would read "
                f"those files wherever they are. Copy the data into the HDF5 file, or {_ALLOW}"
            )
        if ds.is_virtual:
            folder = os.path.realpath(os.path.dirname(file))
            for src in ds.virtual_sources():
                if src.file_name == ".":
                    continue
                target = (
                    src.file_name if os.path.isabs(src.file_name) else os.path.join(folder, src.file_name)
                )
                target = os.path.realpath(target)
                if os.path.commonpath([folder, target]) != folder:
                    raise UnsafeInputError(
                        f"{where}: a virtual dataset whose source {src.file_name}::{src.dset_name} lies outside "
                        f"the file's folder {folder}; {_ALLOW}"
                    )
    itemsize = ds.dtype.itemsize
    nbytes = math.prod(ds.shape or ()) * itemsize if ds.shape is not None else 0
    if nbytes > MAX_NBYTES:
        raise UnsafeInputError(
            f"{where}: the dataspace {ds.shape} of {itemsize}-byte items holds {nbytes:,} bytes, more than any "
            "machine can address; the file is corrupt or hostile"
        )
    if ds.chunks is not None:
        chunk_bytes = math.prod(ds.chunks) * itemsize
        if chunk_bytes > max_chunk_bytes:
            raise UnsafeInputError(
                f"{where}: one chunk {ds.chunks} holds {chunk_bytes:,} bytes, more than the {max_chunk_bytes:,} "
                "a reader accepts (each read decompresses whole chunks into memory); pass max_chunk_bytes= "
                "to raise the limit if you trust the file"
            )
