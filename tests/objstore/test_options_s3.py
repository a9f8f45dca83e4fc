"""Object-store URLs: a keyword argument the backend does not take is a typed error, before anything is written."""

from __future__ import annotations

from pathlib import Path

import boto3
import numpy as np
import pytest

import arraystore
from arraystore.errors import ArrayNotFoundError, OptionError

pytestmark = pytest.mark.timeout(120)


def _keys(bucket: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket.removeprefix("s3://"))
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_creating_a_zarr_array_with_an_unknown_option_writes_nothing(bucket: str) -> None:
    with pytest.raises(OptionError, match=r"'fill_valu'.*shards"):
        arraystore.create(f"{bucket}/a.zarr", (4, 3), "<f4", fill_valu=0)
    with pytest.raises(OptionError, match=r"'fill_valu'"):
        arraystore.open(f"{bucket}/a.zarr", "w", shape=(4, 3), dtype="<f4", fill_valu=0)
    assert _keys(bucket) == []


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
@pytest.mark.parametrize("mode", ["r", "a"])
def test_opening_with_an_unknown_option_names_it(bucket: str, tmp_path: Path, suffix: str, mode: str) -> None:
    a = np.arange(12, dtype="<f4").reshape(4, 3)
    np.save(tmp_path / "a.npy", a)
    url = f"{bucket}/a{suffix}"
    if suffix == ".zarr":
        arraystore.convert(tmp_path / "a.npy", url)
    else:
        boto3.client("s3").upload_file(str(tmp_path / "a.npy"), bucket.removeprefix("s3://"), "a.npy")
    before = _keys(bucket)
    if suffix == ".npy" and mode == "a":
        mode = "r"  # .npy objects are read-only
    with pytest.raises(OptionError, match=r"'alow_incomplete'"):
        arraystore.open(url, mode, alow_incomplete=True)
    assert _keys(bucket) == before
    with arraystore.open(url) as s:
        assert np.array_equal(s[...], a)


def test_a_bucket_that_does_not_exist_is_named(bucket: str, tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(5.0))
    missing = "s3://arraystore-no-such-bucket-7f3a"
    for make in (lambda: arraystore.convert(tmp_path / "a.npy", f"{missing}/a.zarr"),
                 lambda: arraystore.create(f"{missing}/b.zarr", (3,), "<f4")):
        with pytest.raises(ArrayNotFoundError, match=r"the bucket 'arraystore-no-such-bucket-7f3a' does not exist"):
            make()
