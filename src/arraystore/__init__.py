"""arraystore: N-dimensional NumPy arrays on disk, with their dtype and shape never silently wrong.

One interface (:class:`ArrayStore`) over raw ``.dat`` files with a JSON sidecar,
``.npy``, HDF5 and Zarr v3; conversion between any two; migration of legacy raw
archives. Importing arraystore imports neither h5py, zarr nor dask.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._open import create, open  # noqa: A004 - arraystore.open, like zarr.open
from .errors import ArrayStoreError, ArrayStoreWarning
from .meta import ArrayMeta
from .store import ArrayStore

__version__ = "0.1.0"

__all__ = [
    "ArrayMeta",
    "ArrayStore",
    "ArrayStoreError",
    "ArrayStoreWarning",
    "ArrayWriter",
    "__version__",
    "checksum",
    "conversion",
    "convert",
    "create",
    "errors",
    "filesystems",
    "locality",
    "map_blocks",
    "migrate",
    "migration",
    "open",
    "store_dask",
    "to_dask",
    "verify",
]

# Heavier entry points, imported on first use (PEP 562).
_LAZY: dict[str, str] = {
    "locality": "arraystore.filesystems:locality",
    "filesystems": "arraystore.filesystems",
    "dialects": "arraystore.dialects",
    "convert": "arraystore.conversion:convert",
    "conversion": "arraystore.conversion",
    "verify": "arraystore.checksums:verify",
    "checksum": "arraystore.checksums:checksum",
    "map_blocks": "arraystore.parallel:map_blocks",
    "ArrayWriter": "arraystore.writer:ArrayWriter",
    "migrate": "arraystore.migration:migrate",
    "migration": "arraystore.migration",
    "to_dask": "arraystore.integrations.dask:to_dask",
    "store_dask": "arraystore.integrations.dask:store_dask",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, _, attr = _LAZY[name].partition(":")
        value = getattr(import_module(module), attr) if attr else import_module(module)
        globals()[name] = value
        return value
    if name == "errors":
        return import_module(".errors", __name__)
    raise AttributeError(f"module 'arraystore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:
    from . import errors as errors
