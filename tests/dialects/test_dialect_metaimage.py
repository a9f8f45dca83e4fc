"""MetaImage (.mhd/.mha): files written from the MetaIO description, read back through the header."""

from __future__ import annotations

import numpy as np
import pytest

from arraystore.dialects import detect, get_dialect
from arraystore.errors import (
    ArrayNotFoundError,
    MetadataError,
    SizeMismatchError,
    UnsafeInputError,
    UnsupportedDtypeError,
)

TYPES = {
    "MET_CHAR": "i1",
    "MET_UCHAR": "u1",
    "MET_SHORT": "i2",
    "MET_USHORT": "u2",
    "MET_INT": "i4",
    "MET_UINT": "u4",
    "MET_LONG": "i4",
    "MET_ULONG": "u4",
    "MET_LONG_LONG": "i8",
    "MET_ULONG_LONG": "u8",
    "MET_FLOAT": "f4",
    "MET_DOUBLE": "f8",
}


def header(
    dims_fastest_first: list[int],
    etype: str,
    msb: bool | None,
    data_file: str,
    channels: int = 1,
    header_size: int | None = None,
    extra: str = "",
) -> str:
    lines = [
        "ObjectType = Image",
        f"NDims = {len(dims_fastest_first)}",
        "BinaryData = True",
        *([f"BinaryDataByteOrderMSB = {msb}"] if msb is not None else []),
        "CompressedData = False",
        *(["TransformMatrix = 1 0 0 0 1 0 0 0 1"] if len(dims_fastest_first) == 3 else []),
        "Offset = " + " ".join(["1.5"] * len(dims_fastest_first)),
        "ElementSpacing = " + " ".join(["0.5"] * len(dims_fastest_first)),
        f"DimSize = {' '.join(map(str, dims_fastest_first))}",
        *([f"ElementNumberOfChannels = {channels}"] if channels != 1 else []),
        *([f"HeaderSize = {header_size}"] if header_size is not None else []),
        f"ElementType = {etype}",
    ]
    return "\n".join(lines) + "\n" + extra + f"ElementDataFile = {data_file}\n"


def _stored(arr: np.ndarray, etype: str, msb: bool) -> bytes:
    return arr.astype(np.dtype(TYPES[etype]).newbyteorder(">" if msb else "<")).tobytes()


@pytest.mark.parametrize("msb", [False, True])
@pytest.mark.parametrize("etype", sorted(TYPES))
def test_every_element_type_both_orders_mhd(tmp_path, mapped, make_sample, etype, msb):
    arr = make_sample((2, 3, 4), TYPES[etype], seed=len(etype))  # C order: z, y, x
    (tmp_path / "ct.raw").write_bytes(_stored(arr, etype, msb))
    (tmp_path / "ct.mhd").write_text(header([4, 3, 2], etype, msb, "ct.raw"))
    for path in (tmp_path / "ct.raw", tmp_path / "ct.mhd"):
        p = detect(path)
        assert p is not None
        assert p.dialect == "metaimage"
        assert p.meta.shape == (2, 3, 4)
        assert p.meta.attrs["axes"] == ["z", "y", "x"]
        assert p.meta.dtype == np.dtype(TYPES[etype]).newbyteorder(">" if msb else "<")
        np.testing.assert_array_equal(mapped(p), arr)


@pytest.mark.parametrize("msb", [False, True])
@pytest.mark.parametrize("etype", ["MET_UCHAR", "MET_SHORT", "MET_FLOAT", "MET_DOUBLE", "MET_ULONG_LONG"])
def test_mha_inline_data(tmp_path, mapped, make_sample, etype, msb):
    arr = make_sample((5, 6), TYPES[etype], seed=3)
    text = header([6, 5], etype, msb, "LOCAL").encode()
    (tmp_path / "img.mha").write_bytes(text + _stored(arr, etype, msb))
    p = detect(tmp_path / "img.mha")
    assert p is not None
    assert p.data_path == p.header_path == tmp_path / "img.mha"
    assert p.offset == len(text)
    np.testing.assert_array_equal(mapped(p), arr)


@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize("ndim", [2, 3, 4])
def test_multichannel_adds_trailing_axis(tmp_path, mapped, make_sample, ndim, channels):
    shape = (2, 3, 4, 5)[:ndim]
    arr = make_sample((*shape, channels), "i2", seed=ndim)
    (tmp_path / "v.raw").write_bytes(_stored(arr, "MET_SHORT", True))
    (tmp_path / "v.mhd").write_text(header(list(shape[::-1]), "MET_SHORT", True, "v.raw", channels=channels))
    p = detect(tmp_path / "v.raw")
    assert p is not None
    assert p.meta.shape == (*shape, channels)
    assert p.meta.attrs["axes"] == [*["x", "y", "z", "t"][:ndim][::-1], "channel"]
    np.testing.assert_array_equal(mapped(p), arr)


def test_header_size_skips_bytes_and_minus_one_means_end(tmp_path, mapped):
    arr = np.arange(12, dtype="<u2").reshape(3, 4)
    (tmp_path / "a.raw").write_bytes(b"\x01" * 10 + arr.tobytes())
    (tmp_path / "a.mhd").write_text(header([4, 3], "MET_USHORT", False, "a.raw", header_size=10))
    p = detect(tmp_path / "a.mhd")
    assert p is not None
    assert p.offset == 10
    np.testing.assert_array_equal(mapped(p), arr)
    (tmp_path / "a.mhd").write_text(header([4, 3], "MET_USHORT", False, "a.raw", header_size=-1))
    p = detect(tmp_path / "a.mhd")
    assert p is not None
    assert p.offset == 10
    np.testing.assert_array_equal(mapped(p), arr)
    # inline, with junk between the header and the data
    text = header([4, 3], "MET_USHORT", False, "LOCAL", header_size=-1).encode()
    (tmp_path / "b.mha").write_bytes(text + b"junk" + arr.tobytes())
    p = detect(tmp_path / "b.mha")
    assert p is not None
    assert p.offset == len(text) + 4
    np.testing.assert_array_equal(mapped(p), arr)


def test_element_byte_order_alias_subfolder_and_attrs(tmp_path, mapped):
    arr = np.arange(6, dtype=">f8").reshape(2, 3)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "d.bin").write_bytes(arr.tobytes())
    text = header(
        [3, 2],
        "MET_DOUBLE",
        None,
        "raw\\d.bin",
        extra="ElementByteOrderMSB = True\nAnatomicalOrientation = RAI\nModality = MET_MOD_CT\n",
    )
    (tmp_path / "d.mhd").write_text(text)
    p = detect(tmp_path / "d.mhd")
    assert p is not None
    assert p.data_path == tmp_path / "raw" / "d.bin"
    np.testing.assert_array_equal(mapped(p), arr)
    a = p.meta.attrs
    assert a["ElementSpacing"] == [0.5, 0.5]
    assert a["Offset"] == [1.5, 1.5]
    assert a["AnatomicalOrientation"] == "RAI"
    assert a["Modality"] == "MET_MOD_CT"
    assert a["ObjectType"] == "Image"
    assert a["dialect"] == "metaimage"
    assert "DimSize" not in a
    assert "ElementDataFile" not in a


def test_data_path_must_be_the_file_the_header_names(tmp_path):
    (tmp_path / "a.raw").write_bytes(b"\0" * 4)
    (tmp_path / "b.raw").write_bytes(b"\0" * 4)
    (tmp_path / "b.mhd").write_text(header([2, 2], "MET_UCHAR", None, "a.raw"))
    with pytest.raises(MetadataError, match=r"describes a\.raw, not b\.raw"):
        detect(tmp_path / "b.raw")


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        (header([2, 2], "MET_UCHAR", None, "../outside.raw"), UnsafeInputError, "outside the header's folder"),
        (header([2, 2], "MET_UCHAR", None, "/etc/passwd"), UnsafeInputError, "outside"),
        (header([2, 2], "MET_UCHAR", None, "sub/../../x.raw"), UnsafeInputError, "outside"),
        (header([2, 2], "MET_UCHAR", None, "C:\\data\\x.raw"), UnsafeInputError, "outside"),
        (header([2, 2], "MET_UCHAR", None, "LIST"), MetadataError, "LIST"),
        (header([2, 2], "MET_UCHAR", None, "slice%03d.raw 1 10 1"), MetadataError, "pattern"),
        (
            header([2, 2], "MET_UCHAR", None, "d.raw").replace("CompressedData = False", "CompressedData = True"),
            MetadataError,
            "CompressedData",
        ),
        (
            header([2, 2], "MET_UCHAR", None, "d.raw").replace("BinaryData = True", "BinaryData = False"),
            MetadataError,
            "ASCII",
        ),
        (
            header([2, 2], "MET_UCHAR", None, "d.raw").replace("NDims = 2", "NDims = 3"),
            MetadataError,
            "expected 3 DimSize",
        ),
        (header([2, 2], "MET_FLOAT_MATRIX", None, "d.raw"), UnsupportedDtypeError, "MET_FLOAT_MATRIX"),
        (header([2, 2], "MET_SHORT", None, "d.raw"), MetadataError, "BinaryDataByteOrderMSB"),
        (header([2, 2], "MET_SHORT", True, "d.raw", extra="ElementByteOrderMSB = False\n"), MetadataError, "disagree"),
        (
            header([2, 2], "MET_UCHAR", None, "d.raw").replace("ElementDataFile = d.raw\n", ""),
            MetadataError,
            "ElementDataFile",
        ),
        (header([2, -2], "MET_UCHAR", None, "d.raw"), MetadataError, "'DimSize' between 0"),
        (
            header([2, 2], "MET_UCHAR", None, "d.raw").replace("NDims = 2", "NDims = two"),
            MetadataError,
            "integer for 'NDims'",
        ),
        (header([2**40, 2**40], "MET_DOUBLE", False, "d.raw"), MetadataError, r"2\*\*63"),
        (header([2, 2], "MET_UCHAR", None, "d.raw", header_size=5), MetadataError, "past the end"),
        (header([2, 2], "MET_UCHAR", None, "d.raw", header_size=1), SizeMismatchError, "expected 4 bytes"),
        (header([3, 2], "MET_UCHAR", None, "d.raw", header_size=-1), SizeMismatchError, "expected 6 bytes"),
        (header([2, 2], "MET_UCHAR", None, "d.raw", header_size=-2), MetadataError, "'HeaderSize' between -1"),
        (
            header([2, 2], "MET_UCHAR", None, "d.raw").replace("ObjectType = Image", "ObjectType = Tube"),
            MetadataError,
            "ObjectType",
        ),
        (
            header([2, 2], "MET_UCHAR", None, "d.raw").replace("NDims = 2", "NDims = 2\nNDims = 2"),
            MetadataError,
            "given twice",
        ),
        (header([2, 2], "MET_UCHAR", None, "d.raw") + "", MetadataError, None),
        ("NDims = 2\nthis is not a key value line\nElementDataFile = d.raw\n", MetadataError, "Key = Value"),
        (header([2, 2], "MET_UCHAR", None, "nothere.raw"), ArrayNotFoundError, "does not exist"),
    ],
)
def test_malformed_headers_raise_typed_errors(tmp_path, text, error, match):
    (tmp_path / "d.raw").write_bytes(b"\0" * 4)
    (tmp_path / "m.mhd").write_text(text)
    if match is None:  # the control case: the same header, well-formed, parses
        assert detect(tmp_path / "m.mhd") is not None
        return
    with pytest.raises(error, match=match):
        detect(tmp_path / "m.mhd")


def test_mha_refusals(tmp_path):
    path = tmp_path / "x.mha"
    path.write_bytes(b"NDims = 2\nDimSize = 2 2\nElementType = MET_UCHAR\n" + b"X" * (1 << 20))
    with pytest.raises(MetadataError, match="ElementDataFile"):
        detect(path)
    text = header([2, 2], "MET_UCHAR", None, "LOCAL", header_size=3).encode()
    path.write_bytes(text + b"\0" * 4)
    with pytest.raises(MetadataError, match="inside the"):
        detect(path)
    path.write_bytes(b"\x00\x01binary junk")
    with pytest.raises(MetadataError):
        detect(path)
    assert get_dialect("metaimage").find_header(tmp_path / "absent.mha") is None
