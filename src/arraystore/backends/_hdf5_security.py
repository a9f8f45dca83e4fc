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

__all__ = ["MAX_CHUNK_BYTES", "check_dataset", "list_datasets", "resolve_dataset", "temp_name"]

#: Largest chunk (uncompressed) a reader accepts by default; HDF5's own cap is 4 GiB.
MAX_CHUNK_BYTES = 1 << 30
#: Largest dataspace in bytes (numpy cannot index beyond it).
MAX_NBYTES = (1 << 63) - 1
_MAX_HOPS = 32
_ALLOW = "pass allow_external=True only if you trust the file"


#: Suffix of the temporary name a replacing dataset is built under (``/a/.b.arraystore-new``).
TEMP_SUFFIX = ".arraystore-new"


def temp_name(key: str) -> str:
    """Where a dataset replacing ``key`` in the same file is built until it is complete."""
    parent, _, name = ("/" + key.strip("/")).rpartition("/")
    return f"{parent}/.{name}{TEMP_SUFFIX}"


def _pure_dimension(ds: h5py.Dataset) -> bool:
    if ds.attrs.get("CLASS") != b"DIMENSION_SCALE":
        return False
    name = ds.attrs.get("NAME")
    return isinstance(name, bytes) and name.startswith(b"This is a netCDF dimension but not a netCDF variable")


def list_datasets(f: h5py.File) -> list[str]:
    """Paths of the datasets reachable by hard links (external and soft links are not followed).

    Datasets under a replacement's temporary name (left by an interrupted writer) are not
    listed, nor netCDF-4 dimensions that are not variables (dimension scales named "This
    is a netCDF dimension but not a netCDF variable", which hold no data).
    """
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and not name.endswith(TEMP_SUFFIX) and not _pure_dimension(obj):
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
        prefix = (group.name or "").rstrip("/") if isinstance(group, h5py.Group) else ""
        inside = [prefix + p for p in list_datasets(group)] if isinstance(group, h5py.Group) else []
        more = f" (+{len(inside) - 10} more)" if len(inside) > 10 else ""
        raise MetadataError(
            f"{where}: expected {key!r} to name a dataset, found a group"
            + (f" holding {', '.join(inside[:10])}{more}" if inside else " holding no dataset")
            + "; name a dataset after '::'"
            + (f", e.g. '{where}::{inside[0]}'" if inside else "")
        )
    return group


def check_dataset(
    ds: h5py.Dataset,
    file: str,
    *,
    allow_external: bool,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
    allow_virtual: bool = False,
) -> None:
    """Refuse external storage, virtual datasets (unless allowed and confined), and absurd sizes.

    Raises
    ------
    UnsafeInputError
        External raw storage, a virtual dataset (any, unless ``allow_virtual``; with it,
        one whose sources, at any depth, leave the file's folder, are missing there,
        or are themselves external), a dataspace or chunk too large to read.
    """
    where = f"{file}::{ds.name}"
    if not allow_external:
        _check_storage(ds, where)
        if ds.is_virtual:
            if not allow_virtual:
                raise UnsafeInputError(
                    f"{where}: a virtual dataset, which reads its values from other datasets and files that "
                    "HDF5 looks for in several places (the file's folder, HDF5_VDS_PREFIX, the working directory). "
                    "Pass allow_virtual=True to read it when all its sources lie in the file's own folder, "
                    f"or {_ALLOW}"
                )
            _check_virtual(ds, file, set(), 0)
    itemsize = ds.id.get_type().get_size()
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


def _check_storage(ds: h5py.Dataset, where: str) -> None:
    external = ds.external
    if external:
        names = ", ".join(str(e[0]) for e in external[:5])
        raise UnsafeInputError(
            f"{where}: the dataset keeps its bytes in external raw file(s) {names}; reading it would read "
            f"those files wherever they are. Copy the data into the HDF5 file, or {_ALLOW}"
        )


_MAX_VIRTUAL_DEPTH = 8


def _check_virtual(ds: h5py.Dataset, file: str, seen: set[tuple[str, str]], depth: int) -> None:
    """Every source of a virtual dataset, and theirs, recursively: inside the folder, present, not external."""
    where = f"{file}::{ds.name}"
    if depth > _MAX_VIRTUAL_DEPTH:
        raise UnsafeInputError(f"{where}: virtual datasets nested more than {_MAX_VIRTUAL_DEPTH} deep; {_ALLOW}")
    if os.environ.get("HDF5_VDS_PREFIX"):
        raise UnsafeInputError(
            f"{where}: HDF5_VDS_PREFIX is set, so HDF5 would look for the virtual dataset's sources there "
            f"first; unset it to read virtual datasets confined to their folder, or {_ALLOW}"
        )
    here = os.path.realpath(file)
    folder = os.path.dirname(here)
    base = os.path.dirname(os.path.abspath(file))
    for src in ds.virtual_sources():
        name, dset = src.file_name, src.dset_name
        shown = f"{name}::{dset}"
        if "%" in name or "%" in dset:
            raise UnsafeInputError(f"{where}: a virtual source name with a printf-style pattern ({shown}); {_ALLOW}")
        target = here if name == "." else os.path.realpath(os.path.join(base, name))
        if os.path.commonpath([folder, target]) != folder:
            raise UnsafeInputError(
                f"{where}: a virtual dataset whose source {shown} lies outside the file's folder {folder} "
                f"(symbolic links resolved); {_ALLOW}"
            )
        if not os.path.isfile(target):
            raise UnsafeInputError(
                f"{where}: the virtual dataset's source file {name} is missing beside it, where it must be: "
                f"HDF5 would look for it in the working directory instead; {_ALLOW}"
            )
        if (target, dset) in seen:
            continue
        seen.add((target, dset))
        if target == here:
            _check_source(ds.file, dset, file, seen, depth)
            continue
        try:
            f = h5py.File(target, "r", locking=False)
        except OSError as exc:
            raise UnsafeInputError(f"{where}: cannot open the virtual source file {target}: {exc}") from None
        with f:
            _check_source(f, dset, target, seen, depth)


def _check_source(f: h5py.File, dset: str, file: str, seen: set[tuple[str, str]], depth: int) -> None:
    source = resolve_dataset(f, dset, where=file, allow_external=False)
    _check_storage(source, f"{file}::{source.name}")
    if source.is_virtual:
        _check_virtual(source, file, seen, depth + 1)
