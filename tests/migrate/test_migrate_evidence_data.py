"""Weak evidence (file names, the little-endian default) is tested against the data before converting.

Files are written by numpy itself in the stated and the opposite layout; the data check
(``arraystore.migration.evidence_data``) must not flag correct readings of real-looking
data and must flag byte-swapped and wrong-kind readings of structured signals.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore.errors import MetadataError
from arraystore.migration import migrate, resolve
from arraystore.migration.evidence_data import DataContradictsEvidenceError
from arraystore.migration.rules import parse_rules
from arraystore.testing.signals import KINDS, make

STRUCTURED = ("sensor", "image", "counts")  # signals a swapped reading always breaks
DTYPES = ("int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64")
_TOKENS = {"int16": "int16", "uint16": "uint16", "int32": "int32", "uint32": "uint32", "int64": "int64",
           "uint64": "uint64", "float32": "float32", "float64": "float64"}


def _write(tmp: Path, data: np.ndarray, name: str) -> Path:
    path = tmp / name
    data.tofile(path)
    return path


@given(kind=st.sampled_from(KINDS), dtype=st.sampled_from(DTYPES), order=st.sampled_from("<>"),
       seed=st.integers(0, 2**16), n=st.integers(200, 40_000))
def test_correct_readings_are_not_flagged(tmp_path_factory: pytest.TempPathFactory, kind: str, dtype: str,
                                          order: str, seed: int, n: int) -> None:
    tmp = tmp_path_factory.mktemp("ok")
    dt = np.dtype(dtype).newbyteorder(order)
    name = f"scan_{_TOKENS[dtype]}_{'be' if order == '>' else 'le'}.dat"
    path = _write(tmp, make(kind, dt, n, seed).astype(dt), name)
    res = resolve(path)
    assert res.status == "resolved", res.error
    assert res.meta is not None and res.meta.dtype == dt


@given(kind=st.sampled_from(STRUCTURED), dtype=st.sampled_from(DTYPES), order=st.sampled_from("<>"),
       seed=st.integers(0, 2**16), n=st.integers(2_000, 40_000))
def test_byte_swapped_names_are_flagged(tmp_path_factory: pytest.TempPathFactory, kind: str, dtype: str,
                                        order: str, seed: int, n: int) -> None:
    tmp = tmp_path_factory.mktemp("swapped")
    true = np.dtype(dtype).newbyteorder(order)
    claimed = "le" if order == ">" else "be"  # the name states the other byte order
    path = _write(tmp, make(kind, true, n, seed).astype(true), f"scan_{_TOKENS[dtype]}_{claimed}.dat")
    res = resolve(path)
    assert res.status == "undetermined"
    assert isinstance(res.error, DataContradictsEvidenceError)
    assert res.candidates[0].dtype == true  # the most plausible reading is the true one
    assert "file name says" in str(res.error) and "score" in str(res.error)


@given(kind=st.sampled_from(STRUCTURED), size=st.sampled_from([4, 8]), seed=st.integers(0, 2**16))
def test_wrong_kind_names_are_flagged(tmp_path_factory: pytest.TempPathFactory, kind: str, size: int,
                                      seed: int) -> None:
    tmp = tmp_path_factory.mktemp("kind")
    true = np.dtype(f"<f{size}")
    path = _write(tmp, make(kind, true, 5_000, seed).astype(true), f"scan_int{8 * size}.dat")
    res = resolve(path)
    assert res.status == "undetermined"
    assert res.candidates[0].dtype == true


def test_the_issue_case_little_endian_bytes_named_big_endian(tmp_path: Path) -> None:
    data = (1000 * np.sin(np.linspace(0, 30, 20_000))).astype("<i2")
    src = tmp_path / "src"
    src.mkdir()
    _write(src, data, "trace_int16_be.dat")
    report = migrate(src, tmp_path / "dst", to="raw", workers=1)
    assert report.exit_code == 3
    (rec,) = report.by_status("undetermined")
    assert rec.resolution["error"]["type"] == "DataContradictsEvidenceError"
    assert "big-endian" in rec.resolution["error"]["message"]
    assert rec.resolution["candidates"][0]["dtype"] == "<i2"
    assert not list((tmp_path / "dst").glob("*.dat"))
    suggested = (tmp_path / "dst" / "rules-suggested.toml").read_text()
    assert 'dtype = "<i2"' in suggested
    summary = report.summary()
    assert "the data contradict" in summary


def test_strong_evidence_is_not_second_guessed(tmp_path: Path) -> None:
    """A rule stating dtype and byte order decides, even when the data look swapped."""
    data = (1000 * np.sin(np.linspace(0, 30, 20_000))).astype("<i2")
    src = tmp_path / "src"
    src.mkdir()
    _write(src, data, "trace_int16_be.dat")
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nglob = "*.dat"\ndtype = "int16"\nbyteorder = "big"\n')
    report = migrate(src, tmp_path / "dst", to="raw", workers=1, rules=rules)
    assert report.exit_code == 0, report.summary()
    with arraystore.open(tmp_path / "dst" / "trace_int16_be.dat", "r") as store:
        assert store.dtype == np.dtype(">i2")
    # and a sidecar stating the layout is not second-guessed either
    own = tmp_path / "own.dat"
    with arraystore.create(own, data.shape, ">i2") as store:
        store[...] = data.byteswap().view(">i2")
    assert resolve(own).status == "resolved"


def test_default_byte_order_is_checked_for_json_dtypes(tmp_path: Path) -> None:
    """A legacy JSON stating only "float32" leaves the byte order to the default: big-endian data are caught."""
    data = (np.linspace(0, 1, 10_000) ** 2 * 300).astype(">f4")
    path = _write(tmp_path, data, "scan.dat")
    (tmp_path / "scan.json").write_text(json.dumps({"dtype": "float32", "shape": [10_000]}))
    res = resolve(path)
    assert res.status == "undetermined"
    assert "no source states the byte order" in str(res.error)
    assert res.candidates[0].dtype == np.dtype(">f4")


def _fill_in(template: str) -> str:
    """The template with each rule's first candidate uncommented, as a user fills it in."""
    lines = template.splitlines()
    for i, line in enumerate(lines):
        if (line.startswith("# dtype = ") or line.startswith("# shape = ")) and not line.startswith("#  "):
            lines[i] = line[2:]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("name", "data", "sidecar"), [
    ("trace_int16_be.dat", (1000 * np.sin(np.linspace(0, 30, 20_000))).astype("<i2"), None),
    ("ramp_f4_le.dat", np.linspace(0, 1, 4096).astype(">f4"), None),
    ("scan_int32.dat", (np.linspace(0, 1, 5_000) ** 2 * 300).astype("<f4"), None),
    ("scan.dat", (np.linspace(0, 1, 10_000) ** 2 * 300).astype(">f4"), {"dtype": "float32", "shape": [10_000]}),
], ids=["name-byteorder", "name-dtype-and-byteorder", "name-kind", "default-byteorder"])
def test_following_the_advice_migrates_the_file(tmp_path: Path, name: str, data: np.ndarray,
                                                 sidecar: dict[str, object] | None) -> None:
    """The suggested rule, filled in with the first candidate, converts the file as the data say.

    A rule stating a dtype or byte order the file name contradicts is a conflict unless it
    overrides the name, so the template and the error message must say ``override = true``
    exactly when the name states the contradicted reading.
    """
    src = tmp_path / "src"
    src.mkdir()
    _write(src, data, name)
    if sidecar is not None:
        (src / (Path(name).stem + ".json")).write_text(json.dumps(sidecar))
    report = migrate(src, tmp_path / "dst", to="raw", workers=1)
    assert report.exit_code == 3, report.summary()
    (rec,) = report.by_status("undetermined")
    message = rec.resolution["error"]["message"]
    assert ("override = true" in message) == (sidecar is None)
    template = (tmp_path / "dst" / "rules-suggested.toml").read_text()
    with pytest.raises(MetadataError, match=r"states nothing|at least one"):
        parse_rules(template, "rules-suggested.toml")
    rules = tmp_path / "rules.toml"
    rules.write_text(_fill_in(template))
    report = migrate(src, tmp_path / "dst", to="raw", workers=1, rules=rules)
    assert report.exit_code == 0, report.summary()
    with arraystore.open(tmp_path / "dst" / name, "r") as store:
        assert store.dtype == data.dtype
        np.testing.assert_array_equal(store[...], data)
