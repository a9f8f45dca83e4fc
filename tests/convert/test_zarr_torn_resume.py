"""Interrupted conversions into Zarr whose chunk files were written in place (conversion/_zarr_direct.py), resumed.

A conversion writes the chunk (shard) files of its staged array straight at their keys; a block is journaled only
once its files are written, so a kill can leave any file of a block not yet journaled cut short, and the resumed run
must write it again, or remove it where that chunk is now all fill value. The property: whatever the dtype (either
byte order, bool, complex, datetime, structured), the chunk grid (edges partial in every axis), shards, codec and the
source's order, an array interrupted after any block, with every file of the unjournaled blocks torn (cut to any
length, or garbage at a key the killed run had not reached), reads back through zarr-python itself as numpy's array:
same dtype, shape and bytes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.blocks import BlockPlan

from .conftest import Stop, stop_after, write_source

zarr = pytest.importorskip("zarr", reason="the zarr extra is not installed")

DTYPES = ["|b1", "|i1", ">u2", "<i4", ">f4", "<f8", ">c16", "<M8[s]", ">m8[ms]", "<i4,>f8"]
COMPRESSIONS = [None, "zstd:1", "blosc:lz4:5", "gzip:1"]


def _data(dtype: np.dtype[Any], shape: tuple[int, ...], rng: np.random.Generator, fill_rows: int) -> np.ndarray[Any, Any]:
    """Random bytes of ``dtype`` (NaNs and signed zeros included); the first ``fill_rows`` rows all zero bytes (the
    fill value: chunks there are not written)."""
    raw = rng.integers(0, 256, size=math.prod(shape) * dtype.itemsize, dtype=np.uint8)
    if dtype.kind == "b":
        raw %= 2
    data: np.ndarray[Any, Any] = raw.view(dtype).reshape(shape).copy()
    if fill_rows:
        data[:fill_rows] = np.zeros((), dtype)
    return data


def _units(sel: tuple[slice, ...], unit: tuple[int, ...]) -> list[str]:
    """The chunk (shard) keys of a block."""
    import itertools

    ranges = [range(s.start // u, math.ceil(s.stop / u)) for s, u in zip(sel, unit)]
    return ["c/" + "/".join(map(str, c)) for c in itertools.product(*ranges)]


@settings(max_examples=30, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(2, 19), min_size=1, max_size=3).map(tuple),
    seed=st.integers(0, 2**32 - 1),
    compression=st.sampled_from(COMPRESSIONS),
    sharded=st.booleans(),
    order=st.sampled_from(["C", "F"]),
    fill_rows=st.integers(0, 8),
    stop_at=st.integers(1, 4),
)
def test_torn_files_of_unjournaled_blocks_resume_to_numpys_array(
        tmp_path_factory: pytest.TempPathFactory, dtype: str, shape: tuple[int, ...], seed: int,
        compression: str | None, sharded: bool, order: str, fill_rows: int, stop_at: int) -> None:
    tmp = tmp_path_factory.mktemp("torn")
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    data = _data(dt, shape, rng, fill_rows)
    chunks = tuple(int(rng.integers(1, (n + 1) // 2 + 1)) for n in shape)  # two or more chunks on each axis
    shards = tuple(c * int(rng.integers(1, 3)) for c in chunks) if sharded and dt.names is None else None
    src = write_source(tmp / "src.npy", np.asfortranarray(data) if order == "F" else data, order=order)
    dst = tmp / "dst.zarr"
    unit = shards or chunks
    budget = max(1024, 8 * math.prod(unit) * dt.itemsize)  # two units per block (4 buffers): several blocks
    opts: dict[str, Any] = {"chunks": chunks, "shards": shards, "compression": compression,
                            "max_memory": budget, "workers": 2}
    try:
        arraystore.convert(src, str(dst), progress=stop_after(stop_at), **opts)
        interrupted = False
    except Stop:
        interrupted = True
    event(f"interrupted: {interrupted}")
    if interrupted:
        journal = dst.with_name(dst.name + ".partial.journal.jsonl")
        staging = dst.with_name(dst.name + ".partial")
        records = [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
        done = {int(r["block"]) for r in records[1:] if r.get("block") is not None}
        if records:
            b = records[0]["options"]["blocks"]
            plan = BlockPlan(shape, dt.itemsize, records[0]["options"]["order"], tuple(b["chunks"]),
                             b["max_bytes"], b["axis"], b["run"], b["chunk_overhead"])
            for i, sel in enumerate(plan):
                if i in done:
                    continue
                for key in _units(sel, unit):  # every file of a block not journaled, torn
                    p = staging / key
                    if p.exists():
                        size = p.stat().st_size
                        with open(p, "r+b") as f:
                            f.truncate(int(rng.integers(0, size)) if size else 0)
                    else:
                        p.parent.mkdir(parents=True, exist_ok=True)
                        p.write_bytes(rng.integers(0, 256, size=int(rng.integers(0, 64)), dtype=np.uint8).tobytes())
        report = arraystore.convert(src, str(dst), verify=True, **opts)
        assert report.verified
    got = zarr.open_array(str(dst), mode="r")[...]
    assert got.shape == data.shape
    assert got.dtype == data.dtype.newbyteorder("=") or got.dtype == data.dtype or dt.names is not None
    # zarr-python reads in native byte order (and its structured fields likewise): the values, as numpy's
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(data.astype(got.dtype)).tobytes()
    with arraystore.open(str(dst)) as s:
        ours = s[...]
    assert ours.dtype == data.dtype and ours.shape == data.shape
    assert np.ascontiguousarray(ours).tobytes() == np.ascontiguousarray(data).tobytes()
    assert not [n for n in os.listdir(tmp) if n.endswith((".partial", ".jsonl"))]


@pytest.mark.parametrize("option", ["shards", "dimension_names", "portable"])
def test_conversions_with_creation_only_options_resume(tmp_path: Path, option: str) -> None:
    """An interrupted conversion into a sharded array, one with dimension names (from its source) or a portable one
    resumes from its journal: the staged array is reopened with the options only a creation takes compared, not
    handed to the opening (a TypeError before)."""
    data = np.arange(64 * 16, dtype="<f8").reshape(64, 16)
    if option == "portable":
        data = (data * 1000).astype("<M8[s]")
    names: dict[str, Any] = {"dimension_names": ("y", "x")} if option == "dimension_names" else {}
    src = write_source(tmp_path / "src.zarr", data, chunks=(4, 16), **names)
    opts: dict[str, Any] = {"chunks": (4, 16), "max_memory": "8KiB", "compression": "zstd:1"}
    extra: dict[str, dict[str, Any]] = {"shards": {"shards": (8, 16)}, "portable": {"portable": True}}
    opts.update(extra.get(option, {}))
    with pytest.raises(Stop):
        arraystore.convert(src, str(tmp_path / "dst.zarr"), progress=stop_after(2), **opts)
    report = arraystore.convert(src, str(tmp_path / "dst.zarr"), verify=True, **opts)
    assert report.blocks_resumed >= 1 and report.restarted is None
    with arraystore.open(str(tmp_path / "dst.zarr")) as s:
        assert s.dtype == data.dtype and np.array_equal(s[...], data)
        assert s.dimension_names == names.get("dimension_names")
        assert s.shards == opts.get("shards")  # type: ignore[attr-defined]
    if option != "portable":
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "dst.zarr"), mode="r")[...], data)


@pytest.mark.parametrize(("first", "then"), [
    ({"shards": (8, 16)}, {"shards": (16, 16)}),
    ({"shards": (8, 16)}, {}),
    ({}, {"shards": (8, 16)}),
    ({"dimension_names": ("y", "x")}, {"dimension_names": ("a", "x")}),
])
def test_a_staged_array_made_with_other_creation_options_is_not_reused(tmp_path: Path, first: dict[str, Any],
                                                                        then: dict[str, Any]) -> None:
    """``create(..., resume=True)`` reuses a half-built array only when it is the one asked for: other shards or
    other dimension names build it again (the staged one was made for another creation); a shared handle on a
    sharded staged array (its reference names the shards as its chunks) still opens."""
    where = str(tmp_path / "a.zarr")
    s = arraystore.create(where, (32, 16), "<f4", chunks=(4, 16), **first)
    s[:8] = 1
    s.abandon()
    with arraystore.create(where, (32, 16), "<f4", chunks=(4, 16), resume=True, **then) as s:
        assert s.shards == then.get("shards")  # type: ignore[attr-defined]
        assert s.dimension_names == then.get("dimension_names")
        assert not s[...].any()  # built again: nothing of the first creation's writes
        s[...] = 2
    z = zarr.open_array(where, mode="r")
    assert z.shards == then.get("shards") and (z[...] == 2).all()


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
@pytest.mark.parametrize(("first", "then"), [
    (("y", "x"), None),
    (("y", None), None),
    (None, ("y", "x")),
    (("y", "x"), ("x", "y")),
])
def test_a_staged_array_with_other_dimension_names_is_built_again(tmp_path: Path, suffix: str, first: Any,
                                                                   then: Any) -> None:
    """Every backend that records dimension names: ``create(..., resume=True)`` asking for none over an array staged
    with names (or for others) builds it again; the resumed array was published with the first creation's names."""
    where = str(tmp_path / f"a{suffix}")
    s = arraystore.create(where, (32, 16), "<f4", chunks=(4, 16), dimension_names=first)
    s[:8] = 1
    s.abandon()
    with arraystore.create(where, (32, 16), "<f4", chunks=(4, 16), resume=True, dimension_names=then) as s:
        assert not s[...].any()
        s[...] = 2
    with arraystore.open(where) as s:
        assert s.dimension_names in ((then, None) if then is None else (then,))
        assert (s[...] == 2).all()


@pytest.mark.parametrize(("first", "then"), [
    ({"dimension_names": ("y", "x")}, {}),
    ({"dimension_names": ("y", "x")}, {"dimension_names": ("a", "x")}),
    ({}, {"dimension_names": ("y", "x")}),
    ({"shards": (8, 16)}, {}),
])
def test_a_url_array_staged_for_another_creation_is_built_again(first: dict[str, Any], then: dict[str, Any]) -> None:
    """In object storage too: ``create(..., resume=True)`` over an array staged with other dimension names or shards
    builds it again (it was reused: the first creation's names and writes published); the same options resume."""
    import uuid

    where = f"memory:///critic/{uuid.uuid4().hex}.zarr"
    s = arraystore.create(where, (32, 16), "<f4", chunks=(4, 16), **first)
    s[:8] = 1
    s.abandon()
    s = arraystore.create(where, (32, 16), "<f4", chunks=(4, 16), resume=True, **first)
    assert (s[:8] == 1).all() or "shards" in first  # the same creation: resumed (a sharded one is built again)
    s.abandon()
    with arraystore.create(where, (32, 16), "<f4", chunks=(4, 16), resume=True, **then) as s:
        assert not s[...].any()
        s[...] = 2
    with arraystore.open(where) as s:
        assert s.dimension_names in ((then["dimension_names"],) if "dimension_names" in then else (None, (None, None)))
        assert s.shards == then.get("shards")  # type: ignore[attr-defined]
        assert (s[...] == 2).all()


def test_a_url_array_is_created_with_its_dimension_names() -> None:
    """``create("memory://...", dimension_names=...)`` records them (they were dropped without a word); a backend
    with nowhere to record them says so."""
    from arraystore.errors import BackendError

    where = "memory:///critic/named.zarr"
    with arraystore.create(where, (4, 3), "<f4", dimension_names=("y", "x")) as s:
        s[...] = 1
    with arraystore.open(where) as s:
        assert s.dimension_names == ("y", "x")
    with pytest.raises(BackendError, match="dimension_names"):
        arraystore.create("memory:///critic/named.npy", (4, 3), "<f4", dimension_names=("y", "x"))


def test_a_shared_handle_on_a_sharded_staged_array_opens(tmp_path: Path) -> None:
    from arraystore._open import share_staged

    with arraystore.create(tmp_path / "a.zarr", (16, 16), "<f4", chunks=(2, 16), shards=(4, 16)) as s:
        handle = share_staged(s).open()
        handle[0:4] = 1
        handle.abandon()
        s[4:] = 2
    got = zarr.open_array(str(tmp_path / "a.zarr"), mode="r")[...]
    assert (got[:4] == 1).all() and (got[4:] == 2).all()


def _stopped_after_three_blocks(tmp_path: Path) -> tuple[np.ndarray[Any, Any], str, Path, dict[str, Any], Path]:
    """(data, source, destination, options, staging folder) of a zstd Zarr conversion stopped after 3 blocks of 32."""
    data = (np.arange(256 * 256, dtype="<f4") * 0.5).reshape(256, 256)
    src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / "dst.zarr"
    opts: dict[str, Any] = {"chunks": (8, 256), "max_memory": "64KiB", "compression": "zstd:1"}
    with pytest.raises(Stop):
        arraystore.convert(src, str(dst), progress=stop_after(3), **opts)
    return data, src, dst, opts, tmp_path / "dst.zarr.partial"


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_a_link_at_a_chunk_key_of_the_staged_array_is_replaced_not_written_through(tmp_path: Path, link: str) -> None:
    """A chunk file written in place at its key must not follow a link left there (to another chunk of the staged
    array, inside the store: the guard against links leading outside does not see it): the resumed run writes a file
    of its own at the key, as the rename of a temporary file did, and the chunk linked to keeps its bytes."""
    data, src, dst, opts, staging = _stopped_after_three_blocks(tmp_path)
    first = staging / "c" / "0" / "0"  # a chunk of a block journaled: resumed, not written again
    kept = first.read_bytes()
    at = staging / "c" / "30" / "0"  # a chunk of a block not journaled
    at.parent.mkdir(parents=True, exist_ok=True)
    at.unlink(missing_ok=True)
    if link == "symbolic":
        os.symlink("../0/0", at)
    else:
        os.link(first, at)
    report = arraystore.convert(src, str(dst), **opts)  # no verify: the published array alone must be right
    if link == "hard":  # a staged array holding a symbolic link is built again (see the folder link test below)
        assert report.blocks_resumed >= 1
    assert not (dst / "c" / "30" / "0").is_symlink() and (dst / "c" / "30" / "0").stat().st_nlink == 1
    assert (dst / "c" / "0" / "0").read_bytes() == kept
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[...], data)


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_a_folder_link_in_the_staged_array_is_not_followed_on_resume(tmp_path: Path, where: str) -> None:
    """A chunk folder of the staged array replaced by a symbolic link (to another chunk folder of the array, or out of
    it) between the kill and the resume: the staged array is not as this library built it and is built again; the
    published array is numpy's (without verify) and nothing outside is touched."""
    data, src, dst, opts, staging = _stopped_after_three_blocks(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "0").write_bytes(b"precious")
    folder = staging / "c" / "30"
    shutil.rmtree(folder, ignore_errors=True)
    folder.symlink_to("0" if where == "inside" else outside, target_is_directory=True)
    arraystore.convert(src, str(dst), **opts)
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[...], data)
    assert not (dst / "c" / "30").is_symlink()
    assert (outside / "0").read_bytes() == b"precious"


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_an_in_place_write_replaces_a_link_at_its_key(tmp_path: Path, link: str) -> None:
    """The store's in-place write itself: the file a link at the key names keeps its bytes and mode."""
    from arraystore.backends._zarr_modes import ModeKeepingLocalStore

    store = ModeKeepingLocalStore(str(tmp_path / "a"))
    (tmp_path / "a" / "c" / "0").mkdir(parents=True)
    other = tmp_path / "a" / "c" / "0" / "1"
    other.write_bytes(b"another chunk")
    at = tmp_path / "a" / "c" / "0" / "0"
    if link == "symbolic":
        os.symlink("1", at)
    else:
        os.link(other, at)
    with store.put_stream("c/0/0", in_place=True) as f:
        f.write(b"new")
    assert not at.is_symlink() and at.read_bytes() == b"new" and at.stat().st_nlink == 1
    assert other.read_bytes() == b"another chunk" and other.stat().st_nlink == 1
