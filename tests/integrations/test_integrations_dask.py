"""to_dask / store_dask on every backend, with the threaded scheduler and a small LocalCluster."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster

import arraystore
from arraystore.checksums import StreamHasher
from arraystore.errors import AccessError, ArrayStoreError
from arraystore.integrations.dask import StoreSource, default_chunks, store_dask, to_dask
from arraystore.registry import backend_class

DATA = np.random.default_rng(11).integers(0, 2**31, size=(120, 30), dtype="<i8")


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """Two worker processes with one thread each, started once for the module."""
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster, set_as_default=False) as c,
    ):
        yield c


def test_to_dask_compute_equals_data(case: tuple[str, str | None], make_store: Callable[..., str]) -> None:
    backend, chunks = case
    path = make_store(backend, DATA, chunks)
    arr = to_dask(path, max_bytes=4096 if chunks else 1 << 20)
    np.testing.assert_array_equal(arr.compute(scheduler="threads"), DATA)
    np.testing.assert_array_equal(arr[::7, [3, 1, 3]].compute(scheduler="threads"), DATA[::7, [3, 1, 3]])


def test_to_dask_on_cluster(
    case: tuple[str, str | None], make_store: Callable[..., str], client: Client
) -> None:
    backend, chunks = case
    path = make_store(backend, DATA, chunks)
    arr = to_dask(path, max_bytes=8192 if chunks else 4096 * 4)
    assert arr.numblocks[0] > 1 or (backend, chunks) == ("zarr", None)
    np.testing.assert_array_equal(client.compute(arr).result(), DATA)
    assert client.compute(arr.sum()).result() == DATA.sum()


def test_chunks_align_with_storage_chunks(make_store: Callable[..., str]) -> None:
    pytest.importorskip("zarr", reason="storage chunks need the zarr backend")
    path = make_store("zarr", DATA, chunks=(16, 7))
    # Two chunks of data plus zarr-python's per-chunk bookkeeping, which block plans count.
    from arraystore.backends._zarr_pieces import CHUNK_OVERHEAD_BYTES

    budget = 2 * (16 * 7 * 8 + CHUNK_OVERHEAD_BYTES)
    arr = to_dask(path, max_bytes=budget)
    edges = [np.cumsum(c)[:-1] for c in arr.chunks]
    assert all((e % c == 0).all() for e, c in zip(edges, (16, 7)))
    with arraystore.open(path) as store:
        assert default_chunks(store, budget) == (16, 14)
        assert default_chunks(store, 16 * 14 * 8) == (16, 7)  # the overhead leaves room for one chunk


def test_contiguous_default_chunks_are_row_runs(make_store: Callable[..., str]) -> None:
    path = make_store("raw", DATA)
    arr = to_dask(path, max_bytes=30 * 8 * 25)
    assert arr.chunks == ((25, 25, 25, 25, 20), (30,))


def test_graph_holds_a_reference_not_data(make_store: Callable[..., str]) -> None:
    big = np.zeros((20_000, 50))
    path = make_store("raw", big)
    arr = to_dask(path)
    blob = pickle.dumps(dict(arr.__dask_graph__()))
    assert len(blob) < 4096
    sources = [v for v in arr.__dask_graph__().values() if isinstance(v, StoreSource)]
    assert len(sources) <= 1


def test_to_dask_name_is_stable_and_tracks_changes(make_store: Callable[..., str]) -> None:
    path = make_store("raw", DATA)
    before = to_dask(path).name
    assert to_dask(path).name == before
    os.utime(path, ns=(0, 1))  # what a rewrite of the file does to its mtime
    assert to_dask(path).name != before


@pytest.mark.parametrize("dask_chunks", [(40, 30), (13, 11)])
def test_store_dask_round_trip(
    case: tuple[str, str | None], tmp_path: Path, dask_chunks: tuple[int, int]
) -> None:
    backend, chunks = case
    darr = da.from_array(DATA, chunks=dask_chunks) + 1
    path = tmp_path / {"raw": "out.dat", "npy": "out.npy", "hdf5": "out.h5", "zarr": "out.zarr"}[backend]
    storage = (20, 10) if chunks else None
    attrs = {} if backend == "npy" else {"units": "m"}  # .npy has no attributes
    with dask.config.set(scheduler="threads"):
        out = store_dask(darr, path, chunks=storage, attrs=attrs, max_bytes=4096)
    assert out == str(path)
    with arraystore.open(path) as store:
        np.testing.assert_array_equal(store[...], DATA + 1)
        assert dict(store.attrs) == attrs
        recorded = store.recorded_checksum
        if recorded is not None:
            assert recorded == StreamHasher.of(DATA + 1)


def test_store_dask_records_dimension_names(case: tuple[str, str | None], tmp_path: Path) -> None:
    """dimension_names= as in create(): recorded where the backend can, refused (typed) where it cannot."""
    backend, chunks = case
    path = tmp_path / {"raw": "out.dat", "npy": "out.npy", "hdf5": "out.h5", "zarr": "out.zarr"}[backend]
    darr = da.from_array(DATA, chunks=(40, 30))
    if not backend_class(backend).supports_dimension_names:
        with pytest.raises(ArrayStoreError, match="dimension_names"):
            store_dask(darr, path, dimension_names=("y", "x"))
        assert not path.exists()
        return
    with dask.config.set(scheduler="threads"):
        store_dask(darr, path, chunks=(20, 10) if chunks else None, dimension_names=("y", "x"))
    with arraystore.open(path) as store:
        assert store.dimension_names == ("y", "x")
        np.testing.assert_array_equal(store[...], DATA)


def test_store_dask_on_cluster(case: tuple[str, str | None], tmp_path: Path, client: Client) -> None:
    backend, chunks = case
    darr = da.from_array(DATA, chunks=(25, 30)) * 2
    path = tmp_path / {"raw": "out.dat", "npy": "out.npy", "hdf5": "out.h5", "zarr": "out.zarr"}[backend]
    store_dask(darr, path, backend=backend, chunks=(30, 15) if chunks else None, scheduler=client)
    with arraystore.open(path) as store:
        np.testing.assert_array_equal(store[...], DATA * 2)


def test_store_dask_failure_publishes_nothing(tmp_path: Path) -> None:
    def boom(block: np.ndarray) -> np.ndarray:
        if block[0, 0] > 50:
            raise RuntimeError("compute failed")
        return block

    darr = da.from_array(np.arange(100.0).reshape(100, 1), chunks=(10, 1)).map_blocks(boom)
    with pytest.raises(RuntimeError, match="compute failed"):
        store_dask(darr, tmp_path / "never.dat", scheduler="threads", max_bytes=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_store_dask_into_created_store(tmp_path: Path) -> None:
    darr = da.from_array(DATA, chunks=(50, 30))
    store = arraystore.create(tmp_path / "x.npy", DATA.shape, DATA.dtype)
    assert store_dask(darr, store, scheduler="threads") == str(tmp_path / "x.npy")
    assert store.closed
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), DATA)


def test_store_dask_refuses_mismatched_store(tmp_path: Path) -> None:
    darr = da.from_array(DATA, chunks=(50, 30))
    with (
        arraystore.create(tmp_path / "x.npy", (3, 3), DATA.dtype) as store,
        pytest.raises(arraystore.ArrayStoreError, match="shape"),
    ):
        store_dask(darr, store)


@pytest.mark.parametrize("chunks", ["x", (2, 3, 4), -5, {"a": 2}, [[1, 1]]])
def test_chunks_dask_cannot_take_are_a_typed_error(tmp_path: Path, chunks: Any) -> None:
    p = tmp_path / "a.npy"
    np.save(p, np.arange(12.0).reshape(3, 4))
    with pytest.raises(AccessError, match=r"expected chunks as dask\.array accepts them"):
        to_dask(str(p), chunks=chunks)


def test_chunks_dask_takes_are_taken_as_given(tmp_path: Path) -> None:
    p = tmp_path / "a.npy"
    np.save(p, np.arange(12.0).reshape(3, 4))
    for chunks, expected in [(2, ((2, 1), (2, 2))), ({0: 1}, ((1, 1, 1), (4,))), ("auto", ((3,), (4,)))]:
        arr = to_dask(str(p), chunks=chunks)
        assert arr.chunks == expected
        np.testing.assert_array_equal(arr.compute(), np.arange(12.0).reshape(3, 4))
