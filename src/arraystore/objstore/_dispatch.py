"""``open``/``create``/``exists`` for object-store URLs: modes here, the rest in the backend.

Called by :mod:`arraystore._open` when a location has a URL. The backend comes from
``backend=`` or the URL's suffix (Zarr when there is none: a prefix is a folder); what
it offers there is its :attr:`~arraystore.ArrayStore.object_storage` capability and its
``_open_url``/``_create_url``/``_exists_url`` hooks.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._append import check_same
from .._dimnames import names_to_record
from .._modes import CREATE_MODES
from ..errors import BackendError, ModeError, OptionError
from ..location import Location
from ..meta import ArrayMeta
from ..registry import backend_class, detect_backend

if TYPE_CHECKING:
    from ..store import ArrayStore

__all__ = ["create_url", "exists_url", "open_url", "remove_url", "url_class"]

#: The backend of a URL without a known suffix: a prefix of objects is a Zarr hierarchy's shape.
DEFAULT_URL_BACKEND = "zarr"


def _backend_for(location: Location, backend: str | None) -> type[ArrayStore]:
    if backend is None:
        try:
            backend = detect_backend(location, must_exist=False)
        except BackendError:
            backend = DEFAULT_URL_BACKEND
    cls = backend_class(backend)
    if cls.url_class is None:
        return cls
    module, _, name = cls.url_class.partition(":")
    found: type[ArrayStore] = getattr(importlib.import_module(module), name)
    return found


def url_class(location: Location, backend: str | None = None) -> type[ArrayStore]:
    """The class that handles ``backend``'s arrays (default: from the suffix) at an object-store URL."""
    return _backend_for(location, backend)


def remove_url(location: Location, backend: str | None = None) -> None:
    """Delete the array at the URL (every object of it), e.g. an output that does not open again."""
    _backend_for(location, backend)._remove(location)


def exists_url(location: Location, backend: str | None = None, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True when an array is at the URL."""
    return _backend_for(location, backend)._exists_url(location, storage_options)


def open_url(
    location: Location,
    mode: str,
    backend: str | None,
    *,
    lock_timeout: float = 0.0,
    shape: Any = None,
    dtype: Any = None,
    **options: Any,
) -> ArrayStore:
    """Open (or, with a creating mode, create) the array at an object-store URL."""
    cls = _backend_for(location, backend)
    if mode == "a":
        if not cls._exists_url(location, options.get("storage_options")):
            if shape is None or dtype is None:
                raise ModeError(
                    f"{location}: the array does not exist, so mode 'a' creates it and needs its shape and dtype: "
                    "pass shape= and dtype=, or call arraystore.create"
                )
            return create_url(location, shape, dtype, backend=cls.backend, lock_timeout=lock_timeout, **options)
        mode = "r+"
        _check_writable_backend(cls, location)
        # As for local arrays: layout arguments are hints, the others must match what exists.
        wanted = {"shape": shape, "dtype": dtype, "order": options.pop("order", None), "attrs": options.pop("attrs", None)}
        for extra in ("chunks", "compression", "overwrite", "resume", "shards", "checksum", "durable"):
            options.pop(extra, None)
        OptionError.check("open", cls.backend, options, cls._open_url)
        store = cls._open_url(location, mode, lock_timeout=lock_timeout, **options)
        check_same(store, wanted)
        return store
    elif mode in CREATE_MODES:
        if shape is None or dtype is None:
            raise ModeError(
                f"{location}: mode {mode!r} creates an array and needs its shape and dtype: pass shape= and dtype=, "
                "or call arraystore.create"
            )
        overwrite = mode in ("w", "w+")
        if options.pop("overwrite", overwrite) != overwrite:
            raise ModeError(
                f"{location}: mode {mode!r} and the overwrite argument contradict each other; leave overwrite out "
                "when opening with a mode"
            )
        return create_url(
            location, shape, dtype, backend=cls.backend, overwrite=overwrite, lock_timeout=lock_timeout, **options
        )
    elif shape is not None or dtype is not None:
        raise ModeError(
            f"{location}: mode {mode!r} opens an existing array, whose shape and dtype come from its metadata; drop "
            "shape= and dtype=, or use mode='w' (create or replace), 'x' (create new) or 'a' (create if missing)"
        )
    elif mode not in ("r", "r+"):
        raise ModeError(
            f"{location}: mode {mode!r} is not offered on object storage (copy-on-write needs a memory map, which "
            "an object store cannot give); open with 'r' or 'r+'"
        )
    if mode != "r":
        _check_writable_backend(cls, location)
    OptionError.check("open", cls.backend, options, cls._open_url)
    return cls._open_url(location, mode, lock_timeout=lock_timeout, **options)


def _check_writable_backend(cls: type[ArrayStore], location: Location) -> None:
    if cls.object_storage != "read-write":
        raise ModeError(
            f"{location}: {cls.backend} files in object storage are read-only (an object cannot be changed in "
            "place); open with mode='r', or write a Zarr array (.zarr) there"
        )


def create_url(
    location: Location,
    shape: Any,
    dtype: Any,
    *,
    backend: str | None = None,
    order: Any = "C",
    attrs: Any = None,
    **options: Any,
) -> ArrayStore:
    """Create an array at an object-store URL (backends whose ``object_storage`` is ``"read-write"``)."""
    cls = _backend_for(location, backend)
    meta = ArrayMeta(shape, dtype, order, dict(attrs or {}))
    if "dimension_names" in options:
        names = names_to_record(cls, location, options.pop("dimension_names"), meta.ndim, "zarr")
        if names is not None:
            options["dimension_names"] = names
    return cls._create_url(location, meta, **options)
