"""Raw (with sidecar) and .npy files in a bucket: read-only, header and byte ranges only."""

from __future__ import annotations

import logging
from pathlib import Path

import boto3
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import basic_indices

import arraystore
from arraystore.errors import ModeError, NotMemoryMappableError, SizeMismatchError

from .conftest import needs_moto


def _upload(bucket: str, local: Path, key: str) -> str:
    boto3.client("s3").put_object(Bucket=bucket.removeprefix("s3://"), Key=key, Body=local.read_bytes())
    return f"{bucket}/{key}"


@pytest.fixture
def files(bucket: str, tmp_path: Path) -> dict[str, tuple[str, np.ndarray]]:
    c = np.arange(40 * 30, dtype=">f8").reshape(40, 30) / 3
    f = np.asfortranarray(np.arange(12 * 7 * 5, dtype="<i2").reshape(12, 7, 5))
    np.save(tmp_path / "c.npy", c)
    np.save(tmp_path / "f.npy", f)
    with arraystore.create(tmp_path / "r.dat", c.shape, c.dtype, attrs={"unit": "K"}) as s:
        s[:] = c
    out = {
        "npy-c": (_upload(bucket, tmp_path / "c.npy", "d/c.npy"), c),
        "npy-f": (_upload(bucket, tmp_path / "f.npy", "d/f.npy"), f),
        "raw": (_upload(bucket, tmp_path / "r.dat", "d/r d.dat"), c),
    }
    _upload(bucket, tmp_path / "r.dat.json", "d/r d.dat.json")
    return out


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=20)
@given(data=st.data())
def test_reads_match_numpy(files: dict[str, tuple[str, np.ndarray]], data: st.DataObject) -> None:
    for url, expected in files.values():
        idx = data.draw(basic_indices(expected.shape, allow_newaxis=False, allow_ellipsis=True))
        with arraystore.open(url) as s:
            got = s[idx]
        want = expected[idx]
        assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()


def test_metadata_and_read_only(files: dict[str, tuple[str, np.ndarray]]) -> None:
    url, a = files["raw"]
    with arraystore.open(url) as s:
        assert (s.backend, s.shape, s.dtype, dict(s.attrs)) == ("raw", a.shape, a.dtype, {"unit": "K"})
        with pytest.raises(NotMemoryMappableError, match="object store"):
            s.as_memmap()
    url, a = files["npy-f"]
    with arraystore.open(url) as s:
        assert (s.backend, s.order) == ("npy", "F")
    with pytest.raises(ModeError, match="read-only"):
        arraystore.open(url, "r+")


@needs_moto  # counts requests in moto's log
def test_one_row_of_a_large_file_fetches_one_small_range(bucket: str, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    big = np.random.default_rng(1).standard_normal((2048, 512))  # 8 MiB
    np.save(tmp_path / "big.npy", big)
    url = _upload(bucket, tmp_path / "big.npy", "big.npy")
    caplog.set_level(logging.INFO, logger="werkzeug")
    with arraystore.open(url) as s:
        row = s[1000]
        assert row.tobytes() == big[1000].tobytes()
        assert s.bytes_fetched == 512 * 8  # the row's bytes, nothing else
    gets = [r.getMessage() for r in caplog.records if "GET /" in r.getMessage() and "big.npy" in r.getMessage()]
    assert len([g for g in gets if '" 412 ' in g]) == 1, gets  # the If-Match check (once per bucket and process)
    assert len(gets) == 3, gets  # the header, the check, then the row: never the 8 MiB object


def test_truncated_object_is_a_size_mismatch(bucket: str, tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.arange(100, dtype="<f8"))
    data = (tmp_path / "t.npy").read_bytes()[:-8]
    (tmp_path / "t.npy").write_bytes(data)
    url = _upload(bucket, tmp_path / "t.npy", "t.npy")
    with pytest.raises(SizeMismatchError):
        arraystore.open(url)


def test_convert_from_a_bucket_npy_to_local_zarr(files: dict[str, tuple[str, np.ndarray]], tmp_path: Path) -> None:
    url, a = files["npy-c"]
    arraystore.convert(url, tmp_path / "x.zarr", verify=True)
    assert arraystore.open(tmp_path / "x.zarr")[:].tobytes() == a.tobytes()
