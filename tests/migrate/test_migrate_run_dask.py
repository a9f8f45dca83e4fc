"""``migrate(scheduler=...)`` on a Dask ``LocalCluster`` (2 single-threaded worker processes)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.meta import dtype_from_json
from arraystore.migration import migrate

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed (arraystore[dask])"
)

REPO = Path(__file__).resolve().parents[2]


def _check(src: Path, dst: Path, report) -> None:
    for rec in report.by_status("converted"):
        r = rec.resolution
        expected = np.memmap(
            src / rec.source, dtype_from_json(r["dtype"]), "r", r["offset"], tuple(r["shape"]), r["order"]
        )
        with arraystore.open(dst / rec.destination, "r") as store:
            np.testing.assert_array_equal(store[...], expected)


def test_local_cluster(tmp_path: Path) -> None:
    src = tmp_path / "legacy"
    shutil.copytree(REPO / "examples" / "legacy", src)
    dst = tmp_path / "out"
    report = migrate(src, dst, to="npy", rules=REPO / "examples" / "rules.toml", scheduler="local", workers=2)
    assert report.scheduler == "local"
    assert report.counts == {"converted": 20, "skipped": 0, "undetermined": 1, "failed": 1}
    assert all(r.verified for r in report.by_status("converted"))
    _check(src, dst, report)
    again = migrate(src, dst, to="npy", rules=REPO / "examples" / "rules.toml", workers=1)
    assert again.counts["skipped"] == 20  # the manifest written from the cluster's results drives the rerun


def test_existing_client(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        np.arange(100 * (i + 1), dtype="<f8").tofile(src / f"run{i}_float64.dat")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        report = migrate(src, tmp_path / "out", to="raw", scheduler=client)
    assert report.counts == {"converted": 4, "skipped": 0, "undetermined": 0, "failed": 0}
    assert report.scheduler == cluster.scheduler_address
    _check(src, tmp_path / "out", report)
