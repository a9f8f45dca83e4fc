"""Header-derived attrs are bounded; migration never reports ``converted`` for an output that does not open."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
import arraystore.sidecar
from arraystore._attr_bounds import LIMITS_KEY, MAX_TEXT_CHARS, MAX_TOTAL_BYTES, bound_attrs
from arraystore.dialects import detect
from arraystore.migration import migrate


def _envi_with_description(folder: Path, description: str) -> np.ndarray:
    envi = pytest.importorskip("spectral.io.envi", reason="spectral writes the reference ENVI files")
    folder.mkdir(parents=True, exist_ok=True)
    arr = np.arange(2 * 3 * 4, dtype="<i2").reshape(3, 4, 2)  # spectral: (lines, samples, bands)
    envi.save_image(
        str(folder / "scene.hdr"), arr, dtype=arr.dtype, interleave="bsq", ext=".img", force=True,
        metadata={"description": description},
    )
    return arr


def test_envi_megabyte_description_is_bounded_and_migrates_once(tmp_path: Path) -> None:
    desc = "\x01é" * 340_000  # just under the 1 MiB header cap; JSON-escaped it grows about fourfold
    _envi_with_description(tmp_path / "src", desc)
    parsed = detect(tmp_path / "src" / "scene.hdr")
    assert parsed is not None
    kept = parsed.meta.attrs["description"]
    assert kept.startswith(desc[:MAX_TEXT_CHARS].strip()[:100]) and "truncated by arraystore" in kept
    assert parsed.meta.attrs[LIMITS_KEY]["truncated"] == ["description"]
    dst = tmp_path / "dst"
    report = migrate(tmp_path / "src", dst, workers=1)
    assert [r.status for r in report.records] == ["converted"]
    meta_bytes = sum(p.stat().st_size for p in (dst / "scene.zarr").rglob("zarr.json"))
    assert meta_bytes < 4 * 1024 * 1024
    with arraystore.open(dst / "scene.zarr") as s:
        assert "truncated by arraystore" in s.attrs["description"]
    again = migrate(tmp_path / "src", dst, workers=1)
    assert [r.status for r in again.records] == ["skipped"]


def test_output_that_does_not_reopen_is_failed_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _envi_with_description(tmp_path / "src", "d" * 20_000)
    # the destination sidecar cap below what this header's attrs need: the written output cannot reopen
    monkeypatch.setattr(arraystore.sidecar, "MAX_SIDECAR_BYTES", 16 * 1024)
    dst = tmp_path / "dst"
    report = migrate(tmp_path / "src", dst, to="raw", workers=1)
    (rec,) = report.records
    assert rec.status == "failed", rec
    assert rec.error is not None and "16,384" in rec.error["message"]
    assert not (dst / "scene.dat").exists() and not (dst / "scene.dat.json").exists()
    lines = [json.loads(x) for x in (dst / "migration.jsonl").read_text().splitlines()]
    assert [x["status"] for x in lines] == ["failed"]


values = st.recursive(
    st.none() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=10,
)


@given(attrs=st.dictionaries(st.text(max_size=10), values, max_size=8))
def test_small_attrs_are_kept_exactly(attrs: dict) -> None:
    assert bound_attrs(attrs) == attrs


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=3 * MAX_TEXT_CHARS), min_size=1, max_size=20),
    char=st.sampled_from(["a", "é", "\x01", '"']),
)
def test_large_attrs_fit_the_total_and_say_what_was_cut(sizes: list[int], char: str) -> None:
    attrs = {f"k{i}": char * n for i, n in enumerate(sizes)}
    attrs["list"] = list(range(100_000))
    out = bound_attrs(attrs)
    limits = out.pop(LIMITS_KEY, {"truncated": [], "dropped": []})
    assert len(json.dumps(out)) <= MAX_TOTAL_BYTES
    assert "list" in limits["dropped"]
    for key, value in attrs.items():
        if key in limits["dropped"]:
            assert key not in out
        elif key in limits["truncated"]:
            assert out[key].startswith(value[:MAX_TEXT_CHARS]) and "truncated by arraystore" in out[key]
        else:
            assert out[key] == value
