"""Arbitrary bytes or JSON in legacy metadata files: a Resolution, never an untyped exception."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arraystore.errors import ArrayStoreError
from arraystore.migration import Resolution, parse_filename, parse_rules, resolve

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
    | st.sampled_from(["float32", "<f4", ">u2", "int", "F", "C", "big", "little", "S3", "M8[s]"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.sampled_from(["dtype", "shape", "order", "fortran_order", "offset", "header_bytes", "byteorder",
                         "endian", "attrs", "files", "file", "a.dat", "format", "version", "x"]),
        inner, max_size=6),
    max_leaves=12,
)
SIDECARS = st.sampled_from(["a_meta.json", "a.json", "a.dat.json", "meta.json", "manifest.json"])
FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check(folder: Path) -> None:
    try:
        r = resolve(folder / "a.dat", root=folder)
    except ArrayStoreError:
        return
    assert isinstance(r, Resolution)
    assert r.status in ("resolved", "undetermined", "conflict", "invalid")
    if r.status in ("conflict", "invalid"):
        assert isinstance(r.error, ArrayStoreError)
    json.dumps(r.to_dict())


@FUZZ
@given(name=SIDECARS, content=st.binary(max_size=64), size=st.integers(0, 64))
def test_arbitrary_bytes(tmp_path_factory, name, content, size):
    folder = tmp_path_factory.mktemp("b")
    (folder / "a.dat").write_bytes(b"\x00" * size)
    (folder / name).write_bytes(content)
    _check(folder)


@FUZZ
@given(name=SIDECARS, obj=JSON, size=st.integers(0, 64))
def test_arbitrary_json(tmp_path_factory, name, obj, size):
    folder = tmp_path_factory.mktemp("j")
    (folder / "a.dat").write_bytes(b"\x00" * size)
    if name in ("meta.json", "manifest.json"):
        obj = {"a.dat": obj}
    (folder / name).write_text(json.dumps(obj))
    _check(folder)


@FUZZ
@given(name=st.text(min_size=1, max_size=30))
def test_arbitrary_file_names(name):
    try:
        parse_filename(name)
    except ArrayStoreError:
        pass


@FUZZ
@given(text=st.text(max_size=200))
def test_arbitrary_rules_text(text):
    try:
        parse_rules(text)
    except ArrayStoreError:
        pass
