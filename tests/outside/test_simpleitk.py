"""MetaImage files written by SimpleITK (``.mhd`` + ``.raw``, ``.mha``), read back by arraystore.

arraystore's shape is SimpleITK's ``GetArrayFromImage`` shape: the slowest axis first
(``DimSize`` reversed) and a trailing channel axis for vector pixels; the dtype is in the
byte order the header declares (``BinaryDataByteOrderMSB``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK", reason="SimpleITK is the writer under test")

import arraystore  # noqa: E402
from arraystore.errors import MetadataError  # noqa: E402

from .oracle import check_read, check_refused, same_bytes  # noqa: E402
from .values import sample  # noqa: E402

TYPES = ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"]


def _write(path: Path, data: np.ndarray, *, vector: bool = False, compress: bool = False) -> np.ndarray:
    img = sitk.GetImageFromArray(data, isVector=vector)
    img.SetSpacing([0.5 * (i + 1) for i in range(img.GetDimension())])
    sitk.WriteImage(img, str(path), useCompression=compress)
    return np.asarray(sitk.GetArrayFromImage(sitk.ReadImage(str(path))))


@pytest.mark.parametrize("suffix", [".mhd", ".mha"])
@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 5), (2, 3, 4, 5)], ids=["2d", "3d", "4d"])
@pytest.mark.parametrize("dtype", TYPES)
def test_scalar_images(tmp_path, dtype, shape, suffix):
    data = sample(shape, dtype, seed=71)
    path = tmp_path / f"img{suffix}"
    same_bytes(_write(path, data), data, "SimpleITK's own read")
    want = data.astype(data.dtype.newbyteorder("<"))
    check_read(path, want, tmp_path, convert=("npy", "zarr") if suffix == ".mhd" else ("hdf5",))
    if suffix == ".mhd":
        check_read(tmp_path / "img.raw", want, tmp_path, convert=())
        with arraystore.open(path) as s:
            assert s.attrs["ElementSpacing"] == [0.5 * (i + 1) for i in range(len(shape))]


@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize("dtype", ["u1", "i2", "f4", "f8"])
def test_vector_pixels(tmp_path, dtype, channels):
    data = sample((4, 5, channels), dtype, seed=72)
    path = tmp_path / "vec.mhd"
    same_bytes(_write(path, data, vector=True), data, "SimpleITK's own read")
    check_read(path, data.astype(data.dtype.newbyteorder("<")), tmp_path)


def test_complex_pixels(tmp_path):
    data = sample((3, 4), "c8", seed=73)
    path = tmp_path / "c.mhd"
    # MetaImage has no complex element type: ITK writes two float channels and reads them back so
    want = data.view("<f4").reshape(3, 4, 2)
    same_bytes(_write(path, data), want, "SimpleITK's own read")
    check_read(path, want, tmp_path)


@pytest.mark.parametrize("dtype", ["u2", "i4", "f4", "f8", "u8"])
def test_big_endian_header(tmp_path, dtype):
    """SimpleITK's file, turned big-endian (header flag + swapped bytes); SimpleITK still reads the same."""
    data = sample((3, 4, 5), dtype, seed=74)
    path = tmp_path / "be.mhd"
    _write(path, data)
    header = path.read_text()
    assert "BinaryDataByteOrderMSB = False" in header
    path.write_text(header.replace("BinaryDataByteOrderMSB = False", "BinaryDataByteOrderMSB = True"))
    raw = tmp_path / "be.raw"
    raw.write_bytes(np.frombuffer(raw.read_bytes(), data.dtype).byteswap().tobytes())
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    same_bytes(ref, data, "SimpleITK's read of the big-endian file")
    check_read(path, data.astype(data.dtype.newbyteorder(">")), tmp_path)


@pytest.mark.parametrize("suffix", [".mhd", ".mha"])
def test_compressed_refused(tmp_path, suffix):
    data = sample((6, 7), "i2", seed=75)
    path = tmp_path / f"z{suffix}"
    same_bytes(_write(path, data, compress=True), data, "SimpleITK's own read")
    assert "CompressedData = True" in path.read_bytes()[:2048].decode("latin-1")
    check_refused(path, MetadataError, match="CompressedData")


@pytest.mark.parametrize("name", ["with space", "dots.in.name", "ünïcode"])
def test_awkward_file_names(tmp_path, name):
    data = sample((3, 4), "i2", seed=76)
    path = tmp_path / f"{name}.mhd"
    same_bytes(_write(path, data), data, "SimpleITK's own read")
    check_read(path, data.astype("<i2"), tmp_path, convert=("raw",))


def test_data_file_named_differently(tmp_path):
    """ITK's writer honours a .mhd whose data file has another name (SetFileName on the .raw)."""
    data = sample((4, 5), "f4", seed=77)
    img = sitk.GetImageFromArray(data)
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(tmp_path / "head.mhd"))
    writer.Execute(img)
    (tmp_path / "head.raw").rename(tmp_path / "payload.bin")
    header = (tmp_path / "head.mhd").read_text().replace("ElementDataFile = head.raw", "ElementDataFile = payload.bin")
    (tmp_path / "head.mhd").write_text(header)
    same_bytes(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "head.mhd"))), data, "SimpleITK's own read")
    check_read(tmp_path / "head.mhd", data.astype("<f4"), tmp_path, convert=("npy",))


@pytest.mark.parametrize("dtype", ["u1", "f4"])
def test_vector_3d(tmp_path, dtype):
    data = sample((2, 3, 4, 3), dtype, seed=78)
    path = tmp_path / "v3.mha"
    same_bytes(_write(path, data, vector=True), data, "SimpleITK's own read")
    check_read(path, data.astype(data.dtype.newbyteorder("<")), tmp_path, convert=("zarr",))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(("written", "declared", "dtype"), [("MET_INT", "MET_LONG", "<i4"), ("MET_UINT", "MET_ULONG", "<u4")])
def test_met_long_is_32_bit(tmp_path, written, declared, dtype):
    """MetaIO's MET_LONG/MET_ULONG are 4-byte: SimpleITK reads them so, and so must arraystore."""
    data = sample((3, 4), dtype, seed=79)
    path = tmp_path / "l.mhd"
    _write(path, data)
    _edit(path, f"ElementType = {written}", f"ElementType = {declared}")
    same_bytes(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), data, "SimpleITK's read")
    check_read(path, data, tmp_path, convert=("npy",))


@pytest.mark.parametrize("header_size", [100, -1])
def test_header_size(tmp_path, header_size):
    data = sample((3, 5), "<u2", seed=80)
    path = tmp_path / "h.mhd"
    _write(path, data)
    raw = tmp_path / "h.raw"
    raw.write_bytes(b"J" * 100 + raw.read_bytes())
    _edit(path, "ElementDataFile", f"HeaderSize = {header_size}\nElementDataFile")
    same_bytes(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), data, "SimpleITK's read")
    check_read(path, data, tmp_path, convert=("hdf5",))


def test_data_file_in_subfolder(tmp_path):
    data = sample((4, 3), "<f8", seed=81)
    path = tmp_path / "s.mhd"
    _write(path, data)
    (tmp_path / "data").mkdir()
    (tmp_path / "s.raw").rename(tmp_path / "data" / "s.raw")
    _edit(path, "ElementDataFile = s.raw", "ElementDataFile = data/s.raw")
    same_bytes(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), data, "SimpleITK's read")
    check_read(path, data, tmp_path, convert=("zarr",))


def test_element_byte_order_msb_key(tmp_path):
    """Older writers say ElementByteOrderMSB instead of BinaryDataByteOrderMSB."""
    data = sample((3, 4), ">i2", seed=82)
    path = tmp_path / "o.mhd"
    _write(path, data.astype("<i2"))
    _edit(path, "BinaryDataByteOrderMSB = False", "ElementByteOrderMSB = True")
    (tmp_path / "o.raw").write_bytes(data.tobytes())
    same_bytes(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), data, "SimpleITK's read")
    check_read(path, data, tmp_path, convert=("raw",))
