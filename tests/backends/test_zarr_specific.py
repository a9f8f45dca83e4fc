"""Zarr backend behaviour beyond the conformance suite: layout, hierarchies, zip, v2, flags, fixtures."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import arraystore
from arraystore.backends._zarr_layout import AUTO_CHUNK_BYTES, auto_chunks, storage_dtype
from arraystore.backends.zarr import RESERVED_ATTR, ZarrStore
from arraystore.errors import (
    AlreadyExistsError,
    ArrayNotFoundError,
    IncompleteArrayError,
    MetadataError,
    ModeError,
    UnsupportedDtypeError,
)
from arraystore.testing import bit_equal

FIXTURES = Path(__file__).parent.parent / "fixtures" / "zarr"


def _open_zarr(path: Path | str, mode: str = "r") -> ZarrStore:
    store = arraystore.open(path, mode)
    assert isinstance(store, ZarrStore)
    return store


def _zarr_json(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "zarr.json").read_text())  # type: ignore[no-any-return]


# -- automatic chunks ---------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "itemsize", "order", "expected"),
    [
        ((), 8, "C", ()),
        ((10, 20), 8, "C", (10, 20)),  # small: one chunk
        ((0, 5), 4, "C", (1, 5)),
        ((10_000, 1024), 8, "C", (1024, 1024)),  # whole rows, 8 MiB
        ((10_000, 1024), 8, "F", (10_000, 104)),  # whole columns
        ((4, 2**24), 1, "C", (1, 2**23)),  # one row is too large: split it
    ],
)
def test_auto_chunks_rule(shape: tuple[int, ...], itemsize: int, order: str, expected: tuple[int, ...]) -> None:
    chunks = auto_chunks(shape, itemsize, order)
    assert chunks == expected
    assert np.prod(chunks) * itemsize <= max(AUTO_CHUNK_BYTES, itemsize)


def test_chunks_shards_and_codecs_in_metadata(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    with arraystore.create(path, (8, 6), "<u2", chunks=(2, 3), shards=(4, 6), compression="gzip:2", checksum=True) as s:
        s[...] = np.arange(48, dtype="<u2").reshape(8, 6)
        assert s.chunks == (4, 6)  # the unit written whole: the shard
    with _open_zarr(path) as s:
        assert (s.chunks, s.inner_chunks, s.shards, s.zarr_format) == ((4, 6), (2, 3), (4, 6), 3)
        assert [b[0] for b in s.iter_blocks(4 * 6 * 2)] == [(slice(0, 4), slice(0, 6)), (slice(4, 8), slice(0, 6))]
    doc = _zarr_json(path)
    sharding = doc["codecs"][0]
    assert sharding["name"] == "sharding_indexed"
    assert [c["name"] for c in sharding["configuration"]["codecs"]] == ["bytes", "gzip", "crc32c"]


def test_auto_inner_chunks_divide_shards(tmp_path: Path) -> None:
    arraystore.create(tmp_path / "a.zarr", (3000, 1000), "<f8", shards=(1500, 1000)).close()
    with _open_zarr(tmp_path / "a.zarr") as s:
        assert s.shards == (1500, 1000)
        assert all(sh % c == 0 for sh, c in zip(s.shards, s.inner_chunks))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"compression": "lzma"}, MetadataError),
        ({"compression": "zstd:99"}, MetadataError),
        ({"compression": "gzip:x"}, MetadataError),
        ({"chunks": (0, 2)}, MetadataError),
        ({"chunks": (2,)}, MetadataError),
        ({"chunks": (3, 3), "shards": (4, 4)}, MetadataError),
        ({"attrs": {RESERVED_ATTR: 1}}, MetadataError),
    ],
)
def test_bad_create_arguments(tmp_path: Path, kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        arraystore.create(tmp_path / "a.zarr", (4, 4), "<i4", **kwargs)
    assert os.listdir(tmp_path) == []


def test_structured_cannot_be_sharded(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedDtypeError, match="shard"):
        arraystore.create(tmp_path / "a.zarr", (4,), [("a", "<i4")], shards=(2,))
    assert os.listdir(tmp_path) == []


# -- encodings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "encoding"),
    [
        ("<i4", "native"),
        (">i4", "be"),
        (">U3", "be"),
        ("V5", "native"),
        (np.longdouble, "raw"),
        ("M8", "raw"),
        ([("a", ">i4"), ("b", "<f4")], "le"),
        ([("a", "<i4", (2,))], "raw"),
    ],
)
def test_storage_encodings(dtype: Any, encoding: str) -> None:
    assert storage_dtype(np.dtype(dtype))[1] == encoding


def test_big_endian_is_stored_big_endian(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    data = np.arange(6, dtype=">i4")
    with arraystore.create(path, data.shape, data.dtype, chunks=(6,)) as s:
        s[...] = data
    assert (path / "c" / "0").read_bytes() == data.tobytes()
    assert _zarr_json(path)["codecs"][0] == {"name": "bytes", "configuration": {"endian": "big"}}
    assert np.array_equal(np.asarray(zarr.open_array(path, mode="r")[...]), data)  # plain zarr: right values


def test_f_order_uses_transpose_codec(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    data = np.arange(24, dtype="<i2").reshape(2, 3, 4)
    with arraystore.create(path, data.shape, data.dtype, order="F") as s:
        s[...] = data
    assert _zarr_json(path)["codecs"][0] == {"name": "transpose", "configuration": {"order": [2, 1, 0]}}
    assert (path / "c" / "0" / "0" / "0").read_bytes() == data.tobytes(order="F")
    assert np.array_equal(np.asarray(zarr.open_array(path, mode="r")[...]), data)


def test_negative_zero_chunks_are_written(tmp_path: Path) -> None:
    data = np.full((4,), -0.0 - 0.0j, dtype="<c8")
    with arraystore.create(tmp_path / "a.zarr", data.shape, data.dtype) as s:
        s[...] = data
    with arraystore.open(tmp_path / "a.zarr") as s:
        assert bit_equal(s[...], data)


# -- modes, flags, attrs, checksum --------------------------------------------


def test_incomplete_flag_during_r_plus(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    with arraystore.create(path, (4,), "<i4") as s:
        s[...] = np.arange(4, dtype="<i4")
    s = arraystore.open(path, "r+")
    s[0] = np.int32(9)
    assert json.loads(_zarr_json(path)["attributes"][RESERVED_ATTR])["incomplete"] is True
    with pytest.raises(IncompleteArrayError):
        arraystore.open(path)
    with arraystore.open(path, allow_incomplete=True) as r:
        assert not r.complete
    s.flush(durable=True)
    assert "incomplete" not in json.loads(_zarr_json(path)["attributes"][RESERVED_ATTR])
    s[1] = np.int32(8)
    s.close()
    with arraystore.open(path) as r:
        assert r.complete and r[...].tolist() == [9, 8, 2, 3]


def test_reserved_attribute_is_hidden_and_checksum_recorded(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    with arraystore.create(path, (2,), "<f4", attrs={"a": {"b": [1, None, "x"]}}) as s:
        s.set_checksum({"algorithm": "xxh3_64", "value": "00ff"})
    with arraystore.open(path, "r+") as s:
        assert dict(s.attrs) == {"a": {"b": [1, None, "x"]}}
        assert s.recorded_checksum == {"algorithm": "xxh3_64", "value": "00ff"}
        del s.attrs["a"]
        with pytest.raises(MetadataError):
            s.attrs[RESERVED_ATTR] = 1
    with arraystore.open(path) as s:
        assert dict(s.attrs) == {} and s.recorded_checksum is not None


def test_copy_on_write_refused(tmp_path: Path) -> None:
    arraystore.create(tmp_path / "a.zarr", (2,), "<f4").close()
    with pytest.raises(ModeError):
        arraystore.open(tmp_path / "a.zarr", "c")


@pytest.mark.parametrize("edit", [{"dtype": "<i8"}, {"encoding": "raw"}, {"shape": [3]}, {"dtype": 5}])
def test_a_record_of_another_array_is_ignored(tmp_path: Path, edit: dict[str, Any]) -> None:
    """A record that does not describe the array it is on (another tool wrote a changed copy and kept the
    attributes): the array reads as its Zarr metadata says, as zarr-python reads it, with no recorded checksum."""
    path = tmp_path / "a.zarr"
    with arraystore.create(path, (2,), ">i4") as s:
        s[...] = [1, -2]
        s.set_checksum({"algorithm": "xxh3_64", "value": "00ff"})
    doc = _zarr_json(path)
    doc["attributes"][RESERVED_ATTR] = json.dumps({**json.loads(doc["attributes"][RESERVED_ATTR]), **edit})
    (path / "zarr.json").write_text(json.dumps(doc))
    with arraystore.open(path) as s:
        assert s.dtype == np.dtype(">i4") and s[...].tolist() == [1, -2]
        assert s.recorded_checksum is None and RESERVED_ATTR not in s.attrs


def test_a_record_written_as_an_object_is_read(tmp_path: Path) -> None:
    """Arrays written by earlier versions hold the record as a JSON object."""
    path = tmp_path / "a.zarr"
    with arraystore.create(path, (2,), "<f4") as s:
        s.set_checksum({"algorithm": "xxh3_64", "value": "00ff"})
    doc = _zarr_json(path)
    doc["attributes"][RESERVED_ATTR] = json.loads(doc["attributes"][RESERVED_ATTR])
    (path / "zarr.json").write_text(json.dumps(doc))
    with arraystore.open(path) as s:
        assert s.recorded_checksum == {"algorithm": "xxh3_64", "value": "00ff"}


@pytest.mark.parametrize("value", ["not json", "[1]", 3])
def test_an_unreadable_record_is_a_typed_error(tmp_path: Path, value: Any) -> None:
    path = tmp_path / "a.zarr"
    arraystore.create(path, (2,), "<f4").close()
    doc = _zarr_json(path)
    doc["attributes"][RESERVED_ATTR] = value
    (path / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(MetadataError, match="expected the '_arraystore' attribute to be a JSON object"):
        arraystore.open(path)


# -- hierarchies --------------------------------------------------------------


def test_array_inside_new_and_existing_hierarchy(tmp_path: Path) -> None:
    root = tmp_path / "h.zarr"
    with arraystore.create(f"{root}::/grp/sub/a", (3,), "<i2") as s:
        s[...] = np.array([1, 2, 3], "<i2")
        assert not (root / "grp" / "sub" / "a").exists()  # staged beside the hierarchy until close
    with arraystore.create(f"{root}::/grp/b", (2,), "<f8", attrs={"k": 1}) as s:
        s[...] = np.array([0.5, 1.5])
    assert sorted(os.listdir(tmp_path)) == ["h.zarr"]
    group = zarr.open_group(root, mode="r")
    assert np.array_equal(np.asarray(zarr.open_array(root, path="grp/sub/a", mode="r")[...]), [1, 2, 3])
    assert sorted(zarr.open_group(root, path="grp", mode="r").keys()) == ["b", "sub"]
    assert "grp" in group
    with arraystore.open(f"{root}::/grp/b") as s:
        assert s.path.endswith("h.zarr::/grp/b") and dict(s.attrs) == {"k": 1}
    with pytest.raises(AlreadyExistsError):
        arraystore.create(f"{root}::grp/b", (2,), "<f8")
    with pytest.raises(MetadataError, match="group"):
        arraystore.open(f"{root}::/grp")
    with pytest.raises(MetadataError, match="not a group"):
        arraystore.create(f"{root}::/grp/b/inner", (2,), "<f8")
    with pytest.raises(ArrayNotFoundError):
        arraystore.open(f"{root}::/grp/missing")


def test_overwrite_array_in_hierarchy(tmp_path: Path) -> None:
    root = tmp_path / "h.zarr"
    arraystore.create(f"{root}::/a", (2,), "<i4").close()
    with arraystore.create(f"{root}::/a", (3,), "<u1", overwrite=True) as s:
        s[...] = np.array([7, 8, 9], "<u1")
    with arraystore.open(f"{root}::/a") as s:
        assert s[...].tolist() == [7, 8, 9]


# -- zip stores ---------------------------------------------------------------


def test_zip_store_round_trip_and_read_only(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr.zip"
    data = np.arange(20, dtype=">f4").reshape(4, 5)
    with arraystore.create(path, data.shape, data.dtype, chunks=(2, 5), compression="zstd", attrs={"z": True}) as s:
        s[...] = data
    assert sorted(os.listdir(tmp_path)) == ["a.zarr.zip"]
    with zipfile.ZipFile(path) as zf:
        assert "zarr.json" in zf.namelist()
    with arraystore.open(path) as s:
        assert bit_equal(s[...], data) and dict(s.attrs) == {"z": True}
    with pytest.raises(ModeError, match="zip"):
        arraystore.open(path, "r+")


def test_zip_store_with_hierarchy(tmp_path: Path) -> None:
    path = tmp_path / "h.zarr.zip"
    with arraystore.create(f"{path}::/g/a", (2,), "<i8") as s:
        s[...] = np.array([1, 2], "<i8")
    with arraystore.open(f"{path}::/g/a") as s:
        assert s[...].tolist() == [1, 2]
    with pytest.raises(AlreadyExistsError):
        arraystore.create(f"{path}::/g/b", (2,), "<i8")


def test_zip_discarded_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), arraystore.create(tmp_path / "a.zarr.zip", (2,), "<i8"):
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


# -- golden fixtures and other writers ------------------------------------------


def test_golden_v3_f_order_big_endian() -> None:
    with arraystore.open(FIXTURES / "v3_f_order_be.zarr") as s:
        assert (s.shape, s.dtype, s.order) == ((3, 4), np.dtype(">i4"), "F")
        assert dict(s.attrs) == {"name": "golden", "nested": {"a": [1, 2.5, "é"]}}
        assert bit_equal(s[...], np.arange(12, dtype=">i4").reshape(3, 4))


def test_golden_zip_structured_big_endian() -> None:
    dtype = np.dtype([("a", ">i2"), ("b", "S3")])
    with arraystore.open(FIXTURES / "v3_struct_be.zarr.zip") as s:
        assert s.dtype == dtype
        assert bit_equal(s[...], np.array([(1, b"ab"), (-2, b"xyz")], dtype))


def test_golden_zarr_v2_written_by_zarr() -> None:
    with _open_zarr(FIXTURES / "v2_foreign.zarr") as s:
        assert (s.shape, s.dtype, s.order, s.zarr_format) == ((2, 3), np.dtype("<f8"), "F", 2)
        assert dict(s.attrs) == {"src": "zarr v2"}
        assert s[...].tolist() == [[0.0, 0.5, 1.0], [1.5, 2.0, 2.5]]


def test_zarr_v2_r_plus(tmp_path: Path) -> None:
    path = tmp_path / "v2.zarr"
    zarr.create_array(path, shape=(4,), dtype=">i4", chunks=(2,), zarr_format=2)
    with arraystore.open(path, "r+") as s:
        assert s.dtype == np.dtype(">i4")
        s[1:3] = np.array([5, 6], ">i4")
    assert np.asarray(zarr.open_array(path, mode="r")[...]).tolist() == [0, 5, 6, 0]


def test_variable_length_strings_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    zarr.create_array(path, shape=(2,), dtype=str)
    with pytest.raises(UnsupportedDtypeError):
        arraystore.open(path)


@pytest.mark.parametrize(("dtype", "fill", "stored"), [
    ("<f4", 0.5, "AAAAAAAA4D8="),
    ("<f8", [float("nan")], "AAAAAAAA+H8="),
    (">i2", [-999], -999),
    ("|b1", True, True),
    ("<f4", "n/a", "n/a"),  # no xarray form: kept as it is
    ("<c8", [1.0, 2.0], [1.0, 2.0]),
    ("<f4", [10**400], [10**400]),  # beyond float64: no xarray form, kept as it is
])
def test_fill_value_attr_is_stored_in_xarrays_form_and_read_back_exactly(
    tmp_path: Path, dtype: str, fill: object, stored: object
) -> None:
    p = str(tmp_path / "a.zarr")
    with arraystore.create(p, (3,), dtype, attrs={"_FillValue": fill, "units": "K"}):
        pass
    on_disk = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text(), parse_constant=float)["attributes"]
    assert on_disk["_FillValue"] == stored
    with arraystore.open(p, "r+") as s:
        assert str(s.attrs["_FillValue"]) == str(fill) and type(s.attrs["_FillValue"]) is type(fill)
        s.attrs["units"] = "degC"  # another attr written: the fill value stays as it was
    with arraystore.open(p, "r+") as s:
        assert str(s.attrs["_FillValue"]) == str(fill)
        del s.attrs["_FillValue"]
    with arraystore.open(p) as s:
        assert "_FillValue" not in s.attrs and s.attrs["units"] == "degC"
    record = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())["attributes"]["_arraystore"]
    assert "fill_value_attr" not in json.loads(record)


def test_fill_value_attr_edited_by_another_tool_is_read_as_it_is(tmp_path: Path) -> None:
    p = str(tmp_path / "a.zarr")
    with arraystore.create(p, (3,), "<f4", attrs={"_FillValue": 0.5}):
        pass
    zarr.open_array(p, mode="r+").attrs["_FillValue"] = "AAAAAAAA8D8="  # xarray's form of 1.0
    with arraystore.open(p) as s:
        assert s.attrs["_FillValue"] == 1.0  # the edit, as the number xarray's text stands for
    zarr.open_array(p, mode="r+").attrs["_FillValue"] = "none at all"  # not xarray's form: text as it is
    with arraystore.open(p) as s:
        assert s.attrs["_FillValue"] == "none at all"


@pytest.mark.parametrize(("written", "rewritten"), [("<f4", "<f8"), ("<i2", "<f4"), ("|u1", "<i8")])
def test_reserved_attribute_copied_by_another_tool_is_not_this_arrays(tmp_path: Path, written: str,
                                                                        rewritten: str) -> None:
    """xarray's to_zarr copies every attribute: an array of another dtype carrying arraystore's record opens as
    its own Zarr metadata says, with the other attributes and without the original's checksum."""
    src = tmp_path / "a.zarr"
    with arraystore.create(src, (4,), written, attrs={"units": "K"}) as s:
        s[...] = 1
        s.set_checksum({"algorithm": "xxh3_64", "value": "00ff"})
    copy = zarr.create_array(tmp_path / "b.zarr", shape=(4,), dtype=rewritten, zarr_format=3)
    copy[...] = 2
    copy.attrs.update(zarr.open_array(src, mode="r").attrs.asdict())  # what xr.open_zarr(...).to_zarr(...) does
    with arraystore.open(tmp_path / "b.zarr") as s:
        assert s.dtype == np.dtype(rewritten) and s[...].tolist() == [2, 2, 2, 2]
        assert dict(s.attrs) == {"units": "K"} and s.recorded_checksum is None
    del zarr.open_array(tmp_path / "b.zarr", mode="r+").attrs[RESERVED_ATTR]  # the remedy the message gives
    with arraystore.open(tmp_path / "b.zarr") as s:
        assert s.dtype == np.dtype(rewritten) and s.attrs["units"] == "K"
