"""The examples of issue 12 on every backend: written values that must fit, numpy's array
protocol (``copy=False`` shares or raises), iteration, and the docs' example."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.errors import (
    ArrayStoreError,
    BroadcastError,
    CopyRequiredError,
    SelectionError,
    UnsupportedDtypeError,
    ValueOutOfRangeError,
    ZeroDimensionalError,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize(
    ("dtype", "value"),
    [("i1", 300), ("i1", -129), ("<i8", 2**63), (">i8", -(2**63) - 1), ("u1", -1), ("<u8", 2**64), ("<f4", 1e300),
     ("<f2", 70000), (">c8", complex(1e300, 0)), ("S2", b"abc"), ("<U2", "abc"), ("i1", np.int64(300))],
)  # fmt: skip
def test_values_that_do_not_fit_are_refused(
    case: tuple[str, str | None], make_store: Callable[..., str], dtype: str, value: Any
) -> None:
    backend, chunks = case
    data = np.zeros(4, dtype)
    path = make_store(backend, data, chunks)
    with arraystore.open(path, "r+") as s:
        with pytest.raises(ValueOutOfRangeError):
            s[0] = value
        with pytest.raises(OverflowError):  # the builtin numpy raises for a Python int out of range
            s[1:3] = [value, value]
    with arraystore.open(path) as s:
        assert s[...].tobytes() == data.tobytes()  # nothing was written, not even a part


@pytest.mark.parametrize(
    ("dtype", "value"),
    [("u1", 5), (">u2", 5), ("<u8", 2**64 - 1), ("i1", -128), ("<i8", -(2**63)), ("<f2", 65504), ("?", True),
     (">f8", 3), ("<c8", 1.5), ("<m8[s]", 7), ("S3", b"ab"), (">U3", "xyz"), ("u1", np.int64(255))],
)  # fmt: skip
def test_values_that_fit_are_written(
    case: tuple[str, str | None], make_store: Callable[..., str], dtype: str, value: Any
) -> None:
    backend, chunks = case
    path = make_store(backend, np.zeros(4, dtype), chunks)
    expected = np.zeros(4, dtype)
    expected[0] = value
    with arraystore.open(path, "r+") as s:
        s[0] = value
    with arraystore.open(path) as s:
        assert s[...].tobytes() == expected.tobytes()


def test_other_kinds_and_shapes_are_typed_errors(case: tuple[str, str | None], make_store: Callable[..., str]) -> None:
    path = make_store(case[0], np.zeros((3, 2), "<i4"), case[1])
    with arraystore.open(path, "r+") as s:
        for value in (1.5, [1.5, 2.0], np.float32(1), "1", np.array([1.0, 2.0]), b"1"):
            with pytest.raises(UnsupportedDtypeError):
                s[0] = value
        with pytest.raises(BroadcastError):
            s[0] = [1, 2, 3]
        with pytest.raises(ValueError, match="integer index picks one element"):  # numpy raises ValueError
            s[0, 0] = [1]
        with pytest.raises(SelectionError):
            s[[0, 1], [0, 1]] = 1


def test_asarray_copy_false_shares_a_mapped_store(tmp_path: Path) -> None:
    for name in ("a.dat", "a.npy", "a.h5"):
        path = str(tmp_path / name)
        with arraystore.create(path, (3, 2), ">i4") as s:
            s[...] = 1
        with arraystore.open(path, "r+") as s:
            view = np.asarray(s, copy=False)
            assert view.dtype == np.dtype(">i4")
            view[0, 0] = 42  # writes through to the file
            assert s[0, 0] == 42
        with arraystore.open(path) as s:
            assert s[0, 0] == 42
            ro = np.asarray(s, copy=False)
            with pytest.raises(ValueError, match="read-only"):  # a mode "r" store shares read-only
                ro[0, 0] = 1
            copy = np.asarray(s, copy=True)
            copy[0, 0] = 0
            assert s[0, 0] == 42
            assert np.array(s, dtype="<i8").dtype == np.dtype("<i8")
            with pytest.raises(CopyRequiredError):
                np.asarray(s, dtype="<i8", copy=False)


def test_asarray_copy_false_raises_where_nothing_is_shared(tmp_path: Path) -> None:
    for name, kwargs in (("c.h5", {"chunks": (2, 2)}), ("c.zarr", {})):
        path = str(tmp_path / name)
        with arraystore.create(path, (3, 2), "<f4", **kwargs) as s:
            s[...] = 1
        with arraystore.open(path, "r+") as s:
            with pytest.raises(ValueError, match="copy=False"):  # what numpy 2 asks of __array__
                np.asarray(s, copy=False)
            assert np.asarray(s).sum() == 6


def test_iteration_is_numpys(case: tuple[str, str | None], make_store: Callable[..., str]) -> None:
    data = np.arange(24, dtype=">u2").reshape(4, 3, 2)
    with arraystore.open(make_store(case[0], data, case[1])) as s:
        rows = list(s)
        assert len(rows) == 4 and all(r.dtype == data.dtype and np.array_equal(r, d) for r, d in zip(rows, data))
    with arraystore.open(make_store(case[0], np.arange(3, dtype="<i2"), None, name="b")) as s:
        items = list(s)
        assert [i.shape for i in items] == [(), (), ()] and [int(i) for i in items] == [0, 1, 2]
    zero_d = make_store(case[0], np.array(5, dtype="<f8"), None, name="z")
    with arraystore.open(zero_d) as s:
        for call in (iter, len):  # numpy's TypeError, typed, saying what to do instead
            with pytest.raises(ZeroDimensionalError, match=r"0-d array.*store\[\(\)\]") as err:
                call(s)
            assert isinstance(err.value, TypeError) and isinstance(err.value, ArrayStoreError)
        assert s[()] == 5


def test_concepts_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "concepts.md").read_text(), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "concepts.md", "exec"), {})
