"""A download from a bucket interrupted, its source replaced, then resumed: it starts again, never mixes the two.

A local source's size and modification time are in the conversion journal; an object has none on disk, so the
journal records what identifies the stored version (the store's ``_version()``: arraystore's generation and the
metadata object's ETag for Zarr, the object's ETag for ``.npy`` and raw). Before, the resumed run kept the blocks
of the old array it had journaled, joined them to the new one's, and verified the mix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

import arraystore
from arraystore.checksums import StreamHasher
from arraystore.errors import ArrayChangedError

from .conftest import needs_conditional_requests

zarr = pytest.importorskip("zarr", reason="the zarr extra is not installed")

pytestmark = pytest.mark.timeout(120)


def _put(bucket: str, key: str, body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=bucket.removeprefix("s3://"), Key=key, Body=body)


def _upload_folder(bucket: str, folder: Path, prefix: str) -> None:
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            _put(bucket, f"{prefix}/{p.relative_to(folder).as_posix()}", p.read_bytes())


def _write(how: str, bucket: str, tmp_path: Path, data: np.ndarray[Any, Any], version: int) -> str:
    """``data`` in the bucket as ``how`` says; the url."""
    if how == "arraystore-zarr":
        np.save(tmp_path / "in.npy", data)
        url = f"{bucket}/x.zarr"
        arraystore.convert(tmp_path / "in.npy", url, chunks=(16, 128), overwrite=True)
        return url
    if how == "zarr-python":
        local = tmp_path / f"v{version}.zarr"
        z = zarr.create_array(str(local), shape=data.shape, dtype=data.dtype, chunks=(16, 128), compressors=None,
                              zarr_format=3, fill_value=float(version))  # its zarr.json differs, not its meta
        z[...] = data
        _upload_folder(bucket, local, "x.zarr")
        return f"{bucket}/x.zarr"
    if how == "hdf5":
        import h5py

        with h5py.File(tmp_path / "in.h5", "w") as f:
            f.create_dataset("a", data=data, chunks=(16, 128))
        _put(bucket, "x.h5", (tmp_path / "in.h5").read_bytes())
        return f"{bucket}/x.h5::/a"
    np.save(tmp_path / "in.npy", data)
    _put(bucket, "x.npy", (tmp_path / "in.npy").read_bytes())
    return f"{bucket}/x.npy"


@pytest.mark.parametrize("how", ["arraystore-zarr", "zarr-python", "npy", "hdf5"])
def test_a_resume_over_a_replaced_source_starts_again(bucket: str, tmp_path: Path, how: str) -> None:
    a = np.random.default_rng(0).standard_normal((1024, 128))
    url = _write(how, bucket, tmp_path, a, 1)

    def stop_midway(done: int, total: int) -> None:
        if total / 2 <= done < total:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        arraystore.convert(url, tmp_path / "back.npy", max_memory="128KiB", resume=True, progress=stop_midway)
    b = a + 1  # same shape, dtype and chunks: only the values differ
    _write(how, bucket, tmp_path, b, 2)
    report = arraystore.convert(url, tmp_path / "back.npy", max_memory="128KiB", resume=True, verify=True)
    assert report.blocks_resumed == 0 and report.restarted is not None and "source changed" in report.restarted
    got = np.load(tmp_path / "back.npy")
    assert got.dtype == b.dtype and got.tobytes() == b.tobytes()
    assert report.checksum == StreamHasher.of(b) and report.verified


def test_a_resume_over_the_same_source_still_resumes(bucket: str, tmp_path: Path) -> None:
    """The version recorded is the same when nothing changed: the blocks journaled are kept."""
    a = np.random.default_rng(1).standard_normal((1024, 128))
    url = _write("zarr-python", bucket, tmp_path, a, 1)

    def stop_midway(done: int, total: int) -> None:
        if total / 2 <= done < total:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        arraystore.convert(url, tmp_path / "back.npy", max_memory="128KiB", resume=True, progress=stop_midway)
    report = arraystore.convert(url, tmp_path / "back.npy", max_memory="128KiB", resume=True, verify=True)
    assert report.blocks_resumed > 0 and report.restarted is None
    assert np.load(tmp_path / "back.npy").tobytes() == a.tobytes()


@pytest.mark.parametrize("how", [
    "arraystore-zarr", "zarr-python",
    # An object read by byte ranges: each GET carries If-Match, which the server must honour.
    pytest.param("npy", marks=needs_conditional_requests), pytest.param("hdf5", marks=needs_conditional_requests),
])
def test_a_source_replaced_during_a_download_is_a_typed_error(bucket: str, tmp_path: Path, how: str) -> None:
    """Replaced while being downloaded (by one of the same shape and dtype): ArrayChangedError, nothing published.
    An array another tool wrote has no generation: a zarr.json that now describes another array (here its fill
    value) says it was replaced."""
    a = np.random.default_rng(2).standard_normal((1024, 128))
    url = _write(how, bucket, tmp_path, a, 1)
    replaced: list[bool] = []

    def replace(done: int, total: int) -> None:
        if not replaced and done >= total / 4:
            replaced.append(True)
            _write(how, bucket, tmp_path, a + 1, 2)

    with pytest.raises(ArrayChangedError):
        arraystore.convert(url, tmp_path / "back.npy", max_memory="128KiB", progress=replace)
    assert replaced and not (tmp_path / "back.npy").exists()


def test_attributes_rewritten_during_a_download_are_no_replacement(bucket: str, tmp_path: Path) -> None:
    """Another tool's array whose attributes change while it is read is the same array: the download goes on."""
    a = np.random.default_rng(3).standard_normal((1024, 128))
    url = _write("zarr-python", bucket, tmp_path, a, 1)
    local = tmp_path / "v1.zarr"

    def touch(done: int, total: int) -> None:
        if done >= total / 4 and not zarr.open_array(str(local)).attrs:
            zarr.open_array(str(local), mode="r+").attrs["note"] = "added"
            _put(bucket, "x.zarr/zarr.json", (local / "zarr.json").read_bytes())

    arraystore.convert(url, tmp_path / "back.npy", max_memory="128KiB", progress=touch, attrs="drop")
    assert np.load(tmp_path / "back.npy").tobytes() == a.tobytes()
