"""Where a Zarr directory store may read, and which generation of it a store opened.

Containment
    zarr-python opens ``root/key`` for every chunk and metadata key. A chunk file, a
    shard file, a ``zarr.json`` or any folder on the way may be a symlink; after the
    lexical key check (``_zarr_safety.check_key``), :func:`check_inside` resolves the
    path and refuses it with :class:`~arraystore.errors.UnsafeInputError` unless it lies
    inside the resolved store root. The check costs one ``realpath`` (a few ``lstat``)
    per key; a symlink swapped in between the check and zarr's ``open`` is not caught
    (arraystore does not defend against a concurrent attacker on the same machine).

Generation
    Replacing an array (``create(..., overwrite=True)``, ``convert(..., overwrite=True)``)
    renames a new folder into place (:func:`arraystore._fsutil.replace_path`), so the
    array folder's inode changes while zarr-python keeps reading by path. A
    :class:`Generation` holds the opened folder's descriptor (so its inode number
    cannot be reused while the store is open) and compares it with the folder at the
    path before and after every read and write: one ``stat`` each. A read that overlaps
    a replace raises :class:`~arraystore.errors.ArrayChangedError` instead of returning
    chunks of two generations (or of the old dtype over new bytes).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ArrayChangedError, UnsafeInputError

__all__ = ["Generation", "check_inside"]


def check_inside(root: str, path: str | os.PathLike[str], where: str) -> None:
    """Refuse ``path`` unless it resolves (following every symlink) inside ``root`` (already resolved)."""
    real = os.path.realpath(path)
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        raise UnsafeInputError(
            f"{where}: {os.fspath(path)!r} is or passes through a symlink that leads outside the store "
            f"{root!r} (to {real!r}); arraystore reads nothing outside the folder it was given: replace the "
            "symlink by the file itself"
        )


class Generation:
    """The identity of an opened array folder, checked before and after each read and write.

    Parameters
    ----------
    folder
        The array's folder (the node of an array inside a hierarchy).
    where
        How messages name the array.
    """

    def __init__(self, folder: Path, where: str) -> None:
        self.folder = folder
        self.where = where
        self._fd: int | None = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        st = os.fstat(self._fd)
        self._id = (st.st_dev, st.st_ino)

    def check(self) -> None:
        """Raise :class:`ArrayChangedError` when the folder at the path is no longer the one opened."""
        try:
            st = os.stat(self.folder)
        except OSError:
            found = "nothing there any more"
        else:
            if (st.st_dev, st.st_ino) == self._id:
                return
            found = "another folder in its place"
        raise ArrayChangedError(
            f"{self.where}: the array was replaced or removed by another process since this store opened it "
            f"({found}); what was read may mix two versions, so nothing is returned: open it again to read "
            "the current version"
        )

    def close(self) -> None:
        """Release the folder's descriptor; calling it twice is harmless."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
