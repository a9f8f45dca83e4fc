"""The xarray engine opens every backend lazily, with attrs and dimension names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import arraystore
from arraystore.errors import MetadataError
from arraystore.integrations.xarray import ArrayStoreBackendArray, ArrayStoreBackendEntrypoint

DATA = np.random.default_rng(3).random((20, 6, 4)).astype("<f4")
ENGINE = ArrayStoreBackendEntrypoint  # until the entry point is installed: then engine="arraystore"


def test_open_dataarray_every_backend(case: tuple[str, str | None], make_store: Callable[..., str]) -> None:
    backend, chunks = case
    attrs = {} if backend == "npy" else {"units": "K", "dims": ["time", "y", "x"]}
    path = make_store(backend, DATA, chunks, attrs=attrs, name="frames")
    with xr.open_dataarray(path, engine=ENGINE) as arr:
        assert arr.name == "frames"
        assert arr.dims == (("time", "y", "x") if attrs else ("dim_0", "dim_1", "dim_2"))
        assert arr.attrs == ({"units": "K"} if attrs else {})
        assert not arr.variable._in_memory  # nothing read yet
        np.testing.assert_array_equal(
            arr.isel({arr.dims[0]: [3, 1, 3], arr.dims[2]: slice(None, None, -2)}).values,
            DATA[[3, 1, 3]][:, :, ::-2],
        )
        np.testing.assert_array_equal(arr.values, DATA)


def test_open_dataset_with_dask_chunks(make_store: Callable[..., str]) -> None:
    path = make_store("raw", DATA, attrs={"_ARRAY_DIMENSIONS": ["t", "a", "b"]})
    with xr.open_dataset(path, engine=ENGINE, chunks={"t": 5}) as ds:
        var = ds["a"]
        assert var.chunks == ((5, 5, 5, 5), (6,), (4,))
        np.testing.assert_array_equal(var.values, DATA)
        np.testing.assert_allclose(var.mean("t").values, DATA.mean(0), rtol=1e-6)


def test_chunks_empty_dict_gives_storage_chunks(make_store: Callable[..., str], case: tuple[str, str | None]) -> None:
    """``chunks={}`` follows ``preferred_chunks``: the storage chunks, never one chunk of the whole array."""
    backend, chunks = case
    path = make_store(backend, DATA, chunks)
    with arraystore.open(path) as s:
        storage = s.chunks
    with xr.open_dataset(path, engine=ENGINE, chunks={}) as ds:
        var = ds[next(iter(ds.data_vars))]
        if storage is None:
            assert var.chunks == tuple((n,) for n in DATA.shape)  # small and contiguous: one run is one chunk
        else:
            assert tuple(c[0] for c in var.chunks) == storage
        np.testing.assert_array_equal(var.values, DATA)


def test_contiguous_preferred_chunks_are_bounded_runs(tmp_path: Path) -> None:
    from arraystore.integrations import xarray as engine

    shape = (4096, 64, 1024)  # 1 GiB of float32, never written: the sidecar and a sparse file suffice
    with arraystore.create(tmp_path / "big.dat", shape=shape, dtype="float32"):
        pass
    with xr.open_dataset(tmp_path / "big.dat", engine=ENGINE, chunks={}) as ds:
        first = {dim: c[0] for dim, c in zip(ds["big"].dims, ds["big"].chunks)}
    rows = engine.PREFERRED_CHUNK_BYTES // (64 * 1024 * 4)
    assert first == {"dim_0": rows, "dim_1": 64, "dim_2": 1024}


def test_variable_name_dims_and_drop(make_store: Callable[..., str]) -> None:
    path = make_store("raw", DATA, attrs={"name": "temperature"})
    with xr.open_dataset(path, engine=ENGINE) as ds:
        assert list(ds.data_vars) == ["temperature"]
    with xr.open_dataset(path, engine=ENGINE, variable_name="v", dims=["a", "b", "c"]) as ds:
        assert ds["v"].dims == ("a", "b", "c")
    with xr.open_dataset(path, engine=ENGINE, drop_variables="temperature") as ds:
        assert not ds.data_vars


def test_bad_dims_attribute_is_a_typed_error(make_store: Callable[..., str]) -> None:
    path = make_store("raw", DATA, attrs={"dims": ["only_one"]})
    with pytest.raises(MetadataError, match="3 dimensions"):
        xr.open_dataarray(path, engine=ENGINE)


def test_open_from_store_object(make_store: Callable[..., str]) -> None:
    path = make_store("raw", DATA)
    with arraystore.open(path) as store:
        ds = xr.open_dataset(store, engine=ENGINE)
        np.testing.assert_array_equal(ds["a"].values, DATA)
        assert not store.closed


def test_guess_can_open() -> None:
    entry = ArrayStoreBackendEntrypoint()
    assert entry.guess_can_open("frames.dat")
    assert entry.guess_can_open("x.npy")
    assert not entry.guess_can_open("x.nc")
    assert not entry.guess_can_open("x.h5")  # left to h5netcdf


def test_backend_array_basic_indexing(make_store: Callable[..., str]) -> None:
    with arraystore.open(make_store("raw", DATA)) as store:
        arr = ArrayStoreBackendArray(store)
        key = xr.core.indexing.OuterIndexer((np.array([4, 0]), slice(1, 3), 2))
        np.testing.assert_array_equal(arr[key], DATA[[4, 0], 1:3, 2])


def test_engine_name_registered_when_installed() -> None:
    engines = xr.backends.list_engines()
    if "arraystore" not in engines:
        pytest.skip(
            "the xarray.backends entry point is not installed (pip install -e . after pyproject gains it)"
        )
    assert isinstance(engines["arraystore"], ArrayStoreBackendEntrypoint)


def _cf_file(path: Path) -> None:
    """A netCDF file as a climate model writes it: a packed integer, a float with a fill value, CF times."""
    rng = np.random.default_rng(5)
    pr = rng.integers(0, 1000, (4, 3, 5)) * 0.01  # stored as int16 hundredths
    pr[0, 0, :2] = np.nan
    tas = (280 + rng.standard_normal((4, 3, 5))).astype("f4")
    tas[1, 2, 3] = -999.0
    xr.Dataset(
        {"pr": (("time", "lat", "lon"), pr, {"units": "mm/day"}),
         "tas": (("time", "lat", "lon"), tas, {"units": "K"}),
         "time": ("time", np.arange(4.0) * 30, {"units": "days since 2000-01-01", "calendar": "noleap"})},
    ).to_netcdf(path, engine="h5netcdf", encoding={
        "pr": {"_FillValue": -32768, "scale_factor": 0.01, "add_offset": 0.0, "dtype": "i2"},
        "tas": {"_FillValue": -999.0}, "time": {"_FillValue": None}})  # fmt: skip


@pytest.mark.parametrize("to", [None, "raw", "hdf5", "zarr"])
@pytest.mark.parametrize("var", ["pr", "tas", "time"])
def test_cf_attributes_are_decoded_as_xarray_decodes_the_netcdf_file(tmp_path: Path, to: str | None, var: str) -> None:
    """engine='arraystore' masks, unpacks and decodes times as xr.open_dataset does on the netCDF source."""
    pytest.importorskip("h5netcdf", reason="h5netcdf writes the netCDF source")
    nc = tmp_path / "model.nc"
    _cf_file(nc)
    where = f"{nc}::{var}"
    if to is not None:
        where = str(tmp_path / {"raw": "v.dat", "hdf5": "v.h5", "zarr": "v.zarr"}[to])
        arraystore.convert(f"{nc}::{var}", where)
    want = xr.open_dataset(nc, engine="h5netcdf")[var]
    with xr.open_dataarray(where, engine=ENGINE) as got:
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got.values, want.values)
        assert got.attrs == want.attrs
    with xr.open_dataarray(where, engine=ENGINE, decode_cf=False) as raw:  # the stored values, as written
        np.testing.assert_array_equal(raw.values, arraystore.open(where)[...])
