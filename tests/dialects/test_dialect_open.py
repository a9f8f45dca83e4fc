"""``arraystore.open`` reads dialect files in place: the header is found, the raw backend maps the data."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

import arraystore

ENVI = "ENVI\nsamples = 3\nlines = 2\nbands = 1\nheader offset = 0\nfile type = ENVI Standard\ndata type = 4\ninterleave = bsq\nbyte order = 0\n"
EHDR = "NROWS 2\nNCOLS 3\nNBANDS 1\nNBITS 16\nPIXELTYPE SIGNEDINT\nBYTEORDER M\nLAYOUT BIL\n"
MHD = "ObjectType = Image\nNDims = 2\nDimSize = 3 2\nElementType = MET_FLOAT\nBinaryDataByteOrderMSB = False\nElementDataFile = ct.raw\n"


def _envi(d: Path) -> tuple[str, np.ndarray]:
    a = np.arange(6, dtype="<f4").reshape(1, 2, 3)
    a.tofile(d / "scene.img")
    (d / "scene.hdr").write_text(ENVI)
    return "scene.img", a


def _ehdr(d: Path) -> tuple[str, np.ndarray]:
    a = np.arange(6, dtype=">i2").reshape(2, 1, 3)  # BIL: lines x bands x samples
    a.tofile(d / "dem.bil")
    (d / "dem.hdr").write_text(EHDR)
    return "dem.bil", a


def _metaimage(d: Path) -> tuple[str, np.ndarray]:
    a = np.arange(6, dtype="<f4").reshape(2, 3)
    a.tofile(d / "ct.raw")
    (d / "ct.mhd").write_text(MHD)
    return "ct.raw", a


def _idx(d: Path) -> tuple[str, np.ndarray]:
    a = np.arange(24, dtype="u1").reshape(2, 3, 4)
    (d / "t10k-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", *a.shape) + a.tobytes())
    return "t10k-idx3-ubyte", a


@pytest.mark.parametrize("make", [_envi, _ehdr, _metaimage, _idx], ids=["envi", "ehdr", "metaimage", "idx"])
def test_open_in_place(tmp_path: Path, make: object) -> None:
    name, expected = make(tmp_path)  # type: ignore[operator]
    with arraystore.open(tmp_path / name) as s:
        assert s.backend == "raw"
        assert s.dtype == expected.dtype and s.shape == expected.shape
        assert s[...].tobytes() == expected.tobytes()
        m = s.as_memmap()  # zero-copy: the header's offset, the file's own bytes
        assert isinstance(m, np.memmap) and np.array_equal(m, expected)
        clone = pickle.loads(pickle.dumps(s))
        assert np.array_equal(clone[...], expected)
        clone.close()
    assert not list(tmp_path.glob("*.json"))  # reading wrote nothing beside the originals


def test_header_path_opens_its_data(tmp_path: Path) -> None:
    _envi(tmp_path)
    with arraystore.open(tmp_path / "scene.hdr") as s:
        assert s.path == str(tmp_path / "scene.img")
        assert s.dialect == "envi"


def test_convert_keeps_header_fields(tmp_path: Path) -> None:
    _envi(tmp_path)
    arraystore.convert(tmp_path / "scene.img", tmp_path / "scene.dat")
    with arraystore.open(tmp_path / "scene.dat") as s:
        assert s.attrs["dialect"] == "envi"
        assert s.attrs["axes"] == ["band", "line", "sample"]
        assert s[...].tobytes() == np.arange(6, dtype="<f4").tobytes()
