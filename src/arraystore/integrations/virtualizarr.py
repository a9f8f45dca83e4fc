"""A VirtualiZarr parser for every legacy file arraystore opens in place.

Raw files with arraystore's sidecar, the four header dialects (ENVI, ESRI EHdr, MetaImage,
IDX), legacy JSON evidence and rules: the same resolution as ``arraystore migrate``, exposed
as VirtualiZarr's ``Parser`` protocol (virtualizarr 2.5), so these files combine with any
other virtual dataset::

    from obstore.store import LocalStore
    from obspec_utils.registry import ObjectStoreRegistry
    from virtualizarr import open_virtual_dataset
    from arraystore.integrations.virtualizarr import ArraystoreParser

    registry = ObjectStoreRegistry({"file://": LocalStore()})
    ds = open_virtual_dataset("file:///archive/scene.img", registry=registry, parser=ArraystoreParser())

Requires ``pip install "arraystore[virtual]"``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from ..errors import MetadataError, UnsafeInputError
from ..meta import ArrayMeta
from ..migration.resolve import resolve
from ..migration.rules import Rules, load_rules
from ..virtual.refs import DEFAULT_CHUNK_BYTES, VirtualArray, create_metadata

__all__ = ["ArraystoreParser"]


class ArraystoreParser:
    """VirtualiZarr parser: one legacy file -> a ``ManifestStore`` holding one array.

    Parameters
    ----------
    variable
        Name of the array in the dataset (default ``"data"``).
    rules
        A rules file (path) or :class:`~arraystore.migration.Rules` for files no other evidence
        describes.
    root
        The archive root the file's evidence is looked up under (folder manifests, rules'
        relative globs); default the file's folder.
    chunk_bytes
        Target size of one chunk reference (bytes).
    dataset
        For an HDF5 file: the contiguous dataset to reference (``.npy`` files need nothing).
    """

    def __init__(
        self,
        variable: str = "data",
        rules: str | os.PathLike[str] | Rules | None = None,
        root: str | os.PathLike[str] | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        dataset: str | None = None,
    ) -> None:
        self.dataset = dataset
        self.variable = variable
        self.rules = load_rules(rules) if isinstance(rules, (str, os.PathLike)) else rules
        self.root = Path(root) if root is not None else None
        self.chunk_bytes = chunk_bytes

    def __call__(self, url: str, registry: Any) -> Any:
        """Resolve the file at ``url`` (``file://`` only) and return its ``ManifestStore``.

        Raises
        ------
        MetadataError
            Not a ``file://`` URL, or the file's layout cannot be resolved (the message says why:
            undetermined, conflicting or invalid evidence).
        UnsupportedDtypeError
            Its dtype has no Zarr v3 core equivalent.
        """
        import zarr
        from virtualizarr.manifests import ChunkManifest, ManifestArray, ManifestGroup, ManifestStore
        from zarr.core.metadata import ArrayV3Metadata

        parsed = urlparse(url)
        if parsed.scheme != "file":
            raise MetadataError(f"expected a file:// URL, found {url!r}; arraystore resolves local files")
        path = Path(unquote(parsed.path))
        root = self.root if self.root is not None else path.parent
        if root.resolve() not in path.resolve().parents:
            raise UnsafeInputError(f"{path}: resolves outside the root {root}; refused")
        meta, offset = self._layout(path, root)
        st = path.stat()
        va = VirtualArray.from_meta(
            self.variable, path.name, meta, offset, size=st.st_size, mtime_ns=st.st_mtime_ns,
            chunk_bytes=self.chunk_bytes,
        )  # fmt: skip
        axes = meta.attrs.get("axes")
        dims = axes if isinstance(axes, list) and len(axes) == meta.ndim else [f"dim_{i}" for i in range(meta.ndim)]
        store = zarr.storage.MemoryStore()
        create_metadata(store, "a", meta, va.chunks, va.attrs(), [str(d) for d in dims])
        metadata = ArrayV3Metadata.from_dict(json.loads(store._store_dict["a/zarr.json"].to_bytes()))
        grid = tuple(s // c for s, c in zip(meta.shape, va.chunks, strict=True)) if meta.nbytes else ()
        paths = np.full(grid, path.resolve().as_uri(), dtype=np.dtypes.StringDType())
        offsets = np.zeros(grid, dtype=np.uint64)
        lengths = np.zeros(grid, dtype=np.uint64)
        for ref in va.refs():
            offsets[ref.index] = ref.offset
            lengths[ref.index] = ref.length
        manifest = ChunkManifest.from_arrays(paths=paths, offsets=offsets, lengths=lengths)
        group = ManifestGroup(arrays={self.variable: ManifestArray(metadata, manifest)})
        return ManifestStore(group, registry=registry)

    def _layout(self, path: Path, root: Path) -> tuple[ArrayMeta, int]:
        """``.npy`` header, an HDF5 dataset's storage, or the migration's evidence for a raw file."""
        from ..virtual.sources import hdf5_layout, npy_layout

        if self.dataset is not None:
            return hdf5_layout(path, self.dataset)
        if path.suffix.lower() == ".npy":
            return npy_layout(path)
        res = resolve(path, root=root, rules=self.rules)
        if res.status != "resolved" or res.meta is None:
            raise res.error or MetadataError(
                f"{path}: no evidence states its dtype (undetermined); give a rules file (see docs/migration.md)"
            )
        return res.meta, res.offset
