"""Property: attrs round-trip exactly (type and value) on every backend, or raise MetadataError before writing.

The oracle is a deep comparison written here (types compared exactly, floats bit for
bit, numpy values by dtype, shape and bytes), independent of arraystore's encoder.
"""

from __future__ import annotations

import math
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import arraystore
from arraystore.errors import ArrayStoreError, MetadataError

BACKENDS = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}

_DTYPES = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="?"),
    hnp.unsigned_integer_dtypes(endianness="?"),
    hnp.floating_dtypes(endianness="?", sizes=(16, 32, 64)),
    hnp.complex_number_dtypes(endianness="?", sizes=(64, 128)),
    hnp.datetime64_dtypes(endianness="?"),
    hnp.timedelta64_dtypes(endianness="?"),
    hnp.byte_string_dtypes(min_len=1, max_len=4),
    hnp.unicode_string_dtypes(endianness="?", min_len=1, max_len=3),
)
_NP_ARRAYS = hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
_NP_SCALARS = _NP_ARRAYS.filter(lambda a: a.size > 0).map(lambda a: a.reshape(-1)[0])
_KEYS = st.text(max_size=8).filter(lambda k: k not in ("$numpy", "_arraystore"))  # reserved: tested below
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | _NP_SCALARS
    | _NP_ARRAYS
)
ATTRS = st.dictionaries(
    _KEYS,
    st.recursive(_LEAVES, lambda c: st.lists(c, max_size=3) | st.dictionaries(_KEYS, c, max_size=3), max_leaves=8),
    max_size=5,
)


def same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and np.asarray(a).tobytes() == np.asarray(b).tobytes()
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


@pytest.mark.parametrize("backend", list(BACKENDS))
@given(attrs=ATTRS)
def test_attrs_round_trip_exactly(backend: str, attrs: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / f"a{BACKENDS[backend]}")
        if backend == "npy":  # the format has no place for attributes: refused, nothing written
            if attrs:
                with pytest.raises(ArrayStoreError, match="attributes"):
                    arraystore.create(path, (2,), "<f4", attrs=attrs)
                assert list(Path(tmp).iterdir()) == []
            return
        with arraystore.create(path, (2,), "<f4", attrs=attrs):
            pass
        with arraystore.open(path) as s:
            assert same(dict(s.attrs), attrs), (dict(s.attrs), attrs)
        with arraystore.open(path, "r+") as s:  # and through an update
            s.attrs.update(attrs)
            s.attrs["extra"] = attrs
        with arraystore.open(path) as s:
            assert same(dict(s.attrs), {**attrs, "extra": attrs})


def _nest(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


REFUSED = [
    ({1: "a", "1": "b"}, "str attribute names"),
    ({"k": {2.5: 1}}, "str attribute names"),
    ({"t": (1, 2)}, "list"),
    ({"s": {1, 2}}, "list"),
    ({"b": b"xy"}, "frombuffer"),
    ({"o": np.array([1, "a"], dtype=object)}, "objects"),
    ({"p": Path("x")}, "JSON types"),
    ({"u": "\ud800"}, "Unicode"),
    ({"$numpy": 1}, "reserved"),
    ({"deep": _nest(40)}, "nested"),
    ({"huge": "x" * (5 * 1024 * 1024)}, "bytes of JSON"),
    ({"e": np.float64}, "JSON types"),
]


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize(("attrs", "why"), REFUSED, ids=[w for _, w in REFUSED])
def test_attrs_that_cannot_round_trip_are_refused_before_writing(
    tmp_path: Path, backend: str, attrs: dict[Any, Any], why: str
) -> None:
    path = tmp_path / f"a{BACKENDS[backend]}"
    with pytest.raises(MetadataError, match=why):
        arraystore.create(path, (2,), "<f4", backend=backend, attrs=attrs)
    assert list(tmp_path.iterdir()) == []
    if backend == "npy":
        return
    with arraystore.create(path, (2,), "<f4", backend=backend, attrs={"keep": 1}):
        pass
    before = {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with arraystore.open(path, "r+") as s:
        with pytest.raises(MetadataError, match=why):
            s.attrs.update(attrs)
        assert dict(s.attrs) == {"keep": 1}
    assert {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_issue_examples() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/a.dat"
        with arraystore.create(path, (1,), "<i4", attrs={"t": np.datetime64(1, "ns")}):
            pass
        with arraystore.open(path) as s:
            t = s.attrs["t"]
            assert type(t) is np.datetime64 and t == np.datetime64(1, "ns") and t.dtype == np.dtype("M8[ns]")


def test_returned_attrs_are_copies() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/a.zarr"
        with arraystore.create(path, (1,), "<i4", attrs={"l": [1], "a": np.zeros(2)}) as s:
            s.attrs["l"].append(2)
            s.attrs["a"][0] = 5
            assert s.attrs["l"] == [1] and s.attrs["a"][0] == 0


def _containers(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return [obj, *(c for v in obj.values() for c in _containers(v))]
    if isinstance(obj, list):
        return [obj, *(c for v in obj for c in _containers(v))]
    return []


@given(ATTRS)
def test_check_attrs_equals_the_json_round_trip(attrs: dict[str, Any]) -> None:
    """``check_attrs`` skips reading the JSON back when no numpy value was encoded: the result is still
    what the round trip gives, and a copy (no list or dict shared with the input)."""
    import json

    from arraystore._attrs import check_attrs, decode_attrs, encode_attrs

    try:
        checked = check_attrs(attrs)
    except MetadataError:
        return
    assert same(checked, decode_attrs(json.loads(json.dumps(encode_attrs(attrs), allow_nan=True, ensure_ascii=False))))
    given_ids = {id(c) for c in _containers(attrs)}
    assert not any(id(c) in given_ids for c in _containers(checked))


_PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=4), _PLAIN | ATTRS, max_size=4))
def test_encode_attrs_fast_copy_equals_the_checked_encoding(attrs: dict[str, Any]) -> None:
    """Plain JSON attrs are copied without the per-value checks: the result, or the error, is the checked encoder's."""
    from arraystore._attrs import _encode, encode_attrs

    want: Any
    try:
        want = _encode(dict(attrs), "attrs", 0)
    except MetadataError as exc:
        want = f"MetadataError: {exc}"
    try:
        got: Any = encode_attrs(attrs)
    except MetadataError as exc:
        got = f"MetadataError: {exc}"
    assert same(got, want)


def test_encode_attrs_refusals_name_the_value() -> None:
    from arraystore._attrs import MAX_DEPTH, encode_attrs

    deep: Any = 1
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    for bad, match in [({"a": (1, 2)}, "tuple"), ({"a": {"$numpy": 1}}, "reserved"), ({"a": "\ud800"}, "surrogate"),
                       ({"\ud800": 1}, "surrogate"), ({"a": deep}, "deeper"), ({1: 2}, "str attribute names")]:
        with pytest.raises(MetadataError, match=match):
            encode_attrs(bad)  # type: ignore[arg-type]
