"""Object stores (S3, GCS, Azure, in-memory, HTTP) under arraystore's locations.

A location whose :attr:`~arraystore.location.Location.url` is set names an object
prefix; :func:`object_store` turns it into an `obstore <https://developmental-seed.github.io/obstore>`_
store rooted at that prefix. Credentials and endpoints come from each cloud's standard
environment (for S3: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``, ``AWS_ENDPOINT_URL``, ``AWS_ALLOW_HTTP``), or from ``storage_options=``
(obstore's config names; the fsspec spellings ``key``, ``secret``, ``token``,
``endpoint_url`` and ``client_kwargs={"region_name": ...}`` are translated; ``client_options``
and ``retry_config`` go to obstore's client as they are). arraystore
never writes them into its files, messages or logs: :func:`store_errors` maps the
client's exceptions to :class:`~arraystore.errors.ObjectStoreError` with every secret
value it knows of replaced by ``***``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from ..errors import (
    AlreadyExistsError,
    ArrayNotFoundError,
    ArrayStoreError,
    BackendError,
    MissingDependencyError,
    ModeError,
    ObjectStoreAccessError,
    ObjectStoreError,
)
from ..location import Location

__all__ = [
    "ASSUME_CONDITIONAL_ENV",
    "READ_ONLY_SCHEMES",
    "current_storage_options",
    "default_storage_options",
    "object_store",
    "redact",
    "store_errors",
    "trusts_conditions",
]

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


#: Set to 1, arraystore trusts the store to honour conditional requests without checking (test servers only).
ASSUME_CONDITIONAL_ENV = "ARRAYSTORE_ASSUME_CONDITIONAL_REQUESTS"
#: Stores (bucket, endpoint, options; hashed) and request kinds seen honoured in this process.
_trusted: set[str] = set()


def trusts_conditions(where: str, kind: str, storage_options: Mapping[str, Any] | None,
                      honoured: bool | None = None) -> bool:
    """Whether the store of ``where`` was seen honouring conditional requests of ``kind``; ``honoured=True`` records it.

    Some S3-compatible servers accept ``If-None-Match``/``If-Match`` and ignore them (s3rver);
    the lease and the ranged readers check once per bucket and process, and record the answer
    here. ``ARRAYSTORE_ASSUME_CONDITIONAL_REQUESTS=1`` skips the checks, to run a test suite
    against such a server: the guarantees that depend on them are then lost.
    """
    bucket = where.split("://", 1)[0] + "://" + where.split("://", 1)[-1].split("/", 1)[0]
    seen = repr((kind, bucket, os.environ.get("AWS_ENDPOINT_URL"), sorted(map(repr, dict(storage_options or {}).items()))))
    ident = hashlib.sha256(seen.encode()).hexdigest()
    if honoured:
        _trusted.add(ident)
    return ident in _trusted or os.environ.get(ASSUME_CONDITIONAL_ENV) == "1"


def scheme_of(location: Location) -> str:
    """The URL scheme of a remote location (lower case)."""
    assert location.url is not None
    return location.url.split("://", 1)[0].lower()


#: ``storage_options`` that are not store configuration but client settings, passed as they are.
_CLIENT_KEYS = ("client_options", "retry_config")
#: Storage options in force when a call passes none (set by :func:`default_storage_options`).
_default: ContextVar[Mapping[str, Any] | None] = ContextVar("arraystore_storage_options", default=None)


@contextlib.contextmanager
def default_storage_options(storage_options: Mapping[str, Any] | None) -> Iterator[None]:
    """Use ``storage_options`` for every object-store location opened inside the block (e.g. by ``convert``)."""
    token = _default.set(storage_options)
    try:
        yield
    finally:
        _default.reset(token)


def current_storage_options() -> Mapping[str, Any] | None:
    """The storage options :func:`default_storage_options` put in force here (None outside such a block)."""
    return _default.get()


_CLIENT_CONFIG = frozenset({
    "allow_http", "allow_invalid_certificates", "connect_timeout", "default_content_type", "default_headers",
    "http1_only", "http2_keep_alive_interval", "http2_keep_alive_timeout", "http2_keep_alive_while_idle",
    "http2_only", "pool_idle_timeout", "pool_max_idle_per_host", "proxy_url", "proxy_ca_certificate",
    "proxy_excludes", "root_certificate", "randomize_addresses", "read_timeout", "timeout", "user_agent",
})  # fmt: skip
_STORE_CONFIG = {
    "s3": frozenset({
        "access_key_id", "aws_endpoint_url_s3", "bucket", "checksum_algorithm", "conditional_put",
        "container_credentials_relative_uri", "container_credentials_full_uri", "container_authorization_token_file",
        "copy_if_not_exists", "default_region", "disable_tagging", "disable_bulk_delete", "endpoint",
        "imdsv1_fallback", "metadata_endpoint", "region", "request_payer", "role_arn", "role_session_name",
        "s3_express", "secret_access_key", "server_side_encryption", "session_token", "skip_signature",
        "sse_bucket_key_enabled", "sse_customer_key_base64", "sse_kms_key_id", "sts_endpoint", "unsigned_payload",
        "virtual_hosted_style_request", "web_identity_token_file",
    }),
    "gs": frozenset({
        "service_account", "service_account_key", "base_url", "bearer_token", "bucket", "application_credentials",
        "skip_signature",
    }),
    "az": frozenset({
        "account_name", "account_key", "client_id", "client_secret", "credential_type", "tenant_id", "authority_host",
        "sas_key", "token", "use_emulator", "use_fabric_endpoint", "encryption_key", "endpoint", "msi_endpoint",
        "object_id", "msi_resource_id", "federated_token_file", "use_azure_cli", "skip_signature", "container_name",
        "disable_tagging", "fabric_token_service_url", "fabric_workload_host", "fabric_session_token",
        "fabric_cluster_identifier",
    }),
}  # fmt: skip
_FAMILY = {"s3": "s3", "gs": "gs", "gcs": "gs", "az": "az", "azure": "az", "abfs": "az", "abfss": "az"}
_PREFIX = {"s3": "aws_", "gs": "google_", "az": "azure_"}


def _split_options(
    location: Location, storage_options: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(store config, client keyword arguments) from ``storage_options``; unknown names refused."""
    family = _FAMILY.get(scheme_of(location))
    config = _config(storage_options)
    client: dict[str, Any] = {k: v for k, v in dict(storage_options or {}).items() if k in _CLIENT_KEYS}
    client_options: dict[str, Any] = dict(client.get("client_options") or {})
    store: dict[str, Any] = {}
    known = _STORE_CONFIG.get(family or "", frozenset())
    unknown = []
    for name, value in config.items():
        bare = name.lower()
        if family is not None and bare.startswith(_PREFIX[family]):
            bare = bare[len(_PREFIX[family]) :]
        if bare in _CLIENT_CONFIG:
            client_options[bare] = value
        elif bare in known:
            store[bare] = value if not isinstance(value, bool) else str(value).lower()
        else:
            unknown.append(name)
    if unknown:
        raise BackendError(
            f"{location}: unknown storage_options {sorted(unknown)} for {scheme_of(location)}:// (expected obstore's "
            f"config names, e.g. {', '.join(sorted(known)[:6]) or 'none for this scheme'}, or client settings such as "
            "allow_http, timeout, retry_config); check the spelling"
        )
    # obstore reads AWS_ALLOW_HTTP into its client options only when none are given
    env_http = os.environ.get("AWS_ALLOW_HTTP", "").lower() == "true"
    if client_options and "allow_http" not in client_options and family == "s3" and env_http:
        client_options["allow_http"] = True
    if client_options:
        client["client_options"] = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in client_options.items()}
    return store, client


def _config(storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, value in dict(storage_options or {}).items():
        if name in _CLIENT_KEYS:
            continue
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
    for name, value in {**dict(_default.get() or {}), **dict(storage_options or {})}.items():
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
    if storage_options is None:
        storage_options = _default.get()
    scheme = scheme_of(location)
    store_config, client_kwargs = _split_options(location, storage_options)
    if (_FAMILY.get(scheme) == "s3" and "unsigned_payload" not in store_config and "AWS_UNSIGNED_PAYLOAD" not in os.environ
            and _transport_protected(store_config)):
        store_config["unsigned_payload"] = "true"
    config: Any = store_config or None
    client: Any = client_kwargs
    with store_errors(str(location), storage_options):
        if scheme == "memory":
            # One process-wide in-memory store per prefix, so that arrays outlive a handle.
            with _memory_lock:
                return _memory_stores.setdefault(location.url, obstore.store.MemoryStore())
        if scheme in ("gcs",):
            return obstore.store.from_url("gs://" + location.url.split("://", 1)[1], config=config, **client)
        if scheme in ("az", "azure", "abfs", "abfss"):
            url = "az://" + location.url.split("://", 1)[1] if scheme in ("az", "azure") else location.url
            return obstore.store.from_url(url, config=config, **client)
        if scheme in READ_ONLY_SCHEMES:
            return obstore.store.HTTPStore.from_url(location.url, **client)
        return obstore.store.from_url(location.url, config=config, **client)


def _transport_protected(store_config: Mapping[str, Any]) -> bool:
    """True when nothing between client and S3 endpoint can alter a request: TLS (``https``) or this machine.

    Then the body of a PUT is sent unsigned (SigV4's ``UNSIGNED-PAYLOAD``; boto3 does so over TLS
    too, for uploads that carry a checksum): signing it costs a SHA-256 of every byte uploaded (a
    quarter of an upload's client CPU, measured on moto), and guards against changes in transit
    that TLS already detects and that a loopback connection cannot suffer. ``storage_options={"unsigned_payload":
    False}`` (or ``AWS_UNSIGNED_PAYLOAD=false``) signs it anyway.
    """
    import ipaddress
    from urllib.parse import urlsplit

    endpoint = str(store_config.get("endpoint") or store_config.get("aws_endpoint_url_s3")
                   or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT")
                   or os.environ.get("AWS_ENDPOINT_URL") or "https://s3.amazonaws.com")
    try:
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if parts.scheme.lower() == "https" or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


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
    # obstore raises the builtin FileNotFoundError for a 404 on a GET, HEAD or PUT (not one of its own)
    if not isinstance(exc, oe.BaseError) and not (isinstance(exc, FileNotFoundError) and "<Code>" in str(exc)):
        return None
    first = redact(str(exc), storage_options).strip().splitlines()
    detail = first[0][:300] if first else type(exc).__name__
    if "<Code>NoSuchBucket</Code>" in str(exc):  # S3 and its imitators; obstore reports it as one more 404
        named = re.search(r"<BucketName>([^<]{1,255})</BucketName>", str(exc))
        bucket = f"{named.group(1)!r} " if named else ""
        return ArrayNotFoundError(
            f"{where}: the bucket {bucket}does not exist on this endpoint (NoSuchBucket); create it first (e.g. "
            "`aws s3 mb`), or check the bucket's name and the endpoint (AWS_ENDPOINT_URL)"
        )
    if isinstance(exc, (oe.NotFoundError, FileNotFoundError)):
        return ArrayNotFoundError(f"{where}: no such object in the store ({detail})")
    if isinstance(exc, oe.AlreadyExistsError):
        return AlreadyExistsError(f"{where}: the object already exists ({detail})")
    if _no_credentials(str(exc)):
        return ObjectStoreAccessError(
            f"{where}: found no credentials for the object store: none in the environment or storage_options=, "
            "and the cloud's instance metadata service gave none; set them in the cloud's standard environment "
            "(for S3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, with AWS_REGION and AWS_ENDPOINT_URL for a "
            "non-AWS server), or pass storage_options= (for a public bucket: {'skip_signature': True})"
        )
    if isinstance(exc, (oe.PermissionDeniedError, oe.UnauthenticatedError)) or _denied(str(exc)):
        return ObjectStoreAccessError(
            f"{where}: the object store refused the credentials ({type(exc).__name__}); expected valid "
            "credentials from the cloud's standard environment (for S3: AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL) or storage_options=; check the key and its "
            "secret (not shown here) and the bucket's permissions"
        )
    return ObjectStoreError(
        f"{where}: the object store request failed ({type(exc).__name__}: {detail}); check that the endpoint is "
        "reachable and retry: an interrupted conversion resumes with resume=True"
    )


def _no_credentials(text: str) -> bool:
    """The client looked for credentials beyond the environment (instance metadata) and found none."""
    return "169.254.169.254" in text or "169.254.170.2" in text or "fd00:ec2::254" in text


def _denied(text: str) -> bool:
    return any(
        code in text
        for code in ("403 Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "401 Unauthorized")
    )
