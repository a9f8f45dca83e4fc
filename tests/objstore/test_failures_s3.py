"""Object-store failures: a server that stops mid-run (typed error, resumable), secrets never shown, bad URLs."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import boto3
import numpy as np
import pytest

import arraystore
from arraystore.errors import ArrayNotFoundError, BackendError, ObjectStoreError

from .conftest import SECRET, LoopbackS3, _free_port, aws_env

pytestmark = pytest.mark.timeout(90)

#: Fail fast when the server is gone (obstore's default retries for 3 minutes).
FAST = {"retry_config": {"max_retries": 1, "retry_timeout": timedelta(seconds=3)},
        "client_options": {"connect_timeout": timedelta(seconds=2)}}


def _files_containing(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_server_stopped_mid_run_is_a_typed_error_and_resumes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = LoopbackS3()
    endpoint = server.start()
    for name, value in aws_env(endpoint).items():
        monkeypatch.setenv(name, value)
    running = True
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="stopping")
        a = np.arange(256 * 64, dtype="<f8").reshape(256, 64)
        np.save(tmp_path / "a.npy", a)

        def stop_midway(done: int, total: int) -> None:
            nonlocal running
            if running and done >= total // 3:
                server.stop()
                running = False

        caplog.set_level(logging.DEBUG)
        with pytest.raises(ObjectStoreError) as info:
            arraystore.convert(tmp_path / "a.npy", "s3://stopping/a.zarr", chunks=(16, 64), max_memory="64KiB",
                               progress=stop_midway, storage_options=FAST)
        assert "s3://stopping/a.zarr" in str(info.value) and "retry" in str(info.value)
        assert SECRET not in str(info.value) and SECRET not in caplog.text
        # The server comes back (on another port: the old one may linger) with what it held: the bucket and
        # what was written before the stop.
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.start())
        running = True
        report = arraystore.convert(tmp_path / "a.npy", "s3://stopping/a.zarr", chunks=(16, 64), max_memory="64KiB",
                                    verify=True, storage_options=FAST)
        assert report.blocks_resumed > 0
        assert arraystore.open("s3://stopping/a.zarr")[:].tobytes() == a.tobytes()
    finally:
        server.remove()
    assert _files_containing(tmp_path, SECRET) == []


def test_secrets_in_storage_options_never_reach_messages_logs_or_files(
    s3_env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hidden = "sEcReT-value-0f9e8d7c6b"
    dead = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    options = {**FAST, "access_key_id": "AKIDHIDDEN12345", "secret_access_key": hidden, "endpoint": dead,
               "allow_http": "true"}
    caplog.set_level(logging.DEBUG)
    np.save(tmp_path / "a.npy", np.arange(10))
    for call in (
        lambda: arraystore.open("s3://bkt/x.zarr", storage_options=options),
        lambda: arraystore.create("s3://bkt/x.zarr", (3,), "<i4", storage_options=options),
        lambda: arraystore.convert(tmp_path / "a.npy", "s3://bkt/x.zarr", storage_options=options),
    ):
        with pytest.raises(ObjectStoreError) as info:
            call()
        text = str(info.value) + repr(info.value) + "".join(map(str, info.value.args))
        assert hidden not in text and "AKIDHIDDEN12345" not in text and SECRET not in text
        assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained client error
    assert hidden not in caplog.text and SECRET not in caplog.text
    assert _files_containing(tmp_path, hidden) == []


def test_storage_options_on_a_local_path_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="local path"):
        arraystore.create(tmp_path / "x.npy", (3,), "<i4", storage_options={"region": "x"})


def test_a_missing_array_and_a_missing_bucket(bucket: str) -> None:
    with pytest.raises(ArrayNotFoundError, match="no Zarr array"):
        arraystore.open(f"{bucket}/nothing.zarr")
    with pytest.raises((ArrayNotFoundError, ObjectStoreError)):
        arraystore.open("s3://no-such-bucket-here/x.zarr")


@pytest.mark.parametrize("name", ["with space/a b.zarr", "ünï/cödé €.zarr", "a+b=c/x%y.zarr"])
def test_keys_with_spaces_and_unicode(bucket: str, name: str) -> None:
    url = f"{bucket}/{name}"
    with arraystore.create(url, (5,), "<u2", attrs={"name": name}) as w:
        w[:] = [1, 2, 3, 4, 5]
    with arraystore.open(url) as r:
        assert r[:].tolist() == [1, 2, 3, 4, 5] and r.attrs["name"] == name
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket.removeprefix("s3://"))["Contents"]]
    assert f"{name}/zarr.json" in keys  # the object names are the ones asked for, not escaped twice
