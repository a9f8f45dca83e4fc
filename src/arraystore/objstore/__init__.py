"""Object stores (S3, GCS, Azure, in-memory, HTTP) under arraystore's locations.

A location whose :attr:`~arraystore.location.Location.url` is set names an object
prefix; :func:`object_store` turns it into an `obstore <https://developmental-seed.github.io/obstore>`_
store rooted at that prefix. Credentials and endpoints come from each cloud's standard
environment (for S3: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``, ``AWS_ENDPOINT_URL``, ``AWS_ALLOW_HTTP``), or from ``storage_options=``
(obstore's config names; the fsspec spellings ``key``, ``secret``, ``token``,
``endpoint_url`` and ``client_kwargs={"region_name": ...}`` are translated). arraystore
never writes them into its files, messages or logs: :func:`store_errors` maps the
client's exceptions to :class:`~arraystore.errors.ObjectStoreError` with every secret
value it knows of replaced by ``***``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import (
    AlreadyExistsError,
    ArrayNotFoundError,
    ArrayStoreError,
    MissingDependencyError,
    ModeError,
    ObjectStoreAccessError,
    ObjectStoreError,
)
from ..location import Location

__all__ = ["READ_ONLY_SCHEMES", "object_store", "redact", "store_errors"]

#: Schemes that can be read but never written.
READ_ONLY_SCHEMES = frozenset({"http", "https"})

# Environment variables whose values are secrets, redacted from every message.
_SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_TOKEN",
    "AZURE_CLIENT_SECRET",
)
_FSSPEC_ALIASES = {
    "key": "access_key_id",
    "secret": "secret_access_key",
    "token": "session_token",
    "endpoint_url": "endpoint",
    "anon": "skip_signature",
}
_memory_stores: dict[str, Any] = {}
_memory_lock = threading.Lock()


def scheme_of(location: Location) -> str:
    """The URL scheme of a remote location (lower case)."""
    assert location.url is not None
    return location.url.split("://", 1)[0].lower()


def _config(storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, value in dict(storage_options or {}).items():
        if name == "client_kwargs" and isinstance(value, Mapping):
            if "region_name" in value:
                config["region"] = value["region_name"]
            if "endpoint_url" in value:
                config["endpoint"] = value["endpoint_url"]
            continue
        config[_FSSPEC_ALIASES.get(name, name)] = value
    return config


def _secrets(storage_options: Mapping[str, Any] | None) -> list[str]:
    values = [os.environ.get(name, "") for name in _SECRET_ENV]
    for name, value in dict(storage_options or {}).items():
        if isinstance(value, str) and name not in ("region", "endpoint", "endpoint_url", "bucket"):
            values.append(value)
    return [v for v in values if len(v) >= 4]


def redact(text: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """``text`` with every secret value from the environment and ``storage_options`` replaced by ``***``."""
    for secret in sorted(_secrets(storage_options), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def object_store(location: Location, storage_options: Mapping[str, Any] | None = None) -> Any:
    """An obstore store rooted at ``location.url`` (the prefix; the ``::`` key is not part of it).

    Raises
    ------
    MissingDependencyError
        obstore is not installed (``pip install arraystore[s3]``).
    ObjectStoreError
        The URL or the options are not valid for the store.
    """
    try:
        import obstore.store
    except ImportError:  # pragma: no cover - obstore is in the s3 and test extras
        raise MissingDependencyError(
            f"{location}: object-store locations need obstore; install it with pip install 'arraystore[s3]'"
        ) from None
    assert location.url is not None
    scheme = scheme_of(location)
    config: Any = _config(storage_options) or None
    with store_errors(str(location), storage_options):
        if scheme == "memory":
            # One process-wide in-memory store per prefix, so that arrays outlive a handle.
            with _memory_lock:
                return _memory_stores.setdefault(location.url, obstore.store.MemoryStore())
        if scheme in ("gcs",):
            return obstore.store.from_url("gs://" + location.url.split("://", 1)[1], config=config)
        if scheme in ("az", "azure", "abfs", "abfss"):
            url = "az://" + location.url.split("://", 1)[1] if scheme in ("az", "azure") else location.url
            return obstore.store.from_url(url, config=config)
        if scheme in READ_ONLY_SCHEMES:
            return obstore.store.HTTPStore.from_url(location.url)
        return obstore.store.from_url(location.url, config=config)


def check_writable(location: Location, mode: str) -> None:
    """Refuse writing modes on read-only schemes (``http(s)://``)."""
    if mode != "r" and scheme_of(location) in READ_ONLY_SCHEMES:
        raise ModeError(
            f"{location}: {scheme_of(location)}:// locations are read-only; open with mode='r', or write to an "
            "object store URL (s3://, gs://, az://)"
        )


@contextlib.contextmanager
def store_errors(where: str, storage_options: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Map obstore's exceptions (and zarr's wrapping of them) into arraystore's tree, secrets redacted."""
    try:
        yield
    except ArrayStoreError:
        raise
    except Exception as exc:
        mapped = map_error(exc, where, storage_options)
        if mapped is None:
            raise
        raise mapped from None


def map_error(exc: BaseException, where: str, storage_options: Mapping[str, Any] | None = None) -> Exception | None:
    """The arraystore error for an obstore exception, or None when ``exc`` is not one."""
    try:
        import obstore.exceptions as oe
    except ImportError:  # pragma: no cover
        return None
    if not isinstance(exc, oe.BaseError):
        return None
    first = redact(str(exc), storage_options).strip().splitlines()
    detail = first[0][:300] if first else type(exc).__name__
    if isinstance(exc, oe.NotFoundError):
        return ArrayNotFoundError(f"{where}: no such object in the store ({detail})")
    if isinstance(exc, oe.AlreadyExistsError):
        return AlreadyExistsError(f"{where}: the object already exists ({detail})")
    if isinstance(exc, (oe.PermissionDeniedError, oe.UnauthenticatedError)) or _denied(str(exc)):
        return ObjectStoreAccessError(
            f"{where}: the object store refused the credentials ({type(exc).__name__}); expected valid "
            "credentials from the cloud's standard environment (for S3: AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL) or storage_options=; check them and the "
            "bucket's permissions"
        )
    return ObjectStoreError(
        f"{where}: the object store request failed ({type(exc).__name__}: {detail}); check that the endpoint is "
        "reachable and retry: an interrupted conversion resumes with resume=True"
    )


def _denied(text: str) -> bool:
    return any(
        code in text
        for code in ("403 Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "401 Unauthorized")
    )
