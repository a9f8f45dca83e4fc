"""The conformance suite (``ArrayStoreTests``) for Zarr arrays on the S3 test server.

The oracle is zarr-python on the same objects, through its own ``ObjectStore``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import zarr
import zarr.storage
from zarr.codecs import BytesCodec

import arraystore
from arraystore.errors import ArrayChangedError, ArrayNotFoundError
from arraystore.meta import dtype_from_json
from arraystore.testing import ArrayStoreTests

from .conftest import needs_conditional_requests


def _zstore(url: str) -> Any:
    from obstore.store import from_url

    return zarr.storage.ObjectStore(from_url(url))


class TestZarrOnS3(ArrayStoreTests):
    backend = "zarr"
    suffix = ".zarr"

    @pytest.fixture
    def path(self, bucket: str, request: pytest.FixtureRequest) -> str:
        return f"{bucket}/array.zarr"

    def oracle_read(self, path: str) -> np.ndarray[Any, Any]:
        arr = zarr.open_array(_zstore(path), mode="r")
        data = np.asarray(arr[...])
        reserved: Any = json.loads(arr.attrs.asdict().get("_arraystore", "{}"))  # JSON text
        if "dtype" in reserved:
            dtype = dtype_from_json(reserved["dtype"])
            if reserved["encoding"] == "raw":
                data = np.ascontiguousarray(data).reshape(-1).view(dtype).reshape(data.shape)
            else:
                data = data.astype(dtype)
        return data

    def oracle_write(self, path: str, data: np.ndarray[Any, Any]) -> None:
        big = data.dtype.byteorder == ">"
        zarr.create_array(_zstore(path), data=data, serializer=BytesCodec(endian="big") if big else "auto")

    @needs_conditional_requests
    def test_single_writer(self, path: str) -> None:
        super().test_single_writer(path)

    def test_exception_discards_new_array(self, path: str) -> None:
        """As the suite's test; the bucket (not a folder) must be left empty."""

        def fail_while_writing() -> None:
            with arraystore.create(path, (3,), "<f4", backend=self.backend, **self.create_kwargs) as s:
                s[...] = 1
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            fail_while_writing()
        assert _keys(path) == []

    def test_overwrite_keeps_old_until_close(self, path: str) -> None:
        """Object stores differ here (docs/concepts.md): no rename, so the old array goes when the new one starts.

        What holds instead: at no moment does a reader see a complete-looking mixture; the
        old generation's readers get ArrayChangedError, new readers ArrayNotFoundError.
        """
        self.make(path, np.full(3, 1, "<f4"))
        reader = self.open(path)
        s = arraystore.create(path, (3,), "<f4", backend=self.backend, overwrite=True, **self.create_kwargs)
        s[...] = 2
        with pytest.raises(ArrayNotFoundError, match="being created"):
            self.open(path)
        with pytest.raises(ArrayChangedError):
            reader[...]
        s.close()
        assert self.oracle_read(path).tolist() == [2, 2, 2]


def _keys(url: str) -> list[str]:
    import boto3

    bucket = url.removeprefix("s3://").split("/", 1)[0]
    return [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]
