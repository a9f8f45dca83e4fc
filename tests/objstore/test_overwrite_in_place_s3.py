"""A conversion that replaces an array in a bucket overwrites its chunk objects in place.

The replaced array's metadata goes first, then every object that is not a chunk of the new
grid; the chunks at keys of the new grid stay (stale) until the chunk writer overwrites them,
or deletes them when their new value is all fill. Whatever way the new array is then written,
read, interrupted and resumed, or committed, no value of the old array shows through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.conversion._zarr_direct import ZarrChunkWriter
from arraystore.errors import ArrayNotFoundError

pytestmark = pytest.mark.timeout(120)

SHAPE, CHUNKS = (64, 1024), (8, 512)  # 256 KiB of int32 in chunks of 16 KiB


def _keys(url: str) -> list[str]:
    """Every object under an array's prefix but the lease's and the journal's folder."""
    import obstore
    from obstore.store import from_url

    return sorted(str(m["path"]) for batch in obstore.list(from_url(url)) for m in batch
                  if not str(m["path"]).startswith(".arraystore/"))


def _new() -> np.ndarray[Any, Any]:
    return np.arange(np.prod(SHAPE), dtype="<i4").reshape(SHAPE) + 10


def _old(url: str, shape: tuple[int, ...], chunks: tuple[int, ...]) -> None:
    """An array of ones (no chunk of it equal to a fill value of 0) at ``url``."""
    with arraystore.create(url, shape, "<i4", chunks=chunks, overwrite=True) as s:
        s[...] = np.ones(shape, "<i4")


@pytest.mark.parametrize("old_shape", [SHAPE, (96, 1536), (32, 512)])  # the same grid, a larger one, a smaller one
@pytest.mark.parametrize("shards", [None, (16, 1024)])
def test_a_conversion_over_an_array_leaves_nothing_of_it(bucket: str, tmp_path: Path, old_shape: tuple[int, int],
                                                         shards: tuple[int, int] | None) -> None:
    url = f"{bucket}/a.zarr"
    _old(url, old_shape, CHUNKS)
    new = _new()
    new[16:48] = 0  # chunks (shards) of the fill value: the old objects at their keys are deleted
    np.save(tmp_path / "new.npy", new)
    report = arraystore.convert(tmp_path / "new.npy", url, chunks=CHUNKS, shards=shards, overwrite=True,
                                max_memory="64KiB" if shards is None else "256KiB")
    assert report.blocks_total > 1
    assert any("written as whole objects" in n for n in report.plan["notes"]), report.plan["notes"]
    np.testing.assert_array_equal(arraystore.open(url)[...], new)
    # The objects are those of the same conversion to a fresh prefix, key for key and byte for byte.
    arraystore.convert(tmp_path / "new.npy", f"{bucket}/fresh.zarr", chunks=CHUNKS, shards=shards)
    assert _keys(url) == _keys(f"{bucket}/fresh.zarr")
    import obstore
    from obstore.store import from_url

    ours, fresh = from_url(url), from_url(f"{bucket}/fresh.zarr")
    for key in _keys(url):
        if key != "zarr.json":
            assert bytes(obstore.get(ours, key).bytes()) == bytes(obstore.get(fresh, key).bytes()), key


def test_the_old_array_is_gone_before_the_first_chunk_is_written(bucket: str, tmp_path: Path) -> None:
    url = f"{bucket}/g.zarr"
    _old(url, SHAPE, CHUNKS)
    np.save(tmp_path / "new.npy", np.full(SHAPE, 5, "<i4"))
    seen: list[str] = []

    def look(done: int, total: int) -> None:
        if done < total and not seen:
            with pytest.raises(ArrayNotFoundError):
                arraystore.open(url)
            seen.append("staged")

    arraystore.convert(tmp_path / "new.npy", url, chunks=CHUNKS, overwrite=True, max_memory="64KiB", progress=look)
    assert seen == ["staged"]
    assert (arraystore.open(url)[...] == 5).all()


def test_an_interrupted_conversion_in_place_resumes_to_the_new_values(bucket: str, tmp_path: Path) -> None:
    url = f"{bucket}/r.zarr"
    _old(url, SHAPE, CHUNKS)
    new = _new()
    new[:8] = 0  # the first blocks all fill: their old chunks must be gone before they are journaled as done
    np.save(tmp_path / "new.npy", new)

    class Stop(Exception):
        pass

    def stop_after_three_blocks(done: int, total: int) -> None:
        if done >= 3 * np.prod(CHUNKS) * 4:
            raise Stop

    with pytest.raises(Stop):
        arraystore.convert(tmp_path / "new.npy", url, chunks=CHUNKS, overwrite=True, max_memory="64KiB",
                           resume=True, progress=stop_after_three_blocks)
    report = arraystore.convert(tmp_path / "new.npy", url, chunks=CHUNKS, overwrite=True, max_memory="64KiB",
                                resume=True)
    assert report.blocks_resumed >= 2 and report.blocks_rewritten == 0  # the fill blocks were finished
    np.testing.assert_array_equal(arraystore.open(url)[...], new)
    assert "c/0/0" not in _keys(url) and "c/0/1" not in _keys(url)


def _in_place(url: str) -> Any:
    return arraystore.create(url, (8, 6), "<i4", chunks=(2, 3), overwrite=True, overwrite_in_place=True)


def test_stale_chunks_read_as_fill_and_never_merge_into_a_partial_write(bucket: str) -> None:
    url = f"{bucket}/p.zarr"
    _old(url, (8, 6), (2, 3))
    with _in_place(url) as s:
        assert s.stale_chunks  # kept for a chunk writer to overwrite
        assert (s[...] == 0).all()  # read: the old chunks are gone first
        assert not s.stale_chunks
    _old(url, (8, 6), (2, 3))
    with _in_place(url) as s:
        s[0, 0] = 7  # zarr writes part of a chunk: it must not find the old one to merge with
    expect = np.zeros((8, 6), "<i4")
    expect[0, 0] = 7
    np.testing.assert_array_equal(arraystore.open(url)[...], expect)
    assert _keys(url) == ["c/0/0", "zarr.json"]


def test_stale_chunks_not_written_are_deleted_before_the_commit(bucket: str) -> None:
    url = f"{bucket}/c.zarr"
    _old(url, (8, 6), (2, 3))
    with _in_place(url) as s:
        writer = ZarrChunkWriter(s, workers=2)
        try:
            writer.write((slice(0, 2), slice(0, 6)), np.full((2, 6), 3, "<i4"))  # overwritten in place
            writer.write((slice(2, 4), slice(0, 6)), np.zeros((2, 6), "<i4"))  # all fill: deleted now
        finally:
            writer.close()
        assert s.stale_chunks == {f"c/{i}/{j}" for i in (2, 3) for j in (0, 1)}
    expect = np.zeros((8, 6), "<i4")
    expect[:2] = 3
    np.testing.assert_array_equal(arraystore.open(url)[...], expect)
    assert _keys(url) == ["c/0/0", "c/0/1", "zarr.json"]


def test_sharing_with_other_processes_deletes_the_stale_chunks_first(bucket: str) -> None:
    from arraystore._open import share_staged

    url = f"{bucket}/s.zarr"
    _old(url, (8, 6), (2, 3))
    with _in_place(url) as s:
        assert s.stale_chunks
        share_staged(s)  # their writes would not reach this handle's list: nothing stale may remain
        assert not s.stale_chunks
        assert _keys(url) == ["zarr.json"]


def test_a_create_resuming_an_interrupted_overwrite_in_place_starts_afresh(bucket: str, tmp_path: Path) -> None:
    url = f"{bucket}/i.zarr"
    _old(url, SHAPE, CHUNKS)
    np.save(tmp_path / "new.npy", _new())

    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        arraystore.convert(tmp_path / "new.npy", url, chunks=CHUNKS, overwrite=True, max_memory="64KiB",
                           resume=True, progress=stop)
    assert len(_keys(url)) > 2  # staged, with chunks of the old array at keys not written yet
    # A writer that may not write every chunk does not take over an array that may hold old ones.
    with arraystore.create(url, SHAPE, "<i4", chunks=CHUNKS, resume=True) as s:
        s[:8] = 3
    expect = np.zeros(SHAPE, "<i4")
    expect[:8] = 3
    np.testing.assert_array_equal(arraystore.open(url)[...], expect)
