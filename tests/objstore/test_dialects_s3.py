"""Header dialects in a bucket (files written by spectral, SimpleITK, rasterio/GDAL): header and ranges only."""

from __future__ import annotations

import logging
import pickle
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import boto3
import numpy as np
import pytest

import arraystore
from arraystore.errors import (
    ArrayChangedError,
    ArrayNotFoundError,
    MetadataError,
    ModeError,
    NotMemoryMappableError,
    SizeMismatchError,
    UnsafeInputError,
)

from .conftest import SERVER, needs_conditional_requests, needs_moto


def _envi(d: Path) -> tuple[str, str, np.ndarray]:
    import spectral.io.envi as envi

    a = np.random.default_rng(3).standard_normal((20, 24, 3)).astype(">f4")  # rows x cols x bands
    envi.save_image(str(d / "scene.hdr"), a, dtype=np.float32, interleave="bsq", byteorder=1, ext=".img")
    want = np.asarray(envi.open(str(d / "scene.hdr"), str(d / "scene.img")).load())
    return "scene.img", "scene.hdr", np.ascontiguousarray(want.transpose(2, 0, 1))  # band, line, sample


def _metaimage(d: Path) -> tuple[str, str, np.ndarray]:
    import SimpleITK as sitk

    sitk.WriteImage(sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)), str(d / "ct.mhd"))
    return "ct.raw", "ct.mhd", sitk.GetArrayFromImage(sitk.ReadImage(str(d / "ct.mhd")))


def _metaimage_inline(d: Path) -> tuple[str, str, np.ndarray]:
    import SimpleITK as sitk

    a = np.random.default_rng(4).random((6, 7)).astype(np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(a), str(d / "slice.mha"))
    return "slice.mha", "slice.mha", sitk.GetArrayFromImage(sitk.ReadImage(str(d / "slice.mha")))


def _ehdr(d: Path) -> tuple[str, str, np.ndarray]:
    import rasterio

    a = np.arange(2 * 5 * 7, dtype="<u2").reshape(2, 5, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no geotransform: the data alone
        with rasterio.open(d / "dem.bil", "w", driver="EHdr", width=7, height=5, count=2, dtype="uint16") as w:
            w.write(a)
        with rasterio.open(d / "dem.bil") as r:
            want = r.read()
    return "dem.bil", "dem.hdr", np.ascontiguousarray(want.transpose(1, 0, 2))  # BIL: line, band, sample


def _idx(d: Path) -> tuple[str, str, np.ndarray]:
    # No IDX writer is installable here; the format is 4 magic bytes, big-endian sizes, the data.
    a = np.arange(3 * 4 * 5, dtype="u1").reshape(3, 4, 5)
    (d / "t10k-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", *a.shape) + a.tobytes())
    return "t10k-idx3-ubyte", "t10k-idx3-ubyte", a


MAKERS: dict[str, Callable[[Path], tuple[str, str, np.ndarray]]] = {
    "envi": _envi, "metaimage": _metaimage, "metaimage-inline": _metaimage_inline, "ehdr": _ehdr, "idx": _idx,
}


def _upload_folder(bucket: str, folder: Path, prefix: str) -> None:
    client = boto3.client("s3")
    for p in folder.iterdir():
        client.put_object(Bucket=bucket.removeprefix("s3://"), Key=f"{prefix}/{p.name}", Body=p.read_bytes())


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_dialect_in_a_bucket_opens_as_it_does_locally(bucket: str, tmp_path: Path, kind: str) -> None:
    data, header, expected = MAKERS[kind](tmp_path)
    _upload_folder(bucket, tmp_path, "in dir")
    local = arraystore.open(tmp_path / data)
    for name in {data, header}:
        with arraystore.open(f"{bucket}/in dir/{name}") as s:
            assert s.path == f"{bucket}/in dir/{data}"  # opened by its header: the store is the data object's
            assert (s.backend, s.dialect, s.shape, s.dtype) == ("raw", local.dialect, local.shape, local.dtype)
            assert dict(s.attrs) == dict(local.attrs)
            assert s[...].tobytes() == expected.tobytes()  # the tool's own reader is the oracle
            assert s[1:2].tobytes() == expected[1:2].tobytes()
            with pytest.raises(NotMemoryMappableError):
                s.as_memmap()
            clone = pickle.loads(pickle.dumps(s))
            assert clone[...].tobytes() == expected.tobytes()
            clone.close()
    local.close()
    with pytest.raises(ModeError, match="read-only"):
        arraystore.open(f"{bucket}/in dir/{data}", "r+")


@needs_moto  # counts requests in moto's log
def test_the_data_is_never_fetched_whole(bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import spectral.io.envi as envi

    big = np.random.default_rng(5).standard_normal((4, 512, 512)).astype("<f4")  # 4 MiB, band x line x sample
    envi.save_image(str(tmp_path / "big.hdr"), big.transpose(1, 2, 0), dtype=np.float32, interleave="bsq",
                    byteorder=0, ext=".img")
    _upload_folder(bucket, tmp_path, "b")
    caplog.set_level(logging.INFO, logger="werkzeug")
    with arraystore.open(f"{bucket}/b/big.img") as s:
        assert s[2, 100].tobytes() == big[2, 100].tobytes()
        assert s.bytes_fetched == 512 * 4  # one line of one band
    gets = [r.getMessage() for r in caplog.records if "GET /" in r.getMessage() and "/b/big" in r.getMessage()]
    assert len([g for g in gets if '" 412 ' in g]) == 1, gets  # the If-Match check (once per bucket and process)
    gets = [g for g in gets if '" 412 ' not in g]
    assert len([g for g in gets if "big.img" in g]) == 1, gets  # the row; the header is another object
    assert len([g for g in gets if "big.hdr" in g]) == 1, gets


def test_bad_headers_are_typed_errors_naming_the_url(bucket: str, tmp_path: Path) -> None:
    _metaimage(tmp_path)
    (tmp_path / "ct.raw").write_bytes((tmp_path / "ct.raw").read_bytes()[:-2])  # truncated data
    _upload_folder(bucket, tmp_path, "t")
    with pytest.raises(SizeMismatchError) as info:
        arraystore.open(f"{bucket}/t/ct.mhd")
    assert f"{bucket}/t" in str(info.value) and "arraystore-shadow" not in str(info.value)
    (tmp_path / "ct.mhd").write_text((tmp_path / "ct.mhd").read_text().replace("ct.raw", "../etc/ct.raw"))
    _upload_folder(bucket, tmp_path, "t")
    with pytest.raises(UnsafeInputError):
        arraystore.open(f"{bucket}/t/ct.mhd")
    (tmp_path / "ct.mhd").write_text("ObjectType = Image\nNDims = 2\nDimSize = x y\nElementDataFile = ct.raw\n")
    _upload_folder(bucket, tmp_path, "t")
    with pytest.raises(MetadataError, match=r"t/ct\.mhd"):
        arraystore.open(f"{bucket}/t/ct.mhd")
    boto3.client("s3").put_object(Bucket=bucket.removeprefix("s3://"), Key="t/plain.bil", Body=b"\0" * 8)
    with pytest.raises(MetadataError, match="sidecar"):
        arraystore.open(f"{bucket}/t/plain.bil")
    with pytest.raises(ArrayNotFoundError):
        arraystore.open(f"{bucket}/t/none.img")


@needs_conditional_requests
def test_a_replaced_data_object_is_never_read_as_a_mixture(bucket: str, tmp_path: Path) -> None:
    name, _, a = _idx(tmp_path)
    _upload_folder(bucket, tmp_path, "r")
    s = arraystore.open(f"{bucket}/r/{name}")
    assert s[0].tobytes() == a[0].tobytes()
    (tmp_path / name).write_bytes((tmp_path / name).read_bytes()[:16] + (a + 1).tobytes())
    _upload_folder(bucket, tmp_path, "r")
    with pytest.raises(ArrayChangedError):
        s[1]
    s.close()


def test_info_does_not_measure_a_local_disk_for_an_object(bucket: str, tmp_path: Path) -> None:
    from arraystore.cli.info import describe

    data, _, _ = _idx(tmp_path)
    _upload_folder(bucket, tmp_path, "i")
    with arraystore.open(f"{bucket}/i/{data}") as s:
        assert describe(s)["stored_bytes"] is None  # not 0: nothing of it is on a local disk


@pytest.mark.skipif(SERVER == "s3rver", reason="s3rver stores a key as a file: a key segment over 255 bytes crashes it")
def test_objects_beside_with_names_no_local_file_can_have(bucket: str, tmp_path: Path) -> None:
    data, _, expected = _envi(tmp_path)
    _upload_folder(bucket, tmp_path, "long")
    boto3.client("s3").put_object(Bucket=bucket.removeprefix("s3://"), Key="long/scene" + "x" * 300, Body=b"1")
    with arraystore.open(f"{bucket}/long/{data}") as s:
        assert s[...].tobytes() == expected.tobytes()
