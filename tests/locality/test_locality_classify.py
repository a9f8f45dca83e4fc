"""Table-driven tests: statfs magics, type names, the magic/mount-table verdict, locks, rotational hints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from arraystore.filesystems import Locality
from arraystore.filesystems._fstypes import classify_fs_type, locks_expected
from arraystore.filesystems._linux import judge, rotational
from arraystore.filesystems._magic import FUSE_SUPER_MAGIC, classify_magic
from arraystore.filesystems._mountinfo import parse_line
from arraystore.filesystems._types import from_category


@pytest.mark.parametrize(
    ("magic", "name", "category"),
    [
        (0x6969, "nfs", "network"),
        (0xFF534D42, "cifs", "network"),
        (0xFE534D42, "smb2", "network"),
        (0x0BD00BD0, "lustre", "network"),
        (0x47504653, "gpfs", "network"),
        (0x00C36400, "ceph", "network"),
        (0x19830326, "beegfs", "network"),
        (0x5346414F, "afs", "network"),
        (0x6B414653, "afs", "network"),
        (0x01021997, "9p", "network"),
        (0x7461636F, "ocfs2", "network"),
        (0x01021994, "tmpfs", "memory"),
        (0x858458F6, "ramfs", "memory"),
        (0xEF53, "ext4", "local"),
        (0x58465342, "xfs", "local"),
        (0x9123683E, "btrfs", "local"),
        (0x2FC12FC1, "zfs", "local"),
        (0x9FA0, "proc", "pseudo"),
        (0x794C7630, "overlay", "overlay"),
        (FUSE_SUPER_MAGIC, "fuse", "fuse"),
        (0x12345678, "unknown (0x12345678)", "unknown"),
        (0xFF534D42 - 2**32, "cifs", "network"),  # a signed 32-bit long
    ],
)
def test_magic_table(magic: int, name: str, category: str) -> None:
    assert classify_magic(magic) == (name, category)


@pytest.mark.parametrize(
    ("fs_type", "category"),
    [
        *[(t, "network") for t in (
            "nfs", "nfs4", "cifs", "smb3", "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.gcsfuse",
            "fuse.juicefs", "fuse.goofys", "fuse.mountpoint-s3", "fuse.glusterfs", "glusterfs", "lustre",
            "gpfs", "ceph", "fuse.ceph-fuse", "beegfs", "afs", "9p", "ocfs2", "virtiofs", "vboxsf",
        )],
        *[(t, "local") for t in ("ext4", "xfs", "btrfs", "zfs", "fuseblk", "fuse.ntfs-3g", "fuse.squashfuse",
                                 "vfat", "apfs", "ntfs")],
        ("tmpfs", "memory"),
        ("ramfs", "memory"),
        ("proc", "pseudo"),
        ("overlay", "overlay"),
        ("fuse", "fuse"),
        ("fuse.brand-new-thing", "unknown"),
        ("weirdfs", "unknown"),
        ("NFS4", "network"),
    ],
)
def test_type_names(fs_type: str, category: str) -> None:
    assert classify_fs_type(fs_type) == category


def _entry(fs_type: str, options: str = "rw"):  # type: ignore[no-untyped-def]
    entry = parse_line(f"40 22 0:45 / /mnt/x rw - {fs_type} src {options}")
    assert entry is not None
    return entry


@pytest.mark.parametrize(
    ("fs_type", "magic", "expected"),
    [
        ("fuse.sshfs", FUSE_SUPER_MAGIC, ("fuse.sshfs", "network")),
        ("fuse.ntfs-3g", FUSE_SUPER_MAGIC, ("fuse.ntfs-3g", "local")),
        ("fuse.brand-new", FUSE_SUPER_MAGIC, ("fuse.brand-new", "unknown")),
        ("fuse", FUSE_SUPER_MAGIC, ("fuse", "unknown")),
        ("nfs4", 0x6969, ("nfs4", "network")),
        ("ext3", 0xEF53, ("ext3", "local")),
        ("ext4", 0x6969, ("nfs", "network")),  # the kernel's magic beats a prefix-matched entry
        ("weirdfs", 0xEF53, ("ext4", "local")),
        ("overlay", 0x794C7630, ("overlay", "overlay")),
        ("tmpfs", None, ("tmpfs", "memory")),
        ("lustre", 0x12345678, ("lustre", "network")),
        (None, 0xEF53, ("ext4", "local")),
        (None, FUSE_SUPER_MAGIC, ("fuse", "unknown")),
        (None, None, ("unknown", "unknown")),
    ],
)
def test_judge(fs_type: str | None, magic: int | None, expected: tuple[str, str]) -> None:
    assert judge(_entry(fs_type) if fs_type else None, magic) == expected


@pytest.mark.parametrize(
    ("fs_type", "category", "options", "expected"),
    [
        ("ext4", "local", "", True),
        ("tmpfs", "memory", "", True),
        ("nfs4", "network", "vers=4.2,local_lock=none", True),
        ("nfs", "network", "vers=3,nolock", False),
        ("nfs", "network", "vers=3,local_lock=all", False),
        ("nfs", "network", "vers=3", None),
        ("nfs", "network", "vers=4.1", True),
        ("cifs", "network", "vers=3.1.1", None),
        ("cifs", "network", "nobrl", False),
        ("lustre", "network", "flock", True),
        ("lustre", "network", "localflock", False),
        ("lustre", "network", "", None),
        ("ocfs2", "network", "", True),
        ("gpfs", "network", "", True),
        ("fuse.sshfs", "network", "", False),
        ("fuse.juicefs", "network", "", None),
        ("weirdfs", "unknown", "", None),
    ],
)
def test_locks_expected(fs_type: str, category: str, options: str, expected: bool | None) -> None:
    assert locks_expected(fs_type, category, options.split(",") if options else ()) is expected


@pytest.mark.parametrize(
    ("category", "kind", "is_network", "is_memory"),
    [("network", "network", True, False), ("local", "local", False, False), ("memory", "memory", False, True),
     ("pseudo", "local", False, False), ("overlay", "unknown", None, False), ("fuse", "unknown", None, False),
     ("unknown", "unknown", None, False)],
)
def test_from_category(category: str, kind: str, is_network: bool | None, is_memory: bool) -> None:
    loc = from_category("/x", category, "somefs", "/", "src")
    assert (loc.kind, loc.is_network, loc.is_memory) == (kind, is_network, is_memory)
    assert "somefs" in loc.advice
    assert loc.to_dict()["kind"] == kind


def test_locality_is_frozen() -> None:
    loc = from_category("/x", "local", "ext4", "/", "/dev/sda1")
    assert isinstance(loc, Locality)
    with pytest.raises(AttributeError):
        loc.fs_type = "nfs"  # type: ignore[misc]


def test_advice_says_what_to_do_on_network() -> None:
    advice = from_category("/x", "network", "nfs4", "/", "srv:/e").advice
    assert "io=\"buffered\"" in advice
    assert "local scratch" in advice


# ---- rotational hint from a recorded /sys tree -------------------------------------------------


def _disk(sys_root: Path, name: str, rotational: str | None) -> Path:
    node = sys_root / "devices" / "block" / name
    (node / "queue").mkdir(parents=True)
    if rotational is not None:
        (node / "queue" / "rotational").write_text(rotational + "\n")
    return node


def _partition(disk: Path, name: str) -> Path:
    node = disk / name
    node.mkdir()
    (node / "partition").write_text("1\n")
    return node


def _dev(sys_root: Path, number: str, node: Path) -> None:
    link = sys_root / "dev" / "block" / number
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(node, link.parent))


def _mapper(sys_root: Path, name: str, members: list[Path]) -> Path:
    node = sys_root / "devices" / "virtual" / "block" / name
    (node / "slaves").mkdir(parents=True)
    (node / "queue").mkdir()
    (node / "queue" / "rotational").write_text("0\n")  # dm reports 0 whatever lies beneath
    for member in members:
        (node / "slaves" / member.name).symlink_to(os.path.relpath(member, node / "slaves"))
    return node


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    sda = _disk(tmp_path, "sda", "1")
    nvme = _disk(tmp_path, "nvme0n1", "0")
    odd = _disk(tmp_path, "vdz", None)
    sda1, nvme1 = _partition(sda, "sda1"), _partition(nvme, "nvme0n1p1")
    _dev(tmp_path, "8:0", sda)
    _dev(tmp_path, "8:1", sda1)
    _dev(tmp_path, "259:1", nvme1)
    _dev(tmp_path, "252:0", odd)
    _dev(tmp_path, "253:0", _mapper(tmp_path, "dm-0", [sda1, nvme1]))
    _dev(tmp_path, "253:1", _mapper(tmp_path, "dm-1", [nvme1]))
    _dev(tmp_path, "9:0", _mapper(tmp_path, "md0", [nvme1, odd]))
    return tmp_path


@pytest.mark.parametrize(
    ("major", "minor", "expected"),
    [(8, 0, True), (8, 1, True), (259, 1, False), (253, 0, True), (253, 1, False), (9, 0, None),
     (252, 0, None), (1, 99, None)],
)
def test_rotational(sysfs: Path, major: int, minor: int, expected: bool | None) -> None:
    assert rotational(major, minor, sys_root=sysfs) is expected
