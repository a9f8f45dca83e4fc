"""``locality(path)``: resolve the path, find its nearest existing ancestor, ask the platform."""

from __future__ import annotations

import os
import sys

from ..errors import known_options
from ._objstore import object_locality
from ._types import Locality, from_category

__all__ = ["locality"]


@known_options
def locality(path: str | os.PathLike[str]) -> Locality:
    """What file system ``path`` is on, whether it is network-backed, and the advice for memory maps.

    Parameters
    ----------
    path
        A file or folder. Symlinks are resolved; a path that does not exist yet is
        judged by its nearest existing ancestor. An object-store URL (``s3://``...)
        reports kind ``"object"`` with the advice for object storage.

    Returns
    -------
    Locality
        Cached per file system (device number) for the life of the process; see
        :func:`clear_cache`.

    Notes
    -----
    Linux reads ``statfs`` ``f_type`` and ``/proc/self/mountinfo``; macOS reads
    ``statfs`` ``f_fstypename`` and ``MNT_LOCAL``; Windows asks ``GetDriveTypeW``.
    A file system that cannot be identified is reported as ``unknown``, never as local.

    Examples
    --------
    >>> from arraystore.filesystems import locality
    >>> locality("/dev/shm").kind  # doctest: +SKIP
    'memory'
    """
    remote = object_locality(path)
    if remote is not None:
        return remote
    resolved = os.path.realpath(os.fspath(path))
    probe = resolved
    while True:
        try:
            st = os.stat(probe)
            break
        except (FileNotFoundError, NotADirectoryError):
            parent = os.path.dirname(probe)
            if parent == probe:
                raise
            probe = parent
    if sys.platform.startswith("linux"):
        from . import _linux

        return _linux.detect(resolved, probe, st)
    if sys.platform == "darwin":  # pragma: no cover - CI runs on Linux
        from . import _macos

        return _macos.detect(resolved, probe, st)
    if sys.platform == "win32":  # pragma: no cover
        from . import _windows

        return _windows.detect(resolved, probe, st)
    return from_category(resolved, "unknown", "unknown", None, None)  # pragma: no cover
