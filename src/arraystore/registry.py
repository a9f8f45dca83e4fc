"""Backends by name, by suffix, and by content, imported only when used.

Built-in backends are listed as ``"module:Class"`` strings with their suffixes (and,
for backends whose module imports a heavy library, a content check that does not),
so that importing arraystore — or telling an HDF5 file from a Zarr folder — imports
neither h5py nor zarr. Once a backend's module is imported, the registry asks its
class (:attr:`~arraystore.ArrayStore.suffixes`,
:meth:`~arraystore.ArrayStore.guess_can_open`); a test keeps the table and the
classes in agreement.

Third-party backends register through the ``arraystore.backends`` entry-point
group and are asked the same questions; the group is read the first time a name or
path is not matched by a built-in, never at import time.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from .errors import ArrayNotFoundError, ArrayStoreWarning, BackendError, MissingDependencyError
from .location import Location, parse_location

if TYPE_CHECKING:
    from .store import ArrayStore

__all__ = [
    "BACKENDS",
    "Location",
    "backend_class",
    "backend_names",
    "default_suffix",
    "detect_backend",
    "is_target",
    "parse_location",
    "target_names",
]

ENTRY_POINT_GROUP = "arraystore.backends"


@dataclass(frozen=True)
class BackendSpec:
    """Where a built-in backend lives, what installs it, and how to recognise its files unimported.

    ``suffixes`` must equal the class's :attr:`~arraystore.ArrayStore.suffixes`; ``guess``
    (``"module:function"``, taking a :class:`Location`) answers like the class's
    ``guess_can_open`` without importing the backend's library; None: import the class
    and ask it. ``fallback`` backends claim files by side evidence and are asked last.
    """

    target: str
    extra: str | None = None
    library: str | None = None
    suffixes: tuple[str, ...] = ()
    guess: str | None = None
    fallback: bool = False
    creates: bool = True
    """Equal to the class's ``supports_create``: False for a read-only backend (never a destination)."""


#: Built-in backends (read-only). Adding one: its module, its test file, and one line here.
BACKENDS: Mapping[str, BackendSpec] = MappingProxyType(
    {
        "raw": BackendSpec("arraystore.backends.raw:RawStore", suffixes=(".dat", ".raw", ".bin"), fallback=True),
        "npy": BackendSpec("arraystore.backends.npy:NpyStore", suffixes=(".npy",)),
        "hdf5": BackendSpec(
            "arraystore.backends.hdf5:HDF5Store", "hdf5", "h5py", suffixes=(".h5", ".hdf5", ".he5", ".hdf"),
            guess="arraystore.backends._signatures:hdf5_signature",
        ),
        "zarr": BackendSpec(
            "arraystore.backends.zarr:ZarrStore", "zarr", "zarr", suffixes=(".zarr", ".zarr.zip"),
            guess="arraystore.backends._signatures:zarr_folder",
        ),
        "virtual": BackendSpec(
            "arraystore.virtual._backend:VirtualStore", "virtual", "zarr", suffixes=(".virtual.json", ".icechunk"),
            guess="arraystore.virtual._detect:looks_virtual", creates=False,
        ),
    }
)

#: Suffixes of the built-in backends, longest first when matched.
SUFFIXES: Mapping[str, str] = MappingProxyType(
    dict(sorted(((sfx, name) for name, spec in BACKENDS.items() for sfx in spec.suffixes), key=lambda kv: -len(kv[0])))
)


def _suffix_backend(file: Path) -> str | None:
    name = file.name.lower()
    for suffix, backend in SUFFIXES.items():
        if name.endswith(suffix):
            return backend
    for backend, cls in _entry_point_classes().items():
        if cls.suffixes and name.endswith(tuple(s.lower() for s in cls.suffixes)):
            return backend
    return None


def _imported_class(name: str) -> type[ArrayStore] | None:
    module, _, attr = BACKENDS[name].target.partition(":")
    mod = sys.modules.get(module)
    cls: type[ArrayStore] | None = getattr(mod, attr, None) if mod is not None else None
    return cls


def _guess(name: str, location: Location) -> bool:
    """Ask a built-in backend whether it can open ``location``, importing as little as possible."""
    spec = BACKENDS[name]
    cls = _imported_class(name)
    try:
        if cls is None and spec.guess is not None:
            module, _, attr = spec.guess.partition(":")
            check: Callable[[Location], bool] = getattr(importlib.import_module(module), attr)
            return bool(check(location))
        return bool((cls or backend_class(name)).guess_can_open(location))
    except MissingDependencyError:
        return False


def _content_backend(location: Location) -> str | None:
    ordered = sorted(BACKENDS, key=lambda n: BACKENDS[n].fallback)
    for name in ordered:
        if not BACKENDS[name].fallback and _guess(name, location):
            return name
    for name, cls in _entry_point_classes().items():
        try:
            if cls.guess_can_open(location):
                return name
        except Exception as exc:  # a broken plugin must not break detection
            warnings.warn(f"arraystore backend plugin {name!r}: guess_can_open failed: {exc!r}",
                          ArrayStoreWarning, stacklevel=3)
    for name in ordered:
        if BACKENDS[name].fallback and _guess(name, location):
            return name
    return None


def detect_backend(location: Location, *, must_exist: bool = True) -> str:
    """The backend for a location: by suffix, else by asking each backend about the content.

    Built-in suffixes first, then plugins' suffixes; then each backend's
    :meth:`~arraystore.ArrayStore.guess_can_open` (signatures: built-ins, then plugins;
    last the raw backend, which claims files by a sidecar or a header dialect).

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
    if location.remote:  # nothing local to read: each backend guesses from the name (raw: a dialect's names)
        by_name = _content_backend(location)
        if by_name is not None:
            return by_name
    if not file.exists():
        if must_exist:
            raise ArrayNotFoundError(f"{file}: no such file or folder")
        raise BackendError(
            f"{file}: cannot tell the format from the suffix {file.suffix!r}; pass backend= one of {sorted(_all_names())}"
        )
    by_content = _content_backend(location)
    if by_content is not None:
        return by_content
    raise BackendError(
        f"{file}: expected a known suffix ({', '.join(SUFFIXES)}) or format signature (.npy, HDF5, zarr.json), "
        f"found neither; pass backend= one of {sorted(_all_names())}, or for a raw file without metadata "
        "run `arraystore inspect` and open it with meta=ArrayMeta(...)"
    )


def default_suffix(name: str) -> str:
    """The suffix new files of backend ``name`` get (the first of its suffixes).

    Raises
    ------
    BackendError
        Unknown name, or a plugin backend that declares no suffixes.
    """
    spec = BACKENDS.get(name)
    suffixes = spec.suffixes if spec is not None else backend_class(name).suffixes
    if not suffixes:
        raise BackendError(f"the {name} backend declares no suffixes; name the destination files yourself")
    return suffixes[0]


def backend_names() -> list[str]:
    """Every backend's name: the built-ins, then installed plugins (reads the entry points)."""
    return [*BACKENDS, *sorted(_entry_point_classes())]


def target_names() -> list[str]:
    """The backends that create arrays (destinations of ``convert`` and ``migrate``): built-ins, then plugins."""
    plugins = [n for n, cls in sorted(_entry_point_classes().items()) if cls.supports_create]
    return [*(n for n, spec in BACKENDS.items() if spec.creates), *plugins]


def is_target(name: str) -> bool:
    """``name in target_names()``, without reading the entry points for a built-in name (a plugin of a
    built-in's name is never loaded): the scan of every installed distribution costs tens of milliseconds."""
    spec = BACKENDS.get(name)
    return spec.creates if spec is not None else name in target_names()


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
    imported = _imported_class(name)  # the usual case (a migration asks once per file): no import machinery
    if imported is not None:
        return imported
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
