"""A virtual store's references are checked against their files; stores made by others stay inside the archive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.errors import MetadataError, UnsafeInputError, VerificationError
from arraystore.migration import migrate
from arraystore.virtual import kerchunk as kerchunk_mod
from arraystore.virtual import open_virtual
from arraystore.virtual.verify import verify_virtual

STORES = {"kerchunk": "virtual.json", "icechunk": "virtual.icechunk"}


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    (root / "sub").mkdir(parents=True)
    for name, n in (("a.dat", 1000), ("sub/b.dat", 64)):
        with arraystore.create(root / name, shape=(n,), dtype=">f8", backend="raw") as st:
            st[...] = np.linspace(0, 1, n)
    return root


def _migrated(archive: Path, tmp_path: Path, fmt: str) -> Path:
    report = migrate(archive, tmp_path / "v", virtual=True, format=fmt, workers=1, chunk_bytes=800)
    assert [r.status for r in report.records] == ["converted", "converted"]
    assert verify_virtual(tmp_path / "v")["checksummed"] == 2
    return tmp_path / "v" / STORES[fmt]


@pytest.mark.parametrize("fmt", sorted(STORES))
def test_missing_source_is_named(archive, tmp_path, fmt):
    store = _migrated(archive, tmp_path, fmt)
    (archive / "sub" / "b.dat").unlink()
    with pytest.raises(VerificationError, match=r"sub/b\.dat: missing"):
        verify_virtual(store)


@pytest.mark.parametrize("fmt", sorted(STORES))
def test_truncated_source_is_named(archive, tmp_path, fmt):
    store = _migrated(archive, tmp_path, fmt)
    os.truncate(archive / "a.dat", 4000)
    with pytest.raises(VerificationError, match=r"a\.dat: truncated: 4,000 bytes, references reach byte 8,000"):
        verify_virtual(store)


@pytest.mark.parametrize("fmt", sorted(STORES))
def test_rewritten_source_is_named(archive, tmp_path, fmt):
    store = _migrated(archive, tmp_path, fmt)
    with open(archive / "a.dat", "r+b") as f:
        f.write(b"\1\2")
    with pytest.raises(VerificationError, match=r"a\.dat: changed since it was referenced"):
        verify_virtual(store)


@pytest.mark.parametrize("fmt", sorted(STORES))
def test_content_change_with_size_and_time_restored_is_caught_by_the_checksum(archive, tmp_path, fmt):
    store = _migrated(archive, tmp_path, fmt)
    st = (archive / "a.dat").stat()
    with open(archive / "a.dat", "r+b") as f:
        f.seek(100)
        f.write(b"\xff")
    os.utime(archive / "a.dat", ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(VerificationError, match=r"a\.dat: content changed"):
        verify_virtual(store)
    assert verify_virtual(store, checksum=False)["checksummed"] == 0  # size and time alone cannot see it


def test_icechunk_refuses_a_chunk_whose_file_changed_after_the_migration(archive, tmp_path):
    store = _migrated(archive, tmp_path, "icechunk")
    future = (archive / "a.dat").stat().st_mtime_ns + 10 * 10**9
    os.utime(archive / "a.dat", ns=(future, future))
    import icechunk

    with pytest.raises(icechunk.IcechunkError, match=r"checksum of the object owning the virtual chunk has changed"):
        open_virtual(store)["a.dat"][...]


def test_cli_verify_exit_code_and_message(archive, tmp_path):
    _migrated(archive, tmp_path, "kerchunk")
    (archive / "a.dat").unlink()
    done = subprocess.run(
        [sys.executable, "-m", "arraystore", "verify", str(tmp_path / "v")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1
    assert "a.dat: missing" in done.stderr and "VerificationError" in done.stderr


def _refs(tmp_path: Path, root: Path, url: str) -> Path:
    doc = {
        "version": 1,
        "templates": {"root": root.resolve().as_uri()},
        "refs": {
            "zarr.json": json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}),
            "x/c/0": [url, 0, 8],
        },
    }
    p = tmp_path / "hostile.json"
    p.write_text(json.dumps(doc))
    return p


@pytest.mark.parametrize(
    "url", ["{{root}}/../secret.dat", "file:///etc/passwd", "/etc/passwd", "{{root}}//etc/passwd", "{{root}}/sub/../../secret.dat"]
)
def test_references_outside_the_root_are_refused(archive, tmp_path, url):
    (tmp_path / "secret.dat").write_bytes(b"\0" * 8)
    with pytest.raises(UnsafeInputError):
        open_virtual(_refs(tmp_path, archive, url))


def test_a_symbolic_link_leading_out_is_refused(archive, tmp_path):
    (tmp_path / "secret.dat").write_bytes(b"\0" * 8)
    (archive / "link.dat").symlink_to(tmp_path / "secret.dat")
    with pytest.raises(UnsafeInputError, match="outside the archive root"):
        open_virtual(_refs(tmp_path, archive, "{{root}}/link.dat"))


def test_a_root_that_is_not_a_local_folder_and_extra_templates_are_refused(archive, tmp_path):
    p = _refs(tmp_path, archive, "{{root}}/a.dat")
    doc = json.loads(p.read_text())
    doc["templates"]["other"] = "{{ ''.__class__ }}"
    p.write_text(json.dumps(doc))
    with pytest.raises(UnsafeInputError, match="only the 'root' and 'copies' templates"):
        open_virtual(p)
    doc["templates"] = {"root": "http://example.com/archive"}
    p.write_text(json.dumps(doc))
    with pytest.raises(UnsafeInputError, match="file://"):
        open_virtual(p)


def test_reference_files_are_bounded(archive, tmp_path, monkeypatch):
    p = _refs(tmp_path, archive, "{{root}}/a.dat")
    monkeypatch.setattr(kerchunk_mod, "MAX_REFERENCE_BYTES", 100)
    with pytest.raises(MetadataError, match="over 100 bytes"):
        open_virtual(p)


def test_migration_does_not_reference_a_symbolic_link_leading_out(archive, tmp_path):
    outside = tmp_path / "outside.dat"
    with arraystore.create(outside, shape=(4,), dtype="<i4", backend="raw") as st:
        st[...] = np.arange(4)
    (archive / "link.dat").symlink_to(outside)
    (archive / "link.dat.json").symlink_to(tmp_path / "outside.dat.json")
    report = migrate(archive, tmp_path / "v", virtual=True, workers=1)
    assert "link.dat" not in {r.source for r in report.records if r.status == "converted"}
    doc = json.loads((tmp_path / "v" / "virtual.json").read_text())
    assert not any("link.dat" in k for k in doc["refs"])
