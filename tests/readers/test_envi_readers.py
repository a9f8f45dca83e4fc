"""Raw outputs with an ENVI header read as the same array in GDAL, spectral and arraystore's ENVI dialect.

GDAL (through rasterio) and spectral run in subprocesses that cannot import arraystore
(``read_with.py``); numpy is the oracle. Every ENVI data type x byte order x interleave
(2-D, and 3-D bsq/bil/bip) x source order (C, F) is converted with ``header=...``.
GDAL always returns ``(bands, lines, samples)`` and spectral ``(lines, samples, bands)``:
the expected arrays are the original's axes put in that order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.cli import main as cli
from arraystore.dialects.envi import ENVI_DTYPES
from arraystore.errors import ArrayStoreError, ConversionError, DimensionError, UnsupportedDtypeError
from arraystore.testing.dtypes import sample_data

from .test_hdf5_readers import run_reader

#: ENVI's dtypes in both byte orders (one for uint8).
DTYPES = sorted({np.dtype(t).newbyteorder(o).str for t in ENVI_DTYPES.values() for o in "<>"})
#: (header option, ndim, interleave it gives).
LAYOUTS = [("envi", 2, "bsq"), ("envi", 3, "bsq"), ("envi:bil", 3, "bil"), ("envi:bip", 3, "bip")]
#: Array axes -> GDAL's (bands, lines, samples) and spectral's (lines, samples, bands), per interleave.
TO_GDAL = {"bsq": (0, 1, 2), "bil": (1, 0, 2), "bip": (2, 0, 1)}
TO_SPECTRAL = {"bsq": (1, 2, 0), "bil": (0, 2, 1), "bip": (0, 1, 2)}


def _values(dtype: np.dtype[Any], shape: tuple[int, ...], seed: int) -> np.ndarray[Any, Any]:
    data = sample_data(dtype, shape, seed=seed)
    if dtype.kind in "fc":  # NaN payloads are not what these readers are tested on
        data = np.where(np.isfinite(data), data, 0).astype(dtype)
    return data


def _write(tmp: Path, i: int, data: np.ndarray[Any, Any], order: str, header: str) -> Path:
    src = tmp / f"s{i}.npy"
    np.save(src, np.asfortranarray(data) if order == "F" else data)
    dst = tmp / f"o{i}.dat"
    arraystore.convert(str(src), str(dst), header=header, max_memory="256")  # many small blocks
    return dst


def expected_for(reader: str, data: np.ndarray[Any, Any], interleave: str) -> np.ndarray[Any, Any]:
    """``data`` as ``reader`` arranges an ENVI raster (GDAL: bands first; spectral: bands last)."""
    if reader == "GDAL":
        return data[None] if data.ndim == 2 else data.transpose(TO_GDAL[interleave])
    return data[..., None] if data.ndim == 2 else data.transpose(TO_SPECTRAL[interleave])


CASES = [(d, layout, order) for d in DTYPES for layout in LAYOUTS for order in ("C", "F")]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[np.ndarray[Any, Any], str, Path]]]:
    tmp = tmp_path_factory.mktemp("envi")
    out = []
    for i, (text, (header, ndim, interleave), order) in enumerate(CASES):
        data = _values(np.dtype(text), (3, 4, 5)[-ndim:] if ndim == 3 else (4, 5), seed=i)
        out.append((data, interleave, _write(tmp, i, data, order, header)))
    return tmp, out


@pytest.mark.parametrize("reader", ["GDAL", "spectral"])
def test_outside_readers_see_the_same_values(
    written: tuple[Path, list[tuple[np.ndarray[Any, Any], str, Path]]], reader: str
) -> None:
    tmp, cases = written
    entries = [{"path": str(dst), "var": f"{dst}.hdr"} for _, _, dst in cases]
    wrong = []
    for (text, layout, order), (data, interleave, _), got in zip(CASES, cases, run_reader(reader, entries, tmp / reader)):
        want = expected_for(reader, data, interleave)
        if not got["ok"]:
            wrong.append((text, layout, order, got["error"]))
        elif got["values"].dtype != want.dtype.newbyteorder("=") or not np.array_equal(got["values"], want):
            wrong.append((text, layout, order, got["values"].dtype, got["values"].shape))
    assert not wrong, wrong[:5]


def test_arraystore_envi_dialect_reads_the_array_back(
    written: tuple[Path, list[tuple[np.ndarray[Any, Any], str, Path]]],
) -> None:
    for data, interleave, dst in written[1]:
        with arraystore.open(str(dst), dialect="envi") as s:  # an ENVI raster always has bands: 2-D is 1 band
            assert s.dtype == data.dtype and s.attrs["interleave"] == interleave
            assert s.shape == (data.shape if data.ndim == 3 else (1, *data.shape))
            assert s[...].tobytes() == data.tobytes()
        with arraystore.open(str(dst)) as s:  # the JSON sidecar says the same
            assert s.order == "C" and s.dtype == data.dtype and np.array_equal(s[...], data)


@settings(max_examples=40, deadline=None)
@given(
    text=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(1, 6), min_size=2, max_size=3).map(tuple),
    header=st.sampled_from(["envi", "envi:bsq", "envi:bil", "envi:bip"]),
    order=st.sampled_from("CF"),
    seed=st.integers(0, 2**16),
)
def test_header_and_bytes_agree_property(text: str, shape: tuple[int, ...], header: str, order: str, seed: int,
                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    data = _values(np.dtype(text), shape, seed)
    dst = _write(tmp, 0, data, order, header)
    fields = dict(line.split(" = ", 1) for line in (tmp / "o0.dat.hdr").read_text().splitlines()[1:])
    interleave = fields["interleave"]
    assert interleave == ("bsq" if len(shape) == 2 or header == "envi" else header[5:])
    # numpy alone, from the header's fields, reads the array the header promises
    dtype = np.dtype(ENVI_DTYPES[int(fields["data type"])]).newbyteorder(">" if fields["byte order"] == "1" else "<")
    b, li, s = int(fields["bands"]), int(fields["lines"]), int(fields["samples"])
    axes = {"bsq": (b, li, s), "bil": (li, b, s), "bip": (li, s, b)}[interleave]
    raw = np.fromfile(dst, dtype=dtype, offset=int(fields["header offset"])).reshape(axes)
    assert np.array_equal(raw.reshape(shape), data) and raw.dtype == data.dtype
    with arraystore.open(str(dst), dialect="envi") as got:
        assert got.shape == (shape if len(shape) == 3 else (1, *shape)) and got[...].tobytes() == data.tobytes()


def test_band_axis_named_picks_the_interleave(tmp_path: Path) -> None:
    data = np.arange(2 * 3 * 4, dtype="<u2").reshape(2, 3, 4)
    for names, interleave in [(("y", "x", "band"), "bip"), (("y", "channel", "x"), "bil"), (("t", "y", "x"), "bsq")]:
        src = tmp_path / f"{interleave}.zarr"
        with arraystore.create(str(src), data.shape, data.dtype, dimension_names=names) as s:
            s[...] = data
        dst = tmp_path / f"{interleave}.dat"
        arraystore.convert(str(src), str(dst), header="envi")
        assert f"interleave = {interleave}" in (tmp_path / f"{interleave}.dat.hdr").read_text()
        with arraystore.open(str(dst), dialect="envi") as got:
            assert got[...].tobytes() == data.tobytes()


REFUSED = ["|b1", "|i1", "<f2", ">f2", "|S4", "<U3", "<M8[ns]", "<m8[s]", "[('a', '<i4'), ('b', '<f8')]", "|V4"]


@pytest.mark.parametrize("text", REFUSED)
def test_dtypes_envi_cannot_describe_are_refused_before_any_byte(tmp_path: Path, text: str) -> None:
    dtype = np.dtype(eval(text)) if text.startswith("[") else np.dtype(text)
    np.save(tmp_path / "s.npy", np.zeros((3, 4), dtype=dtype))
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(UnsupportedDtypeError, match="ENVI") as info:
        arraystore.convert(str(tmp_path / "s.npy"), str(tmp_path / "o.dat"), header="envi")
    assert isinstance(info.value, TypeError) and dtype.str in str(info.value)
    assert sorted(os.listdir(tmp_path)) == before
    with pytest.raises(UnsupportedDtypeError):
        arraystore.create(str(tmp_path / "c.dat"), (3, 4), dtype, header="envi")
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("shape", [(5,), (2, 2, 2, 2), (0, 4), (3, 0, 2)])
def test_shapes_envi_cannot_describe_are_refused(tmp_path: Path, shape: tuple[int, ...]) -> None:
    np.save(tmp_path / "s.npy", np.zeros(shape, dtype="<f4"))
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(DimensionError, match="ENVI"):
        arraystore.convert(str(tmp_path / "s.npy"), str(tmp_path / "o.dat"), header="envi")
    assert sorted(os.listdir(tmp_path)) == before


def test_header_needs_a_raw_destination_and_a_known_choice(tmp_path: Path) -> None:
    np.save(tmp_path / "s.npy", np.zeros((3, 4), dtype="<f4"))
    with pytest.raises(ConversionError, match="raw destination"):
        arraystore.convert(str(tmp_path / "s.npy"), str(tmp_path / "o.zarr"), header="envi")
    with pytest.raises(ConversionError, match="header="):
        arraystore.convert(str(tmp_path / "s.npy"), str(tmp_path / "o.dat"), header="gdal")
    assert sorted(os.listdir(tmp_path)) == ["s.npy"]


def test_no_header_before_the_data_is_complete_then_resume(tmp_path: Path) -> None:
    data = np.arange(64 * 32, dtype=">f8").reshape(64, 32)
    np.save(tmp_path / "s.npy", data)
    dst = tmp_path / "o.dat"

    def stop(done: int, total: int) -> None:
        if 0 < done < total:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        arraystore.convert(str(tmp_path / "s.npy"), str(dst), header="envi", max_memory="2KiB", progress=stop)
    assert not dst.exists() and not (tmp_path / "o.dat.hdr").exists()
    report = arraystore.convert(str(tmp_path / "s.npy"), str(dst), header="envi", max_memory="2KiB")
    assert report.blocks_resumed > 0
    with arraystore.open(str(dst), dialect="envi") as got:
        assert np.array_equal(got[0], data)


def test_overwrite_without_header_removes_ours_keeps_others(tmp_path: Path) -> None:
    np.save(tmp_path / "s.npy", np.ones((3, 4), dtype="<i2"))
    dst = tmp_path / "o.dat"
    arraystore.convert(str(tmp_path / "s.npy"), str(dst), header="envi")
    assert (tmp_path / "o.dat.hdr").exists()
    arraystore.convert(str(tmp_path / "s.npy"), str(dst), overwrite=True)  # the old header no longer describes it
    assert not (tmp_path / "o.dat.hdr").exists()
    theirs = "ENVI\nsamples = 4\nlines = 3\nbands = 1\ndata type = 2\nbyte order = 0\ninterleave = bsq\n"
    (tmp_path / "o.dat.hdr").write_text(theirs)
    arraystore.convert(str(tmp_path / "s.npy"), str(dst), overwrite=True)
    assert (tmp_path / "o.dat.hdr").read_text() == theirs


def test_cli_convert_and_migrate_write_envi_headers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = np.asfortranarray(np.arange(4 * 5 * 3, dtype=">u2").reshape(4, 5, 3))
    archive = tmp_path / "archive"
    archive.mkdir()
    data.ravel(order="F").tofile(archive / "cube.dat")
    (archive / "cube.dat.json").write_text(json.dumps({"shape": [4, 5, 3], "dtype": ">u2", "order": "F"}))
    assert cli(["migrate", str(archive), str(tmp_path / "out"), "--to", "raw", "--header", "envi", "--json"]) == 0
    assert cli(["convert", str(tmp_path / "out" / "cube.dat"), str(tmp_path / "c.dat"), "--header", "envi:bip", "-q"]) == 0
    assert "interleave = bip" in (tmp_path / "c.dat.hdr").read_text()
    capsys.readouterr()
    for dst in (tmp_path / "c.dat", tmp_path / "out" / "cube.dat"):
        with arraystore.open(str(dst), dialect="envi") as got:
            assert got.shape == data.shape and np.array_equal(got[...], data)
    assert cli(["migrate", str(archive), str(tmp_path / "out2"), "--to", "zarr", "--header", "envi"]) != 0
    with pytest.raises(ArrayStoreError, match="to='raw'"):
        arraystore.migrate(archive, tmp_path / "out3", to="hdf5", header="envi")


def test_migration_rerun_adds_a_missing_header(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    data = np.arange(4 * 5, dtype="<f4").reshape(4, 5)
    data.tofile(archive / "img.dat")
    (archive / "img.dat.json").write_text(json.dumps({"shape": [4, 5], "dtype": "<f4"}))
    first = arraystore.migrate(archive, tmp_path / "out", to="raw", workers=1)
    assert first.counts["converted"] == 1 and not (tmp_path / "out" / "img.dat.hdr").exists()
    again = arraystore.migrate(archive, tmp_path / "out", to="raw", header="envi", workers=1)
    assert again.counts["converted"] == 1, again.records
    with arraystore.open(str(tmp_path / "out" / "img.dat"), dialect="envi") as got:
        assert np.array_equal(got[0], data)
    # published data without its header (a kill between the two renames) and no manifest line: converted again
    (tmp_path / "out" / "img.dat.hdr").unlink()
    (tmp_path / "out" / "migration.jsonl").unlink()
    third = arraystore.migrate(archive, tmp_path / "out", to="raw", header="envi", workers=1)
    assert third.counts["converted"] == 1 and (tmp_path / "out" / "img.dat.hdr").is_file(), third.records
