"""Tiled C-order copies equal numpy's own copy for every layout, dtype, byte order and shape."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from arraystore._corder import TILE_BYTES, c_contiguous, copy_tiled, first_axis_fastest, tile_shape

_DTYPES = st.sampled_from(["<f8", ">f8", "<i2", ">u4", "|u1", "?", "<c16", ">f2"]).map(np.dtype)
# Up to 2-D: long axes (several tiles each); 3-D and 4-D: shorter ones (a tile takes several rows of them).
_SHAPES = (st.lists(st.integers(0, 300), min_size=1, max_size=2).map(tuple)
           | st.lists(st.integers(0, 40), min_size=3, max_size=4).map(tuple))


def _source(shape: tuple[int, ...], dtype: np.dtype[Any], layout: str, seed: int) -> np.ndarray[Any, Any]:
    base = (np.random.default_rng(seed).integers(0, 255, size=shape).astype(dtype)
            if dtype.kind != "b" else np.random.default_rng(seed).integers(0, 2, size=shape).astype(bool))
    if layout == "F":
        return np.asfortranarray(base)
    if layout == "F-slab":  # rows of a larger Fortran-order array (a C-order slab of a column-major file)
        big = np.asfortranarray(np.concatenate([base, base[:1]]) if base.shape[0] else base)
        return big[: base.shape[0]]
    if layout == "F-reversed":
        return np.asfortranarray(base)[::-1]
    return base


@given(shape=_SHAPES, dtype=_DTYPES, layout=st.sampled_from(["F", "F-slab", "F-reversed", "C"]),
       seed=st.integers(0, 99), threads=st.sampled_from([0, 2]))
def test_c_contiguous_equals_numpy(shape: tuple[int, ...], dtype: np.dtype[Any], layout: str, seed: int,
                                   threads: int) -> None:
    a = _source(shape, dtype, layout, seed)
    if threads:
        with ThreadPoolExecutor(threads) as pool:
            got = c_contiguous(a, pool, threads)
    else:
        got = c_contiguous(a)
    assert got.flags.c_contiguous and got.dtype == a.dtype and got.shape == a.shape
    assert got.tobytes() == np.ascontiguousarray(a).tobytes()


def test_large_fortran_block_split_over_threads() -> None:
    a = np.asfortranarray(np.arange(301 * 129 * 17, dtype=">i8").reshape(301, 129, 17))  # > 1 MiB
    with ThreadPoolExecutor(2) as pool:
        got = c_contiguous(a, pool, 3)
    assert got.tobytes() == np.ascontiguousarray(a).tobytes()


@given(shape=_SHAPES, dtype=_DTYPES, seed=st.integers(0, 99))
def test_copy_tiled_into_a_view(shape: tuple[int, ...], dtype: np.dtype[Any], seed: int) -> None:
    """The edge-chunk case: copy into part of a larger zeroed C-order buffer."""
    a = _source(shape, dtype, "F", seed)
    out = np.zeros(tuple(n + 2 for n in shape), dtype)
    copy_tiled(out[tuple(slice(1, n + 1) for n in shape)], a)
    want = np.zeros_like(out)
    want[tuple(slice(1, n + 1) for n in shape)] = a
    assert out.tobytes() == want.tobytes()


def test_which_arrays_are_tiled() -> None:
    f = np.asfortranarray(np.zeros((4, 5, 6)))
    assert first_axis_fastest(f) and first_axis_fastest(f[1:3])
    assert not first_axis_fastest(np.zeros((4, 5, 6)))  # C order: numpy's copy is a memcpy
    assert not first_axis_fastest(np.zeros(7))  # one axis: nothing to reorder
    assert not first_axis_fastest(np.asfortranarray(np.zeros((1, 9))))  # one axis longer than 1
    assert not first_axis_fastest(np.asfortranarray(np.zeros((3, 4), dtype=[("a", "<i4")])))


@given(shape=st.lists(st.integers(1, 5000), min_size=2, max_size=5).map(tuple), itemsize=st.sampled_from([1, 2, 8, 16]))
def test_tiles_stay_within_the_cache_budget(shape: tuple[int, ...], itemsize: int) -> None:
    tile = tile_shape(shape, itemsize)
    assert len(tile) == len(shape) and all(1 <= t <= n for t, n in zip(tile, shape))
    assert int(np.prod(tile)) * itemsize <= max(TILE_BYTES, 64 * 64 * itemsize)
