"""Test weakly evidenced layouts against the data itself.

A file name (``scan_int16_be.dat``) or a default (little-endian when nothing states a
byte order) is weak evidence: sizes cannot tell ``>i2`` from ``<i2``, nor ``float32``
from ``int32``. Before such a reading is converted, a bounded sample of the file is read
(up to :data:`WINDOWS` evenly spaced windows of :data:`WINDOW_BYTES`, with ``os.pread``)
and each plausible reading of it is scored:

* integer readings by the mean number of bits of the first differences,
  ``mean(log2(1 + |x[i+1] - x[i]|))``, over the item's width in bits. Real signals (smooth
  traces, images, counts, small noise) change by little from one value to the next;
  read in the wrong byte order, their noisy low byte becomes the high byte and the
  differences span the whole range.
* float readings by ``0.5 * bad + 0.5 * H / E`` over the non-zero values: ``bad`` is the
  fraction that are NaN, infinite, subnormal, or outside ``[1e-30, 1e30]`` in magnitude;
  ``H`` is the entropy (bits) of their exponent field and ``E`` its width. Real data
  use a few exponents; swapped bytes put mantissa noise in the exponent.

Each score is between 0 (very regular) and about 1 (random bits). The chosen reading is
*contradicted* when another reading is itself plausible (scores at most :data:`PLAUSIBLE`)
and scores either at least :data:`MARGIN` lower, or (the other byte order only) at most
:data:`RATIO` times the chosen score and :data:`MIN_GAP` lower (very quiet signals). Random bits score high in every
reading and are never flagged. The alternatives are the
other byte order when the byte order is weak, and the other kind of the same size
(``int32``/``uint32`` <-> ``float32``, ``int64``/``uint64`` <-> ``float64``) when the dtype
is weak. The false-alarm and miss rates on generated real-looking data are measured by
``tools/bench_evidence.py`` and listed in docs/migration.md.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataContradictsEvidenceError
from .evidence import dtype_label

__all__ = ["MARGIN", "MIN_GAP", "PLAUSIBLE", "RATIO", "WINDOWS", "WINDOW_BYTES", "DataCheck", "DataContradictsEvidenceError", "Reading", "check_reading", "contradiction", "sample", "score"]

#: Windows read from a file, evenly spaced from its start to its end.
WINDOWS = 8
#: Bytes per window.
WINDOW_BYTES = 64 * 1024
#: How much lower another reading must score for the chosen one to count as contradicted.
MARGIN = 0.2
#: The better reading must also score at most this: random bits are implausible in every reading.
PLAUSIBLE = 0.55
#: Or: the other reading scores at most this fraction of the chosen one (and :data:`MIN_GAP` lower);
#: catches signals so quiet that both scores are small.
RATIO = 0.25
MIN_GAP = 0.05
#: Fewer values than this tell nothing: the reading is not tested.
MIN_VALUES = 64


@dataclass(frozen=True)
class Reading:
    """One interpretation of the sampled bytes and its score (lower is more plausible)."""

    dtype: np.dtype[Any]
    score: float
    detail: str

    def describe(self) -> str:
        return f"as {dtype_label(self.dtype)}: score {self.score:.2f} ({self.detail})"


@dataclass(frozen=True)
class DataCheck:
    """The outcome of testing a reading against the data: the chosen one first, then the alternatives."""

    chosen: Reading
    alternatives: tuple[Reading, ...]
    values: int

    @property
    def best(self) -> Reading:
        return min((self.chosen, *self.alternatives), key=lambda r: r.score)

    @property
    def contradicted(self) -> bool:
        best, chosen = self.best, self.chosen.score
        if best is self.chosen or best.score > PLAUSIBLE:
            return False
        if best.score <= chosen - MARGIN:
            return True
        same_kind = best.dtype.kind == self.chosen.dtype.kind  # scores of one kind compare by ratio
        return same_kind and best.score <= RATIO * chosen and best.score <= chosen - MIN_GAP

    def describe(self) -> str:
        readings = "; ".join(r.describe() for r in (self.chosen, *self.alternatives))
        return f"{self.values:,} sampled values, lower score = more plausible: {readings}"


def sample(path: str | os.PathLike[str], offset: int, nbytes: int, itemsize: int) -> list[bytes]:
    """Up to :data:`WINDOWS` windows of whole items from ``[offset, offset + nbytes)``, read with ``pread``."""
    items = nbytes // itemsize
    per = max(1, min(items, WINDOW_BYTES // itemsize))
    if items == 0:
        return []
    count = min(WINDOWS, math.ceil(items / per))
    starts = sorted({round(i * (items - per) / max(1, count - 1)) for i in range(count)})
    fd = os.open(path, os.O_RDONLY)
    try:
        return [os.pread(fd, per * itemsize, offset + s * itemsize) for s in starts]
    finally:
        os.close(fd)


def _entropy(values: np.ndarray[Any, Any], zeros: int = 0) -> float:
    """Entropy (bits) of small non-negative integers (exponent fields: at most 11 bits), ``zeros`` of
    the 0 values left out."""
    counts = np.bincount(values if values.dtype == np.intp else values.astype(np.intp))
    counts[0] -= zeros
    counts = counts[counts > 0]
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


@functools.cache
def _float_limits(itemsize: int) -> tuple[int, int, int, int]:
    """Magnitude bits of +inf, of the smallest normal, of the smallest value >= 1e-30 and of the largest <= 1e30."""
    f = np.dtype(f"f{itemsize}")
    u = np.dtype(f"u{itemsize}")
    with np.errstate(all="ignore"):
        lo = np.array(1e-30, f)
        if float(lo) < 1e-30:
            lo = np.nextafter(lo, np.array(np.inf, f))
        hi = np.array(1e30, f)
        if float(hi) > 1e30:
            hi = np.nextafter(hi, np.array(0, f))
    bits = [np.array(v, f).view(u) for v in (np.inf, np.finfo(f).smallest_normal, lo, hi)]
    return int(bits[0]), int(bits[1]), int(bits[2]), int(bits[3])


_SCRATCH = threading.local()


def _scratch(n: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A float64 work array of ``n`` values, reused by this thread's scores.

    The differences of a 64 KiB window are 128 KiB of float64: fresh arrays of that size are
    mapped and zero-filled by the allocator at every call (about 100 page faults per score).
    """
    buf: np.ndarray[Any, np.dtype[np.float64]] | None = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.size < n:
        buf = _SCRATCH.buf = np.empty(max(n, 1 << 14), np.float64)
    return buf[:n]


def _mean_diff_bits(arrays: list[np.ndarray[Any, Any]]) -> float | None:
    """``mean(log2(1 + |diff(a)|))`` over the first differences of every array (in float64), or None if none.

    The same operations on the same float64 values as ``np.log2(1.0 + np.abs(np.diff(a.astype(np.float64))))``
    concatenated, computed in place in one work array.
    """
    if not sum(a.size - 1 for a in arrays if a.size > 1):
        return None
    d = _diffs(arrays)
    np.add(d, 1.0, out=d)
    np.log2(d, out=d)
    return float(d.mean())


def _arrays(windows: list[bytes], dtype: np.dtype[Any]) -> tuple[np.dtype[Any], list[np.ndarray[Any, Any]]]:
    """The dtype a reading is scored as (a complex one as its float parts) and the windows' whole items."""
    if dtype.kind == "c":
        dtype = np.dtype(f"{dtype.str[0]}f{dtype.itemsize // 2}")
    return dtype, [np.frombuffer(w[: len(w) - len(w) % dtype.itemsize], dtype) for w in windows]


def _magnitudes(arrays: list[np.ndarray[Any, Any]], dtype: np.dtype[Any]) -> tuple[np.ndarray[Any, Any], int, int]:
    """The magnitude bits of float values (sign cleared), how many are non-zero and how many of those are bad
    (NaN or infinite, subnormal, below 1e-30 or above 1e30 in magnitude)."""
    # Judged on the bits (no float conversion): for IEEE floats the magnitude bits (sign
    # cleared) order as unsigned integers exactly as |x| does, NaN and infinity above all.
    bits = 8 * dtype.itemsize
    uint = np.dtype(f"u{dtype.itemsize}")
    views = [arr.view(uint.newbyteorder(dtype.str[0])) for arr in arrays]
    raw = (np.concatenate(views) if len(views) > 1 else views[0]).astype(uint, copy=False)
    mag = raw & ((1 << (bits - 1)) - 1)
    # Zeros read the same in every byte order: sparse data are judged by the rest. Rather than
    # selecting the non-zero values, zeros are counted and taken out of the counts below (a zero
    # is below the smallest normal and has exponent field 0): the same counts, no copy.
    nonzero = int(np.count_nonzero(mag))
    if not nonzero:
        return mag, 0, 0
    zeros = mag.size - nonzero
    _inf, normal, lo, hi = _float_limits(dtype.itemsize)
    # NaN or infinite, subnormal, below 1e-30 or above 1e30 in magnitude (inf > hi: "NaN or
    # infinite" is within "above 1e30"; the two ranges do not overlap)
    bad = int(np.count_nonzero(mag < max(normal, lo))) - zeros + int(np.count_nonzero(mag > hi))
    return mag, nonzero, bad


def score(windows: list[bytes], dtype: np.dtype[Any]) -> Reading:
    """Score the windows read as ``dtype`` (see the module docstring)."""
    dtype, arrays = _arrays(windows, dtype)
    bits = 8 * dtype.itemsize
    if dtype.kind in "iu":
        mean_bits = _mean_diff_bits(arrays) or 0.0
        return Reading(dtype, mean_bits / bits, f"first differences need {mean_bits:.1f} of {bits} bits")
    if not arrays or not sum(a.size for a in arrays):
        return Reading(dtype, 0.0, "no values")
    mag, nonzero, bad = _magnitudes(arrays, dtype)
    if not nonzero:
        return Reading(dtype, 0.0, "all values are zero")
    zeros = mag.size - nonzero
    ebits = {2: 5, 4: 8, 8: 11}[dtype.itemsize]
    exponent = _scratch(mag.size).view(np.intp)[: mag.size]
    np.right_shift(mag, bits - 1 - ebits, out=exponent, casting="unsafe")  # at most 11 bits: fits any intp
    h = _entropy(exponent, zeros)
    frac = bad / nonzero  # the fraction of non-zero values, exactly
    return Reading(
        dtype, 0.5 * frac + 0.5 * h / ebits,
        f"{frac:.0%} of non-zero values NaN, infinite, subnormal or beyond 1e±30; exponent entropy "
        f"{h:.1f} of {ebits} bits",
    )


#: Slack for the rounding of a score against its bounds (:func:`_lower_bound`, :func:`_upper_bound`): scores are
#: at most about 1, and their rounding errors some 1e-12.
_SLACK = 1e-6
#: Values a first, partial lower bound looks at (:func:`_rules_out`).
_PART = 2048


def _diffs(arrays: list[np.ndarray[Any, Any]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``|x[i+1] - x[i]|`` of every array, in float64, in one work array."""
    d = _scratch(sum(a.size - 1 for a in arrays if a.size > 1))
    pos = 0
    for a in arrays:
        if a.size > 1:
            np.subtract(a[1:], a[:-1], out=d[pos:pos + a.size - 1], dtype=np.float64)
            pos += a.size - 1
    np.abs(d, out=d)
    return d


def _lower_bound(windows: list[bytes], dtype: np.dtype[Any], above: float, part: int | None = None) -> float:
    """A number at most ``score(windows, dtype).score`` (but for rounding), cheaper to compute; aimed to exceed ``above``.

    Floats: ``0.5 * bad`` (the exponent entropy is at least 0). Integers: ``k * f / bits``,
    where ``f`` is the fraction of first differences of at least ``2**k - 1`` in magnitude,
    each of which needs at least ``k`` bits (the others at least 0), with ``k`` chosen so that
    ``f`` above one half proves ``above``. With ``part``, only the first ``part`` values are
    looked at, and what they count is divided by the number of all the values: a bound too.
    """
    if above < -_SLACK:
        return 0.0  # every score is at least 0
    dtype, arrays = _arrays(windows, dtype)
    bits = 8 * dtype.itemsize
    total = sum(a.size for a in arrays)
    n = sum(a.size - 1 for a in arrays if a.size > 1)  # first differences
    partial = part is not None and part < total
    if part is not None and partial:
        kept: list[np.ndarray[Any, Any]] = []
        for a in arrays:
            if part <= 0:
                break
            kept.append(a[:part])
            part -= a.size
        arrays = kept
    if dtype.kind in "iu":
        m = sum(a.size - 1 for a in arrays if a.size > 1)
        if not m:
            return 0.0
        k = max(1, math.ceil(2 * (above + _SLACK) * bits * n / m))
        if k > bits or k > 53:  # cannot be proved from these values (2**k - 1 exact in float64 up to 53)
            return 0.0
        return k * (int(np.count_nonzero(_diffs(arrays) >= 2 ** k - 1)) / n) / bits
    if not sum(a.size for a in arrays):
        return 0.0
    _mag, nonzero, bad = _magnitudes(arrays, dtype)
    if not partial:
        return 0.5 * (bad / nonzero) if nonzero else 0.0
    return 0.5 * (bad / total)  # the non-zero values among all are at most all of them


def _upper_bound(windows: list[bytes], dtype: np.dtype[Any]) -> float:
    """A number at least ``score(windows, dtype).score`` (but for rounding), cheaper to compute.

    Floats: the exponent entropy is at most ``log2`` of the number of exponents between the
    smallest and the largest (zeros count as exponent 0). Integers: the mean of
    ``log2(1 + |d|)`` is at most ``log2(1 + mean(|d|))`` (the logarithm is concave).
    """
    dtype, arrays = _arrays(windows, dtype)
    bits = 8 * dtype.itemsize
    if dtype.kind in "iu":
        if not sum(a.size - 1 for a in arrays if a.size > 1):
            return 0.0
        d = _diffs(arrays)
        return math.log2(1.0 + float(np.add.reduce(d)) / d.size) / bits
    if not sum(a.size for a in arrays):
        return 0.0
    ebits = {2: 5, 4: 8, 8: 11}[dtype.itemsize]
    shift = bits - 1 - ebits
    uint = np.dtype(f"u{dtype.itemsize}").newbyteorder(dtype.str[0])
    raw = np.concatenate([a.view(uint) for a in arrays]) if len(arrays) > 1 else arrays[0].view(uint)
    mag = raw & ((1 << (bits - 1)) - 1)
    low, high = int(mag.min()), int(mag.max())
    _inf, normal, lo, hi = _float_limits(dtype.itemsize)
    if low >= max(normal, lo) and high <= hi:  # no zero, and no value is bad: as _magnitudes would count
        frac = 0.0
    else:
        _mag, nonzero, bad = _magnitudes(arrays, dtype)
        if not nonzero:
            return 0.0
        frac = bad / nonzero
    return 0.5 * frac + 0.5 * math.log2((high >> shift) - (low >> shift) + 1) / ebits


def _rules_out(windows: list[bytes], dtype: np.dtype[Any], above: float) -> bool:
    """Whether reading the windows as ``dtype`` surely scores more than ``above`` (from a part of them, or all)."""
    return (_lower_bound(windows, dtype, above, _PART) - _SLACK > above
            or _lower_bound(windows, dtype, above) - _SLACK > above)


def _swap(dtype: np.dtype[Any]) -> np.dtype[Any]:
    swapped: np.dtype[Any] = dtype.newbyteorder("<" if dtype.str[0] == ">" else ">")
    return swapped


def _other_kinds(dtype: np.dtype[Any]) -> list[np.dtype[Any]]:
    order = dtype.str[0]
    if dtype.kind in "iu" and dtype.itemsize in (4, 8):
        return [np.dtype(f"{order}f{dtype.itemsize}")]
    if dtype.kind == "f" and dtype.itemsize in (4, 8):
        return [np.dtype(f"{order}i{dtype.itemsize}")]
    return []


def checkable(dtype: np.dtype[Any]) -> bool:
    """Whether readings of ``dtype`` can be told apart by their data (simple multi-byte numbers)."""
    return dtype.fields is None and dtype.subdtype is None and dtype.kind in "iufc" and dtype.itemsize > 1


def check_reading(
    path: str | os.PathLike[str], dtype: np.dtype[Any], offset: int, nbytes: int,
    *, byteorder_weak: bool, dtype_weak: bool,
) -> DataCheck | None:
    """Test reading ``path`` as ``dtype`` against the alternatives the weak facts allow.

    Returns ``None`` when there is nothing to test (no weak fact, a dtype whose readings
    cannot be told apart, or too few values).
    """
    alternatives = _alternatives(dtype, byteorder_weak, dtype_weak)
    if not alternatives:
        return None
    try:
        windows = sample(path, offset, nbytes, dtype.itemsize)
    except OSError:  # unreadable: the conversion will say so; the evidence stands untested
        return None
    values = sum(len(w) for w in windows) // dtype.itemsize
    if values < MIN_VALUES:
        return None
    return DataCheck(score(windows, dtype), tuple(score(windows, d) for d in alternatives), values)


def _alternatives(dtype: np.dtype[Any], byteorder_weak: bool, dtype_weak: bool) -> list[np.dtype[Any]]:
    """The readings ``dtype`` is tested against (:func:`check_reading`)."""
    if not (byteorder_weak or dtype_weak) or not checkable(dtype):
        return []
    alternatives: list[np.dtype[Any]] = []
    if byteorder_weak:
        alternatives.append(_swap(dtype))
    if dtype_weak:
        for other in _other_kinds(dtype):
            alternatives.append(other)
            if byteorder_weak:
                alternatives.append(_swap(other))
    return alternatives


def contradiction(
    path: str | os.PathLike[str], dtype: np.dtype[Any], offset: int, nbytes: int,
    *, byteorder_weak: bool, dtype_weak: bool,
) -> tuple[DataCheck | None, bytes | None]:
    """:func:`check_reading` when it is contradicted (else None), and the data when the sample holds all of it.

    The same decision as ``check_reading(...).contradicted``, reached with less work: a
    reading contradicts the chosen one only if it scores at most :data:`PLAUSIBLE` and at
    least :data:`MIN_GAP` below it (both conditions of :attr:`DataCheck.contradicted` imply
    this), so an alternative whose cheap lower bound (:func:`_lower_bound`) already exceeds
    that is not scored in full, and when every alternative's exceeds it for an upper bound of
    the chosen reading's score (:func:`_upper_bound`), the chosen one is not scored in full
    either. When one might contradict, every reading is scored, as :func:`check_reading`
    scores them. The second item is the ``nbytes`` bytes at ``offset``
    when the sample read them all (one window: a small file), for the conversion to reuse;
    else None.
    """
    alternatives = _alternatives(dtype, byteorder_weak, dtype_weak)
    if not alternatives:
        return None, None
    try:
        windows = sample(path, offset, nbytes, dtype.itemsize)
    except OSError:  # unreadable: the conversion will say so; the evidence stands untested
        return None, None
    whole = windows[0] if len(windows) == 1 and len(windows[0]) == nbytes else None
    values = sum(len(w) for w in windows) // dtype.itemsize
    if values < MIN_VALUES:
        return None, whole
    bounds: dict[tuple[np.dtype[Any], int | None], float] = {}

    def rules_out(other: np.dtype[Any], above: float) -> bool:
        """:func:`_rules_out`, a float reading's bounds computed once (they do not depend on ``above``)."""
        if other.kind not in "fc" or above < -_SLACK:
            return _rules_out(windows, other, above)
        for part in (_PART, None):
            bound = bounds.get((other, part))
            if bound is None:
                bound = bounds[(other, part)] = _lower_bound(windows, other, above, part)
            if bound - _SLACK > above:
                return True
        return False

    at_most = min(PLAUSIBLE, _upper_bound(windows, dtype) + _SLACK - MIN_GAP)  # at least the exact `above` below
    if all(rules_out(other, at_most) for other in alternatives):
        return None, whole  # no reading can score low enough, whatever the chosen one's exact score
    chosen = score(windows, dtype)
    above = min(PLAUSIBLE, chosen.score - MIN_GAP)
    for other in alternatives:
        if rules_out(other, above):
            continue
        if score(windows, other).score > above:
            continue
        check = DataCheck(chosen, tuple(score(windows, d) for d in alternatives), values)
        return (check if check.contradicted else None), whole
    return None, whole
