"""Folder listings (``arraystore._listing``) answer "is the evidence file there?" for a migration:
the evidence found through listings is exactly the evidence found through one check per file,
over the example archive, the hostile-input corpus and cases built to trip a listing (spelling,
case, links, unreadable folders); and what a listing does not see is what the docs say."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arraystore import _listing
from arraystore.migration import migrate
from arraystore.migration._realdirs import remembered
from arraystore.migration.resolve import resolve

REPO = Path(__file__).resolve().parents[2]


def _outcome(path: Path, root: Path) -> Any:
    """What ``resolve`` says about ``path``: its resolution as a dict, or the error it raised."""
    try:
        return resolve(path, root=root).to_dict()
    except Exception as exc:  # compared, not hidden: both ways must raise the same
        return {"raised": type(exc).__name__, "message": str(exc)}


def _compare_all(root: Path) -> int:
    """Resolve every file under ``root`` without listings, then with them; assert equal outcomes."""
    files = sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())
    assert files
    plain = {p: _outcome(p, root) for p in files}
    with remembered():
        listed = {p: _outcome(p, root) for p in files}
    for p in files:
        assert listed[p] == plain[p], p
    return len(files)


def test_example_archive_resolves_the_same_with_listings(tmp_path: Path) -> None:
    root = tmp_path / "legacy"
    shutil.copytree(REPO / "examples" / "legacy", root, symlinks=True)
    assert _compare_all(root) > 20


@pytest.mark.slow
def test_hostile_corpus_resolves_the_same_with_listings(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    subprocess.run([sys.executable, str(REPO / "tools" / "make_bad_inputs.py"), str(corpus)], check=True,
                   env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}, capture_output=True)
    assert _compare_all(corpus) > 100


def _envi(folder: Path, stem: str, header_name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{stem}.img"
    np.arange(24, dtype="<i2").tofile(data)
    (folder / header_name).write_text(
        "ENVI\nsamples = 6\nlines = 4\nbands = 1\nheader offset = 0\nfile type = ENVI Standard\n"
        "data type = 2\ninterleave = bsq\nbyte order = 0\n"
    )
    return data


def _tricky_archive(root: Path, outside: Path) -> None:
    """Evidence spelled, cased, linked and placed in the ways a listing could get wrong."""
    _envi(root / "upper", "scene", "scene.HDR")  # the dialects also look for .HDR
    _envi(root / "double", "scene", "scene.img.hdr")  # <data>.hdr
    _envi(root / "mixed", "scene", "scene.Hdr")  # a spelling nobody looks for on a case-sensitive disk
    linked = root / "linked"
    _envi(outside / "hdrs", "scene", "scene.hdr")
    _envi(linked, "scene", "real.hdr")
    (linked / "scene.hdr").symlink_to("real.hdr")  # a link to a header inside: followed
    escaping = root / "escaping"
    _envi(escaping, "scene", "unused.hdr")
    (escaping / "scene.hdr").symlink_to(outside / "hdrs" / "scene.hdr")  # a link out: refused
    dangling = root / "dangling"
    dangling.mkdir()
    np.arange(8, dtype="<f4").tofile(dangling / "trace_f4.dat")
    (dangling / "trace_f4.dat.json").symlink_to("nowhere.json")  # listed, but no file behind it
    (dangling / "meta.json").symlink_to(dangling / "missing")
    folder_named = root / "folder_named"
    folder_named.mkdir()
    np.arange(8, dtype="<f4").tofile(folder_named / "trace_f4.dat")
    (folder_named / "trace_f4.json").mkdir()  # a folder where a sidecar would be
    uni = root / "unicode"
    uni.mkdir()
    nfc = unicodedata.normalize("NFC", "caf\u00e9_f4.dat")
    np.arange(8, dtype="<f4").tofile(uni / nfc)
    (uni / (unicodedata.normalize("NFD", nfc) + ".json")).write_text(json.dumps({"dtype": "<f4", "shape": [2, 4]}))
    (uni / f"{nfc}.json").write_text(json.dumps({"dtype": "<f4", "shape": [8]}))
    nested = root / "nested" / "deeper"
    nested.mkdir(parents=True)
    np.arange(12, dtype="<i4").tofile(nested / "grid.dat")
    (root / "nested" / "manifest.json").write_text(json.dumps({"deeper/grid.dat": {"dtype": "<i4", "shape": [3, 4]}}))
    (root / "nested" / "Meta.JSON").write_text(json.dumps({"deeper/grid.dat": {"dtype": "<f4"}}))  # not a manifest name


def test_tricky_archive_resolves_the_same_with_listings(tmp_path: Path) -> None:
    root = tmp_path / "src"
    _tricky_archive(root, tmp_path / "outside")
    assert _compare_all(root) > 10
    with remembered():
        assert resolve(root / "upper" / "scene.img", root=root).status == "resolved"
        assert resolve(root / "linked" / "scene.img", root=root).status == "resolved"
        assert resolve(root / "escaping" / "scene.img", root=root).status == "invalid"
        assert resolve(root / "nested" / "deeper" / "grid.dat", root=root).meta.shape == (3, 4)  # type: ignore[union-attr]


def test_migration_results_are_the_same_with_listings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "src"
    shutil.copytree(REPO / "examples" / "legacy", root, symlinks=True)
    _tricky_archive(root / "tricky", tmp_path / "outside")
    with_listings = migrate(root, tmp_path / "a", to="npy", workers=1, dry_run=True)
    monkeypatch.setattr(_listing, "may_exist", lambda path: True)  # every check goes to the file system
    without = migrate(root, tmp_path / "b", to="npy", workers=1, dry_run=True)
    assert [r.to_dict() | {"seconds": 0} for r in with_listings.records] == [
        r.to_dict() | {"seconds": 0} for r in without.records
    ]


def test_spelling_variants_are_sent_to_the_file_system(tmp_path: Path) -> None:
    (tmp_path / "scene.HDR").write_text("x")
    (tmp_path / unicodedata.normalize("NFD", "caf\u00e9.json")).write_text("{}")
    with _listing.listed():
        # listed under another spelling: the file system decides (False on a case-sensitive disk)
        assert _listing.may_exist(tmp_path / "scene.hdr")
        assert _listing.is_file(tmp_path / "scene.hdr") == (tmp_path / "scene.hdr").is_file()
        assert _listing.may_exist(tmp_path / unicodedata.normalize("NFC", "caf\u00e9.json"))
        assert _listing.is_file(tmp_path / "scene.HDR")
        assert not _listing.may_exist(tmp_path / "scene.hdr.json")
    assert _listing.name_key("Scene.HDR") == _listing.name_key("scene.hdr")
    assert _listing.name_key("CAF\u00c9") == _listing.name_key("cafe\u0301")


def test_outside_a_block_nothing_is_listed(tmp_path: Path) -> None:
    assert _listing.may_exist(tmp_path / "absent")
    assert not _listing.is_file(tmp_path / "absent")


def test_a_listing_is_taken_once_per_block(tmp_path: Path) -> None:
    """The documented assumption: a file created in a listed folder during the block is not seen
    (a migration writes only into its destination); removed files are never reported present."""
    (tmp_path / "gone.hdr").write_text("x")
    with _listing.listed():
        assert not _listing.is_file(tmp_path / "late.hdr")
        (tmp_path / "late.hdr").write_text("x")
        (tmp_path / "gone.hdr").unlink()
        assert not _listing.may_exist(tmp_path / "late.hdr")  # stale by design within the block
        assert not _listing.is_file(tmp_path / "gone.hdr")  # listed, but checked: absent
    with _listing.listed():
        assert _listing.is_file(tmp_path / "late.hdr")  # the next block lists again


def _unlistable_check(folder: Path) -> bool:
    with _listing.listed():
        return _listing.is_file(folder / "a.hdr") and not _listing.is_file(folder / "b.hdr")


def test_an_unlistable_folder_falls_back_to_checks() -> None:
    """Search, no read permission: files open by name, the folder cannot be listed.

    Root lists any folder, so as root the check runs in a forked process that became the user ``nobody``.
    """
    base = Path(tempfile.mkdtemp(prefix="arraystore-unlistable-", dir="/tmp"))  # reachable by nobody
    folder = base / "noread"
    try:
        base.chmod(0o755)
        folder.mkdir()
        (folder / "a.hdr").write_text("x")
        (folder / "a.hdr").chmod(0o644)
        folder.chmod(0o311)
        if os.geteuid() != 0:
            assert _unlistable_check(folder)
            return
        pid = os.fork()
        if pid == 0:  # the child: drop root, check, leave without running any of pytest's clean-up
            code = 3
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                with pytest.raises(PermissionError):
                    os.listdir(folder)  # the folder really cannot be listed here
                code = 0 if _unlistable_check(folder) else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        if folder.exists():
            folder.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_an_unlistable_folder_is_not_cached(tmp_path: Path) -> None:
    """A path whose folder is a file (or missing) is never answered from a listing."""
    (tmp_path / "file").write_text("x")
    with _listing.listed():
        assert _listing.may_exist(tmp_path / "file" / "x.hdr")
        assert _listing.may_exist(tmp_path / "missing" / "x.hdr")
        assert not _listing.is_file(tmp_path / "missing" / "x.hdr")


def test_real_paths_inside_a_block_are_the_resolved_paths(tmp_path: Path) -> None:
    root = tmp_path / "src"
    _tricky_archive(root, tmp_path / "outside")
    (root / "via").symlink_to(root / "linked", target_is_directory=True)  # a folder reached through a link
    paths = [*sorted(root.rglob("*")), root / "via" / "scene.hdr", root / "via" / "missing.hdr",
             root / "linked" / ".." / "upper" / "scene.img", root / "nowhere" / "x.dat"]
    with _listing.listed():
        for p in paths:
            assert _listing.real_path(p) == p.resolve(), p
            assert _listing.real_folder(p.parent) == p.parent.resolve(), p


def test_a_folder_with_too_many_entries_is_not_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_listing, "MAX_LISTED", 3)
    for i in range(4):
        (tmp_path / f"f{i}.dat").write_bytes(b"")
    with _listing.listed():
        assert _listing.may_exist(tmp_path / "absent.hdr")  # not listed: the file system answers
        assert not _listing.is_file(tmp_path / "absent.hdr")
    (tmp_path / "f3.dat").unlink()
    with _listing.listed():
        assert not _listing.may_exist(tmp_path / "absent.hdr")


def test_blocks_of_one_scope_share_listings_and_others_do_not(tmp_path: Path) -> None:
    with _listing.listed("run-a"):
        assert not _listing.may_exist(tmp_path / "late.hdr")
    (tmp_path / "late.hdr").write_text("x")
    with _listing.listed("run-a"):  # the next batch of the same run: the run's listing
        assert not _listing.may_exist(tmp_path / "late.hdr")
    with _listing.listed("run-b"):  # another run lists again
        assert _listing.is_file(tmp_path / "late.hdr")
    with _listing.listed():
        assert _listing.is_file(tmp_path / "late.hdr")


def test_a_block_keeps_a_bounded_number_of_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_listing, "MAX_FOLDERS", 4)
    folders = [tmp_path / f"d{i}" for i in range(10)]
    for d in folders:
        d.mkdir()
    with _listing.listed("bounded"):
        for d in folders:
            assert not _listing.may_exist(d / "x.hdr")
            assert _listing.real_folder(d) == d.resolve()
        cache = _listing._LISTINGS.get()
        assert cache is not None and len(cache) <= 4
        (folders[0] / "x.hdr").write_text("x")
        assert _listing.is_file(folders[0] / "x.hdr")  # dropped, so listed again: found


def test_pooled_migration_results_equal_in_process_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from arraystore.migration import run

    monkeypatch.setattr(run, "IN_PROCESS_FILES", 0)  # the pool, even for one batch
    root = tmp_path / "src"
    shutil.copytree(REPO / "examples" / "legacy", root, symlinks=True)
    _tricky_archive(root / "tricky", tmp_path / "outside")
    one = migrate(root, tmp_path / "a", to="npy", workers=1)
    two = migrate(root, tmp_path / "b", to="npy", workers=2)
    keep = ("source", "status", "destination", "resolution", "error")
    assert [{k: r.to_dict()[k] for k in keep} for r in one.records] == [
        {k: r.to_dict()[k] for k in keep} for r in two.records
    ]


def test_a_suffix_absent_from_a_listing_skips_its_candidates_and_a_new_listing_sees_a_new_file(tmp_path: Path) -> None:
    folder = str(tmp_path)
    (tmp_path / "scan.dat").write_bytes(b"\0" * 16)
    (tmp_path / "Caf\u00e9.IMG.HDR").write_bytes(b"")  # spelled in upper case, a non-ASCII stem
    assert _listing.may_exist_with_suffix(folder, ".mhd")  # outside a listing: always "may"
    with remembered():
        assert not _listing.may_exist_with_suffix(folder, ".mhd")
        assert not _listing.may_exist_with_suffix(folder, ".json")
        assert _listing.may_exist_with_suffix(folder, ".hdr") and _listing.may_exist_with_suffix(folder, ".HDR")
        assert _listing.may_exist_with_suffix(str(tmp_path / "gone"), ".mhd")  # not listed: "may"
    (tmp_path / "scan.dat.json").write_text("{}")  # after the block: the next listing sees it
    with remembered():
        assert _listing.may_exist_with_suffix(folder, ".json")
        assert not _listing.may_exist_with_suffix(folder, ".mhd")
    big = tmp_path / "big"
    big.mkdir()
    for i in range(_listing.MAX_LISTED + 1):
        (big / f"f{i}").touch()
    with remembered():
        assert _listing.may_exist_with_suffix(str(big), ".mhd")  # too large to be listed: every check is made


@pytest.mark.parametrize("where", ["", "a", "a/b", "a/b/c"])
@pytest.mark.parametrize("manifest", ["manifest.json", "meta.json", None])
def test_folder_manifests_at_every_level_are_found_the_same_with_listings(
    tmp_path: Path, where: str, manifest: str | None
) -> None:
    """The listings' shortcut for an archive without folder manifests (no folder up to the root lists one) never
    hides one: a manifest at any level between the file and the root, naming it or not, resolves as without."""
    root = tmp_path / "archive"
    deep = root / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "x.dat").write_bytes(np.arange(64, dtype="<f4").tobytes())
    (root / "a" / "y.dat").write_bytes(bytes(256))
    if manifest is not None:
        folder = root / where
        rel = os.path.relpath(deep / "x.dat", folder).replace(os.sep, "/")
        (folder / manifest).write_text(json.dumps({rel: {"dtype": "float32", "shape": [8, 8]}}))
    assert _compare_all(root) >= 2
    found = resolve(deep / "x.dat", root=root)
    assert (found.status == "resolved") == (manifest is not None)
