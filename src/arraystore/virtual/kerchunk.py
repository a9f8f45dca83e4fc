"""Kerchunk-style reference file (fsspec ``ReferenceFileSystem``, version 1) holding a Zarr v3 hierarchy.

Layout::

    {"version": 1,
     "templates": {"root": "file:///abs/archive", "copies": "file:///abs/DST/virtual.copies"},
     "refs": {"zarr.json": "<group metadata>",
              "a/scan.dat/zarr.json": "<array metadata>",
              "a/scan.dat/c/0/0": ["{{root}}/a/scan.dat", offset, length], ...,
              "b/labels.dat/c/0": ["{{copies}}/b/labels.dat/c/0"]}}

(the ``copies`` template, present when the copying fallback copied files, names the
``virtual.copies`` folder beside the reference file; see :mod:`.fallback`.)

Every reference names its file relative to the archive root through the ``root`` template:
moving the archive, pass the new root at read time (``template_overrides={"root": ...}``
to fsspec, ``root=`` to :func:`open_kerchunk`). Any Zarr v3 reader over fsspec reads it::

    fs = fsspec.filesystem("reference", fo="virtual.json", remote_protocol="file", asynchronous=True)
    group = zarr.open_group(zarr.storage.FsspecStore(fs, read_only=True), mode="r")
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _fsutil
from ..errors import MetadataError, UnsafeInputError
from .refs import VirtualArray, hierarchy_json

if TYPE_CHECKING:
    from .fallback import CopiedArray

__all__ = ["MAX_REFERENCE_BYTES", "ROOT_TEMPLATE", "open_kerchunk", "read_references", "write_kerchunk"]

#: Largest reference file read (bytes): like every metadata file arraystore reads, it is bounded.
MAX_REFERENCE_BYTES = 256 << 20
ROOT_TEMPLATE = "{{root}}"
COPIES_TEMPLATE = "{{copies}}"


def references(
    arrays: Sequence[VirtualArray],
    root: str | os.PathLike[str],
    attrs: dict[str, Any] | None = None,
    copies: Sequence[CopiedArray] = (),
    copies_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """The reference document of ``arrays`` and of the fallback's ``copies`` (see the module docstring)."""
    extra = {c.path: c.metadata() for c in copies}
    refs: dict[str, Any] = dict(hierarchy_json(arrays, attrs, extra=extra))
    for arr in arrays:
        url = f"{ROOT_TEMPLATE}/{arr.source}"
        prefix = arr.path + "/"
        for ref in arr.refs():
            refs[prefix + ref.key] = [url, ref.offset, ref.length]
    for c in copies:
        for key in c.chunk_keys():
            refs[f"{c.path}/{key}"] = [f"{COPIES_TEMPLATE}/{c.path}/{key}"]
    templates = {"root": Path(root).resolve().as_uri()}
    if copies:
        templates["copies"] = Path(copies_dir or ".").resolve().as_uri()
    return {"version": 1, "templates": templates, "refs": refs}


def write_kerchunk(
    path: str | os.PathLike[str],
    arrays: Sequence[VirtualArray],
    root: str | os.PathLike[str],
    *,
    attrs: dict[str, Any] | None = None,
    durable: bool = False,
    copies: Sequence[CopiedArray] = (),
) -> None:
    """Write the reference file atomically (a reader never sees half of it).

    The ``copies`` (arrays of the copying fallback) live in the ``virtual.copies`` folder
    beside it; their chunks are referenced through the ``{{copies}}`` template.
    """
    from .fallback import COPIES_NAME

    doc = references(arrays, root, attrs, copies, Path(path).parent / COPIES_NAME)
    _fsutil.atomic_write_bytes(Path(path), json.dumps(doc, separators=(",", ":")).encode(), durable=durable)


def read_references(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read a reference file (bounded), with every reference checked to stay inside the archive root.

    Parameters
    ----------
    path
        The reference file.
    root
        The archive root the references are resolved against; default the one recorded in
        the file. A file moved with its archive is read with the archive's new root. The
        copies of the fallback (``{{copies}}``) are always read from the ``virtual.copies``
        folder beside the reference file, wherever it was moved.

    Returns
    -------
    dict
        The document with ``templates["root"]`` set to ``root``.

    Raises
    ------
    MetadataError
        The file is missing, over :data:`MAX_REFERENCE_BYTES`, or not a version-1 reference document.
    UnsafeInputError
        A reference names a file outside the root (an absolute URL, ``..``, or a symbolic link
        leading out), or inline/unknown templates that could do so.
    """
    doc = _fsutil.read_json_file(path, MAX_REFERENCE_BYTES, "kerchunk reference document")
    if doc is None:
        raise MetadataError(f"{path}: no such reference file; pass the .json a virtual migration wrote")
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("refs"), dict):
        raise MetadataError(f"{path}: expected a version-1 kerchunk reference document (refs), found something else")
    templates = doc.get("templates") or {}
    if not isinstance(templates, dict) or set(templates) - {"root", "copies"} or doc.get("gen"):
        raise UnsafeInputError(
            f"{path}: expected only the 'root' and 'copies' templates and no generators, found {sorted(templates)}"
        )
    if root is None:
        recorded = str(templates.get("root", ""))
        if not recorded.startswith("file://"):
            raise UnsafeInputError(f"{path}: expected a file:// archive root, found {recorded!r}; pass root=")
        root_path = Path(recorded[len("file://") :])
    else:
        root_path = Path(root)
    from .fallback import COPIES_NAME

    real_root = root_path.resolve()
    real_copies = (Path(path).parent / COPIES_NAME).resolve()
    checked: dict[str, Path] = {}
    for key, value in doc["refs"].items():
        if isinstance(value, str):
            continue  # inline metadata or data
        if not isinstance(value, list) or len(value) not in (1, 3) or not isinstance(value[0], str):
            raise MetadataError(f"{path}: reference {key!r} is not [url, offset, length] or [url]")
        url = value[0]
        if url not in checked:
            if url.startswith(COPIES_TEMPLATE + "/"):
                checked[url] = _inside(url, real_copies, path, COPIES_TEMPLATE)
            else:
                checked[url] = _inside(url, real_root, path)
    doc["templates"] = {"root": real_root.as_uri(), "copies": real_copies.as_uri()}
    return dict(doc)


def _inside(url: str, real_root: Path, named_by: str | os.PathLike[str], template: str = ROOT_TEMPLATE) -> Path:
    prefix = template + "/"
    if not url.startswith(prefix):
        raise UnsafeInputError(
            f"{named_by}: reference {url!r} does not start with {ROOT_TEMPLATE + '/'!r} or "
            f"{COPIES_TEMPLATE + '/'!r}; refused (it could read any file)"
        )
    rel = url[len(prefix) :]
    if rel.startswith("/") or any(p in ("", "..") for p in rel.split("/")):
        raise UnsafeInputError(f"{named_by}: reference {url!r} leaves the archive root; refused")
    target = (real_root / rel).resolve()
    if target != real_root and real_root not in target.parents:
        raise UnsafeInputError(
            f"{named_by}: reference {url!r} resolves to {target}, outside the archive root {real_root} "
            "(a symbolic link leads out); refused"
        )
    return target


def open_kerchunk(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Any:
    """A read-only ``zarr`` group over a reference file, after the checks of :func:`read_references`."""
    import fsspec
    import zarr

    doc = read_references(path, root)
    fs = fsspec.filesystem(
        "reference", fo=doc, remote_protocol="file", asynchronous=True, skip_instance_cache=True
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        return zarr.open_group(zarr.storage.FsspecStore(fs, read_only=True, path=""), mode="r")
