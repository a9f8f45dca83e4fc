"""Property tests: every dtype family, shape, order, chunking and attrs round-trips through HDF5 bit for bit.

Checked through arraystore and through h5py directly (the oracle undoes only the
documented encodings: the ``_arraystore_dtype`` view and the ``F``-order transpose).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore.backends.hdf5 import HDF5Store
from arraystore.errors import UnsupportedDtypeError
from arraystore.fidelity import Support
from arraystore.meta import dtype_from_json

_ORDERS = st.sampled_from("<>")
_TIME_UNITS = ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as"]


def _leaf() -> st.SearchStrategy[np.dtype[Any]]:
    numeric = st.tuples(
        _ORDERS,
        st.sampled_from(
            ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "g", "c8", "c16", "G"]
        ),
    ).map(lambda t: np.dtype(np.dtype(t[1]).newbyteorder(t[0])))  # type: ignore[arg-type]
    times = st.tuples(_ORDERS, st.sampled_from("Mm"), st.sampled_from(_TIME_UNITS)).map(
        lambda t: np.dtype(f"{t[0]}{t[1]}8[{t[2]}]")
    )
    strings = st.tuples(st.sampled_from(["S", "V"]), st.integers(1, 8)).map(
        lambda t: np.dtype(f"{t[0]}{t[1]}")
    )
    unicode = st.tuples(_ORDERS, st.integers(1, 6)).map(lambda t: np.dtype(f"{t[0]}U{t[1]}"))
    return st.one_of(st.just(np.dtype("?")), numeric, times, strings, unicode)


def _struct(children: st.SearchStrategy[np.dtype[Any]]) -> st.SearchStrategy[np.dtype[Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> np.dtype[Any]:
        n = draw(st.integers(1, 3))
        names = draw(
            st.lists(st.sampled_from(["a", "b", "c", "é", "x y"]), min_size=n, max_size=n, unique=True)
        )
        formats: list[Any] = []
        for _ in names:
            d = draw(children)
            sub = draw(st.sampled_from([(), (2,), (1, 2)]))
            formats.append((d, sub) if sub else d)
        offsets, pos = [], 0
        for f in formats:
            pos += draw(st.sampled_from([0, 0, 1, 3]))  # padding gaps
            offsets.append(pos)
            pos += np.dtype(f).itemsize
        itemsize = pos + draw(st.sampled_from([0, 2]))
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})

    return build()


dtypes = st.recursive(_leaf(), _struct, max_leaves=6)


@st.composite
def shapes(draw: st.DrawFn, itemsize: int) -> tuple[int, ...]:
    ndim = draw(st.integers(0, 6))
    limit = max(1, 4096 // max(itemsize, 1))
    out: list[int] = []
    for _ in range(ndim):
        n = draw(st.integers(0, 5))
        if math.prod(out) * n > limit:
            n = 1
        out.append(n)
    return tuple(out)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8,
)
attrs_st = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


def _fix_bools(a: np.ndarray[Any, Any]) -> None:
    """Random bytes are not valid bools; make every bool leaf 0 or 1."""
    dt = a.dtype
    if dt.names is not None:
        for name in dt.names:
            _fix_bools(a[name])
    elif dt.subdtype is not None:  # pragma: no cover - numpy folds sub-arrays into the shape on access
        _fix_bools(a)
    elif dt.kind == "b":
        a.view("u1")[...] &= 1


def random_array(dtype: np.dtype[Any], shape: tuple[int, ...], seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=math.prod(shape) * dtype.itemsize, dtype=np.uint8)
    out: np.ndarray[Any, Any] = raw.view(dtype).reshape(shape).copy()
    _fix_bools(out)
    return out


def h5_oracle(path: str) -> np.ndarray[Any, Any]:
    with h5py.File(path, "r", locking=False) as f:
        ds = f["data"]
        raw: np.ndarray[Any, Any] = ds[...]
        if "_arraystore_dtype" in ds.attrs:
            dtype = dtype_from_json(json.loads(ds.attrs["_arraystore_dtype"]))
            if h5py.check_string_dtype(ds.dtype) is not None:  # unicode as UTF-8 strings: h5py decodes them
                raw = np.asarray(ds.asstr()[()], dtype=dtype).reshape(ds.shape)
            else:
                raw = np.ascontiguousarray(raw).view(dtype).reshape(ds.shape)
        if ds.attrs.get("_arraystore_order") == "F":
            # copied as opaque items: numpy's structured copy drops the padding bytes
            raw = raw.T.view(np.dtype((np.void, raw.dtype.itemsize))).copy(order="C").view(raw.dtype)
        return raw


@st.composite
def cases(draw: st.DrawFn) -> tuple[np.dtype[Any], tuple[int, ...], str, Any, Any, dict[str, Any], int]:
    dtype = draw(dtypes)
    shape = draw(shapes(dtype.itemsize))
    order = draw(st.sampled_from("CF"))
    chunks = draw(
        st.none() | st.just("auto") | st.tuples(*[st.integers(1, 4) for _ in shape]) if shape else st.none()
    )
    compression = draw(st.sampled_from([None, None, "gzip:1", "lzf"])) if shape else None
    return dtype, shape, order, chunks, compression, draw(attrs_st), draw(st.integers(0, 2**32 - 1))


@given(case=cases())
def test_round_trip(tmp_path_factory: pytest.TempPathFactory, case: Any) -> None:
    dtype, shape, order, chunks, compression, attrs, seed = case
    folder: Path = tmp_path_factory.mktemp("rt")
    path = str(folder / "a.h5")
    support = HDF5Store.fidelity.support(dtype)[0]
    if support is Support.NO:
        with pytest.raises(UnsupportedDtypeError):
            arraystore.create(path, shape, dtype)
        assert os.listdir(folder) == []
        return
    data = random_array(dtype, shape, seed)
    with arraystore.create(
        path, shape, dtype, order=order, chunks=chunks, compression=compression, attrs=attrs
    ) as s:
        s[...] = data
    with arraystore.open(path) as s:
        assert s.dtype == dtype  # byte order and field layout included
        assert s.shape == shape
        assert s.order == "C"  # HDF5 stores every array in C order (the array's shape)
        assert dict(s.attrs) == attrs
        got = s[...]
        assert got.dtype == dtype
        assert got.tobytes() == data.tobytes()
    oracle = h5_oracle(path)
    assert oracle.dtype == dtype and oracle.shape == shape
    assert oracle.tobytes() == data.tobytes()


def test_every_family_is_declared() -> None:
    from arraystore.fidelity import FAMILIES

    for family in FAMILIES:
        for order in ("little", "big"):
            assert HDF5Store.fidelity.cell(family, order)[0] is not Support.NO, (family, order)


def test_empty_compound_is_refused(tmp_path: Path) -> None:
    empty = np.dtype({"names": [], "formats": [], "itemsize": 4})
    with pytest.raises(UnsupportedDtypeError):
        arraystore.create(str(tmp_path / "e.h5"), (2,), empty)
    assert os.listdir(tmp_path) == []
