"""Detection on this machine's real file systems, the policy, the CLI, and a real sshfs mount."""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from arraystore.cli import locality as cli_locality
from arraystore.errors import ModeError, NetworkFilesystemError, NetworkFilesystemWarning
from arraystore.filesystems import (
    ENV_VAR,
    check_memmap,
    choose_io,
    clear_cache,
    locality,
    network_fs_policy,
    set_network_fs_policy,
)
from arraystore.filesystems._types import CACHE

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/mountinfo"), reason="needs Linux /proc")


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli_locality.register(parser.add_subparsers())
    args = parser.parse_args(["locality", *argv])
    return int(args.func(args))


def open_like_a_store(path: Path) -> None:
    """Stands for a library function that maps a file: its caller is 'user code'."""
    check_memmap(path)


# ---- local machine -------------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm on this machine")
def test_dev_shm_is_memory() -> None:
    loc = locality("/dev/shm")
    assert (loc.kind, loc.is_memory, loc.is_network, loc.fs_type) == ("memory", True, False, "tmpfs")
    assert loc.mount_point == "/dev/shm"
    assert choose_io("/dev/shm", "auto") == "mmap"


def test_repository_disk_is_local() -> None:
    loc = locality(REPO)
    assert (loc.kind, loc.is_network) == ("local", False), loc
    assert loc.mount_point is not None
    assert str(REPO).startswith(loc.mount_point)
    assert loc.locks_work is True


def test_missing_path_is_judged_by_nearest_existing_parent(tmp_path: Path) -> None:
    loc = locality(tmp_path / "not" / "yet" / "there.dat")
    assert loc.path == os.path.realpath(tmp_path / "not" / "yet" / "there.dat")
    assert loc.mount_point == locality(tmp_path).mount_point
    assert loc.fs_type == locality(tmp_path).fs_type


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm on this machine")
def test_symlinks_are_resolved(tmp_path: Path) -> None:
    link = tmp_path / "scratch"
    link.symlink_to("/dev/shm")
    loc = locality(link / "a.dat")
    assert loc.path == os.path.realpath("/dev/shm/a.dat")
    assert loc.kind == "memory"


def test_results_are_cached_per_device_until_cleared(tmp_path: Path) -> None:
    first = locality(tmp_path)
    assert ("linux", os.stat(tmp_path).st_dev) in CACHE
    assert locality(tmp_path / "other") == first.__class__(**{**first.__dict__, "path": str(tmp_path / "other")})
    clear_cache()
    assert not CACHE
    assert locality(tmp_path) == first


def test_local_memmap_is_silent_even_under_error_policy(tmp_path: Path) -> None:
    set_network_fs_policy("error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_memmap(tmp_path / "x.dat").is_network is False


# ---- policy --------------------------------------------------------------------------------------


def test_policy_default_env_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert network_fs_policy() == "warn"
    monkeypatch.setenv(ENV_VAR, " Error ")
    assert network_fs_policy() == "error"
    set_network_fs_policy("ignore")
    assert network_fs_policy() == "ignore"
    set_network_fs_policy(None)
    assert network_fs_policy() == "error"
    monkeypatch.setenv(ENV_VAR, "")
    assert network_fs_policy() == "warn"


def test_bad_policy_values_are_typed_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "loud")
    with pytest.raises(ModeError, match=f"{ENV_VAR}.*'loud'.*'ignore', 'warn', 'error'"):
        network_fs_policy()
    with pytest.raises(ModeError, match="expected one of"):
        set_network_fs_policy("never")  # type: ignore[arg-type]


@pytest.mark.parametrize("io", ["mmap", "buffered"])
def test_explicit_io_is_kept(tmp_path: Path, io: str) -> None:
    assert choose_io(tmp_path, io) == io  # type: ignore[arg-type]


@pytest.mark.parametrize("io", ["fast", "MMAP", "", None])
def test_bad_io_is_a_mode_error(tmp_path: Path, io: object) -> None:
    with pytest.raises(ModeError, match="expected 'auto', 'mmap' or 'buffered'"):
        choose_io(tmp_path, io)  # type: ignore[arg-type]


# ---- CLI -----------------------------------------------------------------------------------------


def test_cli_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(str(tmp_path), "/proc") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{os.path.realpath(tmp_path)}: ")
    assert "rotational:" in lines[0]
    assert lines[1].startswith("/proc: proc (local")


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(str(tmp_path / "new.dat"), "--json") == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["kind"] == "local"
    assert record["is_network"] is False
    assert set(record) >= {"path", "mount_point", "fs_type", "mount_source", "is_rotational", "locks_work", "advice"}


# ---- a real network file system: sshfs over loopback ------------------------------------------


def test_sshfs_is_network(sshfs_mount: Path) -> None:
    loc = locality(sshfs_mount / "a.dat")
    assert (loc.fs_type, loc.is_network, loc.kind) == ("fuse.sshfs", True, "network"), loc
    assert loc.mount_point == str(sshfs_mount)
    assert loc.mount_source is not None
    assert loc.mount_source.endswith("/remote")
    assert loc.is_rotational is None
    assert loc.locks_work is False
    assert 'io="buffered"' in loc.advice


def test_sshfs_auto_io_is_buffered(sshfs_mount: Path) -> None:
    assert choose_io(sshfs_mount / "new" / "b.dat", "auto") == "buffered"
    assert choose_io(sshfs_mount, "mmap") == "mmap"


def test_sshfs_memmap_warns_once_at_the_callers_line(sshfs_mount: Path) -> None:
    path = sshfs_mount / "w.dat"
    np.arange(1000, dtype="<f8").tofile(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        open_like_a_store(path)
        open_like_a_store(path)  # same mount: no second warning
        np.memmap(path, dtype="<f8", mode="r")  # the map itself works
    assert [w.category for w in caught] == [NetworkFilesystemWarning]
    warning = caught[0]
    assert warning.filename == __file__
    text = str(warning.message)
    assert "fuse.sshfs" in text
    assert "network file system" in text
    assert "SIGBUS" in text
    assert 'io="buffered"' in text
    assert f"{ENV_VAR}=ignore" in text
    clear_cache()
    with pytest.warns(NetworkFilesystemWarning):
        open_like_a_store(path)


def test_sshfs_memmap_error_and_ignore_policies(sshfs_mount: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = sshfs_mount / "e.dat"
    set_network_fs_policy("error")
    with pytest.raises(NetworkFilesystemError, match=r"fuse\.sshfs.*policy is 'error'") as info:
        check_memmap(path)
    assert isinstance(info.value, OSError)
    set_network_fs_policy("ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_memmap(path).is_network is True
    set_network_fs_policy(None)
    monkeypatch.setenv(ENV_VAR, "error")
    with pytest.raises(NetworkFilesystemError):
        check_memmap(path)


def test_sshfs_cli(sshfs_mount: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(str(sshfs_mount)) == 0
    assert "fuse.sshfs (network" in capsys.readouterr().out
