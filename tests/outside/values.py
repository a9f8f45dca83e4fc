"""Deterministic sample arrays that exercise each dtype's awkward values (NaN payloads, -0.0, extremes)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["STRUCT", "sample"]

#: A packed structured dtype every writer that has compound types can produce.
STRUCT = np.dtype([("id", "<i4"), ("x", "<f8"), ("tag", "S3")])


def _floats(n: int, dt: np.dtype, rng: np.random.Generator) -> np.ndarray:
    vals = (rng.standard_normal(n) * 1e3).astype(dt.newbyteorder("="))
    specials = np.array([np.nan, -0.0, np.inf, -np.inf, np.finfo(dt.newbyteorder("=")).max], dt.newbyteorder("="))
    k = min(n, len(specials))
    vals[:k] = specials[:k]
    if n > len(specials):  # a NaN with a non-default payload (bit pattern must survive)
        bits = vals.view(f"u{dt.itemsize}")
        bits[len(specials)] = {2: 0x7E01, 4: 0x7FC0_1234, 8: 0x7FF8_0000_DEAD_BEEF}[dt.itemsize]
    return vals


def sample(shape: tuple[int, ...], dtype: Any, seed: int = 0) -> np.ndarray:
    """A deterministic C-order array of ``dtype`` (any byte order) spanning its awkward values."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    native = dt.newbyteorder("=") if dt.names is None else dt
    if dt.names is not None:
        out = np.zeros(n, dt)
        for i, name in enumerate(dt.names):
            out[name] = sample((n,), dt.fields[name][0], seed + i + 1)
        return out.reshape(shape)
    if dt.kind == "b":
        flat = rng.integers(0, 2, n).astype(bool)
    elif dt.kind in "iu":
        info = np.iinfo(native)
        flat = rng.integers(info.min, info.max, size=n, dtype=native, endpoint=True)
        flat[: min(n, 2)] = [info.min, info.max][: min(n, 2)]
    elif dt.kind == "f":
        flat = _floats(n, native, rng)
    elif dt.kind == "c":
        part = np.dtype(f"f{native.itemsize // 2}")
        flat = np.empty(n, native)
        flat.real = _floats(n, part, rng)
        flat.imag = _floats(n, part, np.random.default_rng(seed + 99))[::-1]
    elif dt.kind in "mM":
        flat = rng.integers(-(2**40), 2**40, n).astype(native)
        if n > 1:
            flat[1] = native.type("NaT")
    elif dt.kind == "S":
        alphabet = np.frombuffer(b"abcxyz019 _", "S1")
        flat = np.array([b"".join(rng.choice(alphabet, rng.integers(0, dt.itemsize + 1))) for _ in range(n)], dt)
    elif dt.kind == "U":
        alphabet = list("abcé∂ζ😀 9")
        flat = np.array(["".join(rng.choice(alphabet, rng.integers(0, dt.itemsize // 4 + 1))) for _ in range(n)], dt)
    else:
        flat = np.frombuffer(rng.bytes(n * dt.itemsize), dt)
    return np.asarray(flat).astype(dt).reshape(shape)
