"""advise() and sample_batches()."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import arraystore
from arraystore import access
from arraystore.access import AccessError

DATA = np.arange(1000 * 6, dtype="<f8").reshape(1000, 6)


@pytest.mark.parametrize("advice", access.ADVICE)
def test_advise_every_backend(
    case: tuple[str, str | None], make_store: Callable[..., str], advice: str
) -> None:
    backend, chunks = case
    path = make_store(backend, DATA, chunks)
    with arraystore.open(path) as store:
        reached = access.advise(store, advice)
        np.testing.assert_array_equal(store[...], DATA)  # advice never changes what is read
    if backend in ("raw", "npy") or advice in ("willneed", "dontneed"):
        assert reached
    else:
        assert not reached


@pytest.mark.parametrize("io", ["mmap", "buffered"])
def test_advise_mapped_io_modes(make_store: Callable[..., str], io: str) -> None:
    path = make_store("raw", DATA)
    with arraystore.open(path, io=io) as store:
        for advice in access.ADVICE:
            assert access.advise(store, advice)


def test_advise_dontneed_keeps_copy_on_write_changes(make_store: Callable[..., str]) -> None:
    path = make_store("npy", DATA)
    with arraystore.open(path, "c") as store:
        store[0] = -1
        access.advise(store, "dontneed")
        np.testing.assert_array_equal(store[0], -1)


def test_advise_rejects_unknown(make_store: Callable[..., str]) -> None:
    with arraystore.open(make_store("raw", DATA)) as store, pytest.raises(AccessError, match="sequential"):
        access.advise(store, "fast")


def test_sample_batches_cover_each_row_once(
    case: tuple[str, str | None], make_store: Callable[..., str]
) -> None:
    backend, chunks = case
    path = make_store(backend, DATA, chunks)
    with arraystore.open(path) as store:
        batches = list(access.sample_batches(store, 32, rng=0, window=100))
    seen = np.concatenate([i for i, _ in batches])
    np.testing.assert_array_equal(np.sort(seen), np.arange(1000))
    for idx, batch in batches:
        np.testing.assert_array_equal(batch, DATA[idx])
    assert [len(i) for i, _ in batches[:-1]] == [32] * (len(batches) - 1)
    assert not np.array_equal(seen, np.arange(1000))  # shuffled


def test_sample_batches_deterministic_and_drop_last(make_store: Callable[..., str]) -> None:
    path = make_store("raw", DATA)
    with arraystore.open(path) as store:
        a = [i for i, _ in access.sample_batches(store, 64, rng=3, window=128, prefetch=False)]
        b = [i for i, _ in access.sample_batches(store, 64, rng=np.random.default_rng(3), window=128)]
        c = list(access.sample_batches(store, 64, rng=3, window=128, drop_last=True))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert len(c) == 1000 // 64 and all(len(i) == 64 for i, _ in c)


def test_sample_batches_windows_are_contiguous(make_store: Callable[..., str]) -> None:
    path = make_store("raw", DATA)
    with arraystore.open(path) as store:
        for idx, _ in access.sample_batches(store, 50, rng=1, window=100):
            # window 100 and batch 50 divide evenly: every batch comes from one window
            assert idx.max() // 100 == idx.min() // 100


@pytest.mark.parametrize(("batch_size", "window"), [(0, None), (4, 0)])
def test_sample_batches_rejects_bad_sizes(
    make_store: Callable[..., str], batch_size: int, window: int | None
) -> None:
    with arraystore.open(make_store("raw", DATA)) as store, pytest.raises(AccessError):
        access.sample_batches(store, batch_size, window=window)
