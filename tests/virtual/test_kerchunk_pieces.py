"""The reference file put together from arrays encoded one by one (as worker processes encode them) is the
document ``json.dumps(references(...))`` gives, byte for byte: groups, consolidated metadata, references, copies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from arraystore.meta import ArrayMeta
from arraystore.virtual.fallback import CopiedArray
from arraystore.virtual.kerchunk import document_text, encode_array, references, write_kerchunk
from arraystore.virtual.refs import VirtualArray

NAMES = st.text(alphabet=st.sampled_from(list('ab_."\\é\u2603\U0001f600 ')), min_size=1, max_size=4).filter(
    lambda s: s not in (".", "..")
)
ATTRS = st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.floats(allow_nan=False)),
                        max_size=3)


@st.composite
def arrays(draw: st.DrawFn) -> VirtualArray:
    parts = draw(st.lists(NAMES, min_size=1, max_size=3))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=1, max_size=3)))
    dtype = draw(st.sampled_from(["<f4", ">i2", "u1", "<c8", "|b1"]))
    order = draw(st.sampled_from("CF"))
    path = "/".join(parts)
    return VirtualArray.from_meta(path, path, ArrayMeta(shape, dtype, order=order), draw(st.integers(0, 100)),
                                  size=1000, mtime_ns=draw(st.integers(0, 2**62)),
                                  checksum=draw(st.none() | st.just({"algorithm": "xxh3_128", "value": "ab"})),
                                  chunk_bytes=draw(st.integers(1, 64)), json_attrs=draw(ATTRS))


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> CopiedArray:
    folder = tmp_path_factory.mktemp("copies") / "x" / "copied.mha"
    z = zarr.create_array(folder, shape=(4, 2), chunks=(2, 2), dtype="<u2", zarr_format=3)
    z[...] = np.arange(8, dtype="<u2").reshape(4, 2)
    return CopiedArray("x/copied.mha", folder, {"source": "x/copied.mha", "reason": "compressed ü"})


def _unique(items: list[VirtualArray]) -> list[VirtualArray]:
    """Arrays as a migration gives them: distinct paths, none of them a group of another, sorted."""
    out: dict[str, VirtualArray] = {}
    for arr in items:
        if not any(p == arr.path or p.startswith(arr.path + "/") or arr.path.startswith(p + "/") for p in out):
            out[arr.path] = arr
    return [out[k] for k in sorted(out)]


@settings(max_examples=60, deadline=None)
@given(items=st.lists(arrays(), max_size=6), attrs=st.none() | ATTRS, with_copy=st.booleans())
def test_pieces_make_the_document_byte_for_byte(items: list[VirtualArray], attrs: dict[str, Any] | None,
                                                with_copy: bool, copy: CopiedArray) -> None:
    items = [a for a in _unique(items) if not (with_copy and a.path.split("/")[0] == "x")]
    copies = [copy] if with_copy else []
    expected = json.dumps(references(items, "/archive", attrs, copies, "/dst/virtual.copies"), separators=(",", ":"))
    templates: dict[tuple[Any, ...], dict[str, Any]] = {}
    got = document_text([encode_array(a, templates) for a in items], "/archive", attrs, copies, "/dst/virtual.copies")
    assert got == expected


def test_written_file_mixes_encoded_and_plain_arrays(tmp_path: Path) -> None:
    items = [VirtualArray.from_meta(p, p, ArrayMeta((8, 3), "<f4"), 16, size=112, mtime_ns=1, chunk_bytes=24,
                                    json_attrs={"note": p}) for p in ("a/b.dat", "a/c.dat", "d.dat")]
    write_kerchunk(tmp_path / "plain.json", items, tmp_path)
    write_kerchunk(tmp_path / "mixed.json", [encode_array(items[0], {}), items[1], encode_array(items[2], {})],
                   tmp_path)
    assert (tmp_path / "plain.json").read_bytes() == (tmp_path / "mixed.json").read_bytes()
    assert json.loads((tmp_path / "plain.json").read_bytes()) == json.loads(
        json.dumps(references(items, tmp_path)))
