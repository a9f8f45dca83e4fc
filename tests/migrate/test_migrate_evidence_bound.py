"""The data check's shortcut (``contradiction``) decides as the full check (``check_reading``) does.

``contradiction`` skips scoring an alternative reading in full when a cheap lower bound of
its score already rules it out; the decision, and the check reported when it is
contradicted, must be exactly those of ``check_reading`` on every kind of data, including
random bits and readings that the data do contradict.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arraystore.migration.evidence_data import (
    _SLACK,
    WINDOW_BYTES,
    _lower_bound,
    _upper_bound,
    check_reading,
    contradiction,
    sample,
    score,
)
from arraystore.testing.signals import KINDS, make

DTYPES = ("int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "float32", "float64", "complex64")


def _readings(dtype: np.dtype) -> list[np.dtype]:
    """The true dtype, its other byte order, and the other kind of the same size (when there is one)."""
    out = [dtype, dtype.newbyteorder("<" if dtype.str[0] == ">" else ">")]
    if dtype.kind in "iuf" and dtype.itemsize in (4, 8):
        other = np.dtype(f"{dtype.str[0]}{'i' if dtype.kind == 'f' else 'f'}{dtype.itemsize}")
        out += [other, other.newbyteorder("<" if other.str[0] == ">" else ">")]
    return out


@given(kind=st.sampled_from(KINDS), dtype=st.sampled_from(DTYPES), order=st.sampled_from("<>"),
       seed=st.integers(0, 2**16), n=st.integers(1, 40_000), offset=st.sampled_from([0, 16]),
       weak=st.sampled_from([(True, True), (True, False), (False, True)]))
def test_same_decision_and_check_as_the_full_check(
    tmp_path_factory: pytest.TempPathFactory, kind: str, dtype: str, order: str, seed: int, n: int, offset: int,
    weak: tuple[bool, bool],
) -> None:
    tmp = tmp_path_factory.mktemp("bound")
    true = np.dtype(dtype).newbyteorder(order)
    path = tmp / "x.dat"
    path.write_bytes(b"h" * offset + make(kind, np.dtype(dtype).newbyteorder(order), n, seed).astype(true).tobytes())
    nbytes = n * true.itemsize
    byteorder_weak, dtype_weak = weak
    for read_as in _readings(true):
        full = check_reading(path, read_as, offset, nbytes, byteorder_weak=byteorder_weak, dtype_weak=dtype_weak)
        got, whole = contradiction(path, read_as, offset, nbytes, byteorder_weak=byteorder_weak, dtype_weak=dtype_weak)
        assert got == (full if full is not None and full.contradicted else None)
        if whole is not None:  # only ever the exact data, and only when the sample read them all
            assert whole == path.read_bytes()[offset:]
            assert nbytes <= WINDOW_BYTES


@given(raw=st.binary(min_size=0, max_size=3000), split=st.integers(0, 3000),
       dtype=st.sampled_from(["<i2", ">u2", "<i4", ">u4", "<i8", ">u8", "<f2", ">f4", "<f8", ">c8"]),
       above=st.floats(-0.1, 0.6))
def test_the_lower_bound_is_one(raw: bytes, split: int, dtype: str, above: float) -> None:
    windows = [raw[:split], raw[split:]]
    dt = np.dtype(dtype)
    assert _lower_bound(windows, dt, above) <= score(windows, dt).score + _SLACK


@pytest.mark.parametrize("kind", ["sensor", "image", "counts"])
@pytest.mark.parametrize("dtype", ["<i2", ">u2", "<i4", ">i4", "<f4", ">f4", "<f8", ">i8"])
def test_contradicted_readings_are_reported_as_by_the_full_check(tmp_path: Path, kind: str, dtype: str) -> None:
    """Byte-swapped and wrong-kind readings of structured signals: both checks flag them, with one report."""
    true = np.dtype(dtype)
    path = tmp_path / "x.dat"
    make(kind, true, 20_000, 7).astype(true).tofile(path)
    flagged = 0
    for read_as in _readings(true)[1:]:
        full = check_reading(path, read_as, 0, path.stat().st_size, byteorder_weak=True, dtype_weak=True)
        got, _whole = contradiction(path, read_as, 0, path.stat().st_size, byteorder_weak=True, dtype_weak=True)
        assert full is not None
        assert got == (full if full.contradicted else None)
        flagged += got is not None
    assert flagged  # at least one wrong reading is caught: the shortcut's full-scoring branch is exercised


def test_whole_data_only_when_one_window_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "x.dat"
    small = make("sensor", np.dtype("<f4"), 1000, 1).astype("<f4")
    path.write_bytes(b"\0" * 8 + small.tobytes())
    _check, whole = contradiction(path, np.dtype("<f4"), 8, small.nbytes, byteorder_weak=True, dtype_weak=True)
    assert whole == small.tobytes()
    big = make("sensor", np.dtype("<f4"), WINDOW_BYTES // 4 + 1, 1).astype("<f4")
    big.tofile(path)
    _check, whole = contradiction(path, np.dtype("<f4"), 0, big.nbytes, byteorder_weak=True, dtype_weak=True)
    assert whole is None
    assert len(sample(path, 0, big.nbytes, 4)) > 1


@given(raw=st.binary(min_size=0, max_size=3000), split=st.integers(0, 3000),
       dtype=st.sampled_from(["<i2", ">u2", "<i4", ">u4", "<i8", ">u8", "<f2", ">f4", "<f8", ">c8"]),
       above=st.floats(-0.1, 0.6), part=st.integers(0, 800))
def test_the_partial_lower_and_the_upper_bound_are_bounds(raw: bytes, split: int, dtype: str, above: float,
                                                          part: int) -> None:
    windows = [raw[:split], raw[split:]]
    dt = np.dtype(dtype)
    exact = score(windows, dt).score
    assert _lower_bound(windows, dt, above, part) <= exact + _SLACK
    assert _upper_bound(windows, dt) + _SLACK >= exact


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["<i2", ">u2", "<i4", ">i4", "<f4", ">f4", "<f8", ">i8", "<u8", "<f2"])
def test_bounds_on_real_looking_signals(kind: str, dtype: str) -> None:
    dt = np.dtype(dtype)
    data = make(kind, dt, 30_000, 3).astype(dt).tobytes()
    windows = [data[:65536], data[65536:]]
    for read_as in _readings(dt):
        exact = score(windows, read_as).score
        assert _upper_bound(windows, read_as) + _SLACK >= exact
        for above in (0.0, 0.05, 0.1, 0.3, 0.5):
            assert _lower_bound(windows, read_as, above, 2048) <= exact + _SLACK
            assert _lower_bound(windows, read_as, above) <= exact + _SLACK


def _adversarial(dt: np.dtype, pool: str, n: int, seed: int) -> np.ndarray:
    """``n`` values of ``dt`` drawn from a hostile pool: NaN/inf mixes, denormals, one value repeated, alternating
    signs, the integer extremes, or those pools mixed with plain values."""
    rng = np.random.default_rng(seed)
    native = dt.newbyteorder("=")
    if native.kind in "fc":
        fi = np.finfo(native)
        pools = {
            "naninf": [np.nan, np.inf, -np.inf, 0.0, -0.0],
            "denormal": [fi.smallest_subnormal * k for k in (1, 2, 3, 1000)] + [0.0, -fi.smallest_subnormal],
            "equal": [1.5],
            "alternating": [1.0, -1.0],
            "extremes": [fi.max, -fi.max, fi.smallest_normal, fi.eps],
        }
    else:
        ii = np.iinfo(native)
        pools = {
            "naninf": [ii.min, ii.max, 0],
            "denormal": [0, 1, -1 if ii.min < 0 else 2],
            "equal": [ii.max // 3],
            "alternating": [ii.max, ii.min],
            "extremes": [ii.min, ii.max, ii.min + 1, ii.max - 1],
        }
    chosen = pools[pool.removesuffix("+real")]
    values = np.array(chosen, dtype=native) if native.kind in "iu" else np.array(chosen).astype(native)
    out = values[rng.integers(0, len(values), n)] if pool != "alternating" else np.resize(values, n)
    if pool.endswith("+real"):
        mask = rng.random(n) < 0.5
        out[mask] = make("sensor", native, n, seed)[mask].astype(native)
    return out.astype(dt)


POOLS = ["naninf", "denormal", "equal", "alternating", "extremes", "naninf+real", "denormal+real", "extremes+real"]


@given(pool=st.sampled_from(POOLS), dtype=st.sampled_from(DTYPES), order=st.sampled_from("<>"),
       seed=st.integers(0, 2**16), n=st.integers(1, 20_000),
       weak=st.sampled_from([(True, True), (True, False), (False, True)]))
def test_same_decision_on_adversarial_value_distributions(
    tmp_path_factory: pytest.TempPathFactory, pool: str, dtype: str, order: str, seed: int, n: int,
    weak: tuple[bool, bool],
) -> None:
    """NaN/inf mixes, denormals, all-equal values, alternating signs and the integer extremes (alone or mixed with a
    real-looking signal): the shortcut decides and reports as the full check, and its bounds are bounds."""
    true = np.dtype(dtype).newbyteorder(order)
    data = _adversarial(true, pool, n, seed).tobytes()
    path = tmp_path_factory.mktemp("adversarial") / "x.dat"
    path.write_bytes(data)
    byteorder_weak, dtype_weak = weak
    windows = [data[:65536], data[65536:]]
    for read_as in _readings(true):
        full = check_reading(path, read_as, 0, len(data), byteorder_weak=byteorder_weak, dtype_weak=dtype_weak)
        got, _whole = contradiction(path, read_as, 0, len(data), byteorder_weak=byteorder_weak, dtype_weak=dtype_weak)
        assert got == (full if full is not None and full.contradicted else None)
        exact = score(windows, read_as).score
        assert _upper_bound(windows, read_as) + _SLACK >= exact
        for above in (0.0, 0.1, 0.5):
            assert _lower_bound(windows, read_as, above) <= exact + _SLACK
            assert _lower_bound(windows, read_as, above, 1024) <= exact + _SLACK
