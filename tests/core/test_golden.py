"""Golden files: every version of arraystore must read what earlier versions wrote.

The files under tests/fixtures/ were written once and are never regenerated; a failure
here means a format change broke old files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import arraystore

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

GOLDEN = [
    (
        "raw/v1_be_int16_3x4.dat",
        np.arange(12, dtype=">i2").reshape(3, 4),
        "C",
        {"units": "counts", "note": "golden v1"},
    ),
    ("raw/v1_f8_fortran_2x3.dat", np.arange(6, dtype="<f8").reshape(2, 3), "F", {}),
    (
        "raw/v1_struct_2.dat",
        np.array([(1, 1.5, b"ab"), (2, -0.0, b"cd")], dtype=[("i", "<u2"), ("x", ">f4"), ("s", "S2")]),
        "C",
        {},
    ),
    ("npy/v1_f4_2x2.npy", np.array([[1, 2], [3, 4]], "<f4"), "C", None),
    ("npy/v3_unicode_field.npy", np.array([(7,)], dtype=[("ü", "<i4")]), "C", None),
]


@pytest.mark.parametrize(("name", "expected", "order", "attrs"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_file_reads(name: str, expected: np.ndarray, order: str, attrs: dict | None) -> None:
    with arraystore.open(FIXTURES / name) as s:
        assert s.dtype == expected.dtype
        assert s.dtype.descr == expected.dtype.descr
        assert s.shape == expected.shape
        assert s.order == order
        assert s[...].tobytes() == expected.tobytes()
        if attrs is not None:
            assert dict(s.attrs) == attrs
