"""Conversions from a bucket: chunks fetched in rounds of concurrent requests, the generation checked per round."""

from __future__ import annotations

import logging
from pathlib import Path

import boto3
import numpy as np
import pytest

import arraystore
from arraystore.errors import ArrayChangedError

from .conftest import needs_moto

pytestmark = pytest.mark.timeout(120)


def _gets_and_heads(caplog: pytest.LogCaptureFixture, name: str) -> tuple[int, int]:
    lines = [r.getMessage() for r in caplog.records if name in r.getMessage()]
    return (sum("GET /" in x and "/c/" in x for x in lines),
            sum("HEAD /" in x and f"{name}zarr.json " in x for x in lines))


@needs_moto  # counts requests in moto's log
def test_a_download_checks_the_generation_once_per_round(bucket: str, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    a = np.random.default_rng(0).standard_normal((512, 256))  # 1 MiB in 32 chunks of 32 KiB
    np.save(tmp_path / "a.npy", a)
    arraystore.convert(tmp_path / "a.npy", f"{bucket}/a.zarr", chunks=(16, 256))
    caplog.set_level(logging.INFO, logger="werkzeug")
    report = arraystore.convert(f"{bucket}/a.zarr", tmp_path / "back.npy", max_memory="256KiB")
    assert np.load(tmp_path / "back.npy").tobytes() == a.tobytes()
    gets, heads = _gets_and_heads(caplog, "/a.zarr/")
    assert gets == 32  # every chunk once
    assert report.blocks_total >= 8
    checks = heads - 8  # the opens of the source and of the staged destination make 8
    assert report.blocks_total <= checks <= gets, (checks, report.blocks_total)  # per round: >= 1 per block


def test_an_array_replaced_during_a_download_is_never_a_mixture(bucket: str, tmp_path: Path) -> None:
    a = np.arange(512 * 256, dtype="<f8").reshape(512, 256)
    np.save(tmp_path / "a.npy", a)
    url = f"{bucket}/r.zarr"
    arraystore.convert(tmp_path / "a.npy", url, chunks=(16, 256))
    replaced = []

    def replace_once(done: int, total: int) -> None:
        if not replaced and done < total:
            with arraystore.create(url, a.shape, a.dtype, chunks=(16, 256), overwrite=True) as w:
                w[:] = a + 1
            replaced.append(True)

    with pytest.raises(ArrayChangedError, match="replaced"):
        arraystore.convert(url, tmp_path / "back.npy", max_memory="256KiB", progress=replace_once)
    assert replaced and not (tmp_path / "back.npy").exists()  # nothing published
    arraystore.convert(url, tmp_path / "back.npy")
    assert np.load(tmp_path / "back.npy").tobytes() == (a + 1).tobytes()


@needs_moto  # counts requests in moto's log
def test_overwrite_deletes_the_old_objects_in_bulk(bucket: str, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    a = np.arange(64 * 8, dtype="<i4").reshape(64, 8)
    url = f"{bucket}/o.zarr"
    with arraystore.create(url, a.shape, a.dtype, chunks=(1, 8)) as w:
        w[:] = a
    caplog.set_level(logging.INFO, logger="werkzeug")
    with arraystore.create(url, (3,), "<u1", overwrite=True) as w:
        w[:] = [7, 8, 9]
    name = bucket.removeprefix("s3://")
    deletes = [r.getMessage() for r in caplog.records if f"POST /{name}?delete" in r.getMessage()]
    # zarr.json first, then the 64 chunks in one DeleteObjects request (not one each), the two writers' leases,
    # and the conditional-put check's probe object (once per bucket and process)
    assert len(deletes) == 5
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=name)["Contents"]]
    assert sorted(k for k in keys if k.startswith("o.zarr/c/")) == ["o.zarr/c/0"]
    assert arraystore.open(url)[:].tolist() == [7, 8, 9]


def test_a_server_stopped_mid_download_is_a_typed_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from datetime import timedelta

    from arraystore.errors import ObjectStoreError

    from .conftest import SECRET, LoopbackS3, aws_env

    server = LoopbackS3()
    endpoint = server.start()
    for name, value in aws_env(endpoint).items():
        monkeypatch.setenv(name, value)
    running = [True]
    fast = {"retry_config": {"max_retries": 1, "retry_timeout": timedelta(seconds=3)},
            "client_options": {"connect_timeout": timedelta(seconds=2)}}
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="down")
        a = np.arange(512 * 256, dtype="<f8").reshape(512, 256)
        np.save(tmp_path / "a.npy", a)
        arraystore.convert(tmp_path / "a.npy", "s3://down/a.zarr", chunks=(16, 256))

        def stop_midway(done: int, total: int) -> None:
            if running[0] and done >= total // 4:
                server.stop()
                running[0] = False

        with pytest.raises(ObjectStoreError) as info:
            arraystore.convert("s3://down/a.zarr", tmp_path / "back.npy", max_memory="256KiB", progress=stop_midway,
                               storage_options=fast)
        assert "s3://down/a.zarr" in str(info.value) and SECRET not in str(info.value)
        assert not (tmp_path / "back.npy").exists()
    finally:
        server.remove()
