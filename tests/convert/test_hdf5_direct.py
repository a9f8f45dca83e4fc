"""Deflated HDF5 destinations written chunk by chunk with write_direct_chunk read back exactly through h5py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arraystore.conversion import convert

from .conftest import BACKENDS, write_source

pytestmark = pytest.mark.skipif("hdf5" not in BACKENDS, reason="h5py is not installed")

DIRECT = "write_direct_chunk"
# Shape not a multiple of the chunks on either axis: edge chunks on both.
SHAPE, CHUNKS = (45, 37), (8, 16)


def _values(dtype: str, shape: tuple[int, ...] = SHAPE) -> np.ndarray[Any, Any]:
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    i = np.arange(n)
    if dt.kind == "b":
        out = (i % 3 == 0).astype(dt)
    elif dt.kind in "iu":
        out = ((i * 2654435761) % 251).astype(dt)
    elif dt.kind == "c":
        out = (i * 0.5 + 1j * (i % 7)).astype(dt)
    else:
        out = (np.sin(i / 7.0) * 1000).astype(dt)
    return np.asarray(out).reshape(shape)


def _h5(path: Path) -> tuple[np.ndarray[Any, Any], Any]:
    import h5py

    with h5py.File(path, "r") as f:
        (name,) = [n for n in f if not h5py.h5ds.is_scale(f[n].id)]  # dimension scales hold no data
        ds = f[name]
        return ds[...], (ds.chunks, ds.compression, ds.compression_opts, ds.shuffle, ds.dtype)


@pytest.mark.parametrize(
    "dtype", ["|b1", "|i1", "<u2", "<i4", ">i4", "<i8", "<f2", "<f4", ">f8", "<f8", "<c8", "<c16"]
)
def test_gzip_direct_chunks_read_back_exactly(tmp_path: Path, dtype: str) -> None:
    data = _values(dtype)
    src = write_source(tmp_path / "src.dat", data)
    # A budget of 2 chunks per block buffer: many blocks of whole chunks, edge chunks on both axes
    budget = 4 * 2 * int(np.prod(CHUNKS)) * data.dtype.itemsize
    report = convert(src, str(tmp_path / "dst.h5"), compression="gzip:1", chunks=CHUNKS, max_memory=budget,
                     verify=True)
    assert any(DIRECT in n for n in report.plan["notes"]), report.plan["notes"]
    assert report.blocks_total > 1
    got, (chunks, comp, level, shuffle, stored) = _h5(tmp_path / "dst.h5")
    assert (chunks, comp, level, shuffle) == (CHUNKS, "gzip", 1, False)
    assert stored == data.dtype and got.shape == data.shape
    assert got.tobytes() == data.tobytes()


@pytest.mark.parametrize("order", ["C", "F"])
def test_gzip_direct_fortran_and_levels(tmp_path: Path, order: str) -> None:
    data = np.asfortranarray(_values("<f8")) if order == "F" else _values("<f8")
    src = write_source(tmp_path / "src.dat", data, order=order)
    report = convert(src, str(tmp_path / "dst.h5"), compression="gzip:6", chunks=CHUNKS, verify=True)
    assert any(DIRECT in n for n in report.plan["notes"])
    import arraystore

    with arraystore.open(str(tmp_path / "dst.h5")) as s:
        assert s.order == "C"  # HDF5 stores every array in C order, the array's shape
        assert np.array_equal(s[...], data)


def test_gzip_shuffle_direct_chunks(tmp_path: Path) -> None:
    """A dataset with shuffle + deflate: the writer shuffles bytes like HDF5's filter before compressing."""
    import arraystore
    from arraystore.conversion._hdf5_direct import DirectChunkWriter, direct_pipeline

    data = _values("<i4")
    with arraystore.create(str(tmp_path / "dst.h5"), data.shape, data.dtype, chunks=CHUNKS, compression="gzip:3",
                           shuffle=True) as dst:  # type: ignore[call-arg]
        pipeline = direct_pipeline(dst, data.dtype)
        assert pipeline == (True, 3)
        writer = DirectChunkWriter(dst, *pipeline, workers=2)
        try:
            writer.write((slice(0, 24), slice(0, 37)), data[:24])  # whole rows of chunks, edge on axis 1
            writer.write((slice(24, 45), slice(0, 37)), data[24:])
        finally:
            writer.close()
    got, (chunks, comp, level, shuffle, _) = _h5(tmp_path / "dst.h5")
    assert (chunks, comp, level, shuffle) == (CHUNKS, "gzip", 3, True)
    assert got.tobytes() == data.tobytes()


@pytest.mark.parametrize("dtype", ["<M8[s]", [("a", "<i4"), ("b", "<f4")]])
def test_other_dtypes_take_the_normal_path(tmp_path: Path, dtype: Any) -> None:
    dt = np.dtype(dtype)
    data = np.zeros(SHAPE, dt)
    if dt.names:
        data["a"] = _values("<i4")
        data["b"] = _values("<f4")
    else:
        data[...] = _values("<i8").astype(dt)
    src = write_source(tmp_path / "src.dat", data)
    report = convert(src, str(tmp_path / "dst.h5"), compression="gzip:1", chunks=CHUNKS, verify=True)
    assert not any(DIRECT in n for n in report.plan["notes"])
    import arraystore

    with arraystore.open(str(tmp_path / "dst.h5")) as s:
        assert s[...].tobytes() == data.tobytes()


def test_lzf_takes_the_normal_path(tmp_path: Path) -> None:
    data = _values("<f4")
    src = write_source(tmp_path / "src.dat", data)
    report = convert(src, str(tmp_path / "dst.h5"), compression="lzf", chunks=CHUNKS, verify=True)
    assert not any(DIRECT in n for n in report.plan["notes"])
    assert _h5(tmp_path / "dst.h5")[0].tobytes() == data.tobytes()


def test_direct_chunks_resume(tmp_path: Path) -> None:
    """An interrupted direct-chunk conversion resumes; journaled chunks read back through h5py."""

    class Stop(Exception):
        pass

    calls = [0]

    def progress(done: int, total: int) -> None:
        calls[0] += 1
        if calls[0] >= 2:
            raise Stop

    data = _values("<i4", (64, 37))
    src = write_source(tmp_path / "src.dat", data)
    dst = tmp_path / "dst.h5"
    opts: dict[str, Any] = {"compression": "gzip:1", "chunks": CHUNKS, "max_memory": "16KiB"}
    with pytest.raises(Stop):
        convert(src, str(dst), progress=progress, **opts)
    report = convert(src, str(dst), verify=True, **opts)
    assert report.blocks_resumed == 2 and report.blocks_rewritten == 0
    assert _h5(dst)[0].tobytes() == data.tobytes()


def test_direct_chunks_into_an_existing_file(tmp_path: Path) -> None:
    """A new dataset in an existing HDF5 file is built in place, flagged incomplete until published."""
    import h5py

    import arraystore

    data = _values("<f4")
    src = write_source(tmp_path / "src.dat", data)
    with h5py.File(tmp_path / "multi.h5", "w") as f:
        f["other"] = np.arange(3)
    report = convert(src, f"{tmp_path / 'multi.h5'}::new", compression="gzip:1", chunks=CHUNKS, verify=True)
    assert any(DIRECT in n for n in report.plan["notes"])
    with arraystore.open(f"{tmp_path / 'multi.h5'}::new") as s:
        assert s[...].tobytes() == data.tobytes()
    with h5py.File(tmp_path / "multi.h5", "r") as f:
        assert sorted(n for n in f if not h5py.h5ds.is_scale(f[n].id)) == ["new", "other"]


def test_interrupted_direct_chunks_in_an_existing_file_stay_incomplete(tmp_path: Path) -> None:
    import h5py

    import arraystore
    from arraystore.errors import IncompleteArrayError

    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        raise Stop

    data = _values("<f4")
    src = write_source(tmp_path / "src.dat", data)
    with h5py.File(tmp_path / "multi.h5", "w") as f:
        f["other"] = np.arange(3)
    budget = 4 * 2 * int(np.prod(CHUNKS)) * 4
    with pytest.raises(Stop):
        convert(src, f"{tmp_path / 'multi.h5'}::new", compression="gzip:1", chunks=CHUNKS, max_memory=budget,
                progress=stop)
    with pytest.raises(IncompleteArrayError):
        arraystore.open(f"{tmp_path / 'multi.h5'}::new")
