"""The cluster path on object storage: Dask workers (a real ``distributed.LocalCluster`` of processes) write
their own chunks into the bucket, the client commits once at the end; killed workers and a killed client
leave a state a rerun completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

import arraystore
from arraystore._open import exists
from arraystore.checksums import StreamHasher
from arraystore.errors import ArrayNotFoundError

from .conftest import aws_env, env_for_subprocess

distributed = pytest.importorskip("distributed", reason="the cluster path needs dask.distributed (the dask extra)")

pytestmark = pytest.mark.timeout(240)

DATA = np.random.default_rng(11).standard_normal((480, 64))
OPTIONS: dict[str, Any] = {"chunks": (16, 64), "max_memory": "64KiB", "compression": "zstd:1"}


@pytest.fixture(scope="module")
def client(s3_server: str) -> Iterator[Any]:
    """Two worker processes, one thread each, started with the test server's AWS variables in their environment."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
            mp.delenv(name, raising=False)
        for name, value in aws_env(s3_server).items():
            mp.setenv(name, value)
        with (
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=":0") as cluster,
            distributed.Client(cluster, set_as_default=False) as c,
        ):
            yield c


def _keys(bucket: str, prefix: str = "") -> list[str]:
    s3 = boto3.client("s3")
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket.removeprefix("s3://"), Prefix=prefix):
        out.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(out)


def _source(tmp_path: Path) -> Path:
    path = tmp_path / "a.npy"
    np.save(path, DATA)
    return path


def _not_there_yet(url: str) -> None:
    assert not exists(url)
    with pytest.raises(ArrayNotFoundError, match="being created"):
        arraystore.open(url)


def test_workers_write_the_chunks_and_the_client_commits_once(tmp_path: Path, bucket: str, client: Any) -> None:
    src = _source(tmp_path)
    url = f"{bucket}/x.zarr"
    local = arraystore.convert(src, tmp_path / "local.zarr", **OPTIONS)
    seen: list[int] = []

    def progress(done: int, total: int) -> None:  # in the client, after each block: nothing published yet
        seen.append(done)
        _not_there_yet(url)

    report = arraystore.convert(src, url, scheduler=client, verify=True, progress=progress, **OPTIONS)
    assert report.plan["scheduler"] == {"address": client.scheduler.address, "writes": "workers"}
    assert report.blocks_total > 4 and report.blocks_written == report.blocks_total and len(seen) >= 4
    assert report.verified and report.checksum == local.checksum == StreamHasher.of(DATA)
    with arraystore.open(url) as got, arraystore.open(tmp_path / "local.zarr") as want:
        assert (got.shape, got.dtype, got.chunks, got.compression) == (want.shape, want.dtype, want.chunks,
                                                                        want.compression)
        assert got[...].tobytes() == DATA.tobytes() and got.recorded_checksum == local.checksum
        assert got.complete
    keys = _keys(bucket)
    assert not [k for k in keys if "/.arraystore/" in k]  # journal and lease gone after the commit
    assert len([k for k in keys if "/c/" in k]) == report.blocks_total  # one object per chunk


def test_workers_replacing_an_array_leave_nothing_of_it(tmp_path: Path, bucket: str, client: Any) -> None:
    src = _source(tmp_path)
    url = f"{bucket}/old.zarr"
    np.save(tmp_path / "ones.npy", np.ones_like(DATA))
    arraystore.convert(tmp_path / "ones.npy", url, **OPTIONS)  # the array replaced: no chunk of it all fill
    report = arraystore.convert(src, url, scheduler=client, overwrite=True, **OPTIONS)
    assert report.plan["scheduler"]["writes"] == "workers"
    assert arraystore.open(url)[...].tobytes() == DATA.tobytes()  # every chunk the workers', none the old one's
    assert len([k for k in _keys(bucket) if "/c/" in k]) == report.blocks_total


def test_a_worker_killed_mid_run(tmp_path: Path, bucket: str, client: Any) -> None:
    src = _source(tmp_path)
    url = f"{bucket}/k.zarr"
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed: list[int] = []

    def progress(done: int, total: int) -> None:
        if not killed:
            os.kill(victim, signal.SIGKILL)  # a worker process dies with its blocks in flight
            killed.append(victim)
        _not_there_yet(url)

    report = arraystore.convert(src, url, scheduler=client, progress=progress, verify=True, **OPTIONS)
    assert killed and report.verified and report.checksum == StreamHasher.of(DATA)
    with arraystore.open(url) as got:
        assert got[...].tobytes() == DATA.tobytes()
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it, for the next test


KILLED = """
import sys, time, arraystore
def progress(done, total):
    if done >= total // 3:
        print("midway", flush=True)
        time.sleep(600)
if __name__ == "__main__":
    arraystore.convert(sys.argv[1], sys.argv[2], scheduler="local", workers=2, progress=progress,
                       chunks=(16, 64), max_memory="64KiB", compression="zstd:1")
"""


def test_the_client_killed_with_its_cluster_then_resumed(tmp_path: Path, bucket: str, client: Any,
                                                         s3_env: dict[str, str]) -> None:
    src = _source(tmp_path)
    url = f"{bucket}/c.zarr"
    script = tmp_path / "job.py"
    script.write_text(KILLED)
    proc = subprocess.Popen([sys.executable, str(script), str(src), url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env_for_subprocess(s3_env),
                            start_new_session=True)  # the client, its scheduler and workers: one process group
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "midway", proc.stderr
        os.killpg(proc.pid, signal.SIGKILL)  # the whole machine gone: client and workers at once
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    journaled = [k for k in _keys(bucket, "c.zarr/.arraystore/journal/") if k.rsplit("/", 1)[-1][0].isdigit()]
    assert journaled  # the finished blocks, recorded under the prefix
    _not_there_yet(url)
    report = arraystore.convert(src, url, scheduler=client, verify=True, **OPTIONS)
    assert report.restarted is None and report.blocks_resumed >= len(journaled)
    assert report.blocks_written == report.blocks_total - report.blocks_resumed > 0
    assert report.checksum == StreamHasher.of(DATA)
    with arraystore.open(url) as got:
        assert got[...].tobytes() == DATA.tobytes()
    assert not [k for k in _keys(bucket) if "/.arraystore/" in k]


def test_migrate_on_the_cluster_into_a_bucket(tmp_path: Path, bucket: str, client: Any) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    data = {f"run{i}_40x64_float64.dat": np.random.default_rng(i).standard_normal((40, 64)) for i in range(4)}
    for name, a in data.items():
        a.astype("<f8").tofile(archive / name)
    (archive / "unknown.bin").write_bytes(b"\0" * 1000)
    url = f"{bucket}/m"
    report = arraystore.migrate(archive, url, to="zarr", scheduler=client, compression="zstd:1")
    assert report.scheduler == client.scheduler.address
    assert report.counts["converted"] == 4 and report.counts["undetermined"] == 1
    for name, a in data.items():
        with arraystore.open(f"{url}/{name.removesuffix('.dat')}.zarr") as s:
            assert s[...].tobytes() == a.astype("<f8").tobytes()
    assert "m/migration.jsonl" in _keys(bucket, "m/") and "m/rules-suggested.toml" in _keys(bucket, "m/")
    again = arraystore.migrate(archive, url, to="zarr", scheduler=client, compression="zstd:1")
    assert again.counts["skipped"] == 4 and again.counts["converted"] == 0


def test_command_line_scheduler_into_a_bucket(tmp_path: Path, bucket: str, client: Any,
                                              s3_env: dict[str, str]) -> None:
    exe = Path(sys.executable).with_name("arraystore")
    archive = tmp_path / "archive"
    archive.mkdir()
    np.arange(32 * 16, dtype="<i2").tofile(archive / "a_32x16_int16.dat")
    src = _source(tmp_path)
    env = env_for_subprocess(s3_env)
    address = client.scheduler.address
    for argv in (["convert", str(src), f"{bucket}/cli.zarr", "--chunks", "16,64", "--max-memory", "64KiB"],
                 ["migrate", str(archive), f"{bucket}/cli-archive", "--to", "zarr"]):
        done = subprocess.run([str(exe), *argv, "--scheduler", address, "--json"], capture_output=True, text=True,
                              env=env, timeout=200, check=False)
        assert done.returncode == 0, done.stderr
    with arraystore.open(f"{bucket}/cli.zarr") as got:
        assert got[...].tobytes() == DATA.tobytes()
    with arraystore.open(f"{bucket}/cli-archive/a_32x16_int16.zarr") as got:
        assert got[...].tolist() == np.arange(32 * 16, dtype="<i2").reshape(32, 16).tolist()
