from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arraystore import ArrayMeta
from arraystore.errors import MetadataError, UnsupportedDtypeError
from arraystore.meta import dtype_from_json, dtype_to_json
from arraystore.testing import CONFORMANCE_DTYPES


@pytest.mark.parametrize("dtype", CONFORMANCE_DTYPES, ids=str)
def test_dict_round_trip_through_json(dtype: np.dtype) -> None:
    m = ArrayMeta((3, 0, 2), dtype, "F", {"a": [1, 2.5, None], "b": {"c": "ü"}})
    back = ArrayMeta.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back == m
    assert back.dtype == dtype
    assert back.dtype.descr == dtype.descr  # field layout and byte order, not just equality


@pytest.mark.parametrize(
    ("dtype", "descr"),
    [("float32", "<f4"), (">i8", ">i8"), ("bool", "|b1"), ("M8[ns]", "<M8[ns]"), ("U3", "<U3"), ("S2", "|S2")],
)
def test_byte_order_is_explicit(dtype: str, descr: str) -> None:
    assert ArrayMeta((1,), dtype).to_dict()["dtype"] == descr


def test_subarray_dtype_folds_into_shape() -> None:
    m = ArrayMeta((4,), "(2,3)<i2")
    assert m.shape == (4, 2, 3)
    assert m.dtype == np.dtype("<i2")


def test_nbytes_never_overflows() -> None:
    assert ArrayMeta((2**31, 2**31), "u1").nbytes == 2**62  # Python ints, no int64 wrap-around
    with pytest.raises(MetadataError, match="18,446,744,073,709,551,616 bytes"):
        ArrayMeta((2**32, 2**32), "u1")  # would wrap to 0 in int64 arithmetic


@pytest.mark.parametrize("shape", [(-1,), (1.5,), ("3",), (True,), [None], (1,) * 65, "12"], ids=str)
def test_invalid_shapes(shape: object) -> None:
    with pytest.raises(MetadataError):
        ArrayMeta(shape, "f4")  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", [object, [("a", "O")], "S0", "U0"], ids=str)
def test_refused_dtypes(dtype: object) -> None:
    with pytest.raises(UnsupportedDtypeError):
        ArrayMeta((1,), dtype)  # type: ignore[arg-type]


def test_invalid_order_and_attrs() -> None:
    with pytest.raises(MetadataError, match="order"):
        ArrayMeta((1,), "f4", "X")  # type: ignore[arg-type]
    with pytest.raises(MetadataError, match="JSON"):
        ArrayMeta((1,), "f4", attrs={"f": object()})


def test_numpy_values_in_attrs_keep_their_type() -> None:
    m = ArrayMeta((1,), "f4", attrs={"x": np.float32(1.5), "v": np.arange(3)})
    assert type(m.attrs["x"]) is np.float32 and m.attrs["x"] == 1.5
    assert m.attrs["v"].dtype == np.arange(3).dtype and m.attrs["v"].tolist() == [0, 1, 2]
    assert m.to_dict()["attrs"]["x"] == {"$numpy": {"dtype": "<f4", "shape": None, "data": "AADAPw=="}}
    assert ArrayMeta.from_dict(m.to_dict()) == m


@pytest.mark.parametrize(
    "bad",
    [
        {"dtype": "<f4"},
        {"shape": 3, "dtype": "<f4"},
        {"shape": [3], "dtype": "nonsense"},
        {"shape": [3], "dtype": [["a"]]},
        {"shape": [3], "dtype": 7},
        {"shape": [3], "dtype": "<f4", "attrs": []},
        [],
    ],
    ids=str,
)
def test_from_dict_refuses_bad_input(bad: object) -> None:
    with pytest.raises(MetadataError):
        ArrayMeta.from_dict(bad)  # type: ignore[arg-type]


@given(hnp.nested_dtypes(subtype_strategy=hnp.scalar_dtypes().filter(lambda d: d.kind != "O" and d.itemsize > 0)))
def test_any_dtype_survives_json(dtype: np.dtype) -> None:
    if dtype.subdtype is not None:
        return  # folded into the shape; covered above
    assert dtype_from_json(json.loads(json.dumps(dtype_to_json(dtype)))) == dtype


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_json_from_dict_never_crashes(obj: object) -> None:
    try:
        ArrayMeta.from_dict({"shape": [1], "dtype": obj})
    except (MetadataError, UnsupportedDtypeError):
        pass
