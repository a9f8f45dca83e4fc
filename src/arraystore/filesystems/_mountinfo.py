"""Parsing ``/proc/self/mountinfo`` and finding the mount that holds a path.

A line looks like (see ``proc(5)``)::

    36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    (1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)    (10)         (11)

Fields 4, 5, 10 and 11 escape space, tab, newline and backslash as ``\\ooo`` octal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["MountEntry", "find_mount", "is_under", "parse_mountinfo", "unescape"]

_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(field: str) -> str:
    """Decode the kernel's ``\\ooo`` escapes (``\\040`` is a space).

    Bytes above 127 become surrogate escapes, as :func:`os.fsdecode` would make them.
    """

    def _byte(match: re.Match[str]) -> str:
        value = int(match.group(1), 8)
        return chr(value) if value < 128 else chr(0xDC00 + value)

    return _OCTAL.sub(_byte, field)


@dataclass(frozen=True)
class MountEntry:
    """One line of ``/proc/self/mountinfo``, decoded."""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    mount_point: str
    mount_options: tuple[str, ...]
    fs_type: str
    source: str
    super_options: tuple[str, ...]

    @property
    def options(self) -> tuple[str, ...]:
        """Per-mount and super-block options together."""
        return self.mount_options + self.super_options

    def option_value(self, key: str) -> str | None:
        """The value of a ``key=value`` super-block option such as overlay's ``upperdir``."""
        prefix = key + "="
        for opt in self.super_options:
            if opt.startswith(prefix):
                return opt[len(prefix):]
        return None


def _split_options(field: str) -> tuple[str, ...]:
    return tuple(unescape(o) for o in field.split(",") if o)


def parse_line(line: str) -> MountEntry | None:
    """Decode one mountinfo line; ``None`` if it is not in the documented format."""
    fields = line.rstrip("\n").split(" ")
    try:
        sep = fields.index("-", 6)
        major, minor = fields[2].split(":")
        return MountEntry(
            mount_id=int(fields[0]),
            parent_id=int(fields[1]),
            major=int(major),
            minor=int(minor),
            root=unescape(fields[3]),
            mount_point=unescape(fields[4]),
            mount_options=_split_options(fields[5]),
            fs_type=unescape(fields[sep + 1]),
            source=unescape(fields[sep + 2]),
            super_options=_split_options(fields[sep + 3]) if len(fields) > sep + 3 else (),
        )
    except (ValueError, IndexError):
        return None


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Every well-formed line of a mountinfo text, in file order (later lines are mounted on top)."""
    return [entry for line in text.splitlines() if line.strip() and (entry := parse_line(line))]


def is_under(path: str, mount_point: str) -> bool:
    """Whether ``path`` (absolute, resolved) lies in or at ``mount_point``."""
    if mount_point == "/":
        return path.startswith("/")
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def _deepest(entries: Iterable[MountEntry], path: str) -> MountEntry | None:
    best: MountEntry | None = None
    for entry in entries:
        # ">=" keeps the later of two mounts on the same point: it is the one on top
        if is_under(path, entry.mount_point) and (
            best is None or len(entry.mount_point) >= len(best.mount_point)
        ):
            best = entry
    return best


def find_mount(
    entries: Sequence[MountEntry], path: str, device: tuple[int, int] | None = None
) -> MountEntry | None:
    """The mount holding ``path``.

    Mounts whose device number equals ``device`` (the path's ``st_dev`` as
    ``(major, minor)``) and whose mount point contains the path win; among several
    (bind mounts of one file system) the deepest mount point wins. When none
    matches by device (btrfs subvolumes and overlay files report other device
    numbers), the deepest mount point containing the path is taken.

    Parameters
    ----------
    entries
        Parsed mountinfo, in file order.
    path
        Absolute path with symlinks resolved.
    device
        ``(major, minor)`` of the path's ``st_dev``, if known.
    """
    if device is not None:
        same_device = [e for e in entries if (e.major, e.minor) == device]
        found = _deepest(same_device, path)
        if found is not None:
            return found
    return _deepest(entries, path)
