"""Real-looking signals for testing the migration data check (``arraystore.migration.evidence_data``).

Used by ``tools/bench_evidence.py`` (false-alarm and miss rates) and by the property
tests. Every kind returns float64 values scaled for the target dtype; :func:`make`
casts them (clipped to the dtype's range).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["KINDS", "make"]

#: Signal kinds: smooth sensor traces, images, noise, counts, sparse, constant, random bits.
KINDS = ("sensor", "image", "noise", "counts", "sparse", "constant", "random-bits")


def _scale(dtype: np.dtype[Any], rng: np.random.Generator) -> float:
    """An amplitude a real instrument would use for this dtype: a fraction of an integer range."""
    if dtype.kind == "f":
        return float(10.0 ** rng.uniform(-3, 4))
    bits = 8 * dtype.itemsize - (1 if dtype.kind == "i" else 0)
    return float(2.0 ** rng.uniform(4, min(bits - 1, 20)))


def _sensor(n: int, amp: float, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    t = np.arange(n)
    periods = rng.uniform(50, 5000, 3)
    x = sum(np.sin(2 * np.pi * t / p + rng.uniform(0, 6)) * rng.uniform(0.2, 1) for p in periods)
    drift = np.cumsum(rng.normal(0, 0.01, n))
    out: np.ndarray[Any, Any] = amp * (x / 3 + drift / max(1.0, float(np.abs(drift).max())) + rng.normal(0, 0.01, n))
    return out


def _image(n: int, amp: float, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    w = int(rng.choice([64, 128, 256, 512]))
    h = max(1, n // w)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w))
    for _ in range(5):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(5, 60)
        img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)) * rng.uniform(0.2, 1)
    img += rng.normal(0, 0.02, img.shape)
    flat = img.ravel()
    return amp * np.resize(flat, n) / max(1e-9, float(np.abs(flat).max()))


def make(kind: str, dtype: np.dtype[Any], n: int, seed: int) -> np.ndarray[Any, Any]:
    """``n`` values of signal ``kind`` in ``dtype`` (native values; the caller picks the byte order)."""
    rng = np.random.default_rng(seed)
    amp = _scale(dtype, rng)
    unsigned = dtype.kind == "u"
    if kind == "sensor":
        x = _sensor(n, amp / 2, rng) + (amp / 2 if unsigned else 0)
    elif kind == "image":
        x = _image(n, amp, rng)
        x = x - x.min() if unsigned or rng.random() < 0.5 else x
    elif kind == "noise":
        x = rng.normal(amp / 2 if unsigned else 0, amp / 8, n)
    elif kind == "counts":
        x = rng.poisson(rng.uniform(0.5, max(1.0, min(amp, 1e4))), n).astype(np.float64)
    elif kind == "sparse":
        x = np.where(rng.random(n) < rng.uniform(0.001, 0.05), rng.uniform(0, amp, n), 0.0)
    elif kind == "constant":
        x = np.full(n, float(np.round(rng.uniform(0, amp))))
    elif kind == "random-bits":
        bits: np.ndarray[Any, Any] = np.frombuffer(rng.bytes(n * dtype.itemsize), dtype.newbyteorder("=")).copy()
        return bits
    else:
        raise ValueError(f"unknown signal kind {kind!r}; expected one of {KINDS}")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.round(x), info.min, info.max).astype(dtype.newbyteorder("="))
    return x.astype(dtype.newbyteorder("="))
