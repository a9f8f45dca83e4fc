"""The HDF5 backend joins the conformance suite; its oracle is h5py on the dataset itself."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import h5py
import numpy as np

from arraystore.meta import dtype_from_json
from arraystore.testing import ArrayStoreTests, make_state_machine


def h5_read(path: str, key: str | None = None) -> np.ndarray[Any, Any]:
    """Read a dataset with h5py, undoing arraystore's documented encodings (dtype attribute, F order)."""
    with h5py.File(path, "r", locking=False) as f:
        if key is None:
            names: list[str] = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            # netCDF-4 dimensions (dimension scales without data) are not arrays
            (key,) = [n for n in names if not h5py.h5ds.is_scale(f[n].id)]
        ds = f[key]
        raw = np.asarray(ds[()])
        shape = ds.shape
        dtype = ds.dtype
        if "_arraystore_dtype" in ds.attrs:
            dtype = dtype_from_json(json.loads(ds.attrs["_arraystore_dtype"]))
            if h5py.check_string_dtype(ds.dtype) is not None:  # unicode as UTF-8 strings: h5py decodes them
                raw = np.asarray(ds.asstr()[()], dtype=dtype).reshape(shape)
            else:
                raw = np.ascontiguousarray(raw).view(dtype).reshape(shape)
        if ds.attrs.get("_arraystore_order") == "F":
            raw = raw.T
    return raw


class TestHDF5(ArrayStoreTests):
    backend = "hdf5"
    suffix = ".h5"

    def oracle_read(self, path: str) -> np.ndarray[Any, Any]:
        return h5_read(path)

    def oracle_write(self, path: str, data: np.ndarray[Any, Any]) -> None:
        with h5py.File(path, "w") as f:
            f.create_dataset("written/by/h5py", data=data)


class TestHDF5Chunked(TestHDF5):
    create_kwargs: ClassVar[dict[str, Any]] = {"chunks": "auto", "compression": "gzip:1", "shuffle": True}


TestHDF5StateMachine = make_state_machine("hdf5", ".h5").TestCase
