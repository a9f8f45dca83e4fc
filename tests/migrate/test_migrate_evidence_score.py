"""The float scores of the evidence check, computed on the bits, equal the plain float formula (numpy oracle)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from arraystore.migration.evidence_data import score


def _oracle(windows: list[bytes], dtype: np.dtype[Any]) -> tuple[float, str]:
    """The module docstring's float score, written with float arithmetic: ``0.5 * bad + 0.5 * H / E``."""
    if dtype.kind == "c":
        dtype = np.dtype(f"{dtype.str[0]}f{dtype.itemsize // 2}")
    arrays = [np.frombuffer(w[: len(w) - len(w) % dtype.itemsize], dtype) for w in windows]
    x = np.concatenate(arrays)  # in native byte order
    if not x.size:
        return 0.0, "no values"
    with np.errstate(all="ignore"):
        a = np.abs(x.astype(np.float64))
        tiny = np.finfo(dtype).smallest_normal
        bad = ~np.isfinite(a) | ((a > 0) & (a < tiny)) | (a > 1e30) | ((a > 0) & (a < 1e-30))
    nonzero = a != 0
    if not nonzero.any():
        return 0.0, "all values are zero"
    ebits = {2: 5, 4: 8, 8: 11}[dtype.itemsize]
    bits = 8 * dtype.itemsize
    uint = np.dtype(f"u{dtype.itemsize}").newbyteorder(dtype.str[0])
    raw = np.concatenate([arr.view(uint) for arr in arrays]).astype(np.uint64)
    exponent = (raw[nonzero] >> np.uint64(bits - 1 - ebits)) & np.uint64((1 << ebits) - 1)
    _, counts = np.unique(exponent, return_counts=True)
    p = counts / counts.sum()
    h = float(-(p * np.log2(p)).sum())
    frac = float(bad[nonzero].mean())
    return 0.5 * frac + 0.5 * h / ebits, f"{frac:.0%}"


SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 1e30, -1e30, 1e-45, 5e-324, 6e-8, 65504.0, 1.0]
DTYPES = ["<f2", ">f2", "<f4", ">f4", "<f8", ">f8", "<c8", ">c16"]


@settings(max_examples=200, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    raw=st.binary(min_size=0, max_size=4096),
    special=st.lists(st.sampled_from(SPECIAL), max_size=64),
    split=st.integers(0, 4096),
)
def test_float_score_equals_the_float_formula(dtype: str, raw: bytes, special: list[float], split: int) -> None:
    dt = np.dtype(dtype)
    with np.errstate(all="ignore"):
        extra = np.array(special, dtype=dt).tobytes()
    data = raw + extra
    windows = [data[:split], data[split:]]  # several windows, one possibly empty or ragged
    got = score(windows, dt)
    want, frac = _oracle(windows, dt)
    assert got.score == want
    assert got.detail.startswith(frac)


def test_float_score_on_real_looking_data_and_its_byteswap() -> None:
    rng = np.random.default_rng(7)
    for dtype in ("<f4", ">f8", "<f2"):
        x = (rng.standard_normal(5000) * 100).astype(dtype)
        for dt in (np.dtype(dtype), np.dtype(dtype).newbyteorder()):
            windows = [x.tobytes()[:4000], x.tobytes()[4000:]]
            assert score(windows, dt).score == _oracle(windows, dt)[0]


def _int_oracle(windows: list[bytes], dtype: np.dtype[Any]) -> float:
    """The integer score as the module docstring writes it: ``mean(log2(1 + |x[i+1] - x[i]|)) / bits``."""
    arrays = [np.frombuffer(w[: len(w) - len(w) % dtype.itemsize], dtype) for w in windows]
    diffs = [np.abs(np.diff(a.astype(np.float64))) for a in arrays if a.size > 1]
    d = np.concatenate(diffs) if diffs else np.zeros(0)
    return (float(np.log2(1.0 + d).mean()) if d.size else 0.0) / (8 * dtype.itemsize)


INT_DTYPES = ["<i2", ">i2", "<u2", ">u2", "<i4", ">i4", "<u4", ">u4", "<i8", ">i8", "<u8", ">u8"]


@settings(max_examples=200, deadline=None)
@given(
    dtype=st.sampled_from(INT_DTYPES),
    raw=st.binary(min_size=0, max_size=4096),
    cuts=st.lists(st.integers(0, 4096), max_size=7),
)
def test_int_score_equals_the_formula_exactly(dtype: str, raw: bytes, cuts: list[int]) -> None:
    """Computed in place in a reused work array, the score is the formula's, bit for bit."""
    dt = np.dtype(dtype)
    bounds = [0, *sorted(cuts), len(raw)]
    windows = [raw[a:b] for a, b in itertools.pairwise(bounds)]  # 1-8 windows, some empty or ragged
    assert score(windows, dt).score == _int_oracle(windows, dt)


def test_int_score_after_larger_and_smaller_samples() -> None:
    """The work array kept from a larger sample does not leak into a smaller one's score."""
    rng = np.random.default_rng(3)
    big = [np.cumsum(rng.integers(-9, 10, 40000)).astype("<i4").tobytes() for _ in range(8)]
    small = [rng.integers(0, 2**31, 100).astype("<i4").tobytes()]
    for windows in (big, small, big[:1], small):
        for dt in (np.dtype("<i4"), np.dtype(">i4"), np.dtype("<i8")):
            assert score(windows, dt).score == _int_oracle(windows, dt)
