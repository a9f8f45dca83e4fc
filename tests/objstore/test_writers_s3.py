"""One writer on object storage (a lease object), and interruptions: SIGKILL mid-upload, then resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import numpy as np
import pytest

import arraystore
from arraystore.errors import ArrayNotFoundError, LockedError

from .conftest import env_for_subprocess, needs_conditional_requests

pytestmark = pytest.mark.timeout(180)

HOLDER = """
import sys, arraystore
s = arraystore.create(sys.argv[1], (8,), "<i8", overwrite=True)
s[:] = 1
print("holding", flush=True)
sys.stdin.readline()
s.close()
print("closed", flush=True)
"""


def _start(code: str, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


@needs_conditional_requests
def test_a_second_writer_in_another_process_gets_locked_error(bucket: str, s3_env: dict[str, str]) -> None:
    url = f"{bucket}/x.zarr"
    proc = _start(HOLDER, url, env=env_for_subprocess(s3_env))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding", proc.stderr
        with pytest.raises(LockedError, match="lease"):
            arraystore.create(url, (8,), "<i8", overwrite=True)
        with pytest.raises(ArrayNotFoundError, match="being created"):
            arraystore.open(url)
        out, err = proc.communicate("\n", timeout=60)
        assert "closed" in out, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with arraystore.open(url, "r+") as s:  # the lease was released at close
        assert s[:].tolist() == [1] * 8
        s[0] = 2


@needs_conditional_requests
def test_two_handles_in_one_process(bucket: str) -> None:
    url = f"{bucket}/x.zarr"
    with arraystore.create(url, (4,), "<i8") as w:
        w[:] = 0
    first = arraystore.open(url, "r+")
    try:
        with pytest.raises(LockedError):
            arraystore.open(url, "r+")
    finally:
        first.close()
    arraystore.open(url, "r+").close()


def _put_lease(bucket: str, body: dict[str, object]) -> None:
    boto3.client("s3").put_object(Bucket=bucket.removeprefix("s3://"), Key="x.zarr/.arraystore/lease",
                                  Body=json.dumps(body).encode())


@needs_conditional_requests
def test_an_expired_lease_is_taken_over(bucket: str) -> None:
    _put_lease(bucket, {"owner": "dead", "host": "elsewhere", "pid": 1, "expires": time.time() - 5})
    with arraystore.create(f"{bucket}/x.zarr", (2,), "<i8") as w:
        w[:] = 3
    assert arraystore.open(f"{bucket}/x.zarr")[:].tolist() == [3, 3]


@needs_conditional_requests
def test_a_live_lease_of_another_host_is_respected(bucket: str) -> None:
    _put_lease(bucket, {"owner": "other", "host": "elsewhere", "pid": 1, "expires": time.time() + 600})
    with pytest.raises(LockedError, match="elsewhere"):
        arraystore.create(f"{bucket}/x.zarr", (2,), "<i8")


KILLED = """
import os, sys, time, arraystore
def progress(done, total):
    if done >= total // 3:
        print("midway", flush=True)
        time.sleep(600)
shards = eval(sys.argv[3])
arraystore.convert(sys.argv[1], sys.argv[2], chunks=(16, 64), shards=shards, max_memory="64KiB", progress=progress)
"""


@pytest.mark.parametrize("shards", [None, (32, 64)], ids=["chunks", "shards"])
def test_sigkill_mid_upload_then_resume(bucket: str, s3_env: dict[str, str], tmp_path: Path,
                                        shards: tuple[int, int] | None) -> None:
    a = np.random.default_rng(7).standard_normal((512, 64))
    np.save(tmp_path / "a.npy", a)
    url = f"{bucket}/k.zarr"
    proc = _start(KILLED, str(tmp_path / "a.npy"), url, repr(shards), env=env_for_subprocess(s3_env))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "midway", proc.stderr
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with pytest.raises(ArrayNotFoundError, match="being created"):  # never complete-looking
        arraystore.open(url)
    report = arraystore.convert(tmp_path / "a.npy", url, chunks=(16, 64), shards=shards, max_memory="64KiB",
                                verify=True)
    assert report.restarted is None  # resumed from the journal under the prefix, not restarted
    assert report.blocks_resumed > 0 and report.blocks_written < report.blocks_total
    with arraystore.open(url) as r:
        assert r[:].tobytes() == a.tobytes()
