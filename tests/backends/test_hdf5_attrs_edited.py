"""Attributes another tool (h5py, HDFView) edits natively after arraystore wrote them are what arraystore reads."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import arraystore

h5py = pytest.importorskip("h5py", reason="needs h5py to edit the attributes as another tool would")


def _written(tmp_path: Path, **create: object) -> Path:
    p = tmp_path / "run.h5"
    attrs = {"units": "K", "scale": 0.5, "n": 3, "ok": True, "nan": math.nan, "lst": [1, 2],
             "gain": np.float32(2.0)}
    with arraystore.create(f"{p}::data", (3, 4), "<f4", attrs=attrs, **create):  # type: ignore[arg-type]
        pass
    return p


@pytest.mark.parametrize("create", [{}, {"dimension_names": ("t", "y")}])
def test_unedited_attrs_round_trip_exactly(tmp_path: Path, create: dict[str, object]) -> None:
    p = _written(tmp_path, **create)
    attrs = dict(arraystore.open(f"{p}::data").attrs)
    assert set(attrs) == {"units", "scale", "n", "ok", "nan", "lst", "gain"}  # no dimension-scale bookkeeping
    assert type(attrs["gain"]) is np.float32 and math.isnan(attrs["nan"]) and attrs["ok"] is True


def test_native_edits_added_and_changed_are_seen(tmp_path: Path) -> None:
    p = _written(tmp_path)
    with h5py.File(p, "r+") as f:
        f["data"].attrs["units"] = "degC"
        f["data"].attrs["n"] = 4
        f["data"].attrs["by_h5py"] = np.arange(3)
    with arraystore.open(f"{p}::data", mode="r+") as s:
        assert s.attrs["units"] == "degC" and s.attrs["n"] == 4 and s.attrs["by_h5py"] == [0, 1, 2]
        assert s.attrs["lst"] == [1, 2] and type(s.attrs["gain"]) is np.float32  # JSON-only values kept
        s.attrs["scale"] = 0.25
    attrs = dict(arraystore.open(f"{p}::data").attrs)
    assert (attrs["units"], attrs["scale"], attrs["by_h5py"]) == ("degC", 0.25, [0, 1, 2])
    with h5py.File(p, "r") as f:
        assert f["data"].attrs["units"] == "degC" and f["data"].attrs["scale"] == 0.25
