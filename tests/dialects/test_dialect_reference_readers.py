"""Compare the dialect parsers with reference readers: SimpleITK (MetaImage) and rasterio/GDAL (ENVI, EHdr).

Both are optional: each test is skipped, saying why, when its reader is not installed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from arraystore.dialects import detect

ENVI_CODES = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 6: "c8", 9: "c16", 12: "u2", 13: "u4", 14: "i8", 15: "u8"}
PERM = {"bsq": (0, 1, 2), "bil": (1, 0, 2), "bip": (1, 2, 0)}


def _band_first(arr: np.ndarray, axes: list[str]) -> np.ndarray:
    """Our array re-ordered to rasterio's (band, row, column)."""
    names = [{"line": "row", "sample": "column"}.get(a, a) for a in axes]
    return arr.transpose([names.index(a) for a in ("band", "row", "column")])


def _rasterio_read(path: Path) -> tuple[str, np.ndarray]:
    rasterio = pytest.importorskip("rasterio", reason="rasterio (GDAL) is the optional reference reader")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning for test rasters
        with rasterio.open(path) as ds:
            return ds.driver, ds.read()


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
@pytest.mark.parametrize("byte_order", [0, 1])
@pytest.mark.parametrize("code", sorted(ENVI_CODES))
def test_envi_matches_gdal(tmp_path, mapped, make_sample, code, byte_order, interleave):
    pytest.importorskip("rasterio", reason="rasterio (GDAL) is the optional reference reader")
    cube = make_sample((3, 4, 5), ENVI_CODES[code], seed=code)
    dt = np.dtype(ENVI_CODES[code]).newbyteorder(">" if byte_order else "<")
    (tmp_path / "s.img").write_bytes(
        b"\0" * 16 + np.ascontiguousarray(cube.transpose(PERM[interleave])).astype(dt).tobytes()
    )
    (tmp_path / "s.hdr").write_text(
        f"ENVI\nsamples = 5\nlines = 4\nbands = 3\nheader offset = 16\nfile type = ENVI Standard\n"
        f"data type = {code}\ninterleave = {interleave}\nbyte order = {byte_order}\n"
    )
    p = detect(tmp_path / "s.img")
    assert p is not None
    driver, ref = _rasterio_read(tmp_path / "s.img")
    assert driver == "ENVI"
    ours = _band_first(mapped(p), p.meta.attrs["axes"])
    assert ref.dtype == ours.dtype.newbyteorder("=")
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("layout", ["BIL", "BSQ", "BIP"])
@pytest.mark.parametrize("byteorder", ["I", "M"])
@pytest.mark.parametrize(
    ("pixeltype", "nbits", "dtype"),
    [
        ("UNSIGNEDINT", 8, "u1"),
        ("SIGNEDINT", 8, "i1"),
        ("UNSIGNEDINT", 16, "u2"),
        ("SIGNEDINT", 16, "i2"),
        ("UNSIGNEDINT", 32, "u4"),
        ("SIGNEDINT", 32, "i4"),
        ("FLOAT", 32, "f4"),
    ],
)  # GDAL's EHdr driver refuses NBITS 64, which arraystore reads as well (tested in test_dialect_ehdr)
def test_ehdr_matches_gdal(tmp_path, mapped, make_sample, pixeltype, nbits, dtype, byteorder, layout):
    pytest.importorskip("rasterio", reason="rasterio (GDAL) is the optional reference reader")
    cube = make_sample((3, 4, 5), dtype, seed=nbits)
    dt = np.dtype(dtype).newbyteorder("<" if byteorder == "I" else ">")
    data = tmp_path / f"d.{layout.lower()}"
    data.write_bytes(b"\0" * 8 + np.ascontiguousarray(cube.transpose(PERM[layout.lower()])).astype(dt).tobytes())
    (tmp_path / "d.hdr").write_text(
        f"BYTEORDER {byteorder}\nLAYOUT {layout}\nNROWS 4\nNCOLS 5\nNBANDS 3\nNBITS {nbits}\n"
        f"PIXELTYPE {pixeltype}\nSKIPBYTES 8\n"
    )
    p = detect(data)
    assert p is not None
    driver, ref = _rasterio_read(data)
    assert driver == "EHdr"
    np.testing.assert_array_equal(_band_first(mapped(p), p.meta.attrs["axes"]), ref)


SITK_TYPES = ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"]


@pytest.mark.parametrize("suffix", [".mha", ".mhd"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", SITK_TYPES)
def test_metaimage_written_by_simpleitk(tmp_path, mapped, make_sample, dtype, channels, suffix):
    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK is the optional MetaImage reference")
    shape = (2, 3, 4) + ((channels,) if channels > 1 else ())
    arr = make_sample(shape, dtype, seed=channels)
    image = sitk.GetImageFromArray(arr, isVector=channels > 1)
    image.SetSpacing((0.5, 0.25, 2.0))
    image.SetOrigin((1.0, 2.0, 3.0))
    path = tmp_path / f"img{suffix}"
    sitk.WriteImage(image, str(path), useCompression=False)
    p = detect(path)
    assert p is not None
    assert p.meta.shape == shape
    np.testing.assert_array_equal(mapped(p), arr)
    assert p.meta.attrs["ElementSpacing"] == [0.5, 0.25, 2.0]
    assert p.meta.attrs["Offset"] == [1, 2, 3]


@pytest.mark.parametrize("msb", [False, True])
@pytest.mark.parametrize("dtype", SITK_TYPES)
def test_metaimage_read_by_simpleitk(tmp_path, mapped, make_sample, dtype, msb):
    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK is the optional MetaImage reference")
    etype = {
        "u1": "MET_UCHAR",
        "i1": "MET_CHAR",
        "u2": "MET_USHORT",
        "i2": "MET_SHORT",
        "u4": "MET_UINT",
        "i4": "MET_INT",
        "u8": "MET_ULONG_LONG",
        "i8": "MET_LONG_LONG",
        "f4": "MET_FLOAT",
        "f8": "MET_DOUBLE",
    }[dtype]
    arr = make_sample((3, 4, 2), dtype, seed=7)
    (tmp_path / "v.raw").write_bytes(
        b"\0" * 12 + arr.astype(np.dtype(dtype).newbyteorder(">" if msb else "<")).tobytes()
    )
    (tmp_path / "v.mhd").write_text(
        f"ObjectType = Image\nNDims = 2\nBinaryData = True\nBinaryDataByteOrderMSB = {msb}\n"
        f"DimSize = 4 3\nElementNumberOfChannels = 2\nHeaderSize = 12\nElementType = {etype}\n"
        "ElementDataFile = v.raw\n"
    )
    p = detect(tmp_path / "v.raw")
    assert p is not None
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "v.mhd")))
    np.testing.assert_array_equal(mapped(p), ref)
    np.testing.assert_array_equal(ref, arr)
