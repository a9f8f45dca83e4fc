"""Candidate (dtype, shape) pairs for a file whose layout no source states.

The list is a menu for a person writing a rules file, never a guess that is
applied. It is bounded and ordered: the common dtypes first (float32, float64,
uint16, int16, uint8, int32, uint32, int64, complex64), and for each dtype whose
item size divides the byte count, the 1-D shape, then the plausible 2-D shapes (a
square, and rows of a power-of-two width between 16 and 8192 closest to square),
then a stack of power-of-two square images when one fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..meta import dtype_to_json
from .evidence import dtype_label

__all__ = ["COMMON_DTYPES", "Candidate", "candidates"]

#: The dtypes candidates are drawn from, most common first (all little-endian).
COMMON_DTYPES: tuple[np.dtype[Any], ...] = tuple(
    np.dtype(t) for t in ("<f4", "<f8", "<u2", "<i2", "|u1", "<i4", "<u4", "<i8", "<c8")
)


@dataclass(frozen=True)
class Candidate:
    """One (dtype, shape) pair consistent with a file's size."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """``{"dtype": "<f4", "shape": [1000, 64]}``."""
        return {"dtype": dtype_to_json(self.dtype), "shape": list(self.shape)}

    def __str__(self) -> str:
        return f"{dtype_label(self.dtype)} {self.shape}"


def _shapes(n: int) -> list[tuple[int, ...]]:
    """1-D, then up to three plausible 2-D shapes, then one 3-D stack, for ``n`` elements."""
    shapes: list[tuple[int, ...]] = [(n,)]
    if n < 4:
        return shapes
    two_d: list[tuple[int, int]] = []
    root = math.isqrt(n)
    if root * root == n:
        two_d.append((root, root))
    widths = [1 << k for k in range(4, 14) if n % (1 << k) == 0 and n // (1 << k) >= 2]
    widths.sort(key=lambda w: abs(math.log2(n / w) - math.log2(w)))
    for w in widths:
        if (n // w, w) not in two_d:
            two_d.append((n // w, w))
        if len(two_d) == 3:
            break
    shapes.extend(two_d)
    for k in range(12, 5, -1):
        side = 1 << k
        if n % (side * side) == 0 and n // (side * side) >= 2:
            shapes.append((n // (side * side), side, side))
            break
    return shapes


def candidates(
    nbytes: int,
    *,
    shape: tuple[int, ...] | None = None,
    limit: int = 24,
) -> tuple[Candidate, ...]:
    """Candidate (dtype, shape) pairs for ``nbytes`` bytes of data.

    Parameters
    ----------
    nbytes
        Bytes of array data (the file size less any known header offset).
    shape
        When a source states the shape but no dtype: only dtypes whose item size
        makes that shape span ``nbytes`` are listed, with that shape.
    limit
        At most this many pairs are returned.

    Returns
    -------
    tuple of Candidate
        Ordered by dtype commonness, then by shape plausibility; empty when no
        common dtype fits (e.g. an odd byte count with nothing but uint8 fitting
        is still listed; an empty file gives nothing).

    Examples
    --------
    >>> [str(c) for c in candidates(16, limit=3)]
    ['<f4 (4,)', '<f4 (2, 2)', '<f8 (2,)']
    """
    if nbytes <= 0 or limit <= 0:
        return ()
    out: list[Candidate] = []
    if shape is not None:
        count = math.prod(shape)
        for dt in COMMON_DTYPES:
            if count and count * dt.itemsize == nbytes:
                out.append(Candidate(dt, tuple(shape)))
        return tuple(out[:limit])
    first: list[Candidate] = []
    rest: list[Candidate] = []
    for dt in COMMON_DTYPES:
        if nbytes % dt.itemsize:
            continue
        shapes = _shapes(nbytes // dt.itemsize)
        # Each dtype's 1-D and best 2-D shape come before any dtype's further shapes,
        # so that a small limit still shows several dtypes.
        first.extend(Candidate(dt, s) for s in shapes[:2])
        rest.extend(Candidate(dt, s) for s in shapes[2:])
    return tuple((first + rest)[:limit])
