"""JSON that arraystore did not write is parsed with bounded memory, wherever it is read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore import _fsutil
from arraystore.errors import MetadataError, UnsafeInputError
from arraystore.migration._manifest import Manifest
from arraystore.migration.legacy_json import read_json
from arraystore.writer import ArrayWriter, checkpoint_path

MiB = 1024 * 1024
N_OBJECTS = _fsutil.MAX_JSON_ITEMS + 10
#: Over a million empty objects: 3 MB of text, ~100 MB as Python objects.
BOMB = b"[" + b"{}," * (N_OBJECTS - 1) + b"{}]"
DEEP = b"[" * (_fsutil.MAX_JSON_DEPTH + 1) + b"]" * (_fsutil.MAX_JSON_DEPTH + 1)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(json_values)
def test_documents_within_the_bounds_parse_like_json(value: Any) -> None:
    text = json.dumps(value)
    assert _fsutil.loads_json(text.encode(), "x", "doc") == json.loads(text)


@given(st.text(alphabet='[]{},:"\\ ab', max_size=60))
def test_brackets_inside_strings_do_not_count(s: str) -> None:
    doc = json.dumps({"k": s * 1000, "n": [1, 2, 3]})
    assert _fsutil.loads_json(doc, "x", "doc") == json.loads(doc)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (BOMB, "at most 1,000,000 JSON values"),
        (b'{"a": ' + BOMB + b"}", "JSON values"),
        (b"[" + b"1," * N_OBJECTS + b"1]", "JSON values"),
        (b"{" + b",".join(b'"%d": 0' % i for i in range(N_OBJECTS // 2 + 10)) + b"}", "JSON values"),
        (DEEP, "nested at most 100 levels"),
        (b'{"a": ' + b'{"b": ' * 150 + b"0" + b"}" * 151, "nested"),
    ],
)
def test_hostile_documents_are_refused(raw: bytes, match: str) -> None:
    with pytest.raises(UnsafeInputError, match=match):
        _fsutil.loads_json(raw, "x.json", "doc")


def test_deep_but_allowed_and_invalid_json() -> None:
    ok = b"[" * _fsutil.MAX_JSON_DEPTH + b"]" * _fsutil.MAX_JSON_DEPTH
    assert _fsutil.loads_json(ok, "x", "doc") is not None
    with pytest.raises(MetadataError, match="invalid JSON"):
        _fsutil.loads_json(b"1" * 5000, "x", "doc")  # more digits than Python converts: a ValueError
    with pytest.raises(MetadataError, match="invalid JSON"):
        _fsutil.loads_json(b'{"a": [1, 2}', "x", "doc")


# -- every place that parses JSON it did not write ----------------------------------------


def test_raw_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "a.dat"
    with arraystore.create(path, (4,), "u1", attrs={"x": 1}) as s:
        s[...] = np.arange(4, dtype="u1")
    side = Path(str(path) + ".json")
    doc = side.read_bytes().replace(b'"x": 1', b'"x": ' + BOMB)
    side.write_bytes(doc)
    with pytest.raises(UnsafeInputError, match="sidecar"):
        arraystore.open(path)


@pytest.mark.parametrize("payload", [BOMB, DEEP])
def test_zarr_json_directory_and_nested(tmp_path: Path, payload: bytes) -> None:
    root = zarr.open_group(str(tmp_path / "x.zarr"), mode="w")
    root.create_array("a", shape=(4,), dtype="<i4", attributes={"x": 1})
    meta = tmp_path / "x.zarr" / "a" / "zarr.json"
    meta.write_bytes(meta.read_bytes().replace(b'"x": 1', b'"x": ' + payload))
    with pytest.raises(UnsafeInputError, match="Zarr metadata"):
        arraystore.open(f"{tmp_path / 'x.zarr'}::/a")


def test_zarr_zip_member(tmp_path: Path) -> None:
    src = tmp_path / "x.zarr"
    zarr.create_array(str(src), shape=(4,), dtype="<i4", attributes={"x": 1})
    out = tmp_path / "x.zarr.zip"
    with zipfile.ZipFile(out, "w") as zf:
        doc = (src / "zarr.json").read_bytes().replace(b'"x": 1', b'"x": ' + BOMB)
        zf.writestr("zarr.json", doc)
    with pytest.raises(UnsafeInputError, match="zip member"):
        arraystore.open(out)


def test_writer_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "a.dat"
    checkpoint_path(path).write_bytes(b'{"rows": ' + DEEP + b"}")  # its 1 MiB cap bounds the item count
    with pytest.raises(UnsafeInputError, match="checkpoint"):
        ArrayWriter.resume(str(path))


def test_migration_manifest_line(tmp_path: Path) -> None:
    path = tmp_path / "migration.jsonl"
    path.write_bytes(b'{"source": "a", "status": ' + BOMB + b"}\n" + b'{"source": "b", "status": "skipped"}\n')
    with pytest.raises(MetadataError, match="JSON values"):
        Manifest(path).read()


def test_legacy_json_evidence(tmp_path: Path) -> None:
    path = tmp_path / "a_meta.json"
    path.write_bytes(b'{"shape": ' + DEEP + b"}")
    with pytest.raises(UnsafeInputError):
        read_json(path)


CHILD = """
import resource, sys
import arraystore, zarr
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    arraystore.open(sys.argv[1])
except arraystore.errors.MetadataError as exc:
    print(type(exc).__name__)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)
"""


@pytest.mark.parametrize("kind", ["raw", "zarr"])
def test_peak_memory_of_a_15_mb_sidecar_of_empty_objects(tmp_path: Path, kind: str) -> None:
    """Before the bounds: ~400 MiB above the imports for 15 MB of ``{}``; now under 64 MiB."""
    bomb = b"[" + b"{}," * (5_000_000 - 1) + b"{}]"
    if kind == "raw":
        target = tmp_path / "a.dat"
        np.zeros(4, "u1").tofile(target)
        doc = b'{"format": "arraystore.raw", "shape": [4], "dtype": "|u1", "attrs": {"x": ' + bomb + b"}}"
        Path(str(target) + ".json").write_bytes(doc)
    else:
        target = tmp_path / "a.zarr"
        target.mkdir()
        (target / "zarr.json").write_bytes(b'{"zarr_format": 3, "node_type": "array", "attributes": {"x": ' + bomb + b"}}")
    env = {**os.environ, "PYTHONPATH": str(Path(arraystore.__file__).parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(target)], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    name, grew = out.stdout.split()
    assert name == "UnsafeInputError"
    assert int(grew) < 64 * MiB, f"peak RSS grew by {int(grew) / MiB:.0f} MiB"


@pytest.mark.parametrize("size", [0, 1, 183, (1 << 16) - 1, 1 << 16, (1 << 16) + 1, 200_000])
@pytest.mark.parametrize("limit", [1, 184, 1 << 16, 150_000, 16 << 20])
def test_read_at_most_reads_what_a_capped_read_reads(tmp_path: Path, size: int, limit: int) -> None:
    from arraystore._fsutil import read_at_most

    path = tmp_path / "f"
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(data)
    with open(path, "rb") as f:
        assert read_at_most(path, limit) == f.read(limit)


def test_read_at_most_refuses_as_open_does_and_reads_files_whose_size_is_not_stated(tmp_path: Path) -> None:
    from arraystore._fsutil import read_at_most, read_json_file

    with pytest.raises(FileNotFoundError):
        read_at_most(tmp_path / "missing", 10)
    with pytest.raises(IsADirectoryError):
        read_at_most(tmp_path, 10)
    with open("/proc/self/status", "rb") as f:  # st_size 0: read until its end all the same
        assert read_at_most("/proc/self/status", 1 << 20).split(b"\n")[0] == f.read().split(b"\n")[0]
    assert read_json_file(tmp_path / "missing.json", 100, "sidecar") is None
    with pytest.raises(MetadataError, match="found a folder"):
        read_json_file(tmp_path, 100, "sidecar")
    (tmp_path / "big.json").write_text("[" + "0," * 100 + "0]")
    with pytest.raises(MetadataError, match="over 100 bytes"):
        read_json_file(tmp_path / "big.json", 100, "sidecar")
    assert read_json_file(tmp_path / "big.json", 1000, "sidecar") == [0] * 101
