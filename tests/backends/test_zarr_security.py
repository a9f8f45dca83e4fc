"""Hostile or damaged Zarr input is refused with typed errors, before any chunk is decoded."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

import arraystore
from arraystore.backends._zarr_safety import MAX_METADATA_BYTES
from arraystore.errors import MetadataError, UnsafeInputError, UnsupportedDtypeError


def _v3(shape: list[int], chunks: list[int], **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": "float64",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "attributes": {},
    }
    doc.update(changes)
    return doc


def _write(folder: Path, doc: dict[str, Any], name: str = "zarr.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(doc))
    return folder


@pytest.mark.parametrize("key", ["/../outside", "/a//b", "/a\\b", "/./a", "/a/..", "/__reserved", "/a/"])
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    root = tmp_path / "h.zarr"
    with pytest.raises(UnsafeInputError):
        arraystore.create(f"{root}::{key}", (2,), "<i4")
    with pytest.raises(UnsafeInputError):
        arraystore.open(f"{root}::{key}")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("dtype", "compressor", "filters", "error"),
    [
        # zarr-python 3.1 itself refuses pickle as an object codec; the allow-list is the second wall.
        ("<i4", {"id": "pickle", "protocol": 5}, None, MetadataError),
        ("|O", None, [{"id": "pickle", "protocol": 5}], MetadataError),
        ("<i4", {"id": "base64"}, None, UnsafeInputError),  # decodable, but not on the allow-list
    ],
    ids=["pickle-compressor", "pickle-object-filter", "not-allow-listed"],
)
def test_pickle_codec_is_refused(
    tmp_path: Path, dtype: str, compressor: Any, filters: Any, error: type[Exception]
) -> None:
    doc = {
        "zarr_format": 2, "shape": [2], "chunks": [2], "dtype": dtype, "compressor": compressor,
        "fill_value": None, "order": "C", "filters": filters,
    }  # fmt: skip
    path = _write(tmp_path / "p.zarr", doc, ".zarray")
    (path / "0").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(error):
        arraystore.open(path)


def test_absurd_chunk_shape_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.zarr", _v3([10, 10], [100_000, 100_000]))
    with pytest.raises(UnsafeInputError, match="bytes decoded"):
        arraystore.open(path)
    with arraystore.open(path, max_chunk_bytes=10**12) as s:  # trusted: the caller raises the limit
        assert s.chunks == (100_000, 100_000)


def test_absurd_chunks_refused_at_create(tmp_path: Path) -> None:
    with pytest.raises(UnsafeInputError):
        arraystore.create(tmp_path / "a.zarr", (10, 10), "<f8", chunks=(10**6, 10**6))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "doc",
    [
        _v3([4, 4], [2]),  # chunk grid of the wrong rank
        _v3([4, -4], [2, 2]),  # negative extent
        _v3([4], [2], codecs=[{"name": "no-such-codec"}]),
        _v3([4], [0]),
    ],
    ids=["rank", "negative", "unknown-codec", "zero-chunk"],
)
def test_inconsistent_metadata_is_refused(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = _write(tmp_path / "a.zarr", doc)
    with pytest.raises(MetadataError):
        arraystore.open(path)


def test_unknown_data_type_is_unsupported(tmp_path: Path) -> None:
    # a data type zarr-python does not know (also TensorStore's bfloat16: tests/outside) is a dtype
    # arraystore cannot hold, as an unknown ENVI or HDF5 type is
    path = _write(tmp_path / "a.zarr", _v3([4], [2], data_type="complex512"))
    with pytest.raises(UnsupportedDtypeError, match="complex512"):
        arraystore.open(path)


def test_garbage_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    path.mkdir()
    (path / "zarr.json").write_bytes(b"\x00not json{")
    with pytest.raises(MetadataError):
        arraystore.open(path)


def test_oversized_metadata_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.zarr", _v3([4], [2]))
    os.truncate(path / "zarr.json", MAX_METADATA_BYTES + 1)
    with pytest.raises(UnsafeInputError, match="metadata document"):
        arraystore.open(path)


def test_oversized_zip_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zarr.json", json.dumps(_v3([4], [4])))
        zf.writestr("c/0", b"\0" * 100_000)  # compresses to ~100 bytes: a small bomb
    with pytest.raises(UnsafeInputError, match="zip member"):
        arraystore.open(path, max_chunk_bytes=32)


def test_group_is_not_an_array(tmp_path: Path) -> None:
    path = _write(tmp_path / "g.zarr", {"zarr_format": 3, "node_type": "group", "attributes": {}})
    with pytest.raises(MetadataError, match="group"):
        arraystore.open(path)
