"""The Zarr backend joins the conformance suite; its oracle is zarr-python on the array itself."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np
import zarr
from zarr.codecs import BytesCodec

from arraystore.meta import dtype_from_json
from arraystore.testing import ArrayStoreTests, make_state_machine


def zarr_read(path: str, key: str = "") -> np.ndarray[Any, Any]:
    """Read an array with zarr-python, undoing arraystore's documented encodings (reserved attribute)."""
    arr = zarr.open_array(path, path=key, mode="r")
    data = np.asarray(arr[...])
    reserved: Any = json.loads(arr.attrs.asdict().get("_arraystore", "{}"))  # JSON text
    if "dtype" in reserved:
        dtype = dtype_from_json(reserved["dtype"])
        if reserved["encoding"] == "raw":
            data = np.ascontiguousarray(data).reshape(-1).view(dtype).reshape(data.shape)
        else:
            data = data.astype(dtype)
    return data


def zarr_write(path: str, data: np.ndarray[Any, Any], **kwargs: Any) -> None:
    """Write an array as zarr-python users do; big-endian data through the bytes codec's endian."""
    big = data.dtype.byteorder == ">"
    zarr.create_array(path, data=data, serializer=BytesCodec(endian="big") if big else "auto", **kwargs)


class TestZarr(ArrayStoreTests):
    backend = "zarr"
    suffix = ".zarr"

    def oracle_read(self, path: str) -> np.ndarray[Any, Any]:
        return zarr_read(path)

    def oracle_write(self, path: str, data: np.ndarray[Any, Any]) -> None:
        zarr_write(path, data)


class TestZarrShardedCompressed(TestZarr):
    """Small chunks in small shards, compressed and checksummed: writes cross chunk and shard edges."""

    create_kwargs: ClassVar[dict[str, Any]] = {"compression": "zstd:1", "checksum": True}

    def make(self, path: str, data: np.ndarray[Any, Any], order: Any = "C", **kwargs: Any) -> None:
        if data.ndim and data.dtype.kind != "V":  # zarr-python 3.1 cannot shard void/structured items
            chunks = tuple(max(1, -(-n // 3)) for n in data.shape)  # about 3 chunks per axis
            kwargs.setdefault("chunks", chunks)
            kwargs.setdefault("shards", tuple(2 * c for c in chunks))
        super().make(path, data, order, **kwargs)


TestZarrStateMachine = make_state_machine("zarr", ".zarr").TestCase
