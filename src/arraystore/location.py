"""Where an array lives: :class:`Location` and :func:`parse_location`.

The bottom layer of the package (it imports nothing of arraystore's): the contract
(:mod:`arraystore.store`), the registry and every backend name places with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Location", "parse_location"]


@dataclass(frozen=True)
class Location:
    """A store's place: a file or folder, and for HDF5/Zarr hierarchies a key inside it.

    ``"run.h5::/a/b"`` parses to ``Location(Path("run.h5"), "/a/b")``.
    """

    file: Path
    key: str | None = None

    def __str__(self) -> str:
        return f"{self.file}::{self.key}" if self.key else str(self.file)


def parse_location(path: str | os.PathLike[str] | Location) -> Location:
    """Split ``"file::/key"``; expand ``~``; make the file path absolute."""
    if isinstance(path, Location):
        return path
    s = os.fspath(path)
    key = None
    if "::" in s:
        s, key = s.split("::", 1)
        key = key or None
    return Location(Path(s).expanduser().absolute(), key)
