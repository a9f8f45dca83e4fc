"""A real S3 protocol server on loopback for the object-storage tests.

The server runs once per session on 127.0.0.1 and a free port; every test gets its own
bucket and the standard AWS environment variables pointing at the server, set for that
test only. Nothing inside arraystore is mocked: obstore talks HTTP to the server.

Which server: ``ARRAYSTORE_S3_SERVER`` (default ``moto``, moto's ``ThreadedMotoServer`` in
this process), or ``s3rver`` (the Node.js fake S3 server, objects on disk, in its own
process; found through ``ARRAYSTORE_S3RVER``, the path of its ``bin/s3rver.js``, or
``s3rver`` on ``PATH``; install it with ``npm install --prefix DIR s3rver@3.7.1``). Tests
that need what only moto offers (its IAM signature checks, its request log) are skipped
on other servers, saying why. s3rver ignores conditional requests, so arraystore refuses to take a
writer's lease or read by ranges there (ObjectStoreUnsupportedError); the tests run on it with
``ARRAYSTORE_ASSUME_CONDITIONAL_REQUESTS=1`` and skip the tests of what those requests guarantee.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

SECRET = "arraystore-test-secret-Zq81xW"

#: The server the tests run against.
SERVER = os.environ.get("ARRAYSTORE_S3_SERVER", "moto").strip().lower() or "moto"
SERVERS = ("moto", "s3rver")
if SERVER not in SERVERS:
    raise pytest.UsageError(f"ARRAYSTORE_S3_SERVER={SERVER!r}: expected one of {', '.join(SERVERS)}")

#: s3rver accepts only its built-in access key id; it does not check SigV4 signatures, so any secret passes.
_ACCESS_KEY = {"moto": "arraystore-test-key", "s3rver": "S3RVER"}

needs_conditional_requests = pytest.mark.skipif(
    SERVER == "s3rver",
    reason="s3rver ignores If-None-Match and If-Match (PUT and GET): what depends on them cannot hold there",
)
needs_moto = pytest.mark.skipif(
    SERVER != "moto",
    reason=f"needs moto's own features (IAM signature checks or its request log); the server is {SERVER}",
)

if SERVER == "moto":
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the test extra; install arraystore[test]")
else:
    # For the whole session: worker pools (a forkserver) may start before any test sets its environment.
    os.environ["ARRAYSTORE_ASSUME_CONDITIONAL_REQUESTS"] = "1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _s3rver_command() -> list[str]:
    script = os.environ.get("ARRAYSTORE_S3RVER") or shutil.which("s3rver")
    node = shutil.which("node")
    if not script or not node:
        pytest.fail(
            "ARRAYSTORE_S3_SERVER=s3rver but s3rver (or node) was not found: install it with "
            "'npm install --prefix DIR s3rver@3.7.1' and set ARRAYSTORE_S3RVER=DIR/node_modules/s3rver/bin/s3rver.js",
            pytrace=False,
        )
    return [node, script]


class LoopbackS3:
    """An S3 server of kind :data:`SERVER` on 127.0.0.1 that can be stopped and started again, keeping its objects."""

    def __init__(self, kind: str = SERVER) -> None:
        self.kind = kind
        self.endpoint = ""
        self._moto: Any = None
        self._process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.mkdtemp(prefix="arraystore-s3rver-") if kind == "s3rver" else ""
        self.log = os.path.join(self._dir, "server.log") if self._dir else ""

    def start(self) -> str:
        """Start on a free port (a new one after a stop: the old one may linger); the endpoint URL."""
        port = _free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        if self.kind == "moto":
            # moto keeps its state in this process: a new server sees what the stopped one held.
            self._moto = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            self._moto.start()
            return self.endpoint
        # The legacy OpenSSL provider: s3rver encrypts ListObjectsV2 continuation tokens with DES,
        # which Node >= 17 refuses without it (every listing of more than 1000 keys would fail).
        env = {**os.environ, "NODE_OPTIONS": "--openssl-legacy-provider"}
        with open(self.log, "ab") as log:  # beside the data folder, whose subfolders are the buckets
            self._process = subprocess.Popen(
                [*_s3rver_command(), "-d", os.path.join(self._dir, "data"), "-a", "127.0.0.1", "-p", str(port),
                 "--silent"],
                env=env, stdout=log, stderr=log,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return self.endpoint
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    with open(self.log, errors="replace") as log:
                        pytest.fail(f"s3rver did not start on port {port}: {log.read()[-2000:]}", pytrace=False)
                time.sleep(0.05)

    def crashed(self) -> str | None:
        """The end of the server's log if its process exited by itself, else None."""
        if self._process is None or self._process.poll() is None:
            return None
        with open(self.log, errors="replace") as log:
            return f"s3rver exited with {self._process.returncode}: {log.read()[-3000:]}"

    def stop(self) -> None:
        """Stop serving (the objects stay, for the next :meth:`start`)."""
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def remove(self) -> None:
        """Stop, and delete what an on-disk server stored."""
        self.stop()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of the session's S3 server on loopback, stopped at the end of the session."""
    server = LoopbackS3()
    try:
        yield server.start()
        crash = server.crashed()
        if crash:
            pytest.fail(crash, pytrace=False)
    finally:
        server.remove()


def aws_env(endpoint: str) -> dict[str, str]:
    """The environment a client needs to reach the test server."""
    return {
        "AWS_ACCESS_KEY_ID": _ACCESS_KEY[SERVER],
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
        **({"ARRAYSTORE_ASSUME_CONDITIONAL_REQUESTS": "1"} if SERVER == "s3rver" else {}),
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
