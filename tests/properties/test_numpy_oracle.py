"""numpy as the oracle for every selection, write and dtype, on every backend and both I/O paths.

For random shapes (0-d and zero-size axes included), dtypes of every family in both byte
orders, keys (ints, negative ints, slices with any step, ``...``, integer arrays and lists,
masks) and written values (Python scalars and lists, numpy scalars and arrays of the same
or another dtype, broadcastable shapes), ``store[key]`` and ``store[key] = value`` must do
what the same operation does on an ndarray holding the same data, or raise the typed error
the documented rules call for (``arraystore.testing.oracle.write_refusal``). Keys numpy
refuses raise a ``SelectionError`` (an ``IndexError``; numpy raises a ``ValueError`` for a step of 0).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore.errors import ArrayStoreError, SelectionError
from arraystore.fidelity import Support
from arraystore.registry import backend_class
from arraystore.testing import CONFORMANCE_DTYPES, sample_data
from arraystore.testing.oracle import bad_keys, keys, numpy_result, write_refusal, write_values

#: (id, backend, suffix, layout): layout "chunked"/"sharded" adds chunk (and shard) shapes.
CONFIGS = [
    ("raw", "raw", ".dat", "contiguous"),
    ("npy", "npy", ".npy", "contiguous"),
    ("hdf5", "hdf5", ".h5", "contiguous"),
    ("hdf5-chunked", "hdf5", ".h5", "chunked"),
    ("zarr-chunked", "zarr", ".zarr", "chunked"),
    ("zarr-sharded", "zarr", ".zarr", "sharded"),
]
IOS = ["mmap", "buffered"]

shapes = st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple)


def _dtypes(backend: str, layout: str) -> list[np.dtype[Any]]:
    fidelity = backend_class(backend).fidelity
    out = [d for d in CONFORMANCE_DTYPES if fidelity.support(d)[0] is not Support.NO]
    if layout == "sharded":  # zarr-python 3.1 cannot shard void or structured items
        out = [d for d in out if d.kind != "V"]
    return out


def _create_kwargs(layout: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> dict[str, Any]:
    if layout == "contiguous" or not shape:
        return {}
    chunks = tuple(max(1, -(-n // 2)) for n in shape)
    if layout == "sharded":
        return {"chunks": chunks, "shards": tuple(2 * c for c in chunks)}
    return {"chunks": chunks}


class _Case:
    """A store and its numpy model, in a fresh folder (hypothesis runs many examples per test)."""

    def __init__(
        self, backend: str, suffix: str, layout: str, io: str, shape: tuple[int, ...], dtype: Any, order: str = "C"
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="arraystore-oracle-"))
        self.path = str(self.dir / f"a{suffix}")
        self.model = sample_data(np.dtype(dtype), shape, seed=1)
        kwargs = _create_kwargs(layout, shape, self.model.dtype)
        with arraystore.create(self.path, shape, self.model.dtype, backend=backend, order=order, **kwargs) as s:
            s[...] = self.model
        self.store = arraystore.open(self.path, "r+", io=io)

    def close(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _same(got: Any, expected: np.ndarray[Any, Any]) -> None:
    assert isinstance(got, np.ndarray), type(got)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert got.tobytes() == np.ascontiguousarray(expected).tobytes(), (got, expected)


def _scalar_key(key: Any, ndim: int) -> bool:
    entries = key if isinstance(key, tuple) else (key,)
    return len(entries) == ndim and all(isinstance(e, int) for e in entries)


@pytest.mark.parametrize("io", IOS)
@pytest.mark.parametrize(("backend", "suffix", "layout"), [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
@given(data=st.data(), shape=shapes)
def test_reads_and_writes_match_numpy(backend: str, suffix: str, layout: str, io: str, data: Any, shape: Any) -> None:
    dtype = data.draw(st.sampled_from(_dtypes(backend, layout)), label="dtype")
    order = data.draw(st.sampled_from(["C", "F"]), label="order")
    case = _Case(backend, suffix, layout, io, shape, dtype, order)
    model = case.model
    try:
        for _ in range(3):
            key = data.draw(keys(shape), label="read key")
            _same(case.store[key], numpy_result(model, key))

            key = data.draw(keys(shape), label="write key")
            target = model[key].shape if isinstance(model[key], np.ndarray) else ()
            value = data.draw(write_values(model.dtype, target), label="value")
            refusal = write_refusal(value, model.dtype, scalar=_scalar_key(key, len(shape)), target=target)
            if refusal is not None:
                with pytest.raises(refusal):
                    case.store[key] = value
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # numpy's own overflow warnings on casts
                    model[key] = value
                    case.store[key] = value
            _same(case.store[...], model)

        bad, numpy_refuses = data.draw(bad_keys(shape), label="bad key")
        with pytest.raises(SelectionError) as info:
            case.store[bad]
        assert isinstance(info.value, IndexError)
        with pytest.raises(SelectionError):
            case.store[bad] = 0
        if numpy_refuses:
            with pytest.raises((IndexError, ValueError)):  # ValueError: a slice's step of 0
                model[bad]
    finally:
        case.close()


@pytest.mark.parametrize("io", IOS)
@pytest.mark.parametrize(("backend", "suffix", "layout"), [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
@given(shape=shapes, dtype=st.sampled_from(CONFORMANCE_DTYPES[:30]))
def test_both_io_paths_persist_the_same(backend: str, suffix: str, layout: str, io: str, shape: Any, dtype: Any) -> None:
    if dtype not in _dtypes(backend, layout):
        return
    case = _Case(backend, suffix, layout, io, shape, dtype)
    try:
        new = sample_data(case.model.dtype, shape, seed=7)
        case.store[...] = new
        case.store.close()
        for other in IOS:
            with arraystore.open(case.path, io=other) as s:
                _same(s[...], new)
                if new.size:
                    first = (0,) * len(shape)
                    _same(s[first], numpy_result(new, first))
    finally:
        case.close()


def test_store_errors_are_typed() -> None:
    # The refusals above are ArrayStoreErrors that also are numpy's builtins.
    for cls, builtin in [("ValueOutOfRangeError", OverflowError), ("BroadcastError", ValueError)]:
        err = getattr(arraystore.errors, cls)
        assert issubclass(err, ArrayStoreError) and issubclass(err, builtin)
