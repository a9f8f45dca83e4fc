"""One dtype grammar: ArrayMeta, sidecars (JSON descr), migration rules and legacy JSON accept and refuse the same strings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore.errors import MetadataError, UnsupportedDtypeError
from arraystore.meta import ArrayMeta, dtype_from_json
from arraystore.migration.evidence import parse_dtype

ACCEPTED = [
    "float32", "float64", "float16", "int8", "uint16", "int64", "bool", "complex64", "complex128",
    "<f4", ">f8", "=i2", "|b1", "f8", "u1", "<c16", "S16", "<U3", "V8", "|V4", "<M8[ns]", ">m8[s]",
    "datetime64[ms]", "timedelta64[D]", "M8", "<m8", "datetime64", "double", "single", "short", "?", "(2,3)<i2", " <f4 ", "int8 ",
]  # fmt: skip
REFUSED = [
    "float", "int", "uint", "complex", "long", "ulong", "longlong", "intc", "intp", "f", "d", "i", "l",
    "L", "q", "g", "O", "object", "str", "bytes", "S", "U", "V", "i4,f8", "a5",
    "float33", "<x4", "", "float 32", "Float32", "np.float32", "f4\n<i2",
]  # fmt: skip


def _arraymeta(text: str) -> np.dtype[Any] | None:
    try:
        return ArrayMeta((2,), text).dtype
    except UnsupportedDtypeError:
        return None


def _sidecar(text: str) -> np.dtype[Any] | None:
    try:
        return dtype_from_json(text)
    except (MetadataError, UnsupportedDtypeError):
        return None


def _rules(text: str) -> np.dtype[Any] | None:
    try:
        return parse_dtype(text)[0]
    except MetadataError:
        return None


@pytest.mark.parametrize("text", ACCEPTED + REFUSED)
def test_every_parser_agrees(text: str) -> None:
    results = {"ArrayMeta": _arraymeta(text), "sidecar": _sidecar(text)}
    if "(" not in text:  # migration rules state the shape separately
        results["rules"] = _rules(text)
    accepted = {k: v is not None for k, v in results.items()}
    expected = text in ACCEPTED
    assert accepted == dict.fromkeys(results, expected), results
    if expected:
        base = results["ArrayMeta"]
        assert base is not None
        for v in results.values():
            assert v is not None and v.base.newbyteorder("<") == base.base.newbyteorder("<")


@given(st.text(alphabet="<>|=?biufcSUVmMsnd[]0123468(),aolntgeyph ", max_size=12))
def test_arbitrary_text_same_verdict(text: str) -> None:
    verdicts = {_arraymeta(text) is None, _sidecar(text) is None}
    if "(" not in text:
        verdicts.add(_rules(text) is None)
    assert len(verdicts) == 1, text


@pytest.mark.parametrize("pytype", [int, float, complex, np.str_, np.bytes_, np.void])
def test_python_types_without_a_size_are_refused(pytype: Any) -> None:
    with pytest.raises(UnsupportedDtypeError, match="size"):
        ArrayMeta((2,), pytype)


def test_ambiguous_name_names_the_alternatives(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedDtypeError, match=r"explicit size.*float32"):
        arraystore.create(tmp_path / "a.dat", (3,), "float")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UnsupportedDtypeError, match="ambiguous"):
        arraystore.create(tmp_path / "a.dat", (3,), [("x", "<i4"), ("y", "float")])


def test_structured_and_numpy_objects_still_accepted() -> None:
    d = np.dtype([("a", "<i4"), ("b", [("c", ">f8", (2,))])])
    assert ArrayMeta((1,), d).dtype == d
    assert ArrayMeta((1,), [("a", "<i4"), ("b", [("c", ">f8", (2,))])]).dtype == d
    assert ArrayMeta((1,), np.float32).dtype == np.dtype("<f4")
    assert ArrayMeta((1,), bool).dtype == np.dtype("?")
