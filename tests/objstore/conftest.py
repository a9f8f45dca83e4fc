"""A real S3 protocol server on loopback (moto's ThreadedMotoServer) for the object-storage tests.

The server runs once per session on 127.0.0.1 and a free port; every test gets its own
bucket and the standard AWS environment variables pointing at the server, set for that
test only. Nothing inside arraystore is mocked: obstore talks HTTP to the server.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the test extra; install arraystore[test]")

SECRET = "arraystore-test-secret-Zq81xW"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server on loopback, stopped at the end of the session."""
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def aws_env(endpoint: str) -> dict[str, str]:
    """The environment a client needs to reach the test server."""
    return {
        "AWS_ACCESS_KEY_ID": "arraystore-test-key",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS variables for the test server, set in os.environ for this test only."""
    env = aws_env(s3_server)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def bucket(s3_env: dict[str, str]) -> str:
    """A fresh, empty bucket on the test server: ``s3://<name>``."""
    import boto3

    name = "t-" + uuid.uuid4().hex[:20]
    boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
    return f"s3://{name}"


def env_for_subprocess(s3_env: dict[str, str]) -> dict[str, str]:
    """os.environ plus the server's variables, for a child process."""
    return {**os.environ, **s3_env}
