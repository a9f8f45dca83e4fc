"""The resolver's string fast paths give what pathlib gives, and keep every link and fence rule.

Resolving a file joins, splits and compares paths a dozen times; the usual cases are done on
strings (a bare file name, a file that is no link under folders resolved once). Each is checked
against pathlib on generated names, and the unusual cases (links in and out, folders and FIFOs
named as evidence) against the rules they must keep.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
from pathlib import Path, PurePath

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore._dtypes import DtypeSyntaxError, _parse_dtype_text, parse_dtype_text
from arraystore.errors import ArrayNotFoundError, UnsafeInputError
from arraystore.migration import migrate
from arraystore.migration._realdirs import GC_THRESHOLD, fewer_collections, remembered
from arraystore.migration.filenames import _stem
from arraystore.migration.legacy_json import legacy_sidecar_names
from arraystore.migration.resolve import _inside, resolve

NAMES = st.text(st.sampled_from("ab._-/\\x"), max_size=12)


@given(NAMES)
def test_stem_is_pathlibs(name: str) -> None:
    assert _stem(name) == PurePath(name).stem


@given(NAMES.filter(lambda n: "/" not in n and n not in ("", ".", "..")))
def test_legacy_sidecar_names_are_pathlibs(name: str) -> None:
    p = Path("/archive") / name
    assert legacy_sidecar_names(name) == [p.stem + "_meta.json", p.stem + ".json", p.name + ".json"]


@given(st.lists(st.sampled_from(["a", "b", "ab", ".x"]), max_size=4), st.lists(st.sampled_from(["a", "b", "c"]), max_size=4))
def test_inside_is_relative_to(base: list[str], rest: list[str]) -> None:
    b, r = PurePath("/", *base), PurePath("/", *base, *rest)
    for real in (r, PurePath("/", *rest), PurePath(str(b) + "x", *rest)):  # below, elsewhere, a longer sibling
        try:
            want: str | None = real.relative_to(b).as_posix()
        except ValueError:
            want = None
        assert _inside(str(real), str(b)) == (None if want == "." else want)


@pytest.mark.parametrize("text", ["<f4", " >u2 ", "float32", "(2,3)<i2", " " * 100 + "<i8", "M8[ns]"])
def test_remembered_dtype_texts_parse_as_every_time(text: str) -> None:
    assert parse_dtype_text(text) == _parse_dtype_text(text) == parse_dtype_text(text)


@pytest.mark.parametrize("text", ["float", "<f3", "x" * 100])
def test_refused_dtype_texts_are_refused_every_time(text: str) -> None:
    for _ in range(2):
        with pytest.raises(DtypeSyntaxError):
            parse_dtype_text(text)


def test_evidence_beside_the_data_keeps_the_link_rules(tmp_path: Path) -> None:
    root, outside = tmp_path / "src", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    data = np.arange(8, dtype="<f4")
    with arraystore.create(outside / "o.dat", shape=(8,), dtype="<f4", backend="raw") as out:
        out[...] = data
    shutil.copy(outside / "o.dat", root / "a.dat")
    (root / "a.dat.json").symlink_to(outside / "o.dat.json")  # own sidecar linked in from outside: refused
    data.tofile(root / "b.dat")
    (outside / "b.json").write_text('{"dtype": "<f4"}')
    (root / "b.json").symlink_to(outside / "b.json")  # legacy sidecar linked in from outside: refused
    data.tofile(root / "c.dat")
    (root / "real.json").write_text('{"dtype": "<f4", "shape": [2, 4]}')
    (root / "c.json").symlink_to("real.json")  # a link inside: followed
    data.tofile(root / "d.dat")
    (root / "d.dat.json").mkdir()  # a folder named as a sidecar: no evidence
    data.tofile(root / "e.dat")
    os.mkfifo(root / "e_meta.json")  # a FIFO named as a sidecar: no evidence, never opened (would block)
    (root / "via").symlink_to(outside, target_is_directory=True)  # a folder of the archive leading out
    for block in (remembered, contextlib.nullcontext):  # folders remembered (a migration), or not
        with block():
            got = {n: resolve(root / n, root=root) for n in ("a.dat", "b.dat", "c.dat", "d.dat", "e.dat")}
            with pytest.raises(UnsafeInputError, match="outside"):
                resolve(root / "via" / "o.dat", root=root)
        for n in ("a.dat", "b.dat"):
            assert got[n].status == "invalid" and isinstance(got[n].error, UnsafeInputError), n
        assert got["c.dat"].status == "resolved" and got["c.dat"].meta.shape == (2, 4)  # type: ignore[union-attr]
        assert got["d.dat"].status == got["e.dat"].status == "undetermined"


def test_collector_thresholds_are_raised_inside_and_restored(tmp_path: Path) -> None:
    before = gc.get_threshold()
    with fewer_collections():
        inside = gc.get_threshold()
        with fewer_collections():
            assert gc.get_threshold() == inside
        assert gc.get_threshold() == inside
    assert inside[0] >= GC_THRESHOLD[0] and inside[1] >= GC_THRESHOLD[1] and gc.get_threshold() == before
    with pytest.raises(ArrayNotFoundError):
        migrate(tmp_path / "missing", tmp_path / "out")  # raises inside: restored all the same
    assert gc.get_threshold() == before
    gc.set_threshold(0)
    try:
        with fewer_collections():
            assert gc.get_threshold()[0] == 0  # a collector turned off stays off
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)
