"""Linux detection: ``statfs`` ``f_type`` (through ctypes) and ``/proc/self/mountinfo``.

The statfs magic says what the kernel really serves the path with; the mount
table adds what the magic cannot: FUSE subtypes (``fuse.sshfs``), the NFS
version, the mount source, the mount options, overlay layers and the device
number used to find the disk in ``/sys`` for the rotational hint.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ._fstypes import FUSE, LOCAL, OVERLAY, UNKNOWN, classify_fs_type
from ._magic import classify_magic
from ._mountinfo import MountEntry, find_mount, is_under, parse_mountinfo
from ._types import CACHE, CACHE_LOCK, Locality, from_category

__all__ = ["detect", "judge", "read_mountinfo", "rotational", "statfs_type"]

_MOUNTINFO = "/proc/self/mountinfo"
_MAX_OVERLAY_DEPTH = 4


def statfs_type(path: str) -> int | None:
    """``statfs(2)`` ``f_type`` of ``path`` as an unsigned 32-bit value, or ``None`` on failure."""
    import ctypes
    import platform

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.statfs
    except (OSError, AttributeError):
        return None
    # f_type is the first member on every Linux ABI; it is an int on s390x and a long elsewhere.
    buf = ctypes.create_string_buffer(512)
    func.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    func.restype = ctypes.c_int
    if func(os.fsencode(path), buf) != 0:
        return None
    kind = ctypes.c_uint32 if platform.machine() == "s390x" else ctypes.c_ulong
    return int(kind.from_buffer(buf).value) & 0xFFFFFFFF


def read_mountinfo(path: str = _MOUNTINFO) -> list[MountEntry] | None:
    """The parsed mount table of this process, or ``None`` when unreadable (no ``/proc``)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return parse_mountinfo(fh.read())
    except OSError:
        return None


def rotational(major: int, minor: int, sys_root: str | os.PathLike[str] = "/sys") -> bool | None:
    """The rotational hint of block device ``major:minor``, or ``None`` when unknown.

    A partition is judged by its disk; a device-mapper or md device by its members
    (rotational if any member is, unknown if any member is unknown).
    """
    node = Path(sys_root) / "dev" / "block" / f"{major}:{minor}"
    try:
        real = node.resolve(strict=True)
    except OSError:
        return None
    return _rotational_node(real, 0)


def _rotational_node(node: Path, depth: int) -> bool | None:
    if (node / "partition").exists():
        node = node.parent
    slaves = node / "slaves"
    members = sorted(slaves.iterdir()) if slaves.is_dir() else []
    if members and depth < 8:
        answers = [_rotational_node(m.resolve(), depth + 1) for m in members]
        if any(a is True for a in answers):
            return True
        return False if all(a is False for a in answers) else None
    try:
        text = (node / "queue" / "rotational").read_text().strip()
    except OSError:
        return None
    return {"1": True, "0": False}.get(text)


def judge(entry: MountEntry | None, magic: int | None) -> tuple[str, str]:
    """The reported type name and category from a mount entry and a statfs magic.

    The magic wins when it contradicts a definite mount-table answer (the mount
    entry may have been found only by path prefix); the mount table supplies what
    the magic cannot tell (FUSE subtypes, nfs vs nfs4, ext2/3/4).
    """
    magic_name, magic_cat = classify_magic(magic) if magic is not None else ("unknown", UNKNOWN)
    if entry is None:
        return (magic_name, UNKNOWN if magic_cat == FUSE else magic_cat)
    name = entry.fs_type
    category = classify_fs_type(name)
    if magic_cat in (UNKNOWN, FUSE, OVERLAY) or magic is None:
        return name, UNKNOWN if category == FUSE else category
    if category in (UNKNOWN, FUSE) or category == magic_cat:
        return (name if category == magic_cat else magic_name), magic_cat
    return magic_name, magic_cat


@dataclass(frozen=True)
class _Record:
    entries: tuple[MountEntry, ...]  # the mounts of this file system (bind mounts give several)
    template: Locality  # everything but path, mount point and source


def detect(resolved: str, probe: str, st: os.stat_result, depth: int = 0) -> Locality:
    """Judge ``resolved`` by ``probe``, its nearest existing ancestor (``st`` is its stat)."""
    key = ("linux", st.st_dev)
    with CACHE_LOCK:
        record = CACHE.get(key)
    entry = _pick(record.entries, probe) if record is not None else None
    if record is None or (record.entries and entry is None):
        entries = read_mountinfo()
        device = (os.major(st.st_dev), os.minor(st.st_dev))
        entry = find_mount(entries, probe, device) if entries else None
        same = tuple(e for e in entries or () if entry is not None and _same_fs(e, entry))
        record = _Record(same, _classify(entry, statfs_type(probe), st, depth))
        with CACHE_LOCK:
            CACHE[key] = record
    return dataclasses.replace(
        record.template,
        path=resolved,
        mount_point=entry.mount_point if entry else None,
        mount_source=entry.source if entry else None,
    )


def _same_fs(a: MountEntry, b: MountEntry) -> bool:
    return (a.major, a.minor, a.fs_type, a.source) == (b.major, b.minor, b.fs_type, b.source)


def _pick(entries: tuple[MountEntry, ...], path: str) -> MountEntry | None:
    found = [e for e in entries if is_under(path, e.mount_point)]
    return max(found, key=lambda e: len(e.mount_point)) if found else None


def _classify(entry: MountEntry | None, magic: int | None, st: os.stat_result, depth: int) -> Locality:
    fs_type, category = judge(entry, magic)
    rot: bool | None = None
    if category == OVERLAY:
        layer = _overlay_layer(entry, depth)
        if layer is not None:
            category, rot = layer.kind, layer.is_rotational
    elif category == LOCAL:
        rot = rotational(*_block_device(entry, st))
    options = entry.options if entry else ()
    return from_category("", category, fs_type, None, None, is_rotational=rot, options=options)


def _block_device(entry: MountEntry | None, st: os.stat_result) -> tuple[int, int]:
    if entry is None:
        return os.major(st.st_dev), os.minor(st.st_dev)
    if entry.major == 0 and entry.source.startswith("/dev/"):
        # btrfs and others report an anonymous device number; the source names the disk
        try:
            src = os.stat(entry.source)
        except OSError:
            pass
        else:
            if stat.S_ISBLK(src.st_mode):
                return os.major(src.st_rdev), os.minor(src.st_rdev)
    return entry.major, entry.minor


def _overlay_layer(entry: MountEntry | None, depth: int) -> Locality | None:
    """Locality of the overlay's upper layer (or first lower layer), if visible here."""
    if entry is None or depth >= _MAX_OVERLAY_DEPTH:
        return None
    upper = entry.option_value("upperdir")
    layers = [upper] if upper else (entry.option_value("lowerdir") or "").split(":")
    for layer in layers:
        if layer and os.path.isdir(layer):
            real = os.path.realpath(layer)
            return detect(real, real, os.stat(real), depth + 1)
    return None
