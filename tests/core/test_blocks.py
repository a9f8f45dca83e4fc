from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arraystore.blocks import plan_blocks
from arraystore.errors import MemoryBudgetError


@given(
    shape=st.lists(st.integers(0, 7), min_size=0, max_size=4).map(tuple),
    data=st.data(),
    itemsize=st.sampled_from([1, 2, 8]),
    order=st.sampled_from(["C", "F"]),
)
def test_blocks_cover_once_aligned_to_chunks(
    shape: tuple[int, ...], data: st.DataObject, itemsize: int, order: str
) -> None:
    chunks = data.draw(st.none() | st.tuples(*[st.integers(1, 4) for _ in shape]))
    unit = chunks or (1,) * len(shape)
    budget = data.draw(st.integers(int(np.prod(unit)) * itemsize, 4096))
    plan = plan_blocks(shape, itemsize, budget, chunks=chunks, order=order)
    seen = np.zeros(shape, int)
    blocks = list(plan)
    for sel in blocks:
        seen[sel] += 1
        for s, c, n in zip(sel, unit, shape):
            assert s.start % c == 0  # starts on a chunk boundary
            assert s.stop % c == 0 or s.stop == n  # ends on one or at the edge
        assert np.zeros(shape, np.uint8)[sel].size * itemsize <= max(budget, plan.block_bytes)
    assert (seen == 1).all()
    assert len(blocks) == plan.n_blocks


def test_storage_order_is_sequential_for_contiguous_c() -> None:
    starts = [s[0].start for s in plan_blocks((10, 4), 4, 32)]
    assert starts == sorted(starts)


def test_budget_too_small_for_one_chunk() -> None:
    with pytest.raises(MemoryBudgetError, match="at least 4,096 bytes"):
        plan_blocks((100, 100), 4, 1000, chunks=(32, 32))


def test_split_below_chunk_rows_is_reported() -> None:
    plan = plan_blocks((64, 64), 4, 32 * 32 * 4, chunks=(32, 32))
    assert plan.split and plan.to_dict()["split_below_chunk_rows"]
