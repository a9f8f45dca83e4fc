"""Unicode arrays in HDF5: fixed-length UTF-8 strings that h5py reads as text, exact round trips through arraystore.

numpy is the oracle (``np.array(values, dtype)``, which drops trailing NULs as every ``U``
array does); h5py reads the same file directly. Values fixed-length UTF-8 cannot hold
(embedded NUL, lone surrogates) keep the UTF-32 encoding, decided before or while writing.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.checksums import StreamHasher
from arraystore.errors import (
    CopyRequiredError,
    MetadataError,
    NotMemoryMappableError,
    ValueOutOfRangeError,
)

ASTRAL = ["\U0001f600", "\U0001d11e", "\U00010348", "\U0010fffd"]
# Every code point UTF-8 encodes, NUL excluded (embedded NULs have their own test), astral ones weighted up.
_chars = st.one_of(st.characters(codec="utf-8", exclude_characters="\x00"), st.sampled_from(ASTRAL))


@st.composite
def text_arrays(draw: st.DrawFn, nul: bool = False) -> np.ndarray[Any, Any]:
    n = draw(st.integers(1, 6))
    chars = st.one_of(_chars, st.just("\x00")) if nul else _chars
    shape = draw(st.sampled_from([(), (0,), (1,), (5,), (2, 3), (3, 1, 2)]))
    size = int(np.prod(shape))
    values = draw(st.lists(st.text(chars, max_size=n), min_size=size, max_size=size))
    if size and draw(st.booleans()):
        values[0] = draw(st.text(chars, min_size=n, max_size=n))  # a value of the full width
    order = draw(st.sampled_from("<>"))
    return np.array(values, dtype=f"{order}U{n}").reshape(shape)


def _stored(path: Path, key: str = "data") -> h5py.Dataset:
    return h5py.File(path, "r")[key]


def _h5py_text(path: Path, key: str = "data") -> list[Any]:
    with h5py.File(path, "r") as f:
        ds = f[key]
        assert h5py.check_string_dtype(ds.dtype).encoding == "utf-8"
        return np.asarray(ds.asstr()[()], dtype=str).tolist()  # type: ignore[no-any-return]


def _utf8_width(values: np.ndarray[Any, Any]) -> int:
    return max([1, *(len(str(v).encode()) for v in values.reshape(-1))])


@settings(max_examples=60, deadline=None)
@given(data=text_arrays(), chunked=st.booleans())
def test_created_text_round_trips_and_h5py_reads_the_strings(tmp_path_factory: pytest.TempPathFactory,
                                                             data: np.ndarray[Any, Any], chunked: bool) -> None:
    path = tmp_path_factory.mktemp("s") / "a.h5"
    kw: dict[str, Any] = {"chunks": "auto", "compression": "gzip:1"} if chunked and data.ndim else {}
    with arraystore.create(path, data.shape, data.dtype, **kw) as s:
        s[...] = data
    with arraystore.open(path) as s:
        assert s.dtype == data.dtype
        got = s[...]
        assert got.dtype == data.dtype and got.tobytes() == data.tobytes()
        assert s.encoding_notes == ()
    assert _h5py_text(path) == data.astype(str).tolist()
    with h5py.File(path, "r") as f:
        assert f["data"].dtype.itemsize == 4 * (data.dtype.itemsize // 4)  # any n characters fit


@settings(max_examples=60, deadline=None)
@given(data=text_arrays())
def test_converted_text_has_the_width_its_values_need(tmp_path_factory: pytest.TempPathFactory,
                                                      data: np.ndarray[Any, Any]) -> None:
    folder = tmp_path_factory.mktemp("c")
    np.save(folder / "a.npy", data)
    report = arraystore.convert(folder / "a.npy", folder / "a.h5", verify=True, max_memory=4096)
    assert report.verified
    with h5py.File(folder / "a.h5", "r") as f:
        assert f["data"].dtype.itemsize == _utf8_width(data)
    assert _h5py_text(folder / "a.h5") == data.astype(str).tolist()
    with arraystore.open(folder / "a.h5") as s:
        assert s.dtype == data.dtype and s[...].tobytes() == data.tobytes()
        assert s.recorded_checksum == StreamHasher.of(data)  # the digest of the logical U array
    assert arraystore.verify(folder / "a.h5")["match"]
    assert arraystore.verify(folder / "a.h5", against=folder / "a.npy")["match"]
    arraystore.convert(folder / "a.h5", folder / "b.npy", verify=True)  # and back, through the decoding
    back = np.load(folder / "b.npy")
    assert back.dtype == data.dtype and back.tobytes() == data.tobytes()


@settings(max_examples=60, deadline=None)
@given(data=text_arrays(nul=True))
def test_embedded_nul_keeps_every_character(tmp_path_factory: pytest.TempPathFactory,
                                             data: np.ndarray[Any, Any]) -> None:
    folder = tmp_path_factory.mktemp("n")
    embedded = any("\x00" in str(v) for v in data.reshape(-1))  # numpy already dropped trailing NULs
    with arraystore.create(folder / "w.h5", data.shape, data.dtype) as s:
        s[...] = data
    np.save(folder / "a.npy", data)
    arraystore.convert(folder / "a.npy", folder / "c.h5", verify=True)
    for name in ("w.h5", "c.h5"):
        with arraystore.open(folder / name) as s:
            assert s.dtype == data.dtype and s[...].tobytes() == data.tobytes()
            assert bool(s.encoding_notes) == embedded
            assert all("UTF-32" in n for n in s.encoding_notes)
        with h5py.File(folder / name, "r") as f:
            is_text = h5py.check_string_dtype(f["data"].dtype) is not None
        assert is_text == (not embedded)


def test_embedded_nul_switches_a_dataset_being_written_keeping_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "f.h5"
    with arraystore.create(f"{path}::/other", (2,), "<f4") as s:
        s[...] = [1, 2]
    rows = np.array([["a", "é", "日本"], ["\U0001f600", "", "xyz"]], dtype=">U3")
    with arraystore.create(f"{path}::/g/t", (3, 3), ">U3", chunks=(1, 2), compression="gzip:1",
                           attrs={"units": "words"}, dimension_names=("row", "col")) as s:
        s[0] = rows[0]
        s[1] = rows[1]
        s[2] = ["p\x00q", "r", "s"]
    with arraystore.open(f"{path}::/g/t") as s:
        assert s[...].tolist() == [*rows.tolist(), ["p\x00q", "r", "s"]]
        assert s.chunks == (1, 2) and s.compression == "gzip"
        assert dict(s.attrs) == {"units": "words"} and s.dimension_names == ("row", "col")
        assert any("embedded NUL" in n for n in s.encoding_notes)
    with h5py.File(path, "r") as f:
        assert f["g/t"].dtype == np.dtype((">u4", (3,)))
        assert sorted(f["g"]) == ["col", "row", "t"]  # no temporary dataset left
        assert f["other"][...].tolist() == [1, 2]
    out = subprocess.run([sys.executable, "-m", "arraystore", "info", "--json", f"{path}::/g/t"],
                         capture_output=True, text=True, check=True)
    assert any("embedded NUL" in n for n in json.loads(out.stdout)["notes"])


def test_lone_surrogates_and_non_code_points_round_trip(tmp_path: Path) -> None:
    data = np.zeros(3, "<U2")
    data.view("<u4")[:] = [0x61, 0xD800, 0x110000, 0x62, 0, 0]
    with arraystore.create(tmp_path / "s.h5", data.shape, data.dtype) as s:
        s[...] = data
    with arraystore.open(tmp_path / "s.h5") as s:
        assert s[...].tobytes() == data.tobytes()
        assert any("UTF-8 cannot encode" in n for n in s.encoding_notes)


def test_utf32_on_request(tmp_path: Path) -> None:
    data = np.array(["ab", "é"], "<U2")
    with arraystore.create(tmp_path / "u.h5", (2,), "<U2", hdf5_strings="utf-32") as s:
        s[...] = data
    with h5py.File(tmp_path / "u.h5", "r") as f:
        assert f["data"].dtype == np.dtype(("<u4", (2,)))
    with arraystore.open(tmp_path / "u.h5") as s:
        assert s[...].tobytes() == data.tobytes() and s.encoding_notes


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_r_plus_refuses_what_the_byte_width_cannot_hold_before_writing(tmp_path: Path) -> None:
    data = np.array([["ab", "c"], ["", "de"]], "<U4")
    np.save(tmp_path / "a.npy", data)
    arraystore.convert(tmp_path / "a.npy", tmp_path / "a.h5")  # sized for the values: 2 bytes
    before = _digest(tmp_path / "a.h5")
    with arraystore.open(tmp_path / "a.h5", "r+") as s:
        with pytest.raises(ValueOutOfRangeError, match="2 bytes"):
            s[0] = ["x", "abé"]  # "abé" needs 4 bytes
        with pytest.raises(ValueOutOfRangeError, match="embedded NUL"):
            s[1, 1] = "a\x00b"
        with pytest.raises(ValueOutOfRangeError):
            s[...] = np.array([["ok", "ok"], ["ok", "\U0001f600"]], "<U4")
    assert _digest(tmp_path / "a.h5") == before  # not a byte written
    with arraystore.open(tmp_path / "a.h5", "r+") as s:
        s[0, 1] = "zz"
        s[1] = ["é", ""]
    with arraystore.open(tmp_path / "a.h5") as s:
        assert s[...].tolist() == [["ab", "zz"], ["é", ""]]


def test_width_grows_while_a_dataset_is_being_written(tmp_path: Path) -> None:
    with arraystore.create(tmp_path / "g.h5", (2,), "<U3", hdf5_string_bytes=1) as s:
        s[0] = "a"
        s[1] = "日本"
    with arraystore.open(tmp_path / "g.h5") as s:
        assert s[...].tolist() == ["a", "日本"] and not s.encoding_notes
    assert _h5py_text(tmp_path / "g.h5") == ["a", "日本"]


def test_utf8_datasets_are_not_mapped(tmp_path: Path) -> None:
    with arraystore.create(tmp_path / "m.h5", (2,), "<U1") as s:
        s[...] = ["a", "b"]
    with arraystore.open(tmp_path / "m.h5") as s:
        with pytest.raises(NotMemoryMappableError, match="UTF-8"):
            s.as_memmap()
        with pytest.raises(CopyRequiredError):
            np.asarray(s, copy=False)


def test_files_written_with_the_uint32_layout_still_open(tmp_path: Path) -> None:
    # What arraystore wrote before UTF-8 strings: uint32 code units + the recorded dtype.
    data = np.array([["a", "é\U0001f600x"], ["", "p\x00q"]], ">U3")
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("data", shape=(2, 2), dtype=np.dtype((">u4", (3,))))
        ds[...] = data.view(">u4").reshape(2, 2, 3)
        ds.attrs["_arraystore_version"] = 1
        ds.attrs["_arraystore_dtype"] = '">U3"'
        ds.attrs["_arraystore_attrs"] = "{}"
    with arraystore.open(path) as s:
        assert s.dtype == data.dtype and s[...].tobytes() == data.tobytes()
        assert s.as_memmap().tobytes() == data.tobytes()
    with arraystore.open(path, "r+") as s:
        s[0, 0] = "z\x00z"
    with arraystore.open(path) as s:
        assert s[0, 0] == "z\x00z"


def test_strings_changed_by_another_tool_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    with arraystore.create(path, (2,), "<U1") as s:
        s[...] = ["a", "b"]
    with h5py.File(path, "r+") as f:
        f["data"][0] = b"\xff"  # not UTF-8
        f["data"][1] = b"bb"  # longer than U1
    with arraystore.open(path) as s:
        with pytest.raises(MetadataError, match="not UTF-8"):
            s[0]
        with pytest.raises(MetadataError, match="longer than"):
            s[1]


def test_switch_while_replacing_keeps_the_old_dataset_until_close(tmp_path: Path) -> None:
    path = tmp_path / "r.h5"
    with arraystore.create(f"{path}::/t", (2,), "<U3") as s:
        s[...] = ["old", "one"]
    with arraystore.create(f"{path}::/t", (2,), "<U3", overwrite=True) as s:
        s[0] = "new"
        s[1] = "a\x00b"  # switches the dataset being built (under a temporary name) to UTF-32
        with arraystore.open(f"{path}::/t") as old:
            assert old[...].tolist() == ["old", "one"]
    with arraystore.open(f"{path}::/t") as s:
        assert s[...].tolist() == ["new", "a\x00b"] and s.encoding_notes
    with h5py.File(path, "r") as f:
        assert sorted(n for n in f if not h5py.h5ds.is_scale(f[n].id)) == ["t"]  # nothing temporary left


def test_conversion_memory_stays_bounded_by_the_budget(tmp_path: Path) -> None:
    """Scanning, encoding and decoding go block by block: the peak stays far below the array's size."""
    words = np.array(["", "a", "é", "日本語", "\U0001f600", "abcdefgh"], dtype="<U8")
    data = words[np.arange(400_000) % len(words)]  # 12.8 MB as U8
    np.save(tmp_path / "big.npy", data)
    del data
    import tracemalloc

    tracemalloc.start()
    try:
        arraystore.convert(tmp_path / "big.npy", tmp_path / "big.h5", max_memory="1MiB", verify=True)
        arraystore.convert(tmp_path / "big.h5", tmp_path / "back.npy", max_memory="1MiB", verify=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * 1024 * 1024, peak
    assert np.load(tmp_path / "back.npy", mmap_mode="r")[-1] == words[(400_000 - 1) % len(words)]
