"""Windows detection: ``GetDriveTypeW`` (``DRIVE_REMOTE``) and the volume's file-system name.

The ctypes calls are made only on Windows; :func:`classify`, :func:`is_unc` and
:func:`fs_name` are pure and unit-tested everywhere.
"""

from __future__ import annotations

import os
import sys

from ._fstypes import LOCAL, MEMORY, NETWORK, UNKNOWN
from ._types import CACHE, CACHE_LOCK, Locality, from_category

__all__ = ["DRIVE_TYPES", "classify", "detect", "fs_name", "is_unc"]

DRIVE_UNKNOWN = 0
DRIVE_NO_ROOT_DIR = 1
DRIVE_REMOVABLE = 2
DRIVE_FIXED = 3
DRIVE_REMOTE = 4
DRIVE_CDROM = 5
DRIVE_RAMDISK = 6

#: GetDriveTypeW result -> category
DRIVE_TYPES = {
    DRIVE_REMOVABLE: LOCAL,
    DRIVE_FIXED: LOCAL,
    DRIVE_REMOTE: NETWORK,
    DRIVE_CDROM: LOCAL,
    DRIVE_RAMDISK: MEMORY,
}


def is_unc(path: str) -> bool:
    r"""Whether ``path`` names a network share: ``\\server\share\...`` or ``\\?\UNC\server\share``."""
    p = path.replace("/", "\\")
    if p.upper().startswith("\\\\?\\UNC\\"):
        return True
    return p.startswith("\\\\") and not p.startswith(("\\\\?\\", "\\\\.\\"))


def classify(drive_type: int, root: str) -> str:
    """Category of a volume from its ``GetDriveTypeW`` value; UNC roots are network whatever it says."""
    if is_unc(root):
        return NETWORK
    return DRIVE_TYPES.get(drive_type, UNKNOWN)


def fs_name(volume_fs: str, category: str) -> str:
    """The reported type: the volume's file-system name lowered (``ntfs``, ``refs``, ``fat32``)."""
    name = volume_fs.strip().lower()
    if not name:
        return "smb" if category == NETWORK else "unknown"
    return name


def _volume(path: str) -> tuple[str, int, str, str | None]:  # pragma: no cover - Windows only
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
    buf = ctypes.create_unicode_buffer(1024)
    if not kernel32.GetVolumePathNameW(wintypes.LPCWSTR(path), buf, len(buf)):
        root = os.path.splitdrive(path)[0] + "\\"
    else:
        root = buf.value
    drive_type = int(kernel32.GetDriveTypeW(wintypes.LPCWSTR(root)))
    fs_buf = ctypes.create_unicode_buffer(64)
    ok = kernel32.GetVolumeInformationW(
        wintypes.LPCWSTR(root), None, 0, None, None, None, fs_buf, len(fs_buf)
    )
    source: str | None = root if is_unc(root) else None
    if drive_type == DRIVE_REMOTE and not is_unc(root):
        mpr = ctypes.WinDLL("mpr")  # type: ignore[attr-defined,unused-ignore]
        remote = ctypes.create_unicode_buffer(1024)
        size = wintypes.DWORD(len(remote))
        if mpr.WNetGetConnectionW(wintypes.LPCWSTR(root.rstrip("\\")), remote, ctypes.byref(size)) == 0:
            source = remote.value
    return root, drive_type, fs_buf.value if ok else "", source


def detect(resolved: str, probe: str, st: os.stat_result) -> Locality:  # pragma: no cover - Windows only
    """Judge ``resolved`` by ``probe``, its nearest existing ancestor."""
    if sys.platform != "win32":
        raise OSError("the Windows detector runs on Windows only")
    key = ("win32", st.st_dev)
    with CACHE_LOCK:
        volume = CACHE.get(key)
    if volume is None:
        volume = _volume(probe)
        with CACHE_LOCK:
            CACHE[key] = volume
    root, drive_type, volume_fs, source = volume
    category = classify(drive_type, root)
    return from_category(resolved, category, fs_name(volume_fs, category), root, source)
