"""Damaged metadata and decompression bombs in Zarr chunks get typed errors before anything large is allocated.

Every bomb here declares or decodes to far more than its chunk holds; the guard must refuse it
from its header (zstd, blosc) or a bounded decode (gzip, zlib) without allocating the claimed size.
"""

from __future__ import annotations

import gzip
import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import crc32c
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.backends._zarr_bounds import ChunkRule, Stage, check_chunk
from arraystore.errors import MetadataError, UnsafeInputError

GIB = 1 << 30


def _zstd_frame(declared: int | None, blocks: list[tuple[int, int, bytes]]) -> bytes:
    """A zstd frame: a content size (or none, then a 128 KiB window) and (type, size, payload) blocks."""
    out = bytearray(struct.pack("<I", 0xFD2FB528))
    if declared is None:
        out += bytes([0x00, 0x38])  # no content size, not single-segment; window 2**17
    else:
        out.append(0xE0)
        out += struct.pack("<Q", declared)
    for i, (kind, size, payload) in enumerate(blocks):
        hdr = (1 if i == len(blocks) - 1 else 0) | (kind << 1) | (size << 3)
        out += struct.pack("<I", hdr)[:3] + payload
    return bytes(out)


def _rle_blocks(n: int) -> list[tuple[int, int, bytes]]:
    return [(1, 128 * 1024, b"\0")] * n


def _array(path: Path, compression: str | None, **kw: Any) -> np.ndarray[Any, Any]:
    x = np.arange(64, dtype="<f8")
    with arraystore.create(path, x.shape, x.dtype, backend="zarr", chunks=(8,), compression=compression, **kw) as s:
        s[...] = x
    return x


def _read_all(path: Path | str) -> np.ndarray[Any, Any]:
    with arraystore.open(path, backend="zarr") as s:
        return s[...]


@pytest.mark.parametrize("body", [b"[]", b'"zarr"', b"3", b"null"], ids=["list", "string", "number", "null"])
def test_metadata_that_is_not_an_object_is_refused(tmp_path: Path, body: bytes) -> None:
    root = tmp_path / "a.zarr"
    root.mkdir()
    (root / "zarr.json").write_bytes(body)
    with pytest.raises(MetadataError, match="expected a JSON object"):
        arraystore.open(root, backend="zarr")


def test_zip_metadata_that_is_a_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("zarr.json", b"[]")
    with pytest.raises(MetadataError):
        arraystore.open(path, backend="zarr")


def test_corrupt_gzip_chunk_is_a_metadata_error(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _array(path, "gzip")
    (path / "c" / "0").write_bytes(b"not gzip at all")
    with pytest.raises(MetadataError, match="could not be decoded"):
        _read_all(path)


def test_truncated_gzip_chunk_is_a_metadata_error(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _array(path, "gzip")
    chunk = path / "c" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-12])
    with pytest.raises(MetadataError, match="could not be decoded"):
        _read_all(path)


def test_zstd_frame_declaring_4_gib_is_refused_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _array(path, "zstd")
    (path / "c" / "0").write_bytes(_zstd_frame(4 * GIB, _rle_blocks(1)))
    with pytest.raises(UnsafeInputError, match=r"declares 4,294,967,296 bytes, more than the chunk's 64 bytes"):
        _read_all(path)


def test_zstd_frame_without_content_size_is_bounded_by_its_blocks(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _array(path, "zstd")
    (path / "c" / "0").write_bytes(_zstd_frame(None, _rle_blocks(8192)))  # 1 GiB of RLE blocks
    with pytest.raises(UnsafeInputError, match="decompression bomb"):
        _read_all(path)


def test_zstd_frame_without_content_size_that_fits_is_read(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    x = _array(path, "zstd")
    raw = x[:8].tobytes()
    (path / "c" / "0").write_bytes(_zstd_frame(None, [(0, len(raw), raw)]))
    np.testing.assert_array_equal(_read_all(path), x)


def test_gzip_bomb_is_refused_by_a_bounded_decode(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _array(path, "gzip")
    (path / "c" / "1").write_bytes(gzip.compress(b"\0" * (16 << 20), 9))
    with pytest.raises(UnsafeInputError, match="decodes to more than the chunk's 64 bytes"):
        _read_all(path)


def test_blosc_header_declaring_too_much_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _array(path, "blosc")
    chunk = bytearray((path / "c" / "0").read_bytes())
    chunk[4:8] = struct.pack("<I", 2**31)
    (path / "c" / "0").write_bytes(bytes(chunk))
    with pytest.raises(UnsafeInputError, match="declares 2,147,483,648 bytes"):
        _read_all(path)


def test_bomb_under_a_crc32c_codec_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _array(path, "zstd", checksum=True)
    frame = _zstd_frame(4 * GIB, _rle_blocks(1))
    (path / "c" / "0").write_bytes(frame + struct.pack("<I", crc32c.crc32c(frame)))
    with pytest.raises(UnsafeInputError, match="decompression bomb"):
        _read_all(path)


def _bomb_shard(n_inner: int) -> bytes:
    frame = _zstd_frame(4 * GIB, _rle_blocks(1))
    index = np.full((n_inner, 2), 2**64 - 1, dtype="<u8")
    index[0] = (0, len(frame))
    return frame + index.tobytes() + struct.pack("<I", crc32c.crc32c(index.tobytes()))


def test_sharded_inner_chunk_bomb_is_refused_whole_and_by_range(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _array(path, "zstd", shards=(32,))
    (path / "c" / "0").write_bytes(_bomb_shard(4))
    with pytest.raises(UnsafeInputError, match="declares 4,294,967,296 bytes"):
        _read_all(path)  # whole shard: the index is parsed and each inner chunk checked
    with arraystore.open(path, backend="zarr") as s, pytest.raises(UnsafeInputError, match="decompression bomb"):
        s[0:4]  # one inner chunk fetched by byte range
    with arraystore.open(path, backend="zarr") as s:
        np.testing.assert_array_equal(s[32:], np.arange(32, 64, dtype="<f8"))  # the other shard is sound


def test_zip_member_bomb_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "a.zarr"
    _array(src, "zstd")
    path = tmp_path / "a.zarr.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zarr.json", (src / "zarr.json").read_bytes())
        zf.writestr("c/0", _zstd_frame(4 * GIB, _rle_blocks(1)))
    with pytest.raises(UnsafeInputError, match="decompression bomb"):
        _read_all(path)


def test_v2_zlib_bomb_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "a.zarr"
    root.mkdir()
    zarray = {"zarr_format": 2, "shape": [16], "chunks": [8], "dtype": "<f8", "compressor": {"id": "zlib", "level": 1},
              "fill_value": 0, "order": "C", "filters": None}  # fmt: skip
    (root / ".zarray").write_text(json.dumps(zarray))
    (root / "0").write_bytes(zlib.compress(np.arange(8.0).tobytes()))
    (root / "1").write_bytes(zlib.compress(b"\0" * (8 << 20)))
    with arraystore.open(root, backend="zarr") as s:
        np.testing.assert_array_equal(s[:8], np.arange(8.0))
        with pytest.raises(UnsafeInputError, match="decompression bomb"):
            s[8:]


@pytest.mark.parametrize("compression", ["zstd", "gzip", "blosc", "none"])
@pytest.mark.parametrize("checksum", [False, True])
def test_sound_arrays_read_through_the_guard(tmp_path: Path, compression: str, checksum: bool) -> None:
    path = tmp_path / "a.zarr"
    x = _array(path, compression, checksum=checksum)
    np.testing.assert_array_equal(_read_all(path), x)
    with arraystore.open(path, "r+", backend="zarr") as s:
        s[3:5] = -1.0  # read-modify-write of a chunk passes the guard too
    x[3:5] = -1.0
    np.testing.assert_array_equal(_read_all(path), x)


def test_sound_sharded_array_reads_whole_and_in_parts(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    x = _array(path, "gzip", shards=(32,))
    np.testing.assert_array_equal(_read_all(path), x)
    with arraystore.open(path, backend="zarr") as s:
        np.testing.assert_array_equal(s[5:13], x[5:13])


def test_nested_compressors_are_decoded_to_reach_the_inner_one() -> None:
    inner = gzip.compress(b"\0" * (1 << 20))
    outer = zlib.compress(inner)
    rule = ChunkRule((Stage("gzip"), Stage("zlib")), decoded=1024)
    with pytest.raises(UnsafeInputError, match="decodes to more than the chunk's 1,024 bytes"):
        check_chunk(memoryview(outer), rule, "x")
    ok = ChunkRule((Stage("gzip"), Stage("zlib")), decoded=1 << 20)
    check_chunk(memoryview(outer), ok, "x")


def _blosc_array(path: Path, data: np.ndarray[Any, Any], shuffle: str, cname: str) -> bytes:
    """``data`` written by zarr-python with blosc in chunks of 4 rows; the bytes of chunk ``c/0/0``."""
    import zarr
    from zarr.codecs import BloscCodec

    z = zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=(4, data.shape[1]), zarr_format=3,
                          compressors=BloscCodec(cname=cname, shuffle=shuffle, typesize=data.dtype.itemsize))
    z[...] = data
    return (path / "c" / "0" / "0").read_bytes()


@settings(max_examples=25, deadline=None)
@given(shuffle=st.sampled_from(["noshuffle", "shuffle", "bitshuffle"]), cname=st.sampled_from(["lz4", "zstd", "blosclz"]),
       dtype=st.sampled_from(["<f8", ">i4", "<u2", "<c8"]), cut=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_a_blosc_chunk_cut_short_is_refused_never_read_as_other_values(shuffle: str, cname: str, dtype: str,
                                                                       cut: float, seed: int) -> None:
    """c-blosc 1 decodes the compressed size its header declares whatever the buffer holds: a chunk file cut
    short (a torn copy, a partial upload) decodes without an error to other values, in zarr-python too. Every read
    of it (whole, partial, converted) is a MetadataError naming the chunk."""
    import tempfile

    rng = np.random.default_rng(seed)
    data = rng.normal(size=(8, 300)).astype(dtype)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.zarr"
        body = _blosc_array(path, data, shuffle, cname)
        (path / "c" / "0" / "0").write_bytes(body[: int(cut * (len(body) - 1))])
        with arraystore.open(str(path)) as s:
            np.testing.assert_array_equal(s[4:], data[4:])  # the other chunk reads
            for sel in (np.s_[...], np.s_[:4], np.s_[1:3, ::7]):
                with pytest.raises(MetadataError, match="c/0/0"):
                    s[sel]
        with pytest.raises(MetadataError):
            arraystore.convert(str(path), Path(tmp) / "b.npy")
        assert not (Path(tmp) / "b.npy").exists()


@pytest.mark.parametrize("drop", ["data_type", "shape", "chunk_grid", "chunk_key_encoding", "codecs", "fill_value"])
def test_a_zarr_json_missing_a_key_says_what_was_expected_and_what_to_do(tmp_path: Path, drop: str) -> None:
    """A zarr.json that zarr-python refuses (a required key missing): MetadataError saying what was expected,
    what was found (zarr-python's complaint) and what to do; not a bare ``KeyError: 'data_type'``."""
    import zarr

    path = tmp_path / "a.zarr"
    zarr.create_array(str(path), shape=(3, 4), dtype="<i2", chunks=(2, 2), zarr_format=3)[...] = 1
    meta = json.loads((path / "zarr.json").read_text())
    del meta[drop]
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(MetadataError) as info:
        arraystore.open(str(path))[...]
    message = str(info.value)
    assert str(path) in message and "expected" in message and ("restore" in message or "re-create" in message)
