"""Representative dtypes of every family and byte order, and deterministic sample data for them."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["CONFORMANCE_DTYPES", "sample_data"]

_NESTED = np.dtype(
    [("id", "<u4"), ("pos", ">f8", (2, 3)), ("inner", [("flag", "?"), ("code", "S3"), ("t", "<M8[ms]")])]
)

#: One or more dtypes per family, both byte orders where they differ.
CONFORMANCE_DTYPES: tuple[np.dtype[Any], ...] = tuple(
    np.dtype(d)
    for d in (
        "?",
        "i1", "<i2", ">i2", "<i4", ">i4", "<i8", ">i8",
        "u1", "<u2", ">u2", "<u4", ">u4", "<u8", ">u8",
        "<f2", ">f2", "<f4", ">f4", "<f8", ">f8",
        "<c8", ">c8", "<c16", ">c16",
        "<M8[ns]", ">M8[s]", "<M8[D]", "<m8[us]", ">m8[h]",
        "S1", "S7", "<U1", "<U5", ">U4",
        "V6",
        [("a", "<i4"), ("b", "<f8")],
        [("a", ">i4"), ("b", ">f8")],
        _NESTED,
    )
)  # fmt: skip


def sample_data(dtype: np.dtype[Any], shape: tuple[int, ...], seed: int = 0) -> np.ndarray[Any, Any]:
    """Random but valid values: any bit pattern for numbers (NaN payloads, -0.0 included),
    0/1 for bools, printable text for ``U``."""
    rng = np.random.default_rng(seed)
    return _fill(np.dtype(dtype), shape, rng)


def _fill(dtype: np.dtype[Any], shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray[Any, Any]:
    out = np.empty(shape, dtype)
    n = out.size
    if dtype.names is not None:
        for name in dtype.names:
            sub = dtype.fields[name][0]  # type: ignore[index]
            out[name] = _fill(sub.base, shape + sub.shape, rng) if sub.shape else _fill(sub, shape, rng)
        return out
    if dtype.kind == "b":
        out[...] = rng.integers(0, 2, shape).astype(bool)
    elif dtype.kind == "U":
        chars = rng.integers(0x20, 0x3000, (n, dtype.itemsize // 4)).astype("<u4")
        out[...] = chars.view(f"<U{dtype.itemsize // 4}").reshape(shape).astype(dtype)
    elif dtype.kind == "S":
        # No trailing NULs: numpy strips them on read, so they could never round-trip anywhere.
        raw = rng.integers(1, 256, (n, dtype.itemsize), dtype=np.uint8)
        out[...] = raw.view(f"S{dtype.itemsize}").reshape(shape)
    elif dtype.kind in "Mm":
        out.view("<i8" if dtype.byteorder != ">" else ">i8")[...] = rng.integers(-(2**40), 2**40, shape)
    else:
        raw = rng.integers(0, 256, n * dtype.itemsize, dtype=np.uint8)
        out[...] = raw.view(dtype).reshape(shape) if n and dtype.itemsize else out
    return out
