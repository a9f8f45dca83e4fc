"""Credentials absent or wrong: a typed error that says what to do, and never the secret (API and CLI).

The server checks signatures here: moto's IAM authentication is switched on for these
tests (``/moto-api/reset-auth``) with a user whose access key may do everything.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import boto3
import numpy as np
import pytest

import arraystore
from arraystore.errors import ObjectStoreAccessError

from .conftest import needs_moto

pytestmark = [pytest.mark.timeout(120), needs_moto]

SCRIPT = Path(sys.executable).with_name("arraystore")
WRONG = "wrong-secret-value-Qx7Pz0Lk"
#: Fail fast where the client would look for credentials on the network (instance metadata).
FAST = {"retry_config": {"max_retries": 1, "retry_timeout": timedelta(seconds=3)},
        "client_options": {"connect_timeout": timedelta(seconds=2), "timeout": timedelta(seconds=5)}}


@pytest.fixture
def iam(s3_env: dict[str, str], bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, str]]:
    """(bucket, access key id, secret) of an IAM user, with the server checking every request's signature."""
    endpoint = s3_env["AWS_ENDPOINT_URL"]
    client = boto3.client("iam", region_name="us-east-1", endpoint_url=endpoint)
    user = "u" + uuid.uuid4().hex[:10]
    client.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    client.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=json.dumps(policy))
    key = client.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    with arraystore.create(f"{bucket}/ok.zarr", (4,), "<i4") as w:  # written before auth: a target to read
        w[:] = [1, 2, 3, 4]
    np.save(tmp_path / "a.npy", np.arange(10, dtype="<f8"))
    previous = _reset_auth(endpoint, b"0")["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]
    try:
        yield bucket, key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        _reset_auth(endpoint, str(previous).encode())


def _reset_auth(endpoint: str, count: bytes) -> dict:
    """Tell moto to check signatures after ``count`` more requests (``inf``: never); its previous setting."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=count, method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return dict(json.loads(answer.read()))


def _calls(bucket: str, tmp_path: Path, options: dict | None) -> list[Callable[[], object]]:
    return [
        lambda: arraystore.open(f"{bucket}/ok.zarr", storage_options=options),
        lambda: arraystore.create(f"{bucket}/new.zarr", (3,), "<i4", storage_options=options),
        lambda: arraystore.convert(tmp_path / "a.npy", f"{bucket}/c.zarr", storage_options=options),
        lambda: arraystore.convert(f"{bucket}/ok.zarr", tmp_path / "back.npy", storage_options=options),
    ]


def _check(call: Callable[[], object], secrets: list[str], says: str) -> None:
    with pytest.raises(ObjectStoreAccessError) as info:
        call()
    assert isinstance(info.value, PermissionError)
    text = str(info.value) + repr(info.value) + "".join(map(str, info.value.args))
    assert says in text and "AWS_SECRET_ACCESS_KEY" in text  # what to set
    for secret in secrets:
        assert secret not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_the_right_key_works(iam: tuple[str, str, str], tmp_path: Path) -> None:
    bucket = iam[0]
    assert arraystore.open(f"{bucket}/ok.zarr")[:].tolist() == [1, 2, 3, 4]  # the server accepts a valid signature


def test_a_wrong_secret_is_a_typed_error_without_the_secret(
    iam: tuple[str, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bucket, _, right = iam
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", WRONG)
    for call in _calls(bucket, tmp_path, None):
        _check(call, [WRONG, right], "refused the credentials")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", right)
    hidden = "another-wrong-secret-9dK2"
    for call in _calls(bucket, tmp_path, {"secret_access_key": hidden}):
        _check(call, [hidden, right], "refused the credentials")
    assert WRONG not in caplog.text and hidden not in caplog.text and right not in caplog.text
    assert not list(tmp_path.glob("back*"))  # nothing left half-written


def test_an_unknown_key_is_a_typed_error(iam: tuple[str, str, str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bucket, _, right = iam
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY0000000")
    for call in _calls(bucket, tmp_path, None)[:2]:
        _check(call, [right], "refused the credentials")


def test_no_credentials_is_a_typed_error_saying_what_to_set(
    iam: tuple[str, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket, _, right = iam
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    for call in _calls(bucket, tmp_path, FAST):
        with pytest.raises(ObjectStoreAccessError) as info:
            call()
        text = str(info.value)
        assert "found no credentials" in text and "AWS_ACCESS_KEY_ID" in text and "skip_signature" in text, text
        assert right not in text


def test_the_cli_says_what_to_do_and_never_prints_the_secret(
    iam: tuple[str, str, str], tmp_path: Path, s3_env: dict[str, str]
) -> None:
    bucket, key_id, right = iam
    import os

    env = {**os.environ, **s3_env, "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": WRONG}
    for args in (["convert", str(tmp_path / "a.npy"), f"{bucket}/cli.zarr"],
                 ["convert", f"{bucket}/ok.zarr", str(tmp_path / "cli.npy")],
                 ["info", f"{bucket}/ok.zarr"]):
        done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=90, check=False)
        assert done.returncode != 0, done.stdout
        assert "refused the credentials" in done.stderr and "AWS_SECRET_ACCESS_KEY" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        for text in (done.stdout, done.stderr):
            assert WRONG not in text and right not in text
    assert not (tmp_path / "cli.npy").exists()


@pytest.mark.parametrize("options", [None, {"unsigned_payload": False}], ids=["unsigned", "signed"])
def test_payloads_signed_or_not_pass_the_servers_signature_check(iam: tuple[str, str, str], tmp_path: Path,
                                                                 options: dict | None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = iam[0]
    a = np.random.default_rng(3).standard_normal((64, 32))
    np.save(tmp_path / "p.npy", a)
    arraystore.convert(tmp_path / "p.npy", f"{bucket}/p.zarr", chunks=(8, 32), storage_options=options)
    arraystore.convert(f"{bucket}/p.zarr", tmp_path / "back.npy", storage_options=options)
    assert np.load(tmp_path / "back.npy").tobytes() == a.tobytes()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", WRONG)  # the headers are signed either way
    _check(lambda: arraystore.convert(tmp_path / "p.npy", f"{bucket}/q.zarr", storage_options=options),
           [WRONG, iam[2]], "refused the credentials")
