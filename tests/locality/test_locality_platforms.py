"""macOS and Windows parsing logic, tested on any platform with recorded inputs (no system calls)."""

from __future__ import annotations

import ctypes

import pytest

from arraystore.filesystems import _macos, _windows


def _recorded_statfs(fstypename: bytes, flags: int, on: bytes, source: bytes) -> bytes:
    st = _macos.StatfsStruct()
    st.f_bsize, st.f_iosize, st.f_blocks = 4096, 1048576, 1 << 24
    st.f_fstypename, st.f_flags, st.f_mntonname, st.f_mntfromname = fstypename, flags, on, source
    return bytes(st)


def test_struct_layout_matches_sys_mount_h() -> None:
    # 4+4+8*5 + 8 (fsid) + 4*4 + 16 + 1024*2 + 4 + 4*7 = 2168 bytes
    assert ctypes.sizeof(_macos.StatfsStruct) == 2168
    assert _macos.StatfsStruct.f_fstypename.offset == 72


@pytest.mark.parametrize(
    ("fstype", "flags", "on", "source", "category"),
    [
        (b"apfs", 0x00001080, b"/", b"/dev/disk3s1s1", "local"),
        (b"smbfs", 0x00000000, b"/Volumes/share", b"//alice@server/share", "network"),
        (b"nfs", 0x00000010, b"/Volumes/nfs", b"server:/export", "network"),
        (b"afpfs", 0, b"/Volumes/afp", b"afp://server/vol", "network"),
        (b"webdav", 0, b"/Volumes/dav", b"https://dav.example/x", "network"),
        (b"macfuse", 0x00001000, b"/Volumes/fuse", b"thing", "unknown"),
        (b"macfuse", 0, b"/Volumes/sshfs", b"user@host:/", "network"),
        (b"devfs", 0x00001000, b"/dev", b"devfs", "pseudo"),
        (b"exfat", 0x00001000, b"/Volumes/USB", b"/dev/disk4s1", "local"),
        (b"newfs", 0x00001000, b"/Volumes/n", b"x", "unknown"),
    ],
)
def test_macos_decode_and_classify(fstype: bytes, flags: int, on: bytes, source: bytes, category: str) -> None:
    info = _macos.decode_statfs(_recorded_statfs(fstype, flags, on, source))
    assert (info.fstypename, info.flags, info.mount_point, info.mount_source) == (
        fstype.decode(), flags, on.decode(), source.decode()
    )
    assert _macos.classify(info.fstypename, info.flags) == category


def test_macos_decode_refuses_short_buffer() -> None:
    with pytest.raises(ValueError, match="2168 bytes"):
        _macos.decode_statfs(b"\0" * 100)


@pytest.mark.parametrize(
    ("path", "unc"),
    [
        ("\\\\server\\share\\data.npy", True),
        ("//server/share/data.npy", True),
        ("\\\\?\\UNC\\server\\share\\x", True),
        ("\\\\?\\C:\\data\\x", False),
        ("\\\\.\\PhysicalDrive0", False),
        ("C:\\data", False),
        ("Z:\\", False),
    ],
)
def test_windows_unc(path: str, unc: bool) -> None:
    assert _windows.is_unc(path) is unc


@pytest.mark.parametrize(
    ("drive_type", "root", "category"),
    [
        (_windows.DRIVE_FIXED, "C:\\", "local"),
        (_windows.DRIVE_REMOVABLE, "E:\\", "local"),
        (_windows.DRIVE_CDROM, "D:\\", "local"),
        (_windows.DRIVE_REMOTE, "Z:\\", "network"),
        (_windows.DRIVE_RAMDISK, "R:\\", "memory"),
        (_windows.DRIVE_UNKNOWN, "X:\\", "unknown"),
        (_windows.DRIVE_NO_ROOT_DIR, "Q:\\", "unknown"),
        (_windows.DRIVE_FIXED, "\\\\server\\share\\", "network"),
    ],
)
def test_windows_classify(drive_type: int, root: str, category: str) -> None:
    assert _windows.classify(drive_type, root) == category


@pytest.mark.parametrize(
    ("volume_fs", "category", "name"),
    [("NTFS", "local", "ntfs"), ("ReFS", "local", "refs"), ("", "network", "smb"), ("", "local", "unknown")],
)
def test_windows_fs_name(volume_fs: str, category: str, name: str) -> None:
    assert _windows.fs_name(volume_fs, category) == name
