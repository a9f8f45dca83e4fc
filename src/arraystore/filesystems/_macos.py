"""macOS detection: ``statfs(2)`` ``f_fstypename`` and the ``MNT_LOCAL`` flag, through ctypes.

The struct is the 64-bit-inode layout (``<sys/mount.h>``, ``statfs64``); the call
is made only on macOS, while :func:`decode_statfs` and :func:`classify` are pure and
unit-tested everywhere.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

from ._fstypes import LOCAL, MEMORY, NETWORK, PSEUDO, UNKNOWN
from ._types import CACHE, CACHE_LOCK, Locality, from_category

__all__ = ["MNT_LOCAL", "MacStatfs", "StatfsStruct", "classify", "decode_statfs", "detect"]

MNT_LOCAL = 0x00001000
MFSTYPENAMELEN = 16
MAXPATHLEN = 1024

_NETWORK = frozenset({"nfs", "smbfs", "afpfs", "webdav", "ftp", "cifs", "9p", "sshfs", "lustre", "gpfs"})
_LOCAL = frozenset({"apfs", "hfs", "msdos", "exfat", "ntfs", "udf", "cd9660", "ufs", "zfs", "lifs"})
_PSEUDO = frozenset({"devfs", "autofs", "nullfs", "fdesc"})
_MEMORY = frozenset({"tmpfs", "ramfs"})


class StatfsStruct(ctypes.Structure):
    """``struct statfs`` with 64-bit inodes (macOS 10.6+, the only layout on arm64)."""

    _fields_ = [
        ("f_bsize", ctypes.c_uint32),
        ("f_iosize", ctypes.c_int32),
        ("f_blocks", ctypes.c_uint64),
        ("f_bfree", ctypes.c_uint64),
        ("f_bavail", ctypes.c_uint64),
        ("f_files", ctypes.c_uint64),
        ("f_ffree", ctypes.c_uint64),
        ("f_fsid", ctypes.c_int32 * 2),
        ("f_owner", ctypes.c_uint32),
        ("f_type", ctypes.c_uint32),
        ("f_flags", ctypes.c_uint32),
        ("f_fssubtype", ctypes.c_uint32),
        ("f_fstypename", ctypes.c_char * MFSTYPENAMELEN),
        ("f_mntonname", ctypes.c_char * MAXPATHLEN),
        ("f_mntfromname", ctypes.c_char * MAXPATHLEN),
        ("f_flags_ext", ctypes.c_uint32),
        ("f_reserved", ctypes.c_uint32 * 7),
    ]


@dataclass(frozen=True)
class MacStatfs:
    """The fields of ``struct statfs`` that locality needs."""

    fstypename: str
    flags: int
    mount_point: str
    mount_source: str


def decode_statfs(raw: bytes) -> MacStatfs:
    """Decode the bytes of a ``struct statfs`` filled by the kernel."""
    if len(raw) < ctypes.sizeof(StatfsStruct):
        raise ValueError(f"struct statfs needs {ctypes.sizeof(StatfsStruct)} bytes, got {len(raw)}")
    st = StatfsStruct.from_buffer_copy(raw[: ctypes.sizeof(StatfsStruct)])
    return MacStatfs(
        fstypename=os.fsdecode(st.f_fstypename),
        flags=int(st.f_flags),
        mount_point=os.fsdecode(st.f_mntonname),
        mount_source=os.fsdecode(st.f_mntfromname),
    )


def classify(fstypename: str, flags: int) -> str:
    """Category of a macOS mount: the type table, with ``MNT_LOCAL`` as the judge of the rest.

    FUSE mounts (macFUSE, fuse-t) report their own ``MNT_LOCAL``, so a FUSE type
    without it counts as network and one with it as unknown (local FUSE file
    systems set it, but so do some network ones).
    """
    name = fstypename.lower()
    if name in _NETWORK:
        return NETWORK
    if name in _MEMORY:
        return MEMORY
    if name in _PSEUDO:
        return PSEUDO
    local_flag = bool(flags & MNT_LOCAL)
    if name in _LOCAL:
        return LOCAL if local_flag else NETWORK
    return UNKNOWN if local_flag else NETWORK


def _statfs(path: str) -> MacStatfs | None:
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        func = libc["statfs$INODE64"]  # x86_64: the 64-bit-inode variant has this name
    except AttributeError:
        func = libc.statfs
    buf = StatfsStruct()
    func.argtypes = [ctypes.c_char_p, ctypes.POINTER(StatfsStruct)]
    func.restype = ctypes.c_int
    if func(os.fsencode(path), ctypes.byref(buf)) != 0:
        return None
    return decode_statfs(bytes(buf))


def detect(resolved: str, probe: str, st: os.stat_result) -> Locality:  # pragma: no cover - macOS only
    """Judge ``resolved`` by ``probe``, its nearest existing ancestor."""
    if sys.platform != "darwin":
        raise OSError("the macOS detector runs on macOS only")
    key = ("darwin", st.st_dev)
    with CACHE_LOCK:
        info = CACHE.get(key)
    if info is None:
        info = _statfs(probe)
        with CACHE_LOCK:
            CACHE[key] = info
    if info is None:
        category, fs_type, mount_point, source = UNKNOWN, "unknown", None, None
    else:
        category = classify(info.fstypename, info.flags)
        fs_type, mount_point, source = info.fstypename, info.mount_point, info.mount_source
    return from_category(resolved, category, fs_type, mount_point, source)
