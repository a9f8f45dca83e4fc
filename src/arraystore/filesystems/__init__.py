"""Storage locality: what file system a path is on, whether it is network-backed, and I/O advice.

Memory maps on NFS, SMB, sshfs and other network file systems are slow and fragile:
page faults become network round trips, locks may not work, and a server hiccup
becomes a SIGBUS. This package tells, and lets the stores adapt:

- :func:`locality` reports a :class:`Locality` for a path;
- :func:`check_memmap` warns (once per mount) or refuses before a memory map is made,
  following :func:`network_fs_policy` (``ARRAYSTORE_NETWORK_FS=ignore|warn|error``);
- :func:`choose_io` turns ``io="auto"`` into ``"buffered"`` on network file systems.

See ``docs/locality.md``.
"""

from __future__ import annotations

from ._detect import locality
from ._policy import ENV_VAR, check_memmap, choose_io, clear_cache, network_fs_policy, set_network_fs_policy
from ._types import Locality

__all__ = [
    "ENV_VAR",
    "Locality",
    "check_memmap",
    "choose_io",
    "clear_cache",
    "locality",
    "network_fs_policy",
    "set_network_fs_policy",
]
