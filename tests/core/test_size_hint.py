"""Size-mismatch hints: the true cause is always among the causes listed (property test).

A file is written with one mistake against its metadata (another item size, another
length of one axis, a header before the data, a truncation), and the data region is
measured as ``check_size`` measures it; the listed causes must include the true one.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore.errors import SizeMismatchError, size_causes
from arraystore.meta import ArrayMeta

ITEMSIZES = st.sampled_from([1, 2, 4, 8, 16])
SHAPES = st.lists(st.integers(1, 12), min_size=1, max_size=4).map(tuple)


@given(shape=SHAPES, itemsize=ITEMSIZES, true_itemsize=ITEMSIZES)
def test_wrong_itemsize_is_listed(shape: tuple[int, ...], itemsize: int, true_itemsize: int) -> None:
    n = math.prod(shape)
    if true_itemsize == itemsize:
        return
    causes = size_causes(n * itemsize, n * true_itemsize, itemsize, shape)
    assert ("itemsize", true_itemsize) in [(k, v) for k, v, _ in causes]


@given(shape=SHAPES, itemsize=ITEMSIZES, data=st.data())
def test_wrong_axis_length_is_listed(shape: tuple[int, ...], itemsize: int, data: st.DataObject) -> None:
    axis = data.draw(st.integers(0, len(shape) - 1))
    length = data.draw(st.integers(1, 30).filter(lambda v: v != shape[axis]))
    true_shape = tuple(length if i == axis else d for i, d in enumerate(shape))
    causes = size_causes(math.prod(shape) * itemsize, math.prod(true_shape) * itemsize, itemsize, shape)
    assert ("shape", (axis, length)) in [(k, v) for k, v, _ in causes]


@given(shape=SHAPES, itemsize=ITEMSIZES, header=st.integers(1, 70000))
def test_header_is_listed(shape: tuple[int, ...], itemsize: int, header: int) -> None:
    expected = math.prod(shape) * itemsize
    causes = size_causes(expected, expected + header, itemsize, shape)
    assert ("offset", header) in [(k, v) for k, v, _ in causes]


@given(shape=SHAPES, itemsize=ITEMSIZES, data=st.data())
def test_truncation_is_listed(shape: tuple[int, ...], itemsize: int, data: st.DataObject) -> None:
    expected = math.prod(shape) * itemsize
    actual = data.draw(st.integers(1, expected - 1)) if expected > 1 else 0
    kinds = [k for k, _, _ in size_causes(expected, actual, itemsize, shape)]
    assert ("truncated" in kinds) if actual else (kinds == ["empty"])


def test_float32_opened_as_float64_names_the_item_size_first(tmp_path: Path) -> None:
    """The issue's case: the item size comes before truncation, and a fitting shape is suggested."""
    p = tmp_path / "f.dat"
    np.arange(100, dtype="<f4").tofile(p)
    with pytest.raises(SizeMismatchError) as info:
        arraystore.open(p, meta=ArrayMeta((10, 10), "<f8"))
    msg = str(info.value)
    assert msg.index("4-byte items") < msg.index("truncated")
    assert "(5, 10)" in msg
    assert info.value.causes[0][0] == "itemsize"


def test_header_of_common_size_comes_first(tmp_path: Path) -> None:
    p = tmp_path / "h.dat"
    p.write_bytes(b"H" * 512 + np.arange(100, dtype="<f4").tobytes())
    with pytest.raises(SizeMismatchError) as info:
        arraystore.open(p, meta=ArrayMeta((100,), "<f4"))
    assert info.value.causes[0][:2] == ("offset", 512)
    with arraystore.open(p, meta=ArrayMeta((100,), "<f4"), offset=512) as s:
        np.testing.assert_array_equal(s[...], np.arange(100, dtype="<f4"))
