"""Chunks written to and read from a bucket by the conversion itself (conversion/_zarr_direct.py).

The oracle is zarr-python: the same array written by ``zarr.Array.__setitem__`` through its
own ``ObjectStore`` must give the same chunk objects, byte for byte, and a block read into a
reused buffer must equal what zarr-python reads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
import zarr.storage

import arraystore
from arraystore.conversion._zarr_direct import ZarrChunkReader, ZarrChunkWriter, zarr_direct_array

pytestmark = pytest.mark.timeout(120)

_GZIP_MTIME = re.compile(rb"\x1f\x8b\x08\x00....", re.DOTALL)


def _objects(url: str) -> dict[str, bytes]:
    """The chunk objects under an array's prefix (metadata, lease and journal left out)."""
    import obstore
    from obstore.store import from_url

    store = from_url(url if "://" in url else Path(url).as_uri())
    out = {}
    for batch in obstore.list(store):
        for meta in batch:
            key = str(meta["path"])
            if key.startswith("c/"):
                out[key] = _GZIP_MTIME.sub(b"\x1f\x8b\x08\x00\x00\x00\x00\x00", bytes(obstore.get(store, key).bytes()))
    return out


def _twin(url: str, ours: Any, data: np.ndarray[Any, Any]) -> None:
    from obstore.store import from_url

    twin = zarr.create_array(
        zarr.storage.ObjectStore(from_url(url)), shape=ours.shape, dtype=ours.dtype, chunks=ours.chunks,
        shards=ours.shards, filters=ours.filters, serializer=ours.serializer, compressors=ours.compressors,
        fill_value=ours.fill_value, config={"write_empty_chunks": False}, zarr_format=3,
    )
    twin[...] = data


@pytest.mark.parametrize("dtype", ["<f4", ">i4", "|b1"])
@pytest.mark.parametrize("compression", [None, "zstd:1", "gzip:1"])
@pytest.mark.parametrize("shards", [None, (16, 12)])
def test_same_chunk_objects_as_zarr_python(bucket: str, tmp_path: Path, dtype: str, compression: str | None,
                                           shards: tuple[int, int] | None) -> None:
    data = np.random.default_rng(1).integers(-40, 40, size=(37, 23)).astype(dtype)
    data[:8] = 0  # whole chunks of the fill value: not written
    np.save(tmp_path / "a.npy", data)
    url = f"{bucket}/a.zarr"
    report = arraystore.convert(tmp_path / "a.npy", url, chunks=(8, 6), shards=shards, compression=compression,
                                max_memory="64KiB")
    assert any("written as whole objects" in n for n in report.plan["notes"]), report.plan["notes"]
    from obstore.store import from_url

    ours = zarr.open_array(zarr.storage.ObjectStore(from_url(url)), mode="r")
    arraystore.convert(url, tmp_path / "back.npy")  # whole shards: s3rver answers a suffix range (an index) wrongly
    np.testing.assert_array_equal(np.load(tmp_path / "back.npy"), data)
    _twin(f"{bucket}/twin.zarr", ours, data)
    mine, theirs = _objects(url), _objects(f"{bucket}/twin.zarr")
    assert mine == theirs and len(mine) > 1


@pytest.mark.parametrize("where", ["local", "bucket"])
def test_a_fill_chunk_over_an_old_chunk_deletes_its_object(where: str, request: pytest.FixtureRequest,
                                                            tmp_path: Path) -> None:
    """A chunk now equal to the fill value removes what an earlier run wrote at its key, in a folder or a bucket."""
    url = f"{request.getfixturevalue('bucket')}/d.zarr" if where == "bucket" else str(tmp_path / "d.zarr")
    with arraystore.create(url, (6, 4), "<i4", chunks=(2, 4)) as s:
        s[...] = np.arange(24, dtype="<i4").reshape(6, 4) + 1
    assert sorted(_objects(url)) == ["c/0/0", "c/1/0", "c/2/0"]
    with arraystore.open(url, "r+") as s:
        assert zarr_direct_array(s) is not None
        writer = ZarrChunkWriter(s, workers=2, may_exist=True)
        try:
            writer.write((slice(0, 4), slice(0, 4)), np.zeros((4, 4), "<i4"))
        finally:
            writer.close()
    assert sorted(_objects(url)) == ["c/2/0"]
    expect = np.zeros((6, 4), "<i4")
    expect[4:] = np.arange(16, 24).reshape(2, 4) + 1
    np.testing.assert_array_equal(arraystore.open(url)[...], expect)


@pytest.mark.parametrize("dtype", ["<f4", ">f8", "|b1", "<M8[s]", "<c8"])
@pytest.mark.parametrize("shards", [None, (8, 10)])
def test_blocks_read_into_a_reused_buffer_are_zarr_pythons_values(bucket: str, dtype: str,
                                                                  shards: tuple[int, int] | None) -> None:
    rng = np.random.default_rng(2)
    data = rng.integers(0, 1000, size=(29, 17)).astype(np.dtype(dtype).newbyteorder("=").str[1:]).astype(dtype)
    url = f"{bucket}/r.zarr"
    with arraystore.create(url, data.shape, data.dtype, chunks=(4, 5), shards=shards) as s:
        s[...] = data
    with arraystore.open(url) as s:
        reader = ZarrChunkReader(s, workers=2)
        try:
            stored = reader.out_dtype
            assert stored is not None
            buffer = np.full(4096, 0xAB, np.uint8)  # garbage left by an earlier block must never show through
            for sel in [(slice(0, 13), slice(0, 17)), (slice(13, 29), slice(0, 17)), (slice(3, 11), slice(2, 16))]:
                shape = tuple(x.stop - x.start for x in sel)
                out = buffer[: int(np.prod(shape)) * stored.itemsize].view(stored).reshape(shape)
                got = reader.read(sel, out=out)
                assert got.dtype == data.dtype
                np.testing.assert_array_equal(got, data[sel])
                with pytest.raises(ValueError, match="C-contiguous"):
                    reader.read(sel, out=np.empty(shape[::-1], stored).T)
        finally:
            reader.close()


@pytest.mark.parametrize("reads", [[0, 1, 2, 3, 4, 5], [0, 2, 5], [1, 0, 3], [5, 4], [0, "odd", 1, 2]],
                         ids=["in-order", "skipping", "out-of-order", "backwards", "unknown-block"])
def test_blocks_read_in_any_order_with_the_next_one_prefetched(bucket: str, reads: list[int | str]) -> None:
    data = np.arange(48 * 10, dtype="<i4").reshape(48, 10)
    url = f"{bucket}/p.zarr"
    with arraystore.create(url, data.shape, data.dtype, chunks=(2, 10)) as s:
        s[...] = data
    blocks = [(slice(i, i + 8), slice(0, 10)) for i in range(0, 48, 8)]
    with arraystore.open(url) as s:
        reader = ZarrChunkReader(s, workers=2, fetch_bytes=4 * 80, blocks=blocks)  # rounds of one chunk
        try:
            for which in reads:
                sel = (slice(3, 7), slice(0, 10)) if which == "odd" else blocks[int(which)]
                np.testing.assert_array_equal(reader.read(sel), data[sel])
        finally:
            reader.close()  # a round fetched for a block never read is dropped
