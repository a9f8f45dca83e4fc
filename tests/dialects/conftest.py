"""Shared helpers for the header-dialect tests: deterministic sample arrays and read-back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from arraystore.dialects import ParsedHeader


def sample(shape: tuple[int, ...], dtype: Any, seed: int = 0) -> np.ndarray:
    """A deterministic array of ``dtype`` using its full range (negatives, large values, fractions)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        out = rng.integers(info.min, info.max, size=shape, dtype=dt.newbyteorder("="), endpoint=True)
    elif dt.kind == "f":
        out = rng.standard_normal(shape) * 1e3
    else:
        out = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return np.asarray(out).astype(dt)


def read_back(p: ParsedHeader) -> np.ndarray:
    """The array as the issue says a consumer maps it: a read-only memmap from the parsed header."""
    if p.meta.nbytes == 0:
        return np.empty(p.meta.shape, p.meta.dtype)
    return np.array(
        np.memmap(p.data_path, dtype=p.meta.dtype, mode="r", offset=p.offset, shape=p.meta.shape, order=p.meta.order)
    )


@pytest.fixture
def mapped() -> Callable[[ParsedHeader], np.ndarray]:
    """``read_back`` as a fixture, so test modules need no import from this folder."""
    return read_back


@pytest.fixture
def make_sample() -> Callable[..., np.ndarray]:
    """``sample`` as a fixture."""
    return sample
