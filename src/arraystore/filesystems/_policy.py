"""What to do about memory maps on network file systems: the policy, the warning, the I/O choice."""

from __future__ import annotations

import os
import threading
import warnings
from typing import Literal

from ..errors import ModeError, NetworkFilesystemError, NetworkFilesystemWarning
from ._detect import locality
from ._types import CACHE, CACHE_LOCK, Locality

__all__ = ["ENV_VAR", "check_memmap", "choose_io", "clear_cache", "forget_warnings", "network_fs_policy", "set_network_fs_policy"]

Policy = Literal["ignore", "warn", "error"]
IOChoice = Literal["auto", "mmap", "buffered"]

#: Environment variable read by :func:`network_fs_policy`.
ENV_VAR = "ARRAYSTORE_NETWORK_FS"
_POLICIES: tuple[Policy, ...] = ("ignore", "warn", "error")
_IO_CHOICES: tuple[IOChoice, ...] = ("auto", "mmap", "buffered")

_override: Policy | None = None
_warned: set[tuple[str | None, str, str | None]] = set()
_lock = threading.Lock()


def _validate_policy(value: object, origin: str) -> Policy:
    text = value.strip().lower() if isinstance(value, str) else ""
    for policy in _POLICIES:
        if text == policy:
            return policy
    raise ModeError(
        f"{origin} is {value!r}; expected one of 'ignore', 'warn', 'error': "
        "use 'ignore' to silence network file-system warnings or 'error' to refuse memory maps there"
    )


def network_fs_policy() -> Policy:
    """The policy for memory maps on network file systems: ``"ignore"``, ``"warn"`` (default) or ``"error"``.

    :func:`set_network_fs_policy` overrides the environment variable
    ``ARRAYSTORE_NETWORK_FS``, which is read at every call.

    Raises
    ------
    ModeError
        ``ARRAYSTORE_NETWORK_FS`` holds something else.
    """
    if _override is not None:
        return _override
    raw = os.environ.get(ENV_VAR, "")
    if not raw.strip():
        return "warn"
    return _validate_policy(raw, f"the environment variable {ENV_VAR}")


def set_network_fs_policy(policy: Policy | None) -> None:
    """Set the policy for this process, overriding ``ARRAYSTORE_NETWORK_FS``; ``None`` goes back to it.

    Raises
    ------
    ModeError
        ``policy`` is not ``"ignore"``, ``"warn"``, ``"error"`` or ``None``.
    """
    global _override
    _override = None if policy is None else _validate_policy(policy, "the network file-system policy")


def forget_warnings() -> None:
    """Let every mount warn again (called by :func:`~arraystore.filesystems.clear_cache`)."""
    with _lock:
        _warned.clear()


def clear_cache() -> None:
    """Forget every cached detection and which mounts were already warned about."""
    with CACHE_LOCK:
        CACHE.clear()
    forget_warnings()


def _describe(loc: Locality) -> str:
    where = f"{loc.fs_type}"
    if loc.mount_source:
        where += f" from {loc.mount_source}"
    if loc.mount_point:
        where += f" mounted at {loc.mount_point}"
    return (
        f"{loc.path} is on a network file system ({where}). Memory maps there turn every page fault "
        "into a network round trip (several times slower than large buffered reads) and a server "
        "stall can kill the process with SIGBUS. Copy the file to local scratch, or open it with "
        'io="buffered" (io="auto" does so on network file systems).'
    )


def check_memmap(path: str | os.PathLike[str], *, stacklevel: int = 2) -> Locality:
    """Call right before memory-mapping ``path``: warn or refuse if it is on a network file system.

    Warns once per mount with :class:`~arraystore.errors.NetworkFilesystemWarning`
    under the policy ``"warn"``; raises under ``"error"``; silent under ``"ignore"``
    and wherever the path is not known to be on a network file system.

    Parameters
    ----------
    path
        The file about to be mapped.
    stacklevel
        As for :func:`warnings.warn`, counted from the caller of ``check_memmap``:
        1 points at that caller, 2 (default) at its caller, and so on. Pass the
        depth that reaches the user's code.

    Returns
    -------
    Locality
        The detection, for callers that want more.

    Raises
    ------
    NetworkFilesystemError
        The path is on a network file system and the policy is ``"error"``.
    """
    loc = locality(path)
    if loc.is_network is not True:
        return loc
    policy = network_fs_policy()
    if policy == "ignore":
        return loc
    if policy == "error":
        raise NetworkFilesystemError(
            _describe(loc) + f" Refused because the network file-system policy is 'error' "
            f"({ENV_VAR} or arraystore.filesystems.set_network_fs_policy)."
        )
    key = (loc.mount_point, loc.fs_type, loc.mount_source)
    with _lock:
        if key in _warned:
            return loc
        _warned.add(key)
    warnings.warn(
        _describe(loc) + f" Silence with {ENV_VAR}=ignore or arraystore.filesystems.set_network_fs_policy('ignore').",
        NetworkFilesystemWarning,
        stacklevel=stacklevel + 1,
    )
    return loc


def choose_io(path: str | os.PathLike[str], io: IOChoice) -> Literal["mmap", "buffered"]:
    """Resolve an ``io=`` argument: ``"auto"`` is buffered on network file systems, mmap elsewhere.

    Unknown file systems get ``"mmap"`` (the fast path on the common case, a local
    disk). ``"mmap"`` and ``"buffered"`` are returned as given, without looking at
    the path.

    Raises
    ------
    ModeError
        ``io`` is not ``"auto"``, ``"mmap"`` or ``"buffered"``.
    """
    if io not in _IO_CHOICES:
        raise ModeError(f"io={io!r} is not an I/O mode; expected 'auto', 'mmap' or 'buffered'")
    if io != "auto":
        return io  # type: ignore[return-value]
    return "buffered" if locality(path).is_network else "mmap"
