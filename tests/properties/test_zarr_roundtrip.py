"""Property: every dtype the Zarr backend accepts round-trips bit for bit, with shape, order and attrs.

Checked through arraystore and through zarr-python as an oracle (undoing only the
documented encodings recorded in the ``_arraystore`` attribute).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore.backends.zarr import FIDELITY
from arraystore.errors import UnsupportedDtypeError
from arraystore.fidelity import Support
from arraystore.meta import dtype_from_json
from arraystore.testing import bit_equal, sample_data

_UNITS = ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as"]
_ORDERS = st.sampled_from(["<", ">"])


@st.composite
def _leaf(draw: st.DrawFn) -> np.dtype[Any]:
    kind = draw(st.sampled_from(["b", "i", "u", "f", "g", "c", "G", "M", "m", "S", "U", "V"]))
    order = draw(_ORDERS)
    if kind == "b":
        return np.dtype("?")
    if kind in "iu":
        return np.dtype(f"{order}{kind}{draw(st.sampled_from([1, 2, 4, 8]))}")
    if kind == "f":
        return np.dtype(f"{order}f{draw(st.sampled_from([2, 4, 8]))}")
    if kind == "c":
        return np.dtype(f"{order}c{draw(st.sampled_from([8, 16]))}")
    if kind in "gG":
        base = np.dtype(f"{order}f{np.dtype(np.longdouble).itemsize}")
        return base if kind == "g" else np.dtype(f"{order}c{2 * base.itemsize}")
    if kind in "Mm":
        unit = draw(st.sampled_from(_UNITS + ["generic"]))
        return np.dtype(f"{order}{kind}8" + ("" if unit == "generic" else f"[{unit}]"))
    n = draw(st.integers(1, 6))
    return np.dtype(f"{order}U{n}" if kind == "U" else f"{kind}{n}")


def _structured(children: st.SearchStrategy[np.dtype[Any]]) -> st.SearchStrategy[np.dtype[Any]]:
    field = st.tuples(children, st.sampled_from([(), (2,), (1, 3)]))
    return st.lists(field, min_size=1, max_size=3).map(
        lambda fs: np.dtype([(f"f{i}", d, shape) if shape else (f"f{i}", d) for i, (d, shape) in enumerate(fs)])
    )


dtypes = st.recursive(_leaf(), _structured, max_leaves=5)
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=6).map(tuple).filter(lambda s: int(np.prod(s)) <= 256)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
attrs = st.dictionaries(st.text(max_size=6).filter(lambda k: k != "_arraystore"), json_values, max_size=4)


def _oracle(path: Path) -> np.ndarray[Any, Any]:
    arr = zarr.open_array(path, mode="r")
    data = np.asarray(arr[...])
    reserved: Any = json.loads(arr.attrs.asdict()["_arraystore"])  # JSON text
    dtype = dtype_from_json(reserved["dtype"])
    if reserved["encoding"] == "raw":
        return np.ascontiguousarray(data).reshape(-1).view(dtype).reshape(data.shape)
    return data.astype(dtype)


@given(
    dtype=dtypes,
    shape=shapes,
    order=st.sampled_from(["C", "F"]),
    chunk_seed=st.none() | st.integers(0, 2**16),
    attributes=attrs,
    seed=st.integers(0, 2**16),
)
def test_round_trip(
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    order: str,
    chunk_seed: int | None,
    attributes: dict[str, Any],
    seed: int,
) -> None:
    data = sample_data(dtype, shape, seed=seed)
    shape = data.shape  # sub-array dtypes are never top-level here, but keep numpy's view of it
    chunks = None
    if chunk_seed is not None:
        rng = np.random.default_rng(chunk_seed)
        chunks = tuple(int(rng.integers(1, max(n, 1) + 1)) for n in shape)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.zarr"
        if FIDELITY.support(dtype)[0] is Support.NO:
            with pytest.raises(UnsupportedDtypeError):
                arraystore.create(path, shape, dtype)
            assert not any(Path(tmp).iterdir())
            return
        with arraystore.create(path, shape, dtype, order=order, chunks=chunks, attrs=attributes) as s:  # type: ignore[arg-type]
            s[...] = data
        with arraystore.open(path) as s:
            assert s.dtype == dtype and s.dtype.descr == dtype.descr
            assert (s.shape, s.order, dict(s.attrs)) == (shape, order, attributes)
            assert bit_equal(s[...], data)
        assert bit_equal(_oracle(path), data)


@given(dtype=dtypes, seed=st.integers(0, 2**16))
def test_partial_writes_match_numpy(dtype: np.dtype[Any], seed: int) -> None:
    model = sample_data(dtype, (5, 4), seed=seed)
    patch = sample_data(dtype, (2, 2), seed=seed + 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.zarr"
        with arraystore.create(path, model.shape, dtype, chunks=(2, 3)) as s:
            s[...] = model
        with arraystore.open(path, "r+") as s:
            s[1:5:2, 1:3] = patch
        model[1:5:2, 1:3] = patch
        with arraystore.open(path) as s:
            assert bit_equal(s[...], model)
            assert bit_equal(s[3:, ::3], model[3:, ::3])
