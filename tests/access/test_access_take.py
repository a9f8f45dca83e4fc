"""take(): exactly numpy.take, whatever the backend, strategy, axis and order of indices."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore import access
from arraystore._fsutil import evict_from_page_cache
from arraystore.errors import SelectionError

DATA = np.random.default_rng(7).integers(-1000, 1000, size=(200, 9, 3)).astype("<i4")


def test_take_random_with_duplicates_equals_numpy(
    case: tuple[str, str | None], make_store: Callable[..., str]
) -> None:
    backend, chunks = case
    path = make_store(backend, DATA, chunks)
    idx = np.random.default_rng(0).integers(-200, 200, size=300)  # many duplicates, negatives
    with arraystore.open(path) as store:
        out = access.take(store, idx)
    np.testing.assert_array_equal(out, DATA[idx])


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_take_every_axis(case: tuple[str, str | None], make_store: Callable[..., str], axis: int) -> None:
    backend, chunks = case
    path = make_store(backend, DATA, chunks)
    n = DATA.shape[axis]
    idx = np.random.default_rng(1).integers(0, n, size=(4, 5))
    with arraystore.open(path) as store:
        np.testing.assert_array_equal(access.take(store, idx, axis=axis), np.take(DATA, idx, axis=axis))


@pytest.mark.parametrize("io", ["mmap", "buffered"])
@pytest.mark.parametrize("density", ["sparse", "dense"])
def test_take_contiguous_strategies(make_store: Callable[..., str], io: str, density: str) -> None:
    # 4 KiB rows: sparse picks touch few pages (gather), dense ones most (sequential pass).
    data = np.random.default_rng(2).random((3000, 512))
    path = make_store("raw", data)
    size = 50 if density == "sparse" else 5000
    idx = np.random.default_rng(3).integers(0, 3000, size=size)
    with arraystore.open(path, io=io) as store:
        np.testing.assert_array_equal(access.take(store, idx, max_bytes=64 * 1024), data[idx])


def test_take_fortran_order(make_store: Callable[..., str]) -> None:
    data = np.asfortranarray(DATA)
    path = make_store("npy", data, order="F")
    with arraystore.open(path) as store:
        for axis in (0, 2):
            idx = np.array([2, 0, 2, 1])
            np.testing.assert_array_equal(access.take(store, idx, axis=axis), np.take(data, idx, axis=axis))


def test_take_copy_on_write_sees_private_changes(make_store: Callable[..., str]) -> None:
    path = make_store("raw", DATA)
    with arraystore.open(path, "c") as store:
        store[5] = 0
        np.testing.assert_array_equal(access.take(store, [5, 6]), np.stack([np.zeros_like(DATA[5]), DATA[6]]))


def test_take_empty_and_scalar_indices(make_store: Callable[..., str]) -> None:
    path = make_store("raw", DATA)
    with arraystore.open(path) as store:
        assert access.take(store, []).shape == (0, 9, 3)
        np.testing.assert_array_equal(access.take(store, 4), DATA[4])


@pytest.mark.parametrize(("indices", "axis"), [([200], 0), ([-201], 0), ([0.5], 0), ([0], 3)])
def test_take_rejects_bad_indices(make_store: Callable[..., str], indices: list[float], axis: int) -> None:
    path = make_store("raw", DATA)
    with arraystore.open(path) as store, pytest.raises(SelectionError):
        access.take(store, indices, axis=axis)


@given(st.lists(st.integers(-260, 259), max_size=40), st.sampled_from([0, 1, -1]))
def test_take_bounds_follow_numpy(tmp_path_factory: pytest.TempPathFactory, indices: list[int], axis: int) -> None:
    # numpy is the oracle for which indices are in range (negative ones count from the end) and for the rows.
    path = str(tmp_path_factory.getbasetemp() / "bounds.dat")
    try:
        store = arraystore.open(path)
    except arraystore.errors.ArrayNotFoundError:
        with arraystore.create(path, DATA.shape, DATA.dtype) as new:
            new[...] = DATA
        store = arraystore.open(path)
    with store:
        try:
            expected = np.take(DATA, indices, axis=axis)
        except IndexError:
            n = DATA.shape[axis]
            with pytest.raises(SelectionError, match="out of bounds") as err:
                access.take(store, indices, axis=axis)
            bad = int(str(err.value).split()[1])
            assert bad in indices and not -n <= bad < n  # names an index numpy refuses too
            return
        np.testing.assert_array_equal(access.take(store, indices, axis=axis), expected)


@given(st.lists(st.integers(0, 199), max_size=60), st.integers(1, 64))
def test_take_property_raw(tmp_path_factory: pytest.TempPathFactory, indices: list[int], kib: int) -> None:
    path = str(tmp_path_factory.getbasetemp() / "prop.dat")
    try:
        store = arraystore.open(path)
    except arraystore.errors.ArrayNotFoundError:
        with arraystore.create(path, DATA.shape, DATA.dtype) as new:
            new[...] = DATA
        store = arraystore.open(path)
    with store:
        np.testing.assert_array_equal(access.take(store, indices, max_bytes=kib * 1024), DATA[indices])


def _warm(path: str) -> None:
    with open(path, "rb") as f:
        f.read()  # every page in the page cache


@given(indices=st.lists(st.integers(-3000, 2999), min_size=1, max_size=300), order=st.sampled_from(["C", "F"]),
       cols=st.sampled_from([3, 37, 1500]), mode=st.sampled_from(["r", "c"]))
def test_rows_in_memory_are_copied_in_the_order_asked(tmp_path_factory: pytest.TempPathFactory, indices: list[int],
                                                      order: str, cols: int, mode: str) -> None:
    # Warm rows (and a copy-on-write store's) take the in-memory path: one gather from the map in the order asked,
    # repeats and negative indices included; rows of 12 B, 148 B and 6000 B (longer than a page).
    data = np.random.default_rng(cols).integers(-2**31, 2**31 - 1, size=(3000, cols), dtype="<i4").astype(">i4")
    if order == "F":
        data = np.asfortranarray(data.T)  # (cols, 3000): the outermost storage axis is the last
    path = tmp_path_factory.getbasetemp() / f"warm-{order}-{cols}.dat"
    if not path.exists():
        with arraystore.create(str(path), data.shape, data.dtype, order=order) as new:  # type: ignore[arg-type]
            new[...] = data
    _warm(str(path))
    axis = 0 if order == "C" else 1
    with arraystore.open(str(path), mode) as store:  # type: ignore[arg-type]
        flat = np.asarray(indices, np.int64) % 3000
        direct = store._take_in_memory(flat, axis)
        assert direct is not None  # all in the page cache (or a private map): the in-memory path is taken
        np.testing.assert_array_equal(direct, np.take(data, flat, axis=axis))
        got = access.take(store, indices, axis=axis)
    np.testing.assert_array_equal(got, np.take(data, indices, axis=axis))


def test_cold_rows_and_other_axes_leave_the_in_memory_path(make_store: Callable[..., str]) -> None:
    data = np.random.default_rng(8).random((4000, 64))
    path = make_store("raw", data)
    evict_from_page_cache(path)
    idx = np.array([3999, 5, 2000, 5])
    with arraystore.open(path) as store:
        assert store._take_in_memory(idx, 0) is None  # not in the page cache: sorted, read by the cost model
        assert store._take_in_memory(idx[:2], 1) is None  # not the outermost storage axis
        np.testing.assert_array_equal(access.take(store, idx), data[idx])
    with arraystore.open(path, io="buffered") as store:
        _warm(path)
        assert store._take_in_memory(idx, 0) is None  # buffered I/O never maps the file
        np.testing.assert_array_equal(access.take(store, idx), data[idx])
    h5 = make_store("hdf5", data, name="h")
    with arraystore.open(h5) as store:
        assert store._take_in_memory(idx, 0) is None  # the default hook: no in-memory path
        np.testing.assert_array_equal(access.take(store, idx), data[idx])


@pytest.mark.parametrize("mode", ["auto", "sequential", "gather", "mapped"])
@pytest.mark.parametrize("open_mode", ["r", "c"])
def test_take_returns_a_plain_array_not_a_map(make_store: Callable[..., str], mode: str, open_mode: str) -> None:
    # Rows copied from the memory map are a new array: not a numpy.memmap that maps nothing (warm and cold alike).
    path = make_store("raw", DATA)
    idx = np.array([7, 3, 3, 150])
    for state in ("warm", "cold"):
        if state == "warm":
            _warm(path)
        else:
            evict_from_page_cache(path)
        with arraystore.open(path, open_mode) as store:  # type: ignore[arg-type]
            out = access.take(store, idx, mode=mode)
        assert type(out) is np.ndarray
        np.testing.assert_array_equal(out, DATA[idx])
