"""Every ordered pair of available backends round-trips bit-identically; refusals happen before writing."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import arraystore
from arraystore import registry
from arraystore.backends.raw import RawStore
from arraystore.checksums import StreamHasher, verify
from arraystore.conversion import ConversionReport, convert
from arraystore.errors import (
    AlreadyExistsError,
    ArrayNotFoundError,
    ConversionError,
    MemoryBudgetError,
    UnsupportedDtypeError,
)
from arraystore.fidelity import Fidelity, Support
from arraystore.registry import backend_class
from arraystore.testing.dtypes import CONFORMANCE_DTYPES, sample_data

from .conftest import BACKENDS, CHUNKED, COMPRESSION, SUFFIX, bytes_equal, read_back, write_source

PAIRS = [(s, d) for s in BACKENDS for d in BACKENDS]


def _stored_order(src: str, dst_backend: str) -> str:
    """The order a conversion keeps: the source's, as the destination stores it (HDF5: always C)."""
    with arraystore.open(src) as s:
        return backend_class(dst_backend).storage_order(s.order)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(("src_backend", "dst_backend"), PAIRS)
def test_pair_round_trips_with_attrs(tmp_path: Path, src_backend: str, dst_backend: str, order: str) -> None:
    data = np.asfortranarray(sample_data(np.dtype(">i4"), (120, 7), seed=3)) if order == "F" else sample_data(
        np.dtype("<f4"), (120, 7), seed=3)
    attrs = {} if "npy" in (src_backend, dst_backend) else {"units": "K", "scale": [1.5, 2], "nested": {"ü": None}}
    src = write_source(tmp_path / f"src{SUFFIX[src_backend]}", data, order, attrs)
    dst = str(tmp_path / f"dst{SUFFIX[dst_backend]}")
    report = convert(src, dst, max_memory="8KiB", verify=True)
    got, (shape, dtype, got_order, got_attrs) = read_back(dst)
    assert bytes_equal(got, data)
    assert (shape, dtype, got_order, got_attrs) == (data.shape, data.dtype, _stored_order(src, dst_backend), attrs)
    assert report.verified and report.blocks_written == report.blocks_total == report.plan["blocks"]["n_blocks"]
    assert report.checksum == StreamHasher.of(data)
    if report.checksum_recorded:
        assert verify(dst)["match"]
    assert _leftovers(tmp_path) == sorted([Path(src).name, Path(dst).name, *([Path(src).name + ".json"] if src_backend == "raw" else []),
                                           *([Path(dst).name + ".json"] if dst_backend == "raw" else [])])


@pytest.mark.parametrize("dst_backend", CHUNKED)
def test_compressed_destination_aligned_to_chunks(tmp_path: Path, dst_backend: str) -> None:
    data = sample_data(np.dtype("<u2"), (300, 50), seed=1)
    src = write_source(tmp_path / "src.dat", data)
    dst = str(tmp_path / f"dst{SUFFIX[dst_backend]}")
    report = convert(src, dst, chunks=(40, 50), compression=COMPRESSION[dst_backend], max_memory="64KiB", workers=2)
    got, _ = read_back(dst)
    assert bytes_equal(got, data)
    plan = report.plan["blocks"]
    assert plan["chunks"] == [40, 50]
    # every block is a whole number of destination chunk rows: no chunk is written twice
    assert plan["run"] >= 1 and plan["axis"] == 0 and plan["block_bytes"] % (40 * 50 * 2) == 0


def test_zarr_shards_are_the_alignment_unit(tmp_path: Path) -> None:
    if "zarr" not in BACKENDS:
        pytest.skip("zarr backend not installed")
    data = sample_data(np.dtype("<f4"), (256, 64), seed=2)
    src = write_source(tmp_path / "src.npy", data)
    report = convert(src, str(tmp_path / "dst.zarr"), chunks=(16, 64), shards=(64, 64), max_memory="1MiB")
    assert report.plan["blocks"]["chunks"] == [64, 64]
    got, _ = read_back(str(tmp_path / "dst.zarr"))
    assert bytes_equal(got, data)



@pytest.mark.parametrize("shape", [(100, 80), (7, 3, 9), (130,)])
def test_a_sharded_zarr_source_keeps_its_chunks_and_shards(tmp_path: Path, shape: tuple[int, ...]) -> None:
    """Converted into Zarr with neither chunks= nor shards= given, a sharded array keeps both, as zarr-python shows
    them; chunks= given is a layout of its own, unsharded."""
    if "zarr" not in BACKENDS:
        pytest.skip("zarr backend not installed")
    import zarr

    data = sample_data(np.dtype("<i2"), shape, seed=3)
    inner = tuple(max(1, n // 10) for n in shape)
    shards = tuple(c * 2 for c in inner)
    z = zarr.create_array(str(tmp_path / "src.zarr"), shape=shape, dtype=data.dtype, chunks=inner, shards=shards)
    z[...] = data
    report = convert(str(tmp_path / "src.zarr"), str(tmp_path / "dst.zarr"))
    out = zarr.open_array(str(tmp_path / "dst.zarr"), mode="r")
    assert (out.chunks, out.shards) == (inner, shards)
    assert f"chunks {inner} inside shards {shards} taken from the source" in report.plan["notes"]
    assert bytes_equal(out[...], data)
    given_chunks = convert(str(tmp_path / "src.zarr"), str(tmp_path / "given.zarr"), chunks=shards)
    out = zarr.open_array(str(tmp_path / "given.zarr"), mode="r")
    assert (out.chunks, out.shards) == (shards, None) and bytes_equal(out[...], data)
    assert not any("inside shards" in n for n in given_chunks.plan["notes"])


_SHAPES = st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple)


@given(
    pair=st.sampled_from(PAIRS),
    dtype=st.sampled_from(CONFORMANCE_DTYPES),
    shape=_SHAPES,
    order=st.sampled_from(["C", "F"]),
    chunk_seed=st.integers(1, 5),
    budget=st.sampled_from(["4KiB", "64KiB", "1MiB"]),
    compress=st.booleans(),
)
def test_property_any_pair_bit_identical(pair: tuple[str, str], dtype: np.dtype[Any], shape: tuple[int, ...], order: str,
                                         chunk_seed: int, budget: str, compress: bool) -> None:
    src_backend, dst_backend = pair
    assume(backend_class(src_backend).fidelity.support(dtype)[0] is not Support.NO)
    data = sample_data(dtype, shape, seed=chunk_seed)
    if order == "F" and data.ndim:  # np.asfortranarray turns 0-d into 1-d
        data = np.asfortranarray(data)
    chunked = dst_backend in CHUNKED
    chunks = tuple(min(chunk_seed, max(n, 1)) for n in shape) if chunked else None
    compression = COMPRESSION[dst_backend] if chunked and compress else None
    with tempfile.TemporaryDirectory() as tmp:
        src = write_source(Path(tmp) / f"src{SUFFIX[src_backend]}", data, order)
        dst = str(Path(tmp) / f"dst{SUFFIX[dst_backend]}")
        if backend_class(dst_backend).fidelity.support(dtype)[0] is Support.NO:
            with pytest.raises(UnsupportedDtypeError):
                convert(src, dst, chunks=chunks, compression=compression, max_memory=budget)
            assert sorted(p.name for p in Path(tmp).iterdir() if p.name.startswith("dst")) == []
            return
        report = convert(src, dst, chunks=chunks, compression=compression, max_memory=budget, verify=True)
        got, (got_shape, got_dtype, got_order, _) = read_back(dst)
        assert (got_shape, got_dtype, got_order) == (shape, dtype, _stored_order(src, dst_backend))
        assert bytes_equal(got, data)
        assert report.checksum == StreamHasher.of(data)


class _NoComplexRaw(RawStore):
    """A third-party-style backend that cannot store complex numbers."""

    backend = "nocomplex"
    fidelity = Fidelity(
        {key: cell for key, cell in Fidelity.everything_exact().table.items() if not key[0].startswith("complex")}
    )


@pytest.mark.parametrize("dtype", ["<c8", ">c16", [("x", "<f4"), ("z", "<c8")]], ids=str)
def test_unsupported_dtype_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: Any
) -> None:
    monkeypatch.setattr(registry, "_entry_point_classes", lambda: {"nocomplex": _NoComplexRaw})
    src = write_source(tmp_path / "src.dat", sample_data(np.dtype(dtype), (4, 3)))
    with pytest.raises(UnsupportedDtypeError, match="backends that can: raw, npy"):
        convert(src, str(tmp_path / "dst.dat"), backend="nocomplex")
    assert _leftovers(tmp_path) == ["src.dat", "src.dat.json"]


def test_budget_too_small_refused_before_writing(tmp_path: Path, sample: np.ndarray[Any, Any]) -> None:
    src = write_source(tmp_path / "src.dat", sample)
    dst = CHUNKED[0] if CHUNKED else None
    if dst is None:
        pytest.skip("needs a chunked backend (hdf5 or zarr)")
    with pytest.raises(MemoryBudgetError, match="cannot hold one destination chunk"):
        convert(src, str(tmp_path / f"dst{SUFFIX[dst]}"), chunks=(200, 33), compression=COMPRESSION[dst], max_memory=4096)
    assert _leftovers(tmp_path) == ["src.dat", "src.dat.json"]


def test_small_budget_splits_rows_and_says_so(tmp_path: Path) -> None:
    data = sample_data(np.dtype("<f8"), (4, 4096), seed=0)
    src = write_source(tmp_path / "src.npy", data)
    report = convert(src, str(tmp_path / "dst.dat"), max_memory="8KiB")
    # runs inside rows; a buffered copy holds two buffers, so the budget buys blocks of half of it (a kernel
    # copy holds no buffer of its own: blocks of the whole budget)
    halves = 2 if report.method == "buffered-copy" else 1
    assert report.blocks_total == 16 * halves and report.plan["blocks"]["block_bytes"] == 8192 // halves
    if CHUNKED:
        r2 = convert(src, str(tmp_path / f"dst2{SUFFIX[CHUNKED[0]]}"), chunks=(2, 256), max_memory="64KiB")
        assert r2.plan["blocks"]["split_below_chunk_rows"] and any("split" in n for n in r2.plan["notes"])
        got, _ = read_back(str(tmp_path / f"dst2{SUFFIX[CHUNKED[0]]}"))
        assert bytes_equal(got, data)


def test_existing_destination(tmp_path: Path, sample: np.ndarray[Any, Any]) -> None:
    src = write_source(tmp_path / "src.dat", sample)
    old = write_source(tmp_path / "dst.npy", np.zeros(3))
    with pytest.raises(AlreadyExistsError):
        convert(src, old)
    convert(src, old, overwrite=True)
    got, _ = read_back(old)
    assert bytes_equal(got, sample)


def test_refusals(tmp_path: Path, sample: np.ndarray[Any, Any]) -> None:
    src = write_source(tmp_path / "src.dat", sample, attrs={"a": 1})
    with pytest.raises(ConversionError, match="npy format cannot hold"):
        convert(src, str(tmp_path / "dst.npy"))
    with pytest.raises(ConversionError, match="same array"):
        convert(src, src, overwrite=True)
    with pytest.raises(ConversionError, match="scheduler"):
        convert(src, str(tmp_path / "x.dat"), scheduler=object())
    with pytest.raises(ConversionError, match="chunks="):
        convert(src, str(tmp_path / "x.dat"), chunks=(10, 10))
    with pytest.raises(ConversionError, match="memory size"):
        convert(src, str(tmp_path / "x.dat"), max_memory="lots")
    with pytest.raises(ArrayNotFoundError):
        convert(str(tmp_path / "missing.dat"), str(tmp_path / "x.dat"))
    assert _leftovers(tmp_path) == ["src.dat", "src.dat.json"]


def test_open_store_as_source_and_report(tmp_path: Path, sample: np.ndarray[Any, Any]) -> None:
    src = write_source(tmp_path / "src.npy", sample)
    with arraystore.open(src) as store:
        report = convert(store, str(tmp_path / "dst.dat"), max_memory="16KiB")
        assert not store.closed
    assert isinstance(report, ConversionReport)
    d = report.to_dict()
    assert d["nbytes"] == sample.nbytes and d["plan"]["blocks"]["n_blocks"] == report.blocks_total > 1
    assert report.method in ("kernel-copy", "buffered-copy") and report.peak_memory >= report.baseline_memory > 0
    assert "MiB" in report.summary() and report.to_json().startswith("{")


def test_zero_d_and_empty(tmp_path: Path) -> None:
    for i, data in enumerate([np.array(3.5, ">f8"), np.zeros((0, 4), "<i2"), np.zeros((3, 0), "u1")]):
        for dst_backend in BACKENDS:
            src = write_source(tmp_path / f"s{i}.dat", data) if not (tmp_path / f"s{i}.dat").exists() else str(tmp_path / f"s{i}.dat")
            dst = str(tmp_path / f"d{i}{SUFFIX[dst_backend]}")
            report = convert(src, dst, verify=True)
            got, _ = read_back(dst)
            assert bytes_equal(got, data) and report.checksum == StreamHasher.of(data)
