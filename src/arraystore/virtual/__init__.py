"""Virtual Zarr: legacy files exposed as Zarr v3 arrays whose chunks are byte ranges of the originals.

``arraystore.migrate(src, dst, virtual=True, format="kerchunk"|"icechunk")`` writes one; any
Zarr v3 reader opens it without arraystore (see ``docs/migration.md``, "Virtual migration").

==================== ==========================================================
:mod:`.refs`         chunk layout and Zarr metadata of one file (:class:`VirtualArray`)
:mod:`.kerchunk`     kerchunk reference file: write, read with the archive-root check
:mod:`.icechunk`     icechunk repository with virtual chunks: write, open
:mod:`.verify`       check every reference against its file
:mod:`.fallback`     the copying fallback: what no reference can express, copied into the hierarchy
``_backend``         the read-only ``virtual`` backend: ``arraystore.open("virtual.json::/a/f.dat")``
==================== ==========================================================
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import BackendError, MetadataError
from ._array import open_virtual_array
from .refs import DEFAULT_CHUNK_BYTES, ChunkRef, VirtualArray, check_expressible, chunk_shape

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "ChunkRef",
    "VirtualArray",
    "check_expressible",
    "chunk_shape",
    "open_virtual",
    "open_virtual_array",
    "require",
]

_NEEDS = {"kerchunk": ("fsspec", "zarr"), "icechunk": ("icechunk", "zarr")}


def require(fmt: str) -> None:
    """Check ``fmt`` is a virtual format and its libraries are installed.

    Raises
    ------
    MetadataError
        Not ``"kerchunk"`` or ``"icechunk"``.
    BackendError
        A library it needs is missing; the message says ``pip install "arraystore[virtual]"``.
    """
    if fmt not in _NEEDS:
        raise MetadataError(f"expected a virtual format among {', '.join(_NEEDS)}, found {fmt!r}")
    for mod in _NEEDS[fmt]:
        try:
            importlib.import_module(mod)
        except ImportError:
            raise BackendError(
                f"the {fmt} virtual format needs {mod}, which is not installed; "
                'pip install "arraystore[virtual]"'
            ) from None


def open_virtual(path: Any, root: Any = None) -> Any:
    """Open a virtual store (``virtual.json`` or ``virtual.icechunk``) read-only as a ``zarr`` group.

    Every reference must stay inside the archive root (default: the one recorded; pass
    ``root`` when the archive moved). See :func:`.kerchunk.read_references` and
    :func:`.icechunk.open_icechunk`. ``arraystore.open("STORE::/array", root=...)`` opens one
    array of it as an arraystore array.
    """
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        require("icechunk")
        from .icechunk import open_icechunk

        return open_icechunk(p, root)
    require("kerchunk")
    from .kerchunk import open_kerchunk

    return open_kerchunk(p, root)
