"""``migrate(SRC, "s3://bucket/prefix")``: the same outcomes as a local migration, manifest under the prefix,
formats that cannot live in a bucket refused up-front, and a killed migration resumed by a rerun."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

import arraystore
from arraystore.errors import ArrayNotFoundError, BackendError, MetadataError
from arraystore.migration._remote import RECORDS_PREFIX

from .conftest import env_for_subprocess

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("arraystore")


def _keys(bucket: str, prefix: str = "") -> list[str]:
    s3 = boto3.client("s3")
    name = bucket.removeprefix("s3://")
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name, Prefix=prefix):
        out.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(out)


def _get(bucket: str, key: str) -> bytes:
    body: bytes = boto3.client("s3").get_object(Bucket=bucket.removeprefix("s3://"), Key=key)["Body"].read()
    return body


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A copy of the example legacy archive (resolved, undetermined and failing files)."""
    shutil.copytree(REPO / "examples" / "legacy", tmp_path / "legacy")
    return tmp_path / "legacy"


def _outcomes(report: Any) -> dict[str, tuple[Any, ...]]:
    return {r.source: (r.status, r.destination, (r.source_checksum or {}).get("value"), r.verified,
                       (r.error or {}).get("type")) for r in report.records}


def test_same_outcomes_as_a_local_migration(archive: Path, bucket: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a URL taken for a local path would show as a folder 's3:' here
    url = f"{bucket}/archive"
    local = arraystore.migrate(archive, tmp_path / "local", to="zarr", workers=1)
    remote = arraystore.migrate(archive, url, to="zarr", workers=1, compression="zstd:1")
    assert remote.dst == url and remote.counts == local.counts
    assert remote.counts["converted"] > 10 and remote.counts["undetermined"] and remote.counts["failed"]
    assert _outcomes(remote) == _outcomes(local)
    for rec in remote.by_status("converted"):
        with arraystore.open(f"{url}/{rec.destination}") as got, \
                arraystore.open(tmp_path / "local" / str(rec.destination)) as want:
            assert (got.shape, got.dtype, got.order, dict(got.attrs)) == (want.shape, want.dtype, want.order,
                                                                          dict(want.attrs))
            assert got[...].tobytes() == want[...].tobytes()
            assert got.recorded_checksum == want.recorded_checksum == rec.source_checksum
    assert not (tmp_path / "s3:").exists()
    keys = _keys(bucket, "archive/")
    assert not [k for k in keys if k.startswith(f"archive/{RECORDS_PREFIX}")]  # folded into the manifest
    assert not [k for k in keys if "/.arraystore/" in k]  # no journal, no lease left
    lines = [json.loads(line) for line in _get(bucket, "archive/migration.jsonl").splitlines()]
    assert {d["source"]: d["status"] for d in lines} == {r.source: r.status for r in remote.records}
    saved = json.loads(_get(bucket, "archive/migration-report.json"))
    assert saved["counts"] == remote.counts and saved["dst"] == url
    assert _get(bucket, "archive/migration-summary.txt").decode().strip() == remote.summary()
    assert remote.suggested_rules == f"{url}/rules-suggested.toml"
    assert b"mystery/unknown.bin" in _get(bucket, "archive/rules-suggested.toml")

    again = arraystore.migrate(archive, url, to="zarr", workers=1, compression="zstd:1")
    assert again.counts["converted"] == 0 and again.counts["skipped"] == remote.counts["converted"]


def test_rules_resolve_undetermined_files_on_a_rerun(archive: Path, bucket: str) -> None:
    url = f"{bucket}/a"
    first = arraystore.migrate(archive, url, workers=1)
    assert "instrument_b/sweep.bin" in {r.source for r in first.by_status("undetermined")}
    second = arraystore.migrate(archive, url, workers=1, rules=REPO / "examples" / "rules.toml")
    assert second.counts["converted"] == 1 and second.counts["skipped"] == first.counts["converted"]
    with arraystore.open(f"{url}/instrument_b/sweep.zarr") as s:
        assert s.dtype == np.dtype(">i2") and s.shape[1] == 128


@pytest.mark.parametrize(("to", "virtual"), [("raw", False), ("npy", False), ("hdf5", False), ("zarr", True)])
def test_targets_a_bucket_cannot_hold_are_refused_up_front(archive: Path, bucket: str, to: str,
                                                           virtual: bool) -> None:
    with pytest.raises(BackendError, match="zarr" if not virtual else "local destination") as info:
        arraystore.migrate(archive, f"{bucket}/out", to=to, virtual=virtual)
    if not virtual:
        assert f"to={to!r}" in str(info.value) and "upload" in str(info.value)
    assert _keys(bucket) == []  # nothing written


def test_one_group_into_a_bucket_is_refused_up_front(archive: Path, bucket: str) -> None:
    with pytest.raises(BackendError, match=r"into='archive\.zarr'.*local"):
        arraystore.migrate(archive, f"{bucket}/out", to="zarr", into="archive.zarr")
    assert _keys(bucket) == []


def test_a_key_inside_the_prefix_is_refused(archive: Path, bucket: str) -> None:
    with pytest.raises(MetadataError, match="prefix"):
        arraystore.migrate(archive, f"{bucket}/out.zarr::/grp")


def test_command_line(archive: Path, bucket: str, s3_env: dict[str, str]) -> None:
    env = env_for_subprocess(s3_env)
    done = subprocess.run([str(SCRIPT), "migrate", str(archive), f"{bucket}/cli", "--to", "zarr", "--workers", "1",
                           "--json"], capture_output=True, text=True, env=env, timeout=200, check=False)
    assert done.returncode == 4, done.stderr  # the example archive has a truncated file
    report = json.loads(done.stdout)
    assert report["dst"] == f"{bucket}/cli" and report["counts"]["converted"] > 10
    assert "cli/migration.jsonl" in _keys(bucket, "cli/")
    refused = subprocess.run([str(SCRIPT), "migrate", str(archive), f"{bucket}/raw", "--to", "raw"],
                             capture_output=True, text=True, env=env, timeout=200, check=False)
    assert refused.returncode == 1 and "with --to 'zarr'" in refused.stderr.replace("\n", " ")
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in refused.stderr + done.stdout + done.stderr
    assert _keys(bucket, "raw/") == []


KILLED = """
import sys, time, arraystore
def progress(event):
    if event.done_files >= 4 and event.record.status == "converted":
        print("midway", flush=True)
        time.sleep(600)
arraystore.migrate(sys.argv[1], sys.argv[2], to="zarr", workers=1, progress=progress, max_memory="64KiB")
"""


def test_sigkill_mid_migration_then_rerun_converts_only_what_is_missing(tmp_path: Path, bucket: str,
                                                                      s3_env: dict[str, str]) -> None:
    src = tmp_path / "archive"
    src.mkdir()
    data = {f"run{i:02d}_32x64_float64.dat": np.random.default_rng(i).standard_normal((32, 64)) for i in range(10)}
    for name, a in data.items():
        a.astype("<f8").tofile(src / name)
    url = f"{bucket}/out"
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(src), url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env_for_subprocess(s3_env))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "midway", proc.stderr
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    records = _keys(bucket, f"out/{RECORDS_PREFIX}")
    assert len(records) >= 4 and "out/migration.jsonl" not in _keys(bucket)
    done_before = {json.loads(_get(bucket, k))["source"] for k in records}
    missing = [n for n in data if n not in done_before]
    assert missing
    for name in missing:  # never complete-looking before its commit
        with pytest.raises(ArrayNotFoundError):
            arraystore.open(f"{url}/{name.removesuffix('.dat')}.zarr")

    report = arraystore.migrate(src, url, to="zarr", workers=1, max_memory="64KiB")
    assert {r.source for r in report.by_status("skipped")} == done_before
    assert {r.source for r in report.by_status("converted")} == set(missing)
    assert report.counts["failed"] == report.counts["undetermined"] == 0
    for name, a in data.items():
        with arraystore.open(f"{url}/{name.removesuffix('.dat')}.zarr") as s:
            assert s[...].tobytes() == a.astype("<f8").tobytes()
    assert _keys(bucket, f"out/{RECORDS_PREFIX}") == []


def test_storage_options_reach_the_worker_processes_and_no_file_or_object(tmp_path: Path, bucket: str,
                                                                          s3_env: dict[str, str],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment points at a dead endpoint; only ``storage_options=`` name the server, in every worker."""
    from datetime import timedelta

    src = tmp_path / "archive"
    (src / "sub dir").mkdir(parents=True)
    names = ["a_16x8_float32.dat", "sub dir/b ü_16x8_float32.dat", "c_16x8_float32.dat"]
    for i, name in enumerate(names):
        np.full((16, 8), i, "<f4").tofile(src / name)
    hidden = "sEcReT-migrate-7a6b5c"
    # Complete in itself: the pool's processes fork from a forkserver that may predate this test's environment.
    options = {"endpoint": s3_env["AWS_ENDPOINT_URL"], "access_key_id": s3_env["AWS_ACCESS_KEY_ID"], "region": "us-east-1",
               "secret_access_key": hidden,
               "client_options": {"allow_http": True, "connect_timeout": timedelta(seconds=2)},
               "retry_config": {"max_retries": 1, "retry_timeout": timedelta(seconds=3)}}
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    report = arraystore.migrate(src, f"{bucket}/so", to="zarr", workers=2, storage_options=options)
    assert report.counts["converted"] == 3, report.summary()
    with arraystore.open(f"{bucket}/so/sub dir/b ü_16x8_float32.zarr", storage_options=options) as s:
        assert s[...].tolist() == np.full((16, 8), 1, "<f4").tolist()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env["AWS_ENDPOINT_URL"])
    for key in _keys(bucket, "so/"):
        assert hidden.encode() not in _get(bucket, key)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and hidden.encode() in p.read_bytes()]


def test_a_file_whose_name_is_url_syntax_fails_alone_and_writes_nothing_elsewhere(bucket: str, tmp_path: Path) -> None:
    """``a#1.dat`` was reported converted to ``a#1.zarr`` but written at ``a`` (the store reads ``#1.zarr`` as a
    fragment), ``a#2.dat`` then failed against it, ``q?x.dat`` went to ``q`` and ``b%20c.dat`` to ``b c.zarr``.
    Each now fails alone with a BackendError naming the part of its name a URL cannot hold."""
    src = tmp_path / "names"
    src.mkdir()
    for i, name in enumerate(["a#1.dat", "a#2.dat", "b%20c.dat", "q?x.dat", "ok.dat"]):
        with arraystore.create(src / name, (4,), "<f4") as s:
            s[...] = i + 1
    report = arraystore.migrate(src, f"{bucket}/dst", to="zarr", workers=1)
    outcomes = {r.source: (r.status, (r.error or {}).get("type")) for r in report.records}
    assert outcomes == {"a#1.dat": ("failed", "BackendError"), "a#2.dat": ("failed", "BackendError"),
                        "b%20c.dat": ("failed", "BackendError"), "q?x.dat": ("failed", "BackendError"),
                        "ok.dat": ("converted", None)}
    arrays = {k.split("/")[1] for k in _keys(bucket, "dst/") if not k.startswith("dst/migration")}
    assert arrays <= {"ok.zarr", RECORDS_PREFIX.strip("/").split("/")[0]}
    with arraystore.open(f"{bucket}/dst/ok.zarr") as s:
        assert s[...].tolist() == [5.0] * 4
