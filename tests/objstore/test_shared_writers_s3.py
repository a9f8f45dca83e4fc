"""``share_staged`` on object storage: other handles write chunks of an array being created, never its metadata,
without the lease; the creator's close is the one commit."""

from __future__ import annotations

import pickle

import boto3
import numpy as np
import pytest

import arraystore
from arraystore._open import exists, share_staged
from arraystore.errors import ArrayChangedError, ArrayNotFoundError

pytestmark = pytest.mark.timeout(120)


def _etag(bucket: str, key: str) -> str:
    tag: str = boto3.client("s3").head_object(Bucket=bucket.removeprefix("s3://"), Key=key)["ETag"]
    return tag


def test_shared_handles_write_chunks_only_and_the_creator_commits(bucket: str, s3_env: dict[str, str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{bucket}/s.zarr"
    data = np.arange(64 * 8, dtype="<i4").reshape(64, 8)
    creator = arraystore.create(url, data.shape, data.dtype, chunks=(16, 8),
                                storage_options={"endpoint": s3_env["AWS_ENDPOINT_URL"]})
    staged = pickle.loads(pickle.dumps(share_staged(creator)))  # as a Dask task carries it
    assert "storage_options" not in repr(staged)
    meta_before = _etag(bucket, "s.zarr/zarr.json")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the handle reaches the store by its options
    for part in range(4):  # each handle writes its own chunk; the creator's lease does not stop them
        handle = staged.open()
        handle[16 * part : 16 * part + 16] = data[16 * part : 16 * part + 16]
        handle.abandon()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env["AWS_ENDPOINT_URL"])
    assert _etag(bucket, "s.zarr/zarr.json") == meta_before  # no shared handle wrote the metadata
    assert not exists(url)
    with pytest.raises(ArrayNotFoundError, match="being created"):
        arraystore.open(url)
    creator.close()  # the commit
    with arraystore.open(url) as got:
        assert got[...].tolist() == data.tolist() and got.complete
    with pytest.raises(ArrayChangedError, match="no longer matches"):
        staged.open()  # published: no longer an array being created


def test_only_an_array_being_created_is_shared(bucket: str) -> None:
    url = f"{bucket}/p.zarr"
    with arraystore.create(url, (4,), "<i8") as w:
        w[:] = 1
    with arraystore.open(url, "r+") as s, pytest.raises(arraystore.errors.BackendError, match="being created"):
        share_staged(s)
