"""The file-name pattern table: names -> facts, and names that must state nothing."""

from __future__ import annotations

import numpy as np
import pytest

from arraystore.errors import MetadataError
from arraystore.migration import parse_filename

# name -> (dtype, shape, order); dtype written with its byte order.
MATCHES = [
    ("frames_float32.dat", "<f4", None, None),
    ("frames_f4.dat", "<f4", None, None),
    ("frames_<f4.dat", "<f4", None, None),
    ("frames_>f8.dat", ">f8", None, None),
    ("frames_1000x64_float32.dat", "<f4", (1000, 64), None),
    ("frames_float32_1000x64.dat", "<f4", (1000, 64), None),
    ("frames_uint16_be_512x512.raw", ">u2", (512, 512), None),
    ("frames_uint16_le_512x512.raw", "<u2", (512, 512), None),
    ("frames-int16-big-endian-10x20.bin", ">i2", (10, 20), None),
    ("scan.little_endian.float64.dat", "<f8", None, None),
    ("img_512X512x3_UINT8.raw", "|u1", (512, 512, 3), None),
    ("vol_8x16x16_int16_fortran.dat", "<i2", (8, 16, 16), "F"),
    ("vol_corder_complex64.dat", "<c8", None, "C"),
    ("mask_bool_64x64.dat", "|b1", (64, 64), None),
    ("x_>u8.dat", ">u8", None, None),
    ("x_|u1_4x4.dat", "|u1", (4, 4), None),
    ("float32.dat", "<f4", None, None),
    ("frames_512x512.raw", None, (512, 512), None),
    ("frames_c16", "<c16", None, None),
]

NO_MATCH = [
    "frames_v2.dat", "run_2024.dat", "frames.dat", "data_0x64.bin", "frames_u8.dat", "frames_i8.dat",
    "frames_f2.dat", "band_b1.dat", "frames_1000.dat", "frames_float32x.dat", "frames_float.dat",
    "frames_int.dat", "frames_double.dat", "frames_2x.dat", "frames_x64.dat", "run_01x02.dat",
]

CONTRADICTIONS = [
    "a_int16_to_float32.dat", "a_le_be.dat", "a_<f4_be.dat", "a_10x10_20x20_f4.dat", "a_fortran_corder_f4.dat",
]


@pytest.mark.parametrize(("name", "dtype", "shape", "order"), MATCHES)
def test_name_states_facts(name, dtype, shape, order):
    facts = parse_filename(name)
    assert facts is not None
    assert (facts.dtype.str if facts.dtype is not None else None) == (np.dtype(dtype).str if dtype else None)
    assert facts.shape == shape
    assert facts.order == order
    assert facts.describe()


@pytest.mark.parametrize("name", NO_MATCH)
def test_name_states_nothing(name):
    assert parse_filename(name) is None


@pytest.mark.parametrize("name", CONTRADICTIONS)
def test_contradicting_name_is_refused(name):
    with pytest.raises(MetadataError, match="states two different"):
        parse_filename(name)


def test_byteorder_alone_and_paths():
    facts = parse_filename("some/dir/scan_be.raw")
    assert facts is not None and facts.byteorder == ">" and facts.dtype is None
    assert parse_filename("some/frames_float32_dir/plain.dat") is None
