"""Selections over many small chunks reach zarr-python in calls of a bounded number of chunks."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore._selection import normalize_selection
from arraystore.backends import _zarr_bounds
from arraystore.backends import zarr as zarr_backend
from arraystore.backends._zarr_pieces import chunks_touched, pieces
from arraystore.blocks import plan_blocks


@st.composite
def cases(draw: Any) -> tuple[tuple[int, ...], tuple[int, ...], tuple[Any, ...], str, int]:
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    sel = []
    for n in shape:
        if draw(st.booleans()):
            sel.append(draw(st.integers(-n, n - 1)))
        else:
            sel.append(slice(draw(st.none() | st.integers(-n, n)), draw(st.none() | st.integers(-n, n)),
                             draw(st.integers(1, 4))))
    return shape, chunks, tuple(sel), draw(st.sampled_from("CF")), draw(st.integers(1, 6))


def chunk_ids(sel: tuple[Any, ...], chunks: tuple[int, ...]) -> set[tuple[int, ...]]:
    axes = [[s] if isinstance(s, int) else list(range(s.start, s.stop, s.step)) for s in sel]
    return {tuple(i // c for i, c in zip(idx, chunks)) for idx in itertools.product(*axes)}


@given(cases())
def test_pieces_cover_the_selection_once_within_the_limit(case: Any) -> None:
    shape, chunks, key, order, limit = case
    sel, _ = normalize_selection(key, shape)
    data = np.arange(math.prod(shape)).reshape(shape)
    expected = data[sel]
    out = np.full(expected.shape, -1)
    seen: set[tuple[int, ...]] = set()
    for dest, piece in pieces(sel, chunks, order, limit):
        assert chunks_touched(piece, chunks) <= limit
        ids = chunk_ids(piece, chunks)
        assert not ids & seen  # no chunk written by two calls
        seen |= ids
        assert (out[dest] == -1).all()
        out[dest] = data[piece]
    assert np.array_equal(out, expected)


@settings(max_examples=30)
@given(cases())
def test_reads_and_writes_through_pieces_match_numpy(tmp_path_factory: Any, case: Any) -> None:
    shape, chunks, key, order, limit = case
    path = tmp_path_factory.mktemp("z") / "a.zarr"
    data = np.arange(math.prod(shape), dtype="<i4").reshape(shape)
    old = zarr_backend.MAX_CHUNKS_PER_CALL
    zarr_backend.MAX_CHUNKS_PER_CALL = limit
    try:
        with arraystore.create(path, shape, "<i4", chunks=chunks, order=order) as s:
            s[...] = data
        with arraystore.open(path, "r+") as s:
            assert np.array_equal(s[key], data[key])
            s[key] = -np.asarray(data[key])
        expected = data.copy()
        expected[key] = -np.asarray(data[key])
        assert np.array_equal(zarr.open_array(str(path), mode="r")[...], expected)  # zarr-python as the oracle
    finally:
        zarr_backend.MAX_CHUNKS_PER_CALL = old


def test_no_zarr_call_sees_more_chunks_than_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Count the chunk reads in flight per zarr call on an array written by zarr-python with chunks (1,).

    A v2 array: v3 arrays of numbers in local folders are read by arraystore's own chunk reader, not zarr's.
    """
    path = tmp_path / "tiny.zarr"
    data = np.arange(600, dtype="i2")
    zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=(1,), zarr_format=2)[...] = data
    monkeypatch.setattr(zarr_backend, "MAX_CHUNKS_PER_CALL", 64)
    per_call: list[int] = []
    original = _zarr_bounds.BoundedStore.get

    async def counting_get(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        if key[:1].isdigit():
            per_call[-1] += 1
        return await original(self, key, *args, **kwargs)

    monkeypatch.setattr(_zarr_bounds.BoundedStore, "get", counting_get)
    monkeypatch.setattr(zarr.Array, "__getitem__", _counted(zarr.Array.__getitem__, per_call))
    with arraystore.open(path) as s:
        assert np.array_equal(s[...], data)
        assert np.array_equal(np.concatenate([b for _, b in s.iter_blocks(4096 * 100)]), data)
    assert sum(per_call) == 1200 and max(per_call) <= 64, per_call


def _counted(func: Any, per_call: list[int]) -> Any:
    def wrapper(self: Any, sel: Any) -> Any:
        per_call.append(0)
        return func(self, sel)

    return wrapper


def test_block_plans_count_the_per_chunk_overhead() -> None:
    plan = plan_blocks((1 << 20,), 1, 1 << 20, chunks=(1,), chunk_overhead=4096)
    assert plan.chunks_per_block == (1 << 20) // 4097  # was all 1,048,576 chunks in one block
    assert plan.block_bytes + plan.chunks_per_block * 4096 <= 1 << 20
    # One chunk whose data fits is never refused because of its overhead.
    assert plan_blocks((10,), 8, 80, chunks=(10,), chunk_overhead=4096).n_blocks == 1
    # Overhead makes a 2-d plan split rows of many tiny chunks.
    p2 = plan_blocks((64, 4096), 1, 1 << 20, chunks=(1, 1), chunk_overhead=4096)
    assert p2.chunks_per_block * 4096 + p2.block_bytes <= 1 << 20


def test_iter_blocks_of_tiny_chunks_stay_within_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "tiny.zarr"
    data = np.arange(3000, dtype="u1")
    zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=(1,))[...] = data
    with arraystore.open(path) as s:
        plan = s.block_plan(1 << 20)
        assert plan.chunk_overhead > 0 and plan.chunks_per_block * plan.chunk_overhead <= 1 << 20
        assert np.array_equal(np.concatenate([b for _, b in s.iter_blocks(1 << 20)]), data)
