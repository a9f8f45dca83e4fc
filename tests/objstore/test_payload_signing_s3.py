"""Which uploads sign their payload: every byte hashed (SHA-256) unless TLS or loopback already protects it."""

from __future__ import annotations

import pytest

from arraystore.location import parse_location
from arraystore.objstore import object_store


def _unsigned(options: dict | None = None) -> str | None:
    store = object_store(parse_location("s3://bucket/a.zarr"), options)
    return dict(store.config).get("unsigned_payload")


@pytest.mark.parametrize(("endpoint", "unsigned"), [
    ("http://127.0.0.1:9000", "true"),
    ("http://127.8.9.10:9000", "true"),
    ("http://localhost:9000", "true"),
    ("http://[::1]:9000", "true"),
    ("https://minio.example.org", "true"),
    ("HTTPS://s3.eu-west-1.amazonaws.com", "true"),
    ("http://minio.example.org:9000", None),
    ("http://10.0.0.5:9000", None),
    ("http://127.0.0.1.example.org", None),
])
def test_the_payload_is_unsigned_only_over_tls_or_loopback(endpoint: str, unsigned: str | None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_UNSIGNED_PAYLOAD", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    assert _unsigned() == unsigned
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert _unsigned({"endpoint": endpoint, "allow_http": True}) == unsigned  # storage_options name it too


def test_aws_itself_is_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_UNSIGNED_PAYLOAD", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert _unsigned() == "true"


def test_the_user_can_ask_for_signed_payloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert _unsigned({"unsigned_payload": False}) == "false"
    assert _unsigned({"aws_unsigned_payload": False}) == "false"
    monkeypatch.setenv("AWS_UNSIGNED_PAYLOAD", "false")  # obstore reads it from the environment
    assert _unsigned() is None
