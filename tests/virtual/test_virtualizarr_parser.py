"""``ArraystoreParser`` follows VirtualiZarr 2.5's parser protocol: datasets open, load and write to icechunk."""

from __future__ import annotations

import numpy as np
import pytest

from arraystore.errors import MetadataError
from arraystore.integrations.virtualizarr import ArraystoreParser
from arraystore.migration.resolve import resolve

from .legacy import write_legacy
from .test_virtual_roundtrip import bits

virtualizarr = pytest.importorskip("virtualizarr", reason="virtualizarr is in arraystore[virtual]")
from obspec_utils.registry import ObjectStoreRegistry  # noqa: E402
from obstore.store import LocalStore  # noqa: E402


def _registry() -> ObjectStoreRegistry:
    return ObjectStoreRegistry({"file://": LocalStore()})


CASES = [("envi", "bil", "i2", True), ("ehdr", "bip", "u2", False), ("metaimage", "channels", "f4", True),
         ("idx", "C", "u1", True), ("raw", "F", "c8", True), ("raw", "C", "f8", False)]  # fmt: skip


@pytest.mark.parametrize(("dialect", "layout", "dtype", "big"), CASES)
def test_open_virtual_dataset_loads_what_arraystore_reads(tmp_path, dialect, layout, dtype, big):
    shape = (3, 4, 2) if dialect in ("metaimage", "raw") else (3, 4, 5)
    data = write_legacy(tmp_path, dialect, layout, dtype, big, shape, 8 if dialect in ("envi", "ehdr", "metaimage") else 0, 1)
    res = resolve(data, root=tmp_path)
    assert res.meta is not None
    want = np.memmap(data, res.meta.dtype, "r", res.offset, res.meta.shape, res.meta.order)
    parser = ArraystoreParser(chunk_bytes=16)
    ds = virtualizarr.open_virtual_dataset(data.as_uri(), registry=_registry(), parser=parser)
    assert ds["data"].shape == res.meta.shape
    loaded = virtualizarr.open_virtual_dataset(
        data.as_uri(), registry=_registry(), parser=parser, loadable_variables=["data"]
    )
    np.testing.assert_array_equal(bits(loaded["data"].values), bits(np.asarray(want)))


def test_virtual_dataset_written_to_icechunk_reads_back(tmp_path):
    icechunk = pytest.importorskip("icechunk", reason="icechunk is in arraystore[virtual]")
    import xarray as xr

    folder = tmp_path / "archive"
    folder.mkdir()
    data = write_legacy(folder, "envi", "bsq", "f4", True, (3, 4, 5), 0, 2)
    ds = virtualizarr.open_virtual_dataset(data.as_uri(), registry=_registry(), parser=ArraystoreParser(chunk_bytes=20))
    prefix = folder.resolve().as_uri() + "/"
    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(str(folder))))
    repo = icechunk.Repository.create(
        icechunk.local_filesystem_storage(str(tmp_path / "repo")), config=config, authorize_virtual_chunk_access={prefix: None}
    )
    session = repo.writable_session("main")
    ds.vz.to_icechunk(session.store)
    session.commit("virtual")
    back = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    want = np.fromfile(data, ">f4").reshape(3, 4, 5)
    np.testing.assert_array_equal(back["data"].values, want)


def test_unresolvable_and_non_local_urls_are_refused(tmp_path):
    (tmp_path / "mystery.bin").write_bytes(b"\0" * 24)
    with pytest.raises(MetadataError, match=r"undetermined|dtype"):
        ArraystoreParser()((tmp_path / "mystery.bin").as_uri(), _registry())
    with pytest.raises(MetadataError, match="file://"):
        ArraystoreParser()("s3://bucket/x.dat", _registry())




def test_npy_and_contiguous_hdf5_through_the_parser(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py is in arraystore[hdf5]")
    arr = np.arange(24, dtype=">f8").reshape(4, 6)
    np.save(tmp_path / "a.npy", np.asfortranarray(arr))
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["x"] = arr
    for url, parser in (
        ((tmp_path / "a.npy").as_uri(), ArraystoreParser(chunk_bytes=48)),
        ((tmp_path / "b.h5").as_uri(), ArraystoreParser(chunk_bytes=48, dataset="x")),
    ):
        ds = virtualizarr.open_virtual_dataset(url, registry=_registry(), parser=parser, loadable_variables=["data"])
        np.testing.assert_array_equal(ds["data"].values, arr)
