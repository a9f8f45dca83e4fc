"""ENVI: files written from the format description, read back through the parsed header."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arraystore.dialects import detect, get_dialect
from arraystore.errors import (
    ArrayNotFoundError,
    MetadataError,
    SizeMismatchError,
    UnsupportedDtypeError,
)

CODES = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 6: "c8", 9: "c16", 12: "u2", 13: "u4", 14: "i8", 15: "u8"}
BANDS, LINES, SAMPLES = 3, 4, 5
PERM = {"bsq": (0, 1, 2), "bil": (1, 0, 2), "bip": (1, 2, 0)}
AXES = {"bsq": ["band", "line", "sample"], "bil": ["line", "band", "sample"], "bip": ["line", "sample", "band"]}


def write_envi(
    folder: Path,
    cube: np.ndarray,
    code: int,
    interleave: str,
    byte_order: int,
    offset: int = 0,
    data_name: str = "scene.img",
    header_name: str = "scene.hdr",
    extra: str = "",
) -> Path:
    """``cube`` is (bands, lines, samples); stored in ``interleave`` order after ``offset`` junk bytes."""
    bands, lines, samples = cube.shape
    stored = np.ascontiguousarray(cube.transpose(PERM[interleave]))
    dt = np.dtype(CODES[code]).newbyteorder(">" if byte_order else "<")
    data = folder / data_name
    data.write_bytes(b"\xab" * offset + stored.astype(dt).tobytes())
    (folder / header_name).write_text(
        "ENVI\n"
        "description = {written by the arraystore tests}\n"
        f"samples = {samples}\nlines   = {lines}\nbands   = {bands}\n"
        f"header offset = {offset}\nfile type = ENVI Standard\ndata type = {code}\n"
        f"interleave = {interleave}\nbyte order = {byte_order}\n" + extra
    )
    return data


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
@pytest.mark.parametrize("byte_order", [0, 1])
@pytest.mark.parametrize("code", sorted(CODES))
def test_every_type_order_and_interleave(tmp_path, mapped, make_sample, code, byte_order, interleave):
    cube = make_sample((BANDS, LINES, SAMPLES), CODES[code], seed=code)
    offset = 7 * code
    data = write_envi(tmp_path, cube, code, interleave, byte_order, offset=offset)
    p = detect(data)
    assert p is not None
    assert p.dialect == "envi"
    assert p.offset == offset
    assert p.meta.dtype == np.dtype(CODES[code]).newbyteorder(">" if byte_order else "<")
    assert p.meta.dtype.byteorder in "<>|"
    assert p.meta.attrs["axes"] == AXES[interleave]
    assert p.meta.attrs["dialect"] == "envi"
    got = mapped(p)
    np.testing.assert_array_equal(got, cube.transpose(PERM[interleave]))
    # and back to (band, line, sample) through the axis names
    order = [p.meta.attrs["axes"].index(a) for a in ("band", "line", "sample")]
    np.testing.assert_array_equal(got.transpose(order), cube)


@pytest.mark.parametrize(
    ("data_name", "header_name"),
    [("scene.img", "scene.hdr"), ("scene", "scene.hdr"), ("scene.img", "scene.img.hdr"), ("scene.dat", "scene.HDR")],
)
def test_header_naming_and_detect_from_either_file(tmp_path, mapped, data_name, header_name):
    cube = np.arange(60, dtype="u2").reshape(3, 4, 5)
    data = write_envi(tmp_path, cube, 12, "bsq", 1, data_name=data_name, header_name=header_name)
    for path in (data, tmp_path / header_name, str(data)):
        p = detect(path)
        assert p is not None
        assert p.data_path == data
        assert p.header_path == tmp_path / header_name
        np.testing.assert_array_equal(mapped(p), cube)


def test_attrs_keep_every_other_field(tmp_path):
    extra = (
        "wavelength units = Nanometers\n"
        "wavelength = {\n 450.5, 550,\n 650.25 }\n"
        "fwhm = {10.0, 10.0, 12.5}\n"
        "default bands = {3, 2, 1}\n"
        "band names = {Blue, Green, Red}\n"
        "map info = {UTM, 1.000, 1.000, 500000.000, 4000000.000, 3.0e+001, 3.0e+001, 33, North, "
        "WGS-84, units=Meters}\n"
        "data ignore value = -9999\n"
        "sensor type = Unknown\n"
        "; a comment line\n"
    )
    data = write_envi(tmp_path, np.zeros((3, 4, 5), "f4"), 4, "bil", 0, extra=extra)
    p = detect(data)
    assert p is not None
    a = p.meta.attrs
    assert a["wavelength"] == [450.5, 550, 650.25]
    assert a["fwhm"] == [10.0, 10.0, 12.5]
    assert a["default bands"] == [3, 2, 1]
    assert a["band names"] == ["Blue", "Green", "Red"]
    assert a["map info"][0] == "UTM"
    assert a["map info"][-1] == "units=Meters"
    assert len(a["map info"]) == 11
    assert a["description"] == "written by the arraystore tests"
    assert a["data ignore value"] == -9999
    assert a["wavelength units"] == "Nanometers"
    assert a["file type"] == "ENVI Standard"
    assert a["interleave"] == "bil"
    assert dict(p.extra) == {k: v for k, v in a.items() if k not in ("dialect", "axes")}
    for structural in ("samples", "lines", "bands", "data type", "byte order", "header offset"):
        assert structural not in a


def test_description_with_commas_stays_text(tmp_path):
    data = write_envi(tmp_path, np.zeros((1, 2, 2), "u1"), 1, "bsq", 0)
    hdr = tmp_path / "scene.hdr"
    hdr.write_text(hdr.read_text().replace("{written by the arraystore tests}", "{a, b,\n  c}"))
    p = detect(data)
    assert p is not None
    assert p.meta.attrs["description"] == "a, b, c"


def test_single_band_without_interleave_or_byte_order_for_bytes(tmp_path, mapped):
    img = np.arange(20, dtype="u1").reshape(1, 4, 5)
    (tmp_path / "a.img").write_bytes(img.tobytes())
    (tmp_path / "a.hdr").write_text("ENVI\nsamples = 5\nlines = 4\nbands = 1\ndata type = 1\n")
    p = detect(tmp_path / "a.img")
    assert p is not None
    assert p.meta.shape == (1, 4, 5)
    np.testing.assert_array_equal(mapped(p), img)


def test_explicit_data_path_for_parse(tmp_path, mapped):
    cube = np.arange(60, dtype="<i4").reshape(3, 4, 5)
    write_envi(tmp_path, cube, 3, "bsq", 0, data_name="other.bin")
    p = get_dialect("envi").parse(tmp_path / "scene.hdr", tmp_path / "other.bin")
    np.testing.assert_array_equal(mapped(p), cube)


def test_ambiguous_data_files_need_the_data_path(tmp_path):
    write_envi(tmp_path, np.zeros((1, 2, 2), "u1"), 1, "bsq", 0, data_name="scene.foo")
    (tmp_path / "scene.bar").write_bytes(b"\0" * 4)
    with pytest.raises(MetadataError, match="several files"):
        detect(tmp_path / "scene.hdr")
    assert detect(tmp_path / "scene.foo") is not None


# --------------------------------------------------------------------------- refusals

GOOD = "ENVI\nsamples = 5\nlines = 4\nbands = 3\ndata type = 2\ninterleave = bsq\nbyte order = 0\n"


def _hdr(tmp_path: Path, text: str, nbytes: int = 120) -> Path:
    (tmp_path / "s.img").write_bytes(b"\0" * nbytes)
    (tmp_path / "s.hdr").write_text(text)
    return tmp_path / "s.img"


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        (GOOD.replace("samples = 5\n", ""), MetadataError, "lacks samples"),
        (GOOD.replace("data type = 2", "data type = 7"), UnsupportedDtypeError, "data type 7"),
        (GOOD.replace("data type = 2", "data type = two"), MetadataError, "integer for 'data type'"),
        (GOOD.replace("byte order = 0\n", ""), MetadataError, "no 'byte order'"),
        (GOOD.replace("byte order = 0", "byte order = 2"), MetadataError, "'byte order' between 0 and 1"),
        (GOOD.replace("interleave = bsq", "interleave = bix"), MetadataError, "bsq, bil or bip"),
        (GOOD.replace("interleave = bsq\n", ""), MetadataError, "interleave"),
        (GOOD.replace("samples = 5", "samples = -5"), MetadataError, "'samples' between 0"),
        (GOOD.replace("samples = 5", "samples = 5.5"), MetadataError, "integer for 'samples'"),
        (
            GOOD.replace("samples = 5", "samples = 4294967296").replace("lines = 4", "lines = 4294967296"),
            MetadataError,
            r"2\*\*63",
        ),
        (GOOD + "wavelength = {1, 2,\n3\n", MetadataError, "never closed"),
        (GOOD + "this line has no equals sign\n", MetadataError, "expected 'key = value'"),
        (GOOD.replace("samples = 5", "samples = 5\nsamples = 6"), MetadataError, "given twice"),
        (GOOD + "file type = ENVI Meta File\n", MetadataError, "file type"),
        (GOOD + "file type = TIFF\n", MetadataError, "file type"),
        (GOOD + "header offset = 121\n", MetadataError, "past the end"),
        (GOOD + "header offset = 8\n", SizeMismatchError, "expected 120 bytes"),
        (GOOD.replace("samples = 5", "samples = 6"), SizeMismatchError, "144 bytes"),
    ],
)
def test_malformed_headers_raise_typed_errors(tmp_path, text, error, match):
    with pytest.raises(error, match=match):
        detect(_hdr(tmp_path, text))


def test_missing_data_file(tmp_path):
    (tmp_path / "s.hdr").write_text(GOOD)
    with pytest.raises(ArrayNotFoundError, match="found no data file"):
        detect(tmp_path / "s.hdr")
    with pytest.raises(ArrayNotFoundError, match="does not exist"):
        detect(tmp_path / "s.img")


def test_oversized_and_binary_headers_are_refused(tmp_path):
    (tmp_path / "s.img").write_bytes(b"\0" * 120)
    (tmp_path / "s.hdr").write_bytes(GOOD.encode() + b"; pad\n" * 200_000)
    with pytest.raises(MetadataError, match="at most 1,048,576 bytes"):
        detect(tmp_path / "s.img")
    (tmp_path / "s.hdr").write_bytes(b"ENVI\nsamples = 5\x00\n")
    with pytest.raises(MetadataError, match="NUL byte"):
        detect(tmp_path / "s.img")
