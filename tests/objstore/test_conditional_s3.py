"""A store that ignores conditional requests is refused with a typed error, never trusted silently.

The one-writer lease rests on ``If-None-Match: *`` and ``If-Match`` on PUT, the ranged readers
on ``If-Match`` on GET. moto honours them; s3rver accepts them and ignores them. Each is
checked once per bucket and process, before the lease is touched or a byte is read.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest

import arraystore
from arraystore.errors import ObjectStoreUnsupportedError
from arraystore.objstore import ASSUME_CONDITIONAL_ENV

from .conftest import SERVER, env_for_subprocess

pytestmark = pytest.mark.timeout(120)

on_s3rver = pytest.mark.skipif(SERVER != "s3rver", reason="needs a server that ignores conditional requests "
                               "(ARRAYSTORE_S3_SERVER=s3rver)")


def _objects(bucket: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    name = bucket.removeprefix("s3://")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=name).get("Contents", [])]
    return {k: s3.get_object(Bucket=name, Key=k)["Body"].read() for k in keys}


def test_the_checks_leave_no_object_behind(bucket: str, tmp_path: Path) -> None:
    with arraystore.create(f"{bucket}/a.zarr", (4,), "<i4") as w:
        w[:] = [1, 2, 3, 4]
    np.save(tmp_path / "b.npy", np.arange(5))
    boto3.client("s3").upload_file(str(tmp_path / "b.npy"), bucket.removeprefix("s3://"), "b.npy")
    assert arraystore.open(f"{bucket}/b.npy")[:].tolist() == [0, 1, 2, 3, 4]
    assert not [k for k in _objects(bucket) if "probe" in k or "lease" in k]


def test_a_client_without_conditional_puts_is_refused_before_the_lease(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ASSUME_CONDITIONAL_ENV, raising=False)
    with pytest.raises(ObjectStoreUnsupportedError, match="conditional_put") as info:
        arraystore.create(f"{bucket}/a.zarr", (4,), "<i4", storage_options={"conditional_put": "disabled"})
    assert isinstance(info.value, OSError) and "lease" in str(info.value)
    assert _objects(bucket) == {}


@on_s3rver
def test_a_server_ignoring_conditional_puts_is_refused_and_a_held_lease_untouched(
    bucket: str, monkeypatch: pytest.MonkeyPatch, s3_env: dict[str, str], tmp_path: Path
) -> None:
    monkeypatch.delenv(ASSUME_CONDITIONAL_ENV)
    held = b'{"owner": "another writer", "host": "elsewhere", "pid": 1, "expires": 4102444800}'
    boto3.client("s3").put_object(Bucket=bucket.removeprefix("s3://"), Key="a.zarr/.arraystore/lease", Body=held)
    for _ in range(2):  # refused every time: a refusal is never remembered as trust
        with pytest.raises(ObjectStoreUnsupportedError, match="If-None-Match"):
            arraystore.create(f"{bucket}/a.zarr", (4,), "<i4", overwrite=True)
    assert _objects(bucket) == {"a.zarr/.arraystore/lease": held}  # no probe left, the other's lease as it was
    np.save(tmp_path / "a.npy", np.arange(4))
    env = {k: v for k, v in env_for_subprocess(s3_env).items() if k != ASSUME_CONDITIONAL_ENV}
    done = subprocess.run([str(Path(sys.executable).with_name("arraystore")), "convert", str(tmp_path / "a.npy"),
                           f"{bucket}/c.zarr"], capture_output=True, text=True, env=env, timeout=90, check=False)
    assert done.returncode != 0 and "ObjectStoreUnsupportedError" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@on_s3rver
def test_a_server_ignoring_if_match_on_get_is_refused_for_ranged_reads(
    bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ASSUME_CONDITIONAL_ENV)
    np.save(tmp_path / "a.npy", np.arange(4))
    boto3.client("s3").upload_file(str(tmp_path / "a.npy"), bucket.removeprefix("s3://"), "a.npy")
    with pytest.raises(ObjectStoreUnsupportedError, match="If-Match on a GET"):
        arraystore.open(f"{bucket}/a.npy")
