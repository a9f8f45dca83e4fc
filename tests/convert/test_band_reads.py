"""A local Zarr source in the page cache decoded band by band into a byte-range destination (``_band_reads``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.checksums import StreamHasher
from arraystore.conversion import _band_reads, _fastpath
from arraystore.errors import ArrayStoreError, MetadataError

from .conftest import BACKENDS, SUFFIX, bytes_equal, read_back

pytestmark = pytest.mark.skipif("zarr" not in BACKENDS, reason="zarr is not installed")

BYTE_RANGE = [b for b in ("npy", "raw", "hdf5") if b in BACKENDS]


def _zarr(path: Path, data: np.ndarray[Any, Any], chunks: tuple[int, ...], shards: tuple[int, ...] | None = None,
          codec: str = "zstd", fill: Any = 0) -> str:
    """A Zarr v3 array written by zarr-python itself (the oracle), chunks equal to the fill value not stored."""
    import zarr
    import zarr.codecs

    compressors: Any = {"zstd": [zarr.codecs.ZstdCodec(level=1)], "none": None,
                        "blosc": [zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")],
                        "gzip": [zarr.codecs.GzipCodec(level=1)]}[codec]
    arr = zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=chunks, shards=shards,
                            compressors=compressors, fill_value=fill, zarr_format=3)
    arr[...] = data
    return str(path)


def _zarr_python_read(path: str) -> np.ndarray[Any, Any]:
    import zarr

    return np.asarray(zarr.open_array(path, mode="r")[...])


def _banded(report: Any) -> bool:
    return any("hashed and written in bands" in n for n in report.plan["notes"])


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 120),
    cols=st.integers(1, 48),
    chunk_rows=st.integers(1, 16),
    narrow=st.booleans(),
    sharded=st.booleans(),
    codec=st.sampled_from(["zstd", "none", "blosc", "gzip"]),
    dst=st.sampled_from(BYTE_RANGE),
    budget=st.sampled_from([16384, 65536, 1 << 20]),
    dtype=st.sampled_from(["<f4", ">i2", "<u8"]),
    fill=st.sampled_from([0, 7]),
    seed=st.integers(0, 1000),
)
def test_zarr_written_by_zarr_python_converts_exactly(tmp_path_factory: pytest.TempPathFactory, rows: int, cols: int,
                                                      chunk_rows: int, narrow: bool, sharded: bool, codec: str,
                                                      dst: str, budget: int, dtype: str, fill: int,
                                                      seed: int) -> None:
    """Partial edge chunks, chunks narrower than the array, absent chunks (the fill value), shards: numpy is the
    oracle, the streamed checksum the one of numpy's bytes, and the memory the plan's."""
    tmp = tmp_path_factory.mktemp("band")
    rng = np.random.default_rng(seed)
    data = (rng.random((rows, cols)) * 1000).astype(dtype)
    data[rng.random(rows) < 0.3] = fill  # whole chunks of the fill value: absent in the source
    chunk_cols = max(1, cols // 3) if narrow else cols
    chunks = (chunk_rows, chunk_cols)
    shards = (chunk_rows * 3, chunk_cols * (2 if narrow and chunk_cols * 2 <= cols else 1)) if sharded else None
    src = _zarr(tmp / "src.zarr", data, chunks, shards, codec, fill)
    out = str(tmp / f"dst{SUFFIX[dst]}")
    report = arraystore.convert(src, out, max_memory=budget, verify=True)
    back, _ = read_back(out)
    expected = _zarr_python_read(src)  # the dtype zarr-python gives the array (its bytes codec's endian aside)
    assert np.array_equal(expected, data)
    assert bytes_equal(back, expected)
    assert report.checksum == StreamHasher.of(expected)
    assert report.memory_estimate <= budget


@pytest.mark.parametrize("shards", [None, (24, 64)])
@pytest.mark.parametrize("dst", BYTE_RANGE)
def test_a_cached_source_is_banded_and_its_bands_stay_within_the_plan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shards: tuple[int, int] | None, dst: str) -> None:
    aligned = _band_reads.huge_page_aligned
    made: list[np.ndarray[Any, Any]] = []

    def counting(nbytes: int) -> np.ndarray[Any, Any]:
        buf = aligned(nbytes)
        made.append(buf)
        return buf

    monkeypatch.setattr(_band_reads, "huge_page_aligned", counting)
    data = np.random.default_rng(1).normal(size=(1000, 64)).astype("<f4")
    data[100:200] = 0.0
    src = _zarr(tmp_path / "src.zarr", data, (8, 64), shards)
    budget = 96 * 1024
    report = arraystore.convert(src, str(tmp_path / f"dst{SUFFIX[dst]}"), max_memory=budget, verify=True)
    assert _banded(report), report.plan["notes"]
    assert report.blocks_total > 4
    assert 0 < sum(b.nbytes for b in made) <= report.memory_estimate <= budget  # every band buffer, made once
    assert bytes_equal(read_back(str(tmp_path / f"dst{SUFFIX[dst]}"))[0], data)
    assert report.checksum == StreamHasher.of(data)


@pytest.mark.parametrize("case", ["cold", "fortran", "portable"])
def test_where_bands_do_not_pay_the_blocks_move_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          case: str) -> None:
    """A source read from the disk, an F-order destination, values converted on the way: no bands, same values."""
    data = np.random.default_rng(2).normal(size=(300, 32)).astype("<f8")
    opts: dict[str, Any] = {}
    if case == "cold":
        monkeypatch.setattr(_fastpath, "WINDOW", 64 * 1024)
        monkeypatch.setattr("arraystore.conversion._movers.WINDOW", 64 * 1024)
        monkeypatch.setattr("arraystore.conversion._movers.files_resident_share", lambda paths: 0.0)
    if case == "fortran":
        opts["order"] = "F"
    if case == "portable":
        data = (data * 1e6).astype("M8[s]")
        src = str(tmp_path / "src.zarr")
        with arraystore.create(src, data.shape, data.dtype, chunks=(8, 32), compression="zstd:1",
                               portable=True) as s:
            s[...] = data
    else:
        src = _zarr(tmp_path / "src.zarr", data, (8, 32))
    out = str(tmp_path / "dst.npy")
    report = arraystore.convert(src, out, max_memory=64 * 1024, verify=True, **opts)
    assert not _banded(report), report.plan["notes"]
    assert bytes_equal(read_back(out)[0], data)
    assert report.checksum == StreamHasher.of(data)


@pytest.mark.parametrize("shards", [None, (16, 64)])
@pytest.mark.parametrize("dst", BYTE_RANGE)
def test_a_damaged_chunk_is_a_typed_error_and_nothing_is_published(tmp_path: Path, shards: tuple[int, int] | None,
                                                                   dst: str) -> None:
    data = np.random.default_rng(3).normal(size=(400, 64)).astype("<f4")
    src = _zarr(tmp_path / "src.zarr", data, (8, 64), shards)
    victim = tmp_path / "src.zarr" / "c" / "3" / "0"
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 3 : len(raw) // 3 + 64] = b"\x00" * 64
    victim.write_bytes(bytes(raw))
    out = tmp_path / f"dst{SUFFIX[dst]}"
    with pytest.raises(ArrayStoreError) as info:
        arraystore.convert(src, str(out), max_memory=64 * 1024)
    assert isinstance(info.value, MetadataError) or "damaged" in str(info.value) or "decode" in str(info.value)
    assert not out.exists()


def test_a_failed_band_write_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = np.random.default_rng(5).normal(size=(300, 64)).astype("<f8")
    src = _zarr(tmp_path / "src.zarr", data, (10, 64))
    dst = tmp_path / "dst.dat"
    calls = [0]
    pwrite = _band_reads.pwrite_all

    def failing(fd: int, buf: memoryview, offset: int, path: str) -> None:
        calls[0] += 1
        if calls[0] == 12:
            raise OSError("the disk went away")
        pwrite(fd, buf, offset, path)

    monkeypatch.setattr(_band_reads, "pwrite_all", failing)
    with pytest.raises(OSError, match="the disk went away"):
        arraystore.convert(src, str(dst), max_memory=64 * 1024, resume=True)
    assert not dst.exists()
    monkeypatch.setattr(_band_reads, "pwrite_all", pwrite)
    report = arraystore.convert(src, str(dst), max_memory=64 * 1024, resume=True, verify=True)
    assert _banded(report)
    assert report.blocks_resumed >= 1 and report.blocks_resumed + report.blocks_written == report.blocks_total
    assert report.checksum == StreamHasher.of(data)
    assert bytes_equal(read_back(str(dst))[0], data)
