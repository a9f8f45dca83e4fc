"""Which files of an archive are data to migrate, and where each one goes.

Discovery rule (documented in ``docs/migration.md``):

* Folders and files whose name starts with ``.`` are skipped, and so is the destination
  folder when it lies inside the source. Symbolic links to files are followed, links to
  folders are not.
* A file is **data** when its name matches an ``include`` glob (default ``*.dat``,
  ``*.raw``, ``*.bin``), when its name promises an inline header (MetaImage ``.mha``,
  IDX ``*-idx3-ubyte`` / ``*.idx``), or when a header file beside it (ENVI or EHdr
  ``.hdr``, MetaImage ``.mhd``) names it as its data file (``scene.img``, ``dem.bil``).
* Metadata files (``.json``, ``.toml``, ``.hdr``, ``.mhd``) are never data: they are
  evidence about data files.
* A file matching an ``exclude`` glob is skipped even when it is data.
* A header whose data file cannot be found or whose header cannot be parsed is reported
  as a failed entry of its own, unless a data file of the same stem was found (that
  file's resolution then reports the problem).

Globs follow the rules-file syntax: without ``/`` they match the file name in any folder,
with ``/`` the path relative to the archive root; matching is case-insensitive.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArrayStoreError
from ..registry import BACKENDS
from .resolve import is_metadata_file
from .rules import glob_to_regex

try:
    from .. import dialects
except ImportError:  # header dialects are optional evidence
    dialects = None  # type: ignore[assignment]

__all__ = ["DEFAULT_INCLUDE", "TARGET_SUFFIXES", "Discovery", "destination_names", "discover"]

#: Globs of the files migrated by default.
DEFAULT_INCLUDE: tuple[str, ...] = ("*.dat", "*.raw", "*.bin")
#: Destination suffix of each target format.
TARGET_SUFFIXES: dict[str, str] = {name: spec.suffixes[0] for name, spec in BACKENDS.items()}
_HEADER_SUFFIXES = (".hdr", ".mhd")


@dataclass(frozen=True)
class Discovery:
    """What :func:`discover` found.

    Attributes
    ----------
    data
        Data files as ``/``-separated paths relative to the root, sorted.
    broken_headers
        Header files (relative names) that name no usable data file, with the error.
    """

    data: tuple[str, ...]
    broken_headers: tuple[tuple[str, ArrayStoreError], ...]


def _compile(globs: Sequence[str]) -> list[tuple[bool, re.Pattern[str]]]:
    return [("/" in g, re.compile(glob_to_regex(g.lower()).pattern)) for g in globs]


def _matches(patterns: list[tuple[bool, re.Pattern[str]]], rel: str) -> bool:
    low = rel.lower()
    name = low.rsplit("/", 1)[-1]
    return any(p.fullmatch(low if full else name) is not None for full, p in patterns)


def _inline_header(path: Path) -> bool:
    if path.suffix.lower() == ".mha":
        return True
    if dialects is None:
        return False
    from ..dialects.idx import is_idx_name

    return is_idx_name(path)


def discover(
    root: str | os.PathLike[str],
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    skip: str | os.PathLike[str] | None = None,
) -> Discovery:
    """List the data files of an archive (see the module docstring for the rule).

    Parameters
    ----------
    root
        The archive folder.
    include, exclude
        Globs (rules-file syntax, case-insensitive).
    skip
        A folder never entered (the migration's destination when it lies inside ``root``).
    """
    base = Path(root)
    inc, exc = _compile(include), _compile(exclude)
    skip_path = Path(skip).resolve() if skip is not None else None
    data: set[str] = set()
    headers: list[Path] = []
    for folder, dirs, files in os.walk(base):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() != skip_path)
        for name in files:
            if name.startswith("."):
                continue
            path = here / name
            rel = path.relative_to(base).as_posix()
            if path.suffix.lower() in _HEADER_SUFFIXES:
                headers.append(path)
            if is_metadata_file(path) or not path.is_file():
                continue
            if (_matches(inc, rel) or _inline_header(path)) and not _matches(exc, rel):
                data.add(rel)
    broken: list[tuple[str, ArrayStoreError]] = []
    for header in sorted(headers):
        rel = header.relative_to(base).as_posix()
        try:
            parsed = dialects.detect(header) if dialects is not None else None
        except ArrayStoreError as err:
            stem = rel[: -len(header.suffix)]
            if not any(d.rsplit(".", 1)[0] == stem or d == stem for d in data):
                broken.append((rel, err))
            continue
        if parsed is None:
            continue
        try:
            data_rel = Path(parsed.data_path).resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            continue  # the dialect refuses data outside the header's folder; nothing to add
        if not is_metadata_file(data_rel) and not _matches(exc, data_rel):
            data.add(data_rel)
    return Discovery(tuple(sorted(data)), tuple(broken))


def destination_names(
    names: Sequence[str], suffix: str, previous: dict[str, str] | None = None
) -> dict[str, str]:
    """Each source's destination (relative to the destination root): suffix replaced by ``suffix``.

    ``a/b/frames_f4.dat`` becomes ``a/b/frames_f4.zarr``. When two sources of one folder
    share a stem (``x.dat`` and ``x.raw``), each keeps its whole name and gains the suffix
    (``x.dat.zarr``, ``x.raw.zarr``), whatever order they are listed in. A destination
    recorded by an earlier run (``previous``) is kept, so adding ``x.raw`` later does not
    rename the ``x.zarr`` already written for ``x.dat``; a new name that would collide with
    one already taken gets the whole-name form.
    """
    previous = previous or {}
    stems: dict[str, list[str]] = {}
    for name in names:
        stems.setdefault(_stem(name), []).append(name)
    out: dict[str, str] = {}
    taken = {previous[n] for n in names if n in previous}
    for name in sorted(names):
        if name in previous:
            out[name] = previous[name]
            continue
        dest = _stem(name) + suffix if len(stems[_stem(name)]) == 1 else name + suffix
        if dest in taken:
            dest = name + suffix
        taken.add(dest)
        out[name] = dest
    return out


def _stem(name: str) -> str:
    folder, _, leaf = name.rpartition("/")
    stem = Path(leaf).stem if Path(leaf).suffix else leaf
    return f"{folder}/{stem}" if folder else stem
