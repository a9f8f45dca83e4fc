"""Candidate (dtype, shape) pairs for undetermined files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arraystore.migration import candidates


@pytest.mark.parametrize("nbytes", [1, 7, 16, 800, 3072, 4096, 1 << 20, 2 * 3 * 5 * 7 * 11 * 13 * 4, 10**12])
def test_every_candidate_spans_the_size_and_the_list_is_bounded(nbytes):
    out = candidates(nbytes, limit=24)
    assert 0 < len(out) <= 24
    for c in out:
        assert math.prod(c.shape) * c.dtype.itemsize == nbytes
    assert len(set(out)) == len(out)


def test_ordering_puts_common_dtypes_and_simple_shapes_first():
    out = candidates(4096)
    assert (out[0].dtype, out[0].shape) == (np.dtype("<f4"), (1024,))
    assert (out[1].dtype, out[1].shape) == (np.dtype("<f4"), (32, 32))
    assert {c.dtype.str for c in out[:8]} >= {"<f4", "<f8", "<u2"}


def test_stack_of_square_images_is_offered():
    out = candidates(10 * 64 * 64, limit=100)
    assert any(c.shape == (10, 64, 64) and c.dtype == np.dtype("u1") for c in out)


def test_known_shape_restricts_dtypes():
    out = candidates(512 * 512 * 2, shape=(512, 512))
    assert {c.dtype.str for c in out} == {"<u2", "<i2"}
    assert all(c.shape == (512, 512) for c in out)
    assert candidates(3 * 7, shape=(7,)) == ()


def test_empty_and_odd_sizes():
    assert candidates(0) == ()
    assert [c.dtype.str for c in candidates(7)] == ["|u1"]
    assert candidates(16, limit=0) == ()
    assert candidates(16)[0].to_dict() == {"dtype": "<f4", "shape": [4]}
