"""ESRI EHdr (BIL/BSQ/BIP): files written from ESRI's description, read back through the header."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arraystore.dialects import detect, get_dialect
from arraystore.errors import MetadataError, SizeMismatchError, UnsupportedDtypeError

TYPES = [
    ("UNSIGNEDINT", 8, "u1"),
    ("SIGNEDINT", 8, "i1"),
    ("UNSIGNEDINT", 16, "u2"),
    ("SIGNEDINT", 16, "i2"),
    ("UNSIGNEDINT", 32, "u4"),
    ("SIGNEDINT", 32, "i4"),
    ("UNSIGNEDINT", 64, "u8"),
    ("SIGNEDINT", 64, "i8"),
    ("FLOAT", 32, "f4"),
    ("FLOAT", 64, "f8"),
]
NBANDS, NROWS, NCOLS = 3, 4, 5
PERM = {"BSQ": (0, 1, 2), "BIL": (1, 0, 2), "BIP": (1, 2, 0)}
AXES = {"BSQ": ["band", "row", "column"], "BIL": ["row", "band", "column"], "BIP": ["row", "column", "band"]}


def write_ehdr(
    folder: Path,
    cube: np.ndarray,
    pixeltype: str,
    nbits: int,
    byteorder: str,
    layout: str,
    skip: int = 0,
    extra: str = "",
    name: str = "dem",
) -> Path:
    """``cube`` is (bands, rows, cols), stored in ``layout`` after ``skip`` junk bytes."""
    bands, rows, cols = cube.shape
    dt = cube.dtype.newbyteorder("<" if byteorder == "I" else ">")
    data = folder / f"{name}.{layout.lower()}"
    data.write_bytes(b"\x5a" * skip + np.ascontiguousarray(cube.transpose(PERM[layout])).astype(dt).tobytes())
    (folder / f"{name}.hdr").write_text(
        f"BYTEORDER      {byteorder}\nLAYOUT         {layout}\nNROWS          {rows}\nNCOLS          {cols}\n"
        f"NBANDS         {bands}\nNBITS          {nbits}\nPIXELTYPE      {pixeltype}\n"
        f"SKIPBYTES      {skip}\n" + extra
    )
    return data


@pytest.mark.parametrize("layout", ["BIL", "BSQ", "BIP"])
@pytest.mark.parametrize("byteorder", ["I", "M"])
@pytest.mark.parametrize(("pixeltype", "nbits", "dtype"), TYPES)
def test_every_type_order_and_layout(tmp_path, mapped, make_sample, pixeltype, nbits, dtype, byteorder, layout):
    cube = make_sample((NBANDS, NROWS, NCOLS), dtype, seed=nbits)
    skip = nbits // 2
    data = write_ehdr(tmp_path, cube, pixeltype, nbits, byteorder, layout, skip=skip)
    p = detect(data)
    assert p is not None
    assert p.dialect == "ehdr"
    assert p.offset == skip
    assert p.meta.dtype == np.dtype(dtype).newbyteorder("<" if byteorder == "I" else ">")
    assert p.meta.attrs["axes"] == AXES[layout]
    np.testing.assert_array_equal(mapped(p), cube.transpose(PERM[layout]))


def test_defaults_single_band_bytes(tmp_path, mapped):
    img = np.arange(20, dtype="u1").reshape(4, 5)
    (tmp_path / "g.bil").write_bytes(img.tobytes())
    (tmp_path / "g.hdr").write_text("nrows 4\nncols 5\n")
    p = detect(tmp_path / "g.hdr")
    assert p is not None
    assert p.meta.shape == (4, 1, 5)
    assert p.meta.dtype == np.dtype("u1")
    np.testing.assert_array_equal(mapped(p)[:, 0, :], img)


def test_consistent_row_bytes_and_attrs(tmp_path, mapped):
    cube = np.arange(60, dtype="<i2").reshape(3, 4, 5)
    extra = (
        "BANDROWBYTES   10\nTOTALROWBYTES  30\nBANDGAPBYTES   0\nULXMAP  -120.5\nULYMAP 45.25\n"
        "XDIM 0.1\nYDIM 0.1\nNODATA -9999\nPROJECTION Albers Equal Area\n"
    )
    data = write_ehdr(tmp_path, cube, "SIGNEDINT", 16, "I", "BIL", extra=extra)
    p = detect(data)
    assert p is not None
    np.testing.assert_array_equal(mapped(p), cube.transpose(1, 0, 2))
    a = p.meta.attrs
    assert (a["ULXMAP"], a["ULYMAP"], a["XDIM"], a["NODATA"]) == (-120.5, 45.25, 0.1, -9999)
    assert a["PROJECTION"] == "Albers Equal Area"
    assert a["LAYOUT"] == "BIL"
    assert a["dialect"] == "ehdr"
    assert "NROWS" not in a
    assert "BANDROWBYTES" not in a


def test_envi_and_ehdr_told_apart_by_content(tmp_path):
    cube = np.zeros((1, 2, 2), "u1")
    data = write_ehdr(tmp_path, cube, "UNSIGNEDINT", 8, "I", "BSQ")
    assert detect(data).dialect == "ehdr"  # type: ignore[union-attr]
    assert not get_dialect("envi").sniff(tmp_path / "dem.hdr")
    (tmp_path / "dem.hdr").write_text("ENVI\nsamples = 2\nlines = 2\nbands = 1\ndata type = 1\n")
    assert detect(data).dialect == "envi"  # type: ignore[union-attr]
    assert not get_dialect("ehdr").sniff(tmp_path / "dem.hdr")
    with pytest.raises(MetadataError, match="ENVI header"):
        get_dialect("ehdr").parse(tmp_path / "dem.hdr", data)


GOOD = "BYTEORDER I\nLAYOUT BIL\nNROWS 2\nNCOLS 3\nNBANDS 2\nNBITS 16\n"


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        (GOOD.replace("NROWS 2\n", ""), MetadataError, "lacks NROWS"),
        (GOOD.replace("NBITS 16", "NBITS 4"), UnsupportedDtypeError, "4-bit"),
        (GOOD.replace("NBITS 16", "NBITS 12"), UnsupportedDtypeError, "12-bit"),
        (GOOD + "PIXELTYPE FLOAT\n", UnsupportedDtypeError, "16-bit FLOAT"),
        (GOOD + "PIXELTYPE COMPLEX\n", MetadataError, "PIXELTYPE"),
        (GOOD.replace("BYTEORDER I\n", ""), MetadataError, "BYTEORDER"),
        (GOOD.replace("BYTEORDER I", "BYTEORDER X"), MetadataError, "BYTEORDER"),
        (GOOD.replace("LAYOUT BIL", "LAYOUT BIX"), MetadataError, "LAYOUT"),
        (GOOD + "BANDROWBYTES 8\n", MetadataError, "padding"),
        (GOOD + "TOTALROWBYTES 16\n", MetadataError, "padding"),
        (GOOD + "BANDGAPBYTES 4\n", MetadataError, "padding"),
        (GOOD.replace("NCOLS 3", "NCOLS -3"), MetadataError, "'NCOLS' between 0"),
        (GOOD.replace("NCOLS 3", "NCOLS 3.0"), MetadataError, "integer for 'NCOLS'"),
        (GOOD.replace("NCOLS 3", "NCOLS 3\nNCOLS 4"), MetadataError, "given twice"),
        (
            GOOD.replace("NCOLS 3", "NCOLS 99999999999").replace("NROWS 2", "NROWS 99999999999"),
            MetadataError,
            r"2\*\*63",
        ),
        (GOOD + "SKIPBYTES 30\n", MetadataError, "past the end"),
        (GOOD + "SKIPBYTES 2\n", SizeMismatchError, "expected 24 bytes"),
        (GOOD.replace("NBANDS 2", "NBANDS 4"), SizeMismatchError, "48 bytes"),
    ],
)
def test_malformed_headers_raise_typed_errors(tmp_path, text, error, match):
    (tmp_path / "x.bil").write_bytes(b"\0" * 24)
    (tmp_path / "x.hdr").write_text(text)
    with pytest.raises(error, match=match):
        get_dialect("ehdr").parse(tmp_path / "x.hdr")
    with pytest.raises(error, match=match):
        detect(tmp_path / "x.bil", dialect="ehdr")
