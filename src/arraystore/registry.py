"""Backends by name, by suffix, and by magic bytes, imported only when used.

Built-in backends are listed as ``"module:Class"`` strings, so that importing
arraystore never imports h5py or zarr. Third-party backends register through the
``arraystore.backends`` entry-point group; the group is read the first time a
name or path is not matched by a built-in, never at import time.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from .errors import ArrayNotFoundError, ArrayStoreWarning, BackendError, MissingDependencyError
from .location import Location, parse_location

if TYPE_CHECKING:
    from .store import ArrayStore

__all__ = ["BACKENDS", "Location", "backend_class", "detect_backend", "parse_location"]

ENTRY_POINT_GROUP = "arraystore.backends"


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives and what installs it."""

    target: str
    extra: str | None = None
    library: str | None = None


#: Built-in backends (read-only).
BACKENDS: Mapping[str, BackendSpec] = MappingProxyType(
    {
        "raw": BackendSpec("arraystore.backends.raw:RawStore"),
        "npy": BackendSpec("arraystore.backends.npy:NpyStore"),
        "hdf5": BackendSpec("arraystore.backends.hdf5:HDF5Store", "hdf5", "h5py"),
        "zarr": BackendSpec("arraystore.backends.zarr:ZarrStore", "zarr", "zarr"),
    }
)

#: Suffixes, longest first when matched.
SUFFIXES: Mapping[str, str] = MappingProxyType(
    {
        ".zarr.zip": "zarr",
        ".zarr": "zarr",
        ".npy": "npy",
        ".h5": "hdf5",
        ".hdf5": "hdf5",
        ".he5": "hdf5",
        ".hdf": "hdf5",
        ".dat": "raw",
        ".raw": "raw",
        ".bin": "raw",
    }
)

_NPY_MAGIC = b"\x93NUMPY"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _suffix_backend(file: Path) -> str | None:
    name = file.name.lower()
    for suffix, backend in SUFFIXES.items():
        if name.endswith(suffix):
            return backend
    return None


def _magic_backend(file: Path) -> str | None:
    if file.is_dir():
        if (file / "zarr.json").exists() or (file / ".zarray").exists() or (file / ".zgroup").exists():
            return "zarr"
        return None
    try:
        with open(file, "rb") as f:
            head = f.read(8)
            if head.startswith(_NPY_MAGIC):
                return "npy"
            # HDF5 allows a user block: the signature may sit at 0, 512, 1024, 2048, ...
            offset = 0
            size = os.fstat(f.fileno()).st_size
            while offset + 8 <= size and offset <= 1 << 20:
                f.seek(offset)
                if f.read(8) == _HDF5_MAGIC:
                    return "hdf5"
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return None
    return None


def _has_dialect_header(file: Path) -> bool:
    """True for a header file (ENVI/EHdr ``.hdr``, MetaImage ``.mhd``/``.mha``, IDX) or a data
    file with such a header beside it; the raw backend then reads it through the dialect."""
    from . import dialects
    from .dialects.idx import is_idx_name
    from .errors import ArrayStoreError

    if file.name.lower().endswith((".hdr", ".mhd", ".mha", ".idx")) or is_idx_name(file):
        return True
    for dialect in dialects.DIALECTS.values():
        try:
            header = dialect.find_header(file)
            if header is not None and dialect.sniff(header):
                return True
        except (ArrayStoreError, OSError):
            return True  # a header is there, but broken: let the raw backend say what is wrong
    return False


def detect_backend(location: Location, *, must_exist: bool = True) -> str:
    """The backend for a location: by suffix, else by magic bytes, else by a raw sidecar.

    Raises
    ------
    ArrayNotFoundError
        When ``must_exist`` and nothing is at the path.
    BackendError
        When neither suffix nor content names a format.
    """
    file = location.file
    by_suffix = _suffix_backend(file)
    if by_suffix is not None:
        return by_suffix
    if not file.exists():
        if must_exist:
            raise ArrayNotFoundError(f"{file}: no such file or folder")
        raise BackendError(
            f"{file}: cannot tell the format from the suffix {file.suffix!r}; pass backend= one of {sorted(_all_names())}"
        )
    by_magic = _magic_backend(file)
    if by_magic is not None:
        return by_magic
    if file.with_name(file.name + ".json").exists() or _has_dialect_header(file):
        return "raw"
    for name, cls in _entry_point_classes().items():
        detect = getattr(cls, "detect", None)
        if detect is not None and detect(location):
            return name
    raise BackendError(
        f"{file}: expected a known suffix ({', '.join(SUFFIXES)}) or format signature (.npy, HDF5, zarr.json), "
        f"found neither; pass backend= one of {sorted(_all_names())}, or for a raw file without metadata "
        "run `arraystore inspect` and open it with meta=ArrayMeta(...)"
    )


def backend_class(name: str) -> type[ArrayStore]:
    """Import and return the store class of a backend.

    Raises
    ------
    BackendError
        Unknown name.
    MissingDependencyError
        The backend's library is not installed; the message names the extra to install.
    """
    spec = BACKENDS.get(name)
    if spec is None:
        eps = _entry_point_classes()
        if name in eps:
            return eps[name]
        raise BackendError(f"unknown backend {name!r}; expected one of {sorted(_all_names())}")
    module, _, attr = spec.target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        if spec.library and exc.name is not None and exc.name.split(".")[0] == spec.library:
            raise MissingDependencyError(
                f"the {name} backend needs {spec.library}, which is not installed; "
                f"install it with: pip install 'arraystore[{spec.extra}]'"
            ) from exc
        raise
    cls: type[ArrayStore] = getattr(mod, attr)
    return cls


def _all_names() -> set[str]:
    return set(BACKENDS) | set(_entry_point_classes())


@cache
def _entry_point_classes() -> dict[str, type[ArrayStore]]:
    from importlib.metadata import entry_points

    out: dict[str, type[ArrayStore]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BACKENDS:
            continue
        try:
            out[ep.name] = ep.load()
        except Exception as exc:  # a broken plugin must not break arraystore
            warnings.warn(
                f"arraystore backend plugin {ep.name!r} ({ep.value}) failed to load: {exc!r}",
                ArrayStoreWarning,
                stacklevel=2,
            )
    return out
