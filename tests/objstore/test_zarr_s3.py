"""Zarr arrays on a real S3 protocol server (moto on loopback): open, create, convert, publish, generations."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arraystore
from arraystore._open import exists
from arraystore.errors import (
    AlreadyExistsError,
    ArrayChangedError,
    ArrayNotFoundError,
    IncompleteArrayError,
    ModeError,
    NotMemoryMappableError,
)
from arraystore.location import Location, parse_location

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("text", "url", "key"),
    [
        ("s3://bkt/run.zarr", "s3://bkt/run.zarr", None),
        ("s3://bkt/run.zarr/", "s3://bkt/run.zarr", None),
        ("S3://bkt/a b/ü.zarr::/grp/arr", "s3://bkt/a b/ü.zarr", "/grp/arr"),
        ("gs://bkt/x.zarr", "gs://bkt/x.zarr", None),
        ("az://container/x.zarr", "az://container/x.zarr", None),
        ("memory://scratch/x.zarr", "memory://scratch/x.zarr", None),
        ("https://example.org/data/x.zarr", "https://example.org/data/x.zarr", None),
    ],
)
def test_urls_are_not_local_paths(text: str, url: str, key: str | None) -> None:
    loc = parse_location(text)
    assert loc.remote and loc.url == url and loc.key == key
    assert str(loc) == (f"{url}::{key}" if key else url)


def test_file_urls_and_paths_stay_local(tmp_path: Path) -> None:
    assert parse_location(f"file://{tmp_path}/x.npy") == Location(tmp_path / "x.npy")
    assert parse_location(str(tmp_path / "x.h5") + "::/a") == Location(tmp_path / "x.h5", "/a")
    assert not parse_location("relative/x.npy").remote
    with pytest.raises(ValueError, match="scheme 'ftp'"):
        parse_location("ftp://host/x.zarr")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=15)  # one bucket, keys unique
@given(
    dtype=st.sampled_from(["<f8", ">f4", "<i2", ">u8", "<c16", "|b1", "S5", "<M8[s]", "V3", "<i4,>f8"]),
    order=st.sampled_from(["C", "F"]),
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    seed=st.integers(0, 2**16),
)
def test_create_open_round_trip(bucket: str, dtype: str, order: str, shape: tuple[int, int], seed: int) -> None:
    dt = np.dtype(dtype)
    raw = np.random.default_rng(seed).integers(0, 256, size=int(np.prod(shape)) * dt.itemsize, dtype=np.uint8)
    a = raw.view(dt).reshape(shape)
    if dt.kind == "b":
        a = raw[: a.size].astype(bool).reshape(shape)
    url = f"{bucket}/rt {seed}-ü.zarr"
    with arraystore.create(url, a.shape, a.dtype, order=order, attrs={"k": [1, 2]}, chunks=(3, 4), overwrite=True) as s:
        s[:] = a
    with arraystore.open(url) as r:
        assert (r.dtype, r.order, r.shape) == (a.dtype, order, a.shape)
        assert r[:].tobytes() == a.tobytes()  # bit for bit (NaN payloads, -0.0)
        assert dict(r.attrs) == {"k": [1, 2]}


def test_staged_until_closed_then_committed(bucket: str) -> None:
    url = f"{bucket}/x.zarr"
    w = arraystore.create(url, (10, 10), "<f4", chunks=(5, 5))
    w[:5] = 1.0
    assert not exists(url)
    with pytest.raises(ArrayNotFoundError, match="being created"):
        arraystore.open(url)
    w.close()
    with arraystore.open(url) as r:
        assert r[:5].sum() == 50 and r.complete


def test_an_r_plus_session_marks_the_array_incomplete_until_closed(bucket: str) -> None:
    url = f"{bucket}/x.zarr"
    with arraystore.create(url, (4,), "<f4") as w:
        w[:] = 0
    s = arraystore.open(url, "r+")
    s[0] = 1
    with pytest.raises(IncompleteArrayError):
        arraystore.open(url)
    assert arraystore.open(url, allow_incomplete=True)[0] == 1
    s.close()
    assert arraystore.open(url)[:].tolist() == [1, 0, 0, 0]


def test_exception_in_with_block_never_commits(bucket: str) -> None:
    url = f"{bucket}/x.zarr"

    def fail_midway() -> None:
        with arraystore.create(url, (4,), "<i8") as w:
            w[:2] = 7
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert not exists(url)
    with pytest.raises(ArrayNotFoundError):
        arraystore.open(url)


def test_discard_removes_the_new_array(bucket: str) -> None:
    url = f"{bucket}/x.zarr"
    w = arraystore.create(url, (4,), "<i8")
    w[:] = 1
    w.discard()
    assert not exists(url)


def test_exists_and_overwrite(bucket: str) -> None:
    url = f"{bucket}/x.zarr"
    with arraystore.create(url, (4,), "<i8") as w:
        w[:] = 1
    with pytest.raises(AlreadyExistsError):
        arraystore.create(url, (4,), "<i8")
    with arraystore.create(url, (3,), "<u1", overwrite=True) as w:
        w[:] = 2
    with arraystore.open(url) as r:
        assert r.shape == (3,) and r[:].tolist() == [2, 2, 2]


def test_reader_of_a_replaced_array_gets_array_changed(bucket: str) -> None:
    url = f"{bucket}/x.zarr"
    with arraystore.create(url, (8,), "<i8", chunks=(2,)) as w:
        w[:] = 1
    reader = arraystore.open(url)
    assert reader[:2].tolist() == [1, 1]
    with arraystore.create(url, (8,), "<i8", chunks=(2,), overwrite=True) as w:
        w[:] = 2
    with pytest.raises(ArrayChangedError, match="generation"):
        reader[:]  # the old generation is gone: never a silent mixture
    reader.close()


def test_r_plus_writes_and_attrs(bucket: str) -> None:
    url = f"{bucket}/x.zarr"
    with arraystore.create(url, (6,), "<f8") as w:
        w[:] = 0
    with arraystore.open(url, "r+") as s:
        s[1] = 5
        s.attrs["note"] = "édité"
    with arraystore.open(url) as r:
        assert r[:].tolist() == [0, 5, 0, 0, 0, 0] and r.attrs["note"] == "édité"


def test_arrays_inside_a_hierarchy(bucket: str) -> None:
    url = f"{bucket}/h.zarr::/grp/a"
    with arraystore.create(url, (3,), "<i4") as w:
        w[:] = [1, 2, 3]
    assert arraystore.open(url)[:].tolist() == [1, 2, 3]


def test_no_memory_map_and_no_copy_on_write(bucket: str) -> None:
    url = f"{bucket}/x.zarr"
    with arraystore.create(url, (3,), "<i4") as w:
        w[:] = 0
    with arraystore.open(url) as r, pytest.raises(NotMemoryMappableError, match="object store"):
        r.as_memmap()
    with pytest.raises(ModeError, match="copy-on-write"):
        arraystore.open(url, "c")


def test_http_urls_are_read_only() -> None:
    with pytest.raises(ModeError, match="read-only"):
        arraystore.create("https://example.invalid/x.zarr", (3,), "<i4")


def _sources(tmp_path: Path, a: np.ndarray) -> dict[str, str]:
    np.save(tmp_path / "a.npy", a)
    with arraystore.create(tmp_path / "a.dat", a.shape, a.dtype) as s:
        s[:] = a
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("d", data=a, chunks=(16, 16), compression="gzip")
    return {"npy": str(tmp_path / "a.npy"), "raw": str(tmp_path / "a.dat"), "hdf5": str(tmp_path / "a.h5") + "::/d"}


@pytest.mark.parametrize("back", ["npy", "raw", "hdf5", "zarr"])
@pytest.mark.parametrize("src", ["npy", "raw", "hdf5"])
def test_convert_local_to_s3_and_back(bucket: str, tmp_path: Path, src: str, back: str) -> None:
    a = np.arange(64 * 48, dtype=">f4").reshape(64, 48) / 7
    sources = _sources(tmp_path, a)
    url = f"{bucket}/from-{src}.zarr"
    report = arraystore.convert(sources[src], url, compression="zstd:3", verify=True)
    assert report.dst == url
    with arraystore.open(url) as r:
        assert r.dtype == a.dtype and r[:].tobytes() == a.tobytes() and r.compression == "zstd(level=3)"
    suffix = {"npy": ".npy", "raw": ".dat", "hdf5": ".h5", "zarr": ".zarr"}[back]
    out = tmp_path / f"back{suffix}"
    arraystore.convert(url, out, verify=True)
    with arraystore.open(out) as r:
        assert r.dtype == a.dtype and r[:].tobytes() == a.tobytes()


def test_convert_s3_to_s3(bucket: str, tmp_path: Path) -> None:
    a = np.arange(1000, dtype="<u2")
    np.save(tmp_path / "a.npy", a)
    arraystore.convert(tmp_path / "a.npy", f"{bucket}/one.zarr")
    arraystore.convert(f"{bucket}/one.zarr", f"{bucket}/two.zarr", chunks=(100,), verify=True)
    assert arraystore.open(f"{bucket}/two.zarr")[:].tobytes() == a.tobytes()


def test_convert_leaves_no_journal_behind(bucket: str, tmp_path: Path) -> None:
    import boto3

    a = np.arange(1000, dtype="<u2")
    np.save(tmp_path / "a.npy", a)
    arraystore.convert(tmp_path / "a.npy", f"{bucket}/one.zarr")
    name = bucket.removeprefix("s3://")
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=name).get("Contents", [])]
    assert keys and not [k for k in keys if "/.arraystore/" in k], keys


def test_a_reader_opened_before_an_r_plus_writer_starts_gets_array_changed(bucket: str) -> None:
    url = f"{bucket}/x.zarr"
    with arraystore.create(url, (4,), "<i8") as w:
        w[:] = 0
    reader = arraystore.open(url)
    writer = arraystore.open(url, "r+")
    writer[0] = 9  # marks the array incomplete: the reader's next read must not pass silently
    with pytest.raises(ArrayChangedError):
        reader[:]
    late = arraystore.open(url, allow_incomplete=True)  # opened incomplete on purpose: reads go on
    assert late[:].tolist() == [9, 0, 0, 0]
    writer[1] = 8
    assert late[:].tolist() == [9, 8, 0, 0]
    writer.close()
    reader.close()
    late.close()
