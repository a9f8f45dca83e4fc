"""Virtual stores opened through ``arraystore.open`` (the read-only ``virtual`` backend) and moved archives.

``arraystore.open("DST/virtual.json::/file")`` and ``arraystore.open("DST/virtual.icechunk::/file")``
read through the store's own references, after the root and integrity checks; the values equal
the original read through arraystore, bit for bit, for every dialect, byte order and order.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import arraystore
from arraystore.errors import ArrayNotFoundError, ReadOnlyError, UnsafeInputError, VerificationError
from arraystore.migration import migrate, resolve
from arraystore.migration._job import open_source
from arraystore.registry import detect_backend, parse_location

from .legacy import write_legacy
from .test_virtual_migrate import read_elsewhere
from .test_virtual_roundtrip import bits, legacy_files

STORE = {"kerchunk": "virtual.json", "icechunk": "virtual.icechunk"}


def _original(folder: Path, data: Path) -> np.ndarray:
    res = resolve(data, root=folder)
    assert res.meta is not None, res.error
    with open_source(data, res.meta, res.offset, own_sidecar=data.suffix == ".dat") as src:
        return src[...]


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(legacy_files())
def test_a_virtual_array_opened_through_arraystore_equals_the_original(case):
    dialect, layout, dtype, big, shape, offset, chunk_bytes = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "archive"
        folder.mkdir()
        data = write_legacy(folder, dialect, layout, dtype, big, shape, offset, seed=len(shape))
        original = _original(folder, data)
        fmt = "icechunk" if len(shape) % 2 else "kerchunk"  # both formats, icechunk less often (slower)
        migrate(folder, Path(tmp) / "v", virtual=True, format=fmt, chunk_bytes=chunk_bytes, workers=1)
        with arraystore.open(f"{Path(tmp) / 'v' / STORE[fmt]}::/{data.name}") as a:
            assert a.backend == "virtual" and a.mode == "r"
            assert a.shape == original.shape and a.dtype == original.dtype
            got = a[...]
            assert got.dtype == original.dtype
            np.testing.assert_array_equal(bits(got), bits(original))
            if original.ndim:
                np.testing.assert_array_equal(bits(a[-1:]), bits(original[-1:]))


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    folder = tmp_path / "archive"
    (folder / "sub").mkdir(parents=True)
    write_legacy(folder / "sub", "ehdr", "bil", "i2", True, (3, 4, 5), 0, seed=1)
    write_legacy(folder, "raw", "F", "f8", False, (4, 6), 0, seed=2)
    return folder


@pytest.mark.parametrize("fmt", ["kerchunk", "icechunk"])
def test_detected_described_read_only_and_pickled(archive, tmp_path, fmt):
    migrate(archive, tmp_path / "v", virtual=True, format=fmt, chunk_bytes=16, workers=1)
    store = tmp_path / "v" / STORE[fmt]
    assert detect_backend(parse_location(store)) == "virtual"
    want = _original(archive / "sub", archive / "sub" / "d.bil")
    with arraystore.open(f"{store}::/sub/d.bil") as a:
        assert a.chunks is not None and np.prod(a.chunks) * a.dtype.itemsize <= 16 * 5
        assert "byte ranges of" in a.encoding_notes[0] and "arraystore.virtual" not in a.attrs
        np.testing.assert_array_equal(np.asarray(a), want)
        import pickle

        again = pickle.loads(pickle.dumps(a))
        np.testing.assert_array_equal(again[...], want)
        with pytest.raises(ReadOnlyError):
            a[0, 0, 0] = 1
    with pytest.raises(ReadOnlyError, match="read-only"):
        arraystore.open(f"{store}::/sub/d.bil", mode="r+")
    with pytest.raises(ArrayNotFoundError, match="holds 2 arrays"):
        arraystore.open(store)
    with pytest.raises(ArrayNotFoundError, match="no array"):
        arraystore.open(f"{store}::/nope.dat")
    from arraystore.cli.info import describe

    with arraystore.open(f"{store}::/x.dat") as a:
        facts = describe(a)
    assert facts["format"] == "virtual" and facts["shape"] == [4, 6] and "byte ranges" in facts["notes"][0]


@pytest.mark.parametrize("fmt", ["kerchunk", "icechunk"])
def test_a_changed_or_missing_file_is_refused_on_open(archive, tmp_path, fmt):
    migrate(archive, tmp_path / "v", virtual=True, format=fmt, workers=1)
    store = tmp_path / "v" / STORE[fmt]
    data = archive / "x.dat"
    body = data.read_bytes()
    data.write_bytes(body + b"\0" * 8)
    with pytest.raises(VerificationError, match="changed since"):
        arraystore.open(f"{store}::/x.dat")
    data.unlink()
    with pytest.raises(ArrayNotFoundError, match="missing"):
        arraystore.open(f"{store}::/x.dat")


def test_a_reference_leading_out_of_the_root_is_refused_on_open(archive, tmp_path):
    migrate(archive, tmp_path / "v", virtual=True, workers=1)
    path = tmp_path / "v" / "virtual.json"
    doc = json.loads(path.read_text())
    (tmp_path / "secret.dat").write_bytes(b"\0" * 192)
    doc["refs"]["x.dat/c/0/0"] = ["{{root}}/../secret.dat", 0, 192]
    path.write_text(json.dumps(doc))
    with pytest.raises(UnsafeInputError, match="leaves the archive root"):
        arraystore.open(f"{path}::/x.dat")


def _move_together(tmp_path: Path) -> tuple[Path, Path]:
    """Move the archive and its migration folder elsewhere, together (modification times kept)."""
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(str(tmp_path / "archive"), str(moved / "archive"))
    shutil.move(str(tmp_path / "v"), str(moved / "v"))
    return moved / "archive", moved / "v"


@pytest.mark.parametrize("fmt", ["kerchunk", "icechunk"])
def test_a_moved_archive_reads_with_the_root_parameter(archive, tmp_path, fmt):
    want = {"sub/d.bil": _original(archive / "sub", archive / "sub" / "d.bil"), "x.dat": _original(archive, archive / "x.dat")}
    migrate(archive, tmp_path / "v", virtual=True, format=fmt, chunk_bytes=32, workers=1)
    new_archive, new_v = _move_together(tmp_path)
    store = new_v / STORE[fmt]
    snapshot = sorted((p.relative_to(store).as_posix(), p.stat().st_size) for p in store.rglob("*")) if fmt == "icechunk" else None
    with pytest.raises(ArrayNotFoundError, match="missing"):
        arraystore.open(f"{store}::/x.dat")  # the recorded root is gone
    for name, values in want.items():
        with arraystore.open(f"{store}::/{name}", root=new_archive) as a:
            np.testing.assert_array_equal(a[...], values)
    if snapshot is not None:  # reading a moved icechunk store writes nothing into it
        assert sorted((p.relative_to(store).as_posix(), p.stat().st_size) for p in store.rglob("*")) == snapshot
    # and a reader without arraystore, given the new root
    assert read_elsewhere(f"{fmt}-moved", store, want, tmp_path, root=new_archive) == f"ok {len(want)}"


def test_a_moved_icechunk_store_refuses_a_source_leading_out(archive, tmp_path):
    migrate(archive, tmp_path / "v", virtual=True, format="icechunk", workers=1)
    new_archive, new_v = _move_together(tmp_path)
    (new_archive / "x.dat").unlink()
    (new_archive / "x.dat").symlink_to(tmp_path / "moved" / "v" / "migration.jsonl")
    with pytest.raises((UnsafeInputError, VerificationError)):
        arraystore.open(f"{new_v / 'virtual.icechunk'}::/x.dat", root=new_archive)


def test_a_moved_icechunk_store_checks_every_source_it_repoints(archive, tmp_path):
    from arraystore.virtual import open_virtual

    migrate(archive, tmp_path / "v", virtual=True, format="icechunk", workers=1)
    new_archive, new_v = _move_together(tmp_path)
    (new_archive / "sub" / "d.bil").unlink()
    (new_archive / "sub" / "d.bil").symlink_to(tmp_path / "moved" / "v" / "migration.jsonl")
    with pytest.raises(UnsafeInputError, match="outside the archive root"):
        open_virtual(new_v / "virtual.icechunk", root=new_archive)  # the group, not only one array
