"""ENVI images written by spectral (``envi.save_image`` and ``envi.create_image``), read back by arraystore.

spectral's arrays are (lines, samples, bands); arraystore gives the file layout (BSQ:
band, line, sample; BIL: line, band, sample; BIP: line, sample, band) in the byte order
of the header's ``byte order``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

spectral = pytest.importorskip("spectral", reason="spectral is the writer under test")
from spectral.io import envi  # noqa: E402

import arraystore  # noqa: E402

from .oracle import check_read, same_bytes  # noqa: E402
from .values import sample  # noqa: E402

#: spectral's (line, sample, band) to arraystore's axes for each interleave.
FROM_SPECTRAL = {"bsq": (2, 0, 1), "bil": (0, 2, 1), "bip": (0, 1, 2)}
# spectral itself refuses int8, bool and float16 (EnviDataTypeError): ENVI has no code for them.
TYPES = ["u1", "i2", "i4", "f4", "f8", "c8", "c16", "u2", "u4", "i8", "u8"]


def _spectral_read(hdr: Path, interleave: str = "bip") -> np.ndarray:
    """spectral's own read, as a memory map of the file (stored byte order) in ``interleave``'s axis order."""
    return np.array(envi.open(str(hdr)).open_memmap(interleave=interleave))


def _want(cube: np.ndarray, interleave: str, byteorder: int) -> np.ndarray:
    arr = np.ascontiguousarray(cube.transpose(FROM_SPECTRAL[interleave]))
    return arr.astype(arr.dtype.newbyteorder(">" if byteorder else "<"))


@pytest.mark.parametrize("byteorder", [0, 1])
@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
@pytest.mark.parametrize("dtype", TYPES)
def test_save_image(tmp_path, dtype, interleave, byteorder):
    cube = sample((4, 5, 3), dtype, seed=81)  # lines, samples, bands
    hdr = tmp_path / "cube.hdr"
    envi.save_image(str(hdr), cube, dtype=dtype, interleave=interleave, byteorder=byteorder, ext=".img",
                    metadata={"description": "test cube", "wavelength": [400.5, 500, 600]})  # fmt: skip
    same_bytes(_spectral_read(hdr), cube, "spectral's own read")
    want = _want(cube, interleave, byteorder)
    assert _spectral_read(hdr, interleave).dtype == want.dtype
    check_read(tmp_path / "cube.img", want, tmp_path, convert=("npy", "zarr") if byteorder else ("hdf5",))
    check_read(hdr, want, tmp_path, attrs={"wavelength": [400.5, 500, 600]}, convert=())


@pytest.mark.parametrize("ext", [".img", ".dat", ".bsq", ""])
def test_save_image_extensions(tmp_path, ext):
    cube = sample((3, 2, 2), "i2", seed=82)
    hdr = tmp_path / "x.hdr"
    envi.save_image(str(hdr), cube, interleave="bsq", ext=ext)
    data = tmp_path / f"x{ext}"
    assert data.is_file()
    check_read(hdr, _want(cube, "bsq", 0).astype(cube.dtype.newbyteorder("<")), tmp_path, convert=())


@pytest.mark.parametrize("byteorder", [0, 1])
@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
@pytest.mark.parametrize("dtype", ["u2", "f4", "c16"])
def test_create_image(tmp_path, dtype, interleave, byteorder):
    cube = sample((5, 4, 3), dtype, seed=83)
    hdr = tmp_path / "new.hdr"
    img = envi.create_image(str(hdr), shape=cube.shape, dtype=dtype, interleave=interleave,
                            byteorder=byteorder, ext=".raw")  # fmt: skip
    mm = img.open_memmap(interleave="bip", writable=True)
    mm[...] = cube
    del mm
    same_bytes(_spectral_read(hdr), cube, "spectral's own read")
    # spectral's create_image ignores byteorder= (its header always says 'byte order = 0'): the
    # header is the truth, and spectral's own memory map agrees with it
    assert "byte order = 0" in hdr.read_text()
    want = _want(cube, interleave, 0)
    assert _spectral_read(hdr, interleave).dtype == want.dtype
    check_read(tmp_path / "new.raw", want, tmp_path)
    with arraystore.open(tmp_path / "new.raw") as s:
        assert s.attrs["interleave"] == interleave
        assert s.attrs["dialect"] == "envi"


def test_header_offset(tmp_path):
    cube = sample((3, 4, 2), "f4", seed=84)
    hdr = tmp_path / "off.hdr"
    img = envi.create_image(str(hdr), shape=cube.shape, dtype="f4", interleave="bil", ext=".img", offset=64)
    mm = img.open_memmap(interleave="bip", writable=True)
    mm[...] = cube
    del mm
    assert "header offset = 64" in hdr.read_text()
    same_bytes(_spectral_read(hdr), cube, "spectral's own read")
    check_read(tmp_path / "off.img", _want(cube, "bil", 0), tmp_path, convert=("npy",))


def test_classification(tmp_path):
    classes = np.array([[0, 1, 2, 2], [1, 1, 0, 2], [2, 0, 0, 1]], "u1")
    hdr = tmp_path / "cls.hdr"
    envi.save_classification(str(hdr), classes, class_names=["none", "water", "land"],
                             class_colors=[0, 0, 0, 0, 0, 255, 0, 255, 0], ext=".img")  # fmt: skip
    assert "ENVI Classification" in hdr.read_text()
    same_bytes(_spectral_read(hdr)[..., 0], classes, "spectral's own read")
    interleave = hdr.read_text().split("interleave = ")[1].split()[0]
    want = np.expand_dims(classes, {"bsq": 0, "bil": 1, "bip": 2}[interleave])
    check_read(tmp_path / "cls.img", want, tmp_path, attrs={"class names": ["none", "water", "land"]})


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
@pytest.mark.parametrize("dtype", ["i2", "u4", "f8", "c8"])
def test_big_endian_agrees_with_gdal(tmp_path, dtype, interleave):
    """A big-endian ENVI file (spectral writes one, GDAL cannot): arraystore, spectral and GDAL agree."""
    rasterio = pytest.importorskip("rasterio", reason="rasterio (GDAL) is the third reader here")
    cube = sample((3, 4, 2), dtype, seed=85)
    hdr = tmp_path / "be.hdr"
    envi.save_image(str(hdr), cube, interleave=interleave, byteorder=1, ext=".img")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning
        with rasterio.open(tmp_path / "be.img") as ds:
            gdal = ds.read()  # (band, line, sample)
    same_bytes(gdal, cube.transpose(2, 0, 1), "GDAL's read")
    check_read(tmp_path / "be.img", _want(cube, interleave, 1), tmp_path, convert=("zarr",))
