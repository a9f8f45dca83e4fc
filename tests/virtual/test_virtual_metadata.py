"""The virtual store's metadata, built the fast way, says exactly what the plain way says.

The kerchunk writer encodes each node once and puts the root's consolidated metadata together
from the same text; the layouts of an archive's files are built once and shared. Whatever the
hierarchy (nested folders, several layouts, Fortran order, arrays copied by the fallback), the
documents must parse to what :func:`hierarchy_metadata` builds, and attrs holding numpy values
(which a sidecar may) must survive the trip: encoded for Zarr readers, decoded by arraystore.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore.meta import ArrayMeta
from arraystore.migration import migrate
from arraystore.virtual.refs import VirtualArray, hierarchy_json, hierarchy_metadata, layout_of

DTYPES = ["<f4", ">f8", "<i2", "|u1", ">c8", "<M8[s]"]


@st.composite
def hierarchies(draw: st.DrawFn) -> list[VirtualArray]:
    names = draw(st.lists(st.from_regex(r"[a-c](/[a-c]){0,3}", fullmatch=True), min_size=1, max_size=8, unique=True))
    names = [n + ".dat" for n in names]  # a path is an array, never also a group
    arrays = []
    for name in names:
        shape = tuple(draw(st.lists(st.integers(1, 6), min_size=0, max_size=3)))
        meta = ArrayMeta(shape, draw(st.sampled_from(DTYPES)), draw(st.sampled_from(["C", "F"])))
        attrs = draw(st.sampled_from([{}, {"axes": ["y", "x", "band"][: len(shape)], "unit": "K"}, {"é": [1, None]}]))
        arrays.append(
            VirtualArray.from_meta(
                name, name, meta, draw(st.integers(0, 99)), size=7, mtime_ns=11,
                chunk_bytes=draw(st.sampled_from([1, 16, 1 << 20])), json_attrs=attrs,
            )
        )
    return arrays


@given(hierarchies(), st.sampled_from([None, {"arraystore.virtual_migration": {"files": 3}}]), st.booleans())
def test_hierarchy_json_is_the_consolidated_hierarchy(arrays: list[VirtualArray], attrs, with_copy: bool) -> None:
    extra = {"copies/z.dat": {"zarr_format": 3, "node_type": "array", "attributes": {"k": 1}}} if with_copy else None
    plain = hierarchy_metadata(arrays, attrs, consolidated=True, extra=extra)
    text = hierarchy_json(arrays, attrs, extra=extra)
    assert set(text) == set(plain)
    for key, doc in plain.items():
        assert json.loads(text[key]) == doc, key
    ordered = list(json.loads(text["zarr.json"])["consolidated_metadata"]["metadata"])
    assert ordered == list(plain["zarr.json"]["consolidated_metadata"]["metadata"])  # parents before children


@pytest.mark.parametrize("d", [
    {"shape": [3, 4], "dtype": "<f4", "order": "F", "attrs": {"a": 1}},
    {"shape": [], "dtype": ">i8"},
    {"shape": [2], "dtype": [["a", "<i4"], ["b", "<f8"]], "order": "C"},
])
def test_layout_of_is_the_layout_without_attrs(d: dict) -> None:
    expected = ArrayMeta.from_dict({**d, "attrs": {}})
    assert layout_of(d) == expected
    assert layout_of(d) is layout_of(dict(d)) or not isinstance(d["dtype"], str)  # one object per layout


def test_layout_of_refuses_what_arraymeta_refuses() -> None:
    with pytest.raises(arraystore.errors.MetadataError):
        layout_of({"shape": [-1], "dtype": "<f4"})


def test_numpy_attrs_survive_a_virtual_migration(tmp_path: Path) -> None:
    """A sidecar's numpy attrs: encoded for Zarr readers, decoded again by arraystore (once a TypeError)."""
    src = tmp_path / "src"
    src.mkdir()
    attrs = {"scale": np.float32(2.5), "lut": np.arange(3, dtype="<u2"), "name": "scan"}
    with arraystore.create(src / "a.dat", shape=(4,), dtype="<f4", backend="raw", attrs=attrs) as st_:
        st_[...] = 1.5
    for fmt, store in (("kerchunk", "virtual.json"), ("icechunk", "virtual.icechunk")):
        report = migrate(src, tmp_path / fmt, virtual=True, format=fmt)
        assert [r.status for r in report.records] == ["converted"], report.records
        with arraystore.open(f"{tmp_path / fmt / store}::/a.dat") as a:
            assert a.attrs["name"] == "scan"
            assert a.attrs["scale"] == np.float32(2.5) and a.attrs["scale"].dtype == np.float32
            np.testing.assert_array_equal(a.attrs["lut"], attrs["lut"])
            assert a.attrs["lut"].dtype == np.dtype("<u2")
            np.testing.assert_array_equal(a[...], np.full(4, 1.5, "<f4"))
    doc = json.loads(json.loads((tmp_path / "kerchunk" / "virtual.json").read_text())["refs"]["a.dat/zarr.json"])
    assert doc["attributes"]["scale"] == {"$numpy": {"dtype": "<f4", "shape": None, "data": "AAAgQA=="}}
