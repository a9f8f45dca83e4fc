"""ENVI and EHdr rasters written by GDAL (through rasterio), read back by arraystore's header dialects.

arraystore gives the raster in its file layout: ENVI BSQ is (band, line, sample), BIL
(line, band, sample), BIP (line, sample, band); EHdr likewise with rows and columns. The
dtype is in the byte order the header declares.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio", reason="rasterio (GDAL) is the writer under test")

import arraystore  # noqa: E402
from arraystore.errors import UnsupportedDtypeError  # noqa: E402

from .oracle import check_read, check_refused  # noqa: E402
from .values import sample  # noqa: E402

#: rasterio's (band, row, column) to arraystore's axes for each interleave.
TO_FILE = {"bsq": (0, 1, 2), "bil": (1, 0, 2), "bip": (1, 2, 0)}

ENVI_TYPES = ["uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64",
              "complex64", "complex128"]  # fmt: skip


def _gdal_write(path: Path, cube: np.ndarray, driver: str, **options: Any) -> np.ndarray:
    count, height, width = cube.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning
        with rasterio.open(
            path, "w", driver=driver, width=width, height=height, count=count, dtype=cube.dtype.name, **options
        ) as ds:
            ds.write(cube)
        with rasterio.open(path) as ds:
            return np.asarray(ds.read())


def _native(dtype: str) -> np.dtype:
    return np.dtype(dtype).newbyteorder("<")  # GDAL writes its host's order: little-endian here


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
@pytest.mark.parametrize("dtype", ENVI_TYPES)
def test_envi(tmp_path, dtype, interleave):
    cube = sample((3, 4, 5), dtype, seed=61)
    path = tmp_path / "scene.img"
    ref = _gdal_write(path, cube, "ENVI", interleave=interleave.upper())
    if dtype == "int8":
        # ENVI has no signed byte type: GDAL writes int8 as 'data type = 1' and reads it back as uint8
        # itself, so the file holds uint8 values and arraystore must agree with GDAL
        cube = cube.view("u1")
    np.testing.assert_array_equal(ref, cube)  # GDAL's own read
    want = np.ascontiguousarray(cube.transpose(TO_FILE[interleave])).astype(_native(cube.dtype.name))
    check_read(path, want, tmp_path)
    check_read(tmp_path / "scene.hdr", want, tmp_path, convert=())
    with arraystore.open(path) as s:
        assert s.attrs["interleave"] == interleave


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_envi_single_band_and_nodata(tmp_path, dtype):
    cube = sample((1, 6, 7), dtype, seed=62)
    path = tmp_path / "one.img"
    _gdal_write(path, cube, "ENVI", nodata=0)
    check_read(path, cube.astype(_native(dtype)), tmp_path, attrs={"data ignore value": 0})


# GDAL's EHdr driver writes BIL only (CreateCopy with INTERLEAVE=BSQ/BIP fails inside GDAL), so BSQ/BIP
# EHdr files are covered by tests/dialects against GDAL's reader instead.
EHDR_TYPES = ["uint8", "int8", "int16", "uint16", "int32", "uint32", "float32"]


@pytest.mark.parametrize("dtype", EHDR_TYPES)
def test_ehdr(tmp_path, dtype):
    cube = sample((2, 4, 5), dtype, seed=63)
    path = tmp_path / "dem.bil"
    ref = _gdal_write(path, cube, "EHdr")
    np.testing.assert_array_equal(ref, cube)
    want = np.ascontiguousarray(cube.transpose(TO_FILE["bil"])).astype(_native(dtype))
    check_read(path, want, tmp_path)
    check_read(tmp_path / "dem.hdr", want, tmp_path, convert=())


def test_ehdr_nodata(tmp_path):
    cube = sample((1, 3, 4), "int16", seed=64)
    path = tmp_path / "dem.bil"
    _gdal_write(path, cube, "EHdr", nodata=-9999)
    check_read(path, cube.transpose(TO_FILE["bil"]).astype("<i2"), tmp_path, attrs={"NODATA": -9999})


@pytest.mark.parametrize("interleave", ["bsq", "bip"])
def test_envi_suffix_add(tmp_path, interleave):
    """GDAL's SUFFIX=ADD names the header scene.img.hdr."""
    cube = sample((2, 3, 4), "int16", seed=65)
    path = tmp_path / "scene.img"
    _gdal_write(path, cube, "ENVI", interleave=interleave.upper(), suffix="ADD")
    assert (tmp_path / "scene.img.hdr").is_file()
    want = np.ascontiguousarray(cube.transpose(TO_FILE[interleave])).astype("<i2")
    check_read(path, want, tmp_path)
    check_read(tmp_path / "scene.img.hdr", want, tmp_path, convert=())


def test_envi_band_names_and_description(tmp_path):
    cube = sample((2, 3, 4), "float32", seed=66)
    path = tmp_path / "named.img"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver="ENVI", width=4, height=3, count=2, dtype="float32") as ds:
            ds.write(cube)
            ds.set_band_description(1, "red, visible")
            ds.set_band_description(2, "nir")
            ds.update_tags(description="a {test} scene")
    check_read(path, cube.astype("<f4"), tmp_path)


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_ehdr_sub_byte_refused(tmp_path, nbits):
    cube = (np.arange(24).reshape(1, 4, 6) % (1 << nbits)).astype("uint8")
    path = tmp_path / "bits.bil"
    ref = _gdal_write(path, cube, "EHdr", nbits=nbits)
    np.testing.assert_array_equal(ref, cube)
    assert f"NBITS          {nbits}" in (tmp_path / "bits.hdr").read_text()
    check_refused(path, UnsupportedDtypeError)


@pytest.mark.parametrize("suffix", [".dat", ".bin", ".raw", ".bsq", ""])
def test_envi_data_suffixes(tmp_path, suffix):
    """Data files whose suffix is arraystore's own raw one (.dat, .bin, .raw) still read through the header."""
    cube = sample((2, 3, 4), "uint16", seed=68)
    path = tmp_path / f"scene{suffix}"
    _gdal_write(path, cube, "ENVI")
    check_read(path, cube.astype("<u2"), tmp_path, convert=("npy",))
