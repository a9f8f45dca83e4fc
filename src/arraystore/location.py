"""Where an array lives: :class:`Location` and :func:`parse_location`.

The bottom layer of the package (it imports nothing of arraystore's): the contract
(:mod:`arraystore.store`), the registry and every backend name places with it.

Locations are local paths or URLs: ``file://`` is a local path; ``s3://``, ``gs://``,
``az://`` (also ``abfs://``, ``azure://``), ``memory://`` and ``http(s)://`` (read-only)
name objects in a store (see :mod:`arraystore.objstore`). ``"url::/group/array"``
names an array inside a hierarchy either way.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from .errors import ArrayNotFoundError, BackendError, OptionError, UnsafeInputError

__all__ = ["REMOTE_SCHEMES", "Location", "parse_location"]

#: URL schemes that name objects in an object store rather than local files.
REMOTE_SCHEMES = frozenset({"s3", "gs", "gcs", "az", "abfs", "abfss", "azure", "memory", "http", "https"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


@dataclass(frozen=True)
class Location:
    """A store's place: a file or folder, and for HDF5/Zarr hierarchies a key inside it.

    ``"run.h5::/a/b"`` parses to ``Location(Path("run.h5"), "/a/b")``. An object-store
    location has ``url`` set (``"s3://bucket/run.zarr"``, without a trailing slash);
    its ``file`` is then only the URL's path, for suffix checks, and names nothing local.
    """

    file: Path
    key: str | None = None
    url: str | None = None

    @property
    def remote(self) -> bool:
        """True for a location in an object store (``url`` set)."""
        return self.url is not None

    def __str__(self) -> str:
        base = self.url if self.url is not None else str(self.file)
        return f"{base}::{self.key}" if self.key else base


def parse_location(path: str | os.PathLike[str] | Location) -> Location:
    """Split ``"file::/key"``; for local paths expand ``~`` and make them absolute.

    ``file://`` URLs become local paths; the schemes in :data:`REMOTE_SCHEMES` give a
    location with ``url`` set. Other ``scheme://`` prefixes are refused with
    :class:`~arraystore.errors.BackendError` (a ValueError; they would otherwise become a
    local folder named ``scheme:``), and a URL with nothing after ``scheme://`` with
    :class:`~arraystore.errors.ArrayNotFoundError`.
    """
    if isinstance(path, Location):
        return path
    try:
        s = os.fsdecode(path)  # a bytes path as os.open takes it
    except TypeError:
        raise OptionError(
            f"expected a path (str, bytes or os.PathLike), a URL or an open store, found {type(path).__name__} "
            f"{path!r:.80}; pass the array's path"
        ) from None
    key = None
    match = _SCHEME.match(s)
    scheme = match.group(1).lower() if match else None
    # In a URL, '::' after the scheme's '://' splits off the key as for paths.
    head = len(match.group(0)) if match else 0
    start = head
    if match and s[head:head + 1] == "[":  # an IPv6 host (http://[::1]:9000/x) holds '::' of its own
        start = s.find("]", head) + 1 or len(s)
    if "::" in s[start:]:
        cut = s.index("::", start)
        s, key = s[:cut], s[cut + 2 :]
        key = key or None
    if scheme is None:
        return Location(Path(s).expanduser().absolute(), key)
    if scheme == "file":
        parts = urlsplit(s)
        return Location(Path(unquote(parts.netloc + parts.path) if parts.netloc not in ("", "localhost") else unquote(parts.path)).absolute(), key)
    if scheme not in REMOTE_SCHEMES:
        raise BackendError(
            f"{s}: expected a local path or a URL of {', '.join(sorted(REMOTE_SCHEMES | {'file'}))}, found the "
            f"scheme {scheme!r}; check the spelling, or install a plugin backend that handles it"
        )
    rest = s[head:].rstrip("/")
    if not rest:
        raise ArrayNotFoundError(f"{s}: expected a URL naming an object inside a bucket (scheme://bucket/name), "
                                 "found no bucket and no name")
    _check_url(s, f"{scheme}://{rest}")
    return Location(Path(PurePosixPath("/" + rest)), key, f"{scheme}://{rest}")


def _check_url(given: str, url: str) -> None:
    """Refuse a URL whose bucket or host is missing or unreadable, or whose path has ``.``, ``..`` or empty segments.

    An object store takes such a path literally or resolves it elsewhere (``s3://b/../x`` is not
    bucket ``b``), and ``obstore`` refuses some of them only with a bare ``ValueError``.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parses the port: "host:abc" raises here
    except ValueError as exc:
        raise BackendError(
            f"{given}: expected a URL such as s3://bucket/name or https://host/name, found one whose bucket or host "
            f"does not parse ({exc}); check the part after '://'"
        ) from None
    if not parts.netloc and parts.scheme != "memory":  # an in-memory store has no buckets: memory:///a.zarr
        raise ArrayNotFoundError(f"{given}: expected a URL naming an object inside a bucket (scheme://bucket/name), "
                                 "found no bucket (nothing between '://' and the next '/')")
    if parts.scheme not in ("http", "https"):
        extra = [f"a query {'?' + parts.query!r}" if parts.query or "?" in url else "",
                 f"a fragment {'#' + parts.fragment!r}" if parts.fragment or "#" in url else "",
                 "a percent-escape" if _ESCAPE.search(parts.path) else ""]
        if found := " and ".join(e for e in extra if e):
            raise BackendError(
                f"{given}: expected a URL naming an object by its key, found {found}, which the object store "
                "reads as URL syntax, not as part of the key (s3://b/x.zarr?versionId=3 would name the current "
                "x.zarr, s3://b/p%2Fq the key p/q): name the object by its plain key; object versions are not read"
            )
    segments = parts.path.split("/")[1:]
    bad = sorted({seg for seg in segments if seg in ("", ".", "..")})
    if bad:
        found = " and ".join("an empty segment ('//')" if seg == "" else f"a {seg!r} segment" for seg in bad)
        raise UnsafeInputError(
            f"{given}: expected a URL whose path is plain names separated by '/', found {found}; an object store "
            "does not resolve these as a file system does: name the object by its full path without them"
        )
