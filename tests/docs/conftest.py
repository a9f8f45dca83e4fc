"""An S3 protocol server for the docs pages whose examples name ``s3://`` URLs.

Such a page's blocks run as a reader's would, against a real server: moto's
``ThreadedMotoServer`` on loopback, started once per session when the first such page
runs. Before each page the server is reset and every bucket the page names
(``s3://<bucket>/...``) is created empty; the blocks get the standard AWS variables
(``AWS_ENDPOINT_URL``, ``AWS_ALLOW_HTTP``, credentials) in their environment, as a
reader's shell would hold them. Pages without ``s3://`` get nothing of this.
"""

from __future__ import annotations

import re
import socket
import urllib.request
from collections.abc import Callable, Iterator

import pytest

#: A bucket named in an example (S3's naming rule: 3-63 lower-case letters, digits, dots, hyphens).
BUCKET = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?=[/\"'\s]|$)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def _docs_s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer  # moto[server] is in the test extra

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_for_page(request: pytest.FixtureRequest) -> Callable[[str], dict[str, str]]:
    """``env_for(code)``: for code naming s3:// buckets, the AWS variables of a fresh server holding them; else {}."""

    def env_for(code: str) -> dict[str, str]:
        buckets = sorted(set(BUCKET.findall(code)))
        if not buckets:
            return {}
        import boto3

        endpoint: str = request.getfixturevalue("_docs_s3_server")
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(reset, timeout=30):  # the loopback test server
            pass
        env = {
            "AWS_ACCESS_KEY_ID": "arraystore-docs-key",
            "AWS_SECRET_ACCESS_KEY": "arraystore-docs-secret",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ALLOW_HTTP": "true",
        }
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])
        for name in buckets:
            s3.create_bucket(Bucket=name)
        return env

    return env_for
