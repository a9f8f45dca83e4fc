"""HDF5 files (written by h5py) in a bucket: read-only, header and byte ranges only."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import boto3
import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import basic_indices

import arraystore
from arraystore.errors import (
    ArrayChangedError,
    ArrayNotFoundError,
    BackendError,
    MetadataError,
    ModeError,
    NotMemoryMappableError,
    UnsafeInputError,
)
from arraystore.objstore._rangefile import BLOCK_BYTES

from .conftest import needs_conditional_requests, needs_moto


def _upload(bucket: str, local: Path, key: str) -> str:
    boto3.client("s3").put_object(Bucket=bucket.removeprefix("s3://"), Key=key, Body=local.read_bytes())
    return f"{bucket}/{key}"


#: name -> h5py create_dataset options
LAYOUTS = {
    "contiguous": {},
    "chunked": {"chunks": (7, 5)},
    "gzip-shuffle": {"chunks": (8, 16), "compression": "gzip", "compression_opts": 4, "shuffle": True},
    "lzf": {"chunks": (16, 3), "compression": "lzf"},
}


@pytest.fixture
def h5(bucket: str, tmp_path: Path) -> tuple[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    arrays = {
        "contiguous": rng.standard_normal((40, 30)).astype(">f8"),
        "chunked": np.arange(33 * 21, dtype="<i2").reshape(33, 21),
        "gzip-shuffle": rng.integers(0, 1000, (50, 40)).astype("<u4"),
        "lzf": rng.standard_normal((45, 11)).astype("<f4"),
    }
    with h5py.File(tmp_path / "x.h5", "w") as f:
        for name, a in arrays.items():
            f.create_dataset(f"grp/{name}", data=a, **LAYOUTS[name])
        f["grp/contiguous"].attrs["unit"] = "K"
    return _upload(bucket, tmp_path / "x.h5", "d/x y.h5"), arrays


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=15, deadline=None)
@given(data=st.data())
def test_reads_match_numpy(h5: tuple[str, dict[str, np.ndarray]], data: st.DataObject) -> None:
    url, arrays = h5
    for name, expected in arrays.items():
        idx = data.draw(basic_indices(expected.shape, allow_newaxis=False, allow_ellipsis=True))
        with arraystore.open(f"{url}::/grp/{name}") as s:
            got = s[idx]
        want = np.array(expected[idx], dtype=expected.dtype)  # a scalar index gives a native-order scalar
        assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()


def test_metadata_read_only_and_not_mappable(h5: tuple[str, dict[str, np.ndarray]]) -> None:
    url, _ = h5
    with arraystore.open(f"{url}::/grp/contiguous") as s:
        assert (s.backend, s.shape, s.dtype, s.chunks, s.attrs["unit"]) == ("hdf5", (40, 30), np.dtype(">f8"), None, "K")
        with pytest.raises(NotMemoryMappableError, match="object store"):
            s.as_memmap()
    with arraystore.open(f"{url}::/grp/gzip-shuffle") as s:
        assert (s.chunks, s.compression) == ((8, 16), "gzip")
    with pytest.raises(ModeError, match="read-only"):
        arraystore.open(f"{url}::/grp/contiguous", "r+")
    with pytest.raises(ModeError, match="read-only"):
        arraystore.open(f"{url}::/grp/contiguous", "a")
    with pytest.raises(BackendError, match="cannot write to object storage"):
        arraystore.create(f"{url}::/grp/new", (3,), "<i4")
    with pytest.raises(BackendError, match="not followed"):
        arraystore.open(f"{url}::/grp/contiguous", allow_external=True)


@pytest.mark.parametrize("layout", ["contiguous", "gzip-shuffle"])
@needs_moto  # counts requests in moto's log
def test_one_row_of_a_large_file_fetches_header_and_ranges_only(
    bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, layout: str
) -> None:
    big = np.random.default_rng(1).standard_normal((2048, 512))  # 8 MiB, incompressible
    options = LAYOUTS[layout] | ({"chunks": (64, 512)} if "chunks" in LAYOUTS[layout] else {})
    with h5py.File(tmp_path / "big.h5", "w") as f:
        f.create_dataset("a/b", data=big, **options)
    size = (tmp_path / "big.h5").stat().st_size
    url = _upload(bucket, tmp_path / "big.h5", "big.h5")
    caplog.set_level(logging.INFO, logger="werkzeug")
    with arraystore.open(f"{url}::/a/b") as s:
        assert s[1000].tobytes() == big[1000].tobytes()
        assert s[2047, 7:9].tobytes() == big[2047, 7:9].tobytes()
        fetched, requests = s.bytes_fetched, s.requests
    gets = [r.getMessage() for r in caplog.records if "GET /" in r.getMessage() and "big.h5" in r.getMessage()]
    assert len([g for g in gets if '" 412 ' in g]) == 1, gets  # the If-Match check (once per bucket and process)
    assert len(gets) - 1 == requests  # the store's own count is every other GET the server saw
    # metadata blocks and the rows' own data (or their two chunks of 256 KiB): never the 8 MiB object
    assert fetched <= 8 * BLOCK_BYTES + 2 * 64 * 512 * 8 + 4096, (fetched, size)
    assert fetched < size // 8


def test_the_block_cache_is_bounded(bucket: str, tmp_path: Path) -> None:
    with h5py.File(tmp_path / "many.h5", "w") as f:
        for i in range(200):
            f.create_dataset(f"g{i:03d}/d", data=np.full((3,), i, "<i8"))
    url = _upload(bucket, tmp_path / "many.h5", "many.h5")
    with arraystore.open(f"{url}::/g199/d", cache_bytes=2 * BLOCK_BYTES) as s:
        assert s[:].tolist() == [199] * 3
        assert len(s._reader._cache) <= 2


@needs_conditional_requests
def test_a_replaced_object_is_never_read_as_a_mixture(bucket: str, tmp_path: Path) -> None:
    a = np.arange(256 * 512, dtype="<f8").reshape(256, 512)  # 1 MiB in chunks of 256 KiB, fetched when read
    for name, values in (("old.h5", a), ("new.h5", a + 1)):
        with h5py.File(tmp_path / name, "w") as f:
            f.create_dataset("x", data=values, chunks=(64, 512))
    url = _upload(bucket, tmp_path / "old.h5", "x.h5")
    s = arraystore.open(f"{url}::/x")
    assert s[:64].tobytes() == a[:64].tobytes()
    _upload(bucket, tmp_path / "new.h5", "x.h5")
    with pytest.raises(ArrayChangedError, match="replaced"):
        s[64:]
    s.close()
    assert arraystore.open(f"{url}::/x")[64:].tobytes() == (a + 1)[64:].tobytes()


def test_bad_objects_are_typed_errors(bucket: str, tmp_path: Path) -> None:
    (tmp_path / "not.h5").write_bytes(b"plain text, not HDF5" * 100)
    url = _upload(bucket, tmp_path / "not.h5", "not.h5")
    with pytest.raises(MetadataError, match="expected an HDF5 file"):
        arraystore.open(url)
    with pytest.raises(ArrayNotFoundError):
        arraystore.open(f"{bucket}/missing.h5::/x")
    with h5py.File(tmp_path / "links.h5", "w") as f:
        f["ext"] = h5py.ExternalLink("/etc/passwd.h5", "/x")
        f["real"] = np.arange(3)
    url = _upload(bucket, tmp_path / "links.h5", "links.h5")
    with pytest.raises(UnsafeInputError, match="external link"):
        arraystore.open(f"{url}::/ext")
    with pytest.raises(ArrayNotFoundError):
        arraystore.open(f"{url}::/nothing")
    assert arraystore.open(f"{url}::/real")[:].tolist() == [0, 1, 2]


def test_pickles_by_reference_and_converts(h5: tuple[str, dict[str, np.ndarray]], tmp_path: Path) -> None:
    url, arrays = h5
    with arraystore.open(f"{url}::/grp/gzip-shuffle") as s:
        again = pickle.loads(pickle.dumps(s))
        assert again[3:9].tobytes() == arrays["gzip-shuffle"][3:9].tobytes()
        again.close()
    arraystore.convert(f"{url}::/grp/gzip-shuffle", tmp_path / "x.npy", verify=True)
    assert np.load(tmp_path / "x.npy").tobytes() == arrays["gzip-shuffle"].tobytes()


def test_a_url_never_reads_the_local_file_its_path_happens_to_name(tmp_path: Path) -> None:
    from arraystore.location import parse_location
    from arraystore.registry import detect_backend

    for name, write in (("h", lambda p: h5py.File(p, "w").close()), ("n", lambda p: np.save(p, np.arange(3))),
                        ("z", lambda p: arraystore.create(p, (2,), "<i4", backend="zarr").close())):
        local = tmp_path / name
        write(local)
        if not local.exists():  # np.save adds .npy
            local = local.with_suffix(".npy")
            local.rename(tmp_path / name)
        url = "s3:/" + str(tmp_path / name)  # s3://tmp/... : its path is the local file's
        with pytest.raises(BackendError, match="found neither"):
            detect_backend(parse_location(url), must_exist=False)
