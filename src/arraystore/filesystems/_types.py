"""The :class:`Locality` value and the per-process cache shared by the platform modules."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from ._fstypes import FUSE, LOCAL, MEMORY, NETWORK, OVERLAY, PSEUDO, UNKNOWN, advice_for, locks_expected

__all__ = ["CACHE", "CACHE_LOCK", "Locality", "from_category"]

#: Detection results keyed by platform and device (see each platform module).
CACHE: dict[tuple[Any, ...], Any] = {}
CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Locality:
    """Where a path's data lives, and what that means for memory maps.

    Attributes
    ----------
    path
        The path with symlinks resolved (absolute).
    mount_point
        The mount point (Linux), volume mount (macOS) or volume root (Windows) that
        holds it; ``None`` when the mount table could not be read.
    fs_type
        The file-system type: ``ext4``, ``xfs``, ``nfs4``, ``cifs``, ``fuse.sshfs``,
        ``tmpfs``, ``overlay``, ``apfs``, ``ntfs``... or ``unknown`` /
        ``unknown (0x...)`` when it could not be determined.
    mount_source
        What is mounted: a device (``/dev/sda1``), ``server:/export``,
        ``//server/share``, ``user@host:dir``; ``None`` when not known.
    is_network
        ``True`` for network and cluster file systems, ``False`` for local disks,
        memory and kernel file systems, ``None`` when it cannot be told.
    is_memory
        ``True`` for RAM-backed file systems (tmpfs, ramfs).
    is_rotational
        A hint from ``/sys/block/<disk>/queue/rotational``; ``None`` when unknown
        (always for network file systems). Virtual disks often report ``True``.
    locks_work
        Whether file locks are expected to work across every client; ``None`` when
        it depends on configuration that cannot be seen from here.
    advice
        One line on memory-mapping there (for object stores: on I/O there).
    is_object_store
        ``True`` for an object-store URL (``s3://``...): ``kind`` is ``"object"``.
    """

    path: str
    mount_point: str | None
    fs_type: str
    mount_source: str | None
    is_network: bool | None
    is_memory: bool
    is_rotational: bool | None
    locks_work: bool | None
    advice: str
    is_object_store: bool = False

    @property
    def kind(self) -> str:
        """``"object"``, ``"memory"``, ``"network"``, ``"local"`` or ``"unknown"``."""
        if self.is_object_store:
            return "object"
        if self.is_memory:
            return MEMORY
        if self.is_network is None:
            return UNKNOWN
        return NETWORK if self.is_network else LOCAL

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field plus ``kind``."""
        return {**asdict(self), "kind": self.kind}


def from_category(
    resolved: str,
    category: str,
    fs_type: str,
    mount_point: str | None,
    source: str | None,
    *,
    is_rotational: bool | None = None,
    options: tuple[str, ...] = (),
) -> Locality:
    """A :class:`Locality` from a category of :mod:`._fstypes` (overlay/FUSE left unresolved count as unknown)."""
    kind = {PSEUDO: LOCAL, OVERLAY: UNKNOWN, FUSE: UNKNOWN}.get(category, category)
    locks = locks_expected(fs_type, category, options)
    rot = False if kind == MEMORY else is_rotational
    return Locality(
        path=resolved,
        mount_point=mount_point,
        fs_type=fs_type,
        mount_source=source,
        is_network={NETWORK: True, LOCAL: False, MEMORY: False}.get(kind),
        is_memory=kind == MEMORY,
        is_rotational=rot,
        locks_work=locks,
        advice=advice_for(category, fs_type, rot, locks),
    )
