"""Which files of an archive are data to migrate, and where each one goes.

Discovery rule (documented in ``docs/migration.md``):

* Folders and files whose name starts with ``.`` are skipped, and so is the destination
  folder when it lies inside the source. Symbolic links to files inside the archive are
  followed, links to folders are not entered; a link to a file outside the archive is
  refused (a failed entry when it looks like data or a header), and so is every metadata
  file or header data file reached through one.
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
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ArrayStoreError, MetadataError, UnsafeInputError
from ..registry import BACKENDS
from ._glob import Glob
from .resolve import METADATA_SUFFIXES, is_metadata_file

try:
    from .. import dialects
except ImportError:  # header dialects are optional evidence
    dialects = None  # type: ignore[assignment]

__all__ = ["DEFAULT_INCLUDE", "TARGET_SUFFIXES", "Discovery", "destination_names", "discover", "overlapping_outputs"]

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
    sizes
        The size of each data file that is a regular file (no link), from the ``lstat`` that
        found it: the migration cuts its batches by these without a ``stat`` per file.
    """

    data: tuple[str, ...]
    broken_headers: tuple[tuple[str, ArrayStoreError], ...]
    sizes: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)


def _compile(globs: Sequence[str]) -> list[tuple[bool, Glob]]:
    try:
        return [("/" in g, Glob(g.lower())) for g in globs]
    except re.error as exc:
        raise MetadataError(f"invalid include/exclude glob in {list(globs)!r} ({exc}); fix the glob") from None


def _matches(patterns: list[tuple[bool, Glob]], rel: str) -> bool:
    if not patterns:
        return False
    low = rel.lower()
    name = low.rsplit("/", 1)[-1]
    return any(p.fullmatch(low if full else name) for full, p in patterns)


def _suffix(name: str) -> str:
    """``Path(name).suffix`` of a file name."""
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def _inline_header(name: str, suffix: str) -> bool:
    """Whether the file ``name`` (its lower-case suffix ``suffix``) promises an inline header (``.mha``, IDX)."""
    if suffix == ".mha":
        return True
    if dialects is None:
        return False
    from ..dialects.idx import is_idx_name

    return is_idx_name(Path(name))


def discover(
    root: str | os.PathLike[str],
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    skip: str | os.PathLike[str] | None = None,
    many: tuple[int, Callable[[], object]] | None = None,
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
    many
        ``(n, call)``: ``call()`` once, as soon as more than ``n`` data files are found (a
        migration starts its worker processes' server then, while the listing goes on).
    """
    base = Path(root)
    inc, exc = _compile(include), _compile(exclude)
    skip_path = Path(skip).resolve() if skip is not None else None
    data: set[str] = set()
    sizes: dict[str, int] = {}
    headers: list[Path] = []
    broken: list[tuple[str, ArrayStoreError]] = []
    real_base = base.resolve()
    for folder, dirs, files in os.walk(base):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() != skip_path)
        prefix = here.relative_to(base).as_posix() + "/"
        if prefix == "./":
            prefix = ""
        for name in files:
            if name.startswith("."):
                continue
            rel = prefix + name
            try:  # one lstat: a link, a regular file, or neither (folders, sockets, vanished files)
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            mode = st.st_mode
            suffix = _suffix(name).lower()
            if stat.S_ISLNK(mode):
                path = here / name
                try:
                    target = path.resolve()
                except (RuntimeError, OSError):  # a link in a loop (pathlib raises RuntimeError): as a dangling one
                    continue
                if real_base not in target.parents:
                    if path.exists() and (_matches(inc, rel) or suffix in _HEADER_SUFFIXES):
                        broken.append((rel, UnsafeInputError(
                            f"{path}: a symbolic link to {target}, outside the archive {base}; refused: "
                            "copy the file into the archive instead of linking to it"
                        )))
                    continue
                is_file = path.is_file()
            else:
                is_file = stat.S_ISREG(mode)
            if suffix in _HEADER_SUFFIXES:
                headers.append(here / name)
            if suffix in METADATA_SUFFIXES or not is_file:
                continue
            if (_matches(inc, rel) or _inline_header(name, suffix)) and not _matches(exc, rel):
                data.add(rel)
                if stat.S_ISREG(mode):
                    sizes[rel] = st.st_size
                if many is not None and len(data) > many[0]:
                    many[1]()
                    many = None
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
    return Discovery(tuple(sorted(data)), tuple(broken), sizes)


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

    A recorded destination is only kept when it is one this function may give that source
    (``x.zarr``, ``x.dat.zarr``, or ``x.dat.2.zarr`` below) and no other source's kept
    destination: a manifest never steers a write elsewhere (``../victim``, an absolute
    path, another file's output).

    A name whose whole-name form is taken too (a suffix-less ``x`` beside ``x.dat`` whose
    recorded destination is ``x.zarr``) gets the first free ``x.2.zarr``, ``x.3.zarr``...

    Names are taken case-insensitively (``casefold``): ``A.dat`` and ``a.dat`` become ``A.zarr``
    and ``a.dat.zarr``, which a case-insensitive file system (macOS, Windows) keeps apart too,
    and so does any file system the output is copied to later.
    """
    kept: dict[str, str] = {}
    taken: set[str] = set()
    for n in sorted(set(names) & set(previous or {})):
        d = (previous or {})[n]
        if isinstance(d, str) and d.casefold() not in taken and _is_own_name(n, d, suffix):
            kept[n] = d
            taken.add(d.casefold())
    stem_of: dict[str, str] = {}
    sharing: dict[str, int] = {}
    for name in names:
        stem = stem_of[name] = _stem(name)
        sharing[stem] = sharing.get(stem, 0) + 1
    out: dict[str, str] = {}
    for name in sorted(names):
        if name in kept:
            out[name] = kept[name]
            continue
        stem = stem_of[name]
        dest = stem + suffix if sharing[stem] == 1 else name + suffix
        if dest.casefold() in taken:
            dest = name + suffix
        k = 2
        while dest.casefold() in taken:
            dest = f"{name}.{k}{suffix}"
            k += 1
        taken.add(dest.casefold())
        out[name] = dest
    return out


def _is_own_name(name: str, dest: str, suffix: str) -> bool:
    """Whether :func:`destination_names` may give ``name`` the destination ``dest``."""
    if dest in (_stem(name) + suffix, name + suffix):
        return True
    head = name + "."
    if not (dest.startswith(head) and dest.endswith(suffix)):
        return False
    k = dest[len(head) : len(dest) - len(suffix)]
    return k.isascii() and k.isdigit() and not k.startswith("0") and int(k) >= 2


def _stem(name: str) -> str:
    folder, _, leaf = name.rpartition("/")
    dot = leaf.rfind(".")
    stem = leaf[:dot] if 0 < dot < len(leaf) - 1 else leaf  # Path(leaf).stem, where it has a suffix
    return f"{folder}/{stem}" if folder else stem


def _ancestors(parts: tuple[str, ...]) -> list[tuple[str, ...]]:
    return [parts[:i] for i in range(1, len(parts))]


def _folded(parts: Sequence[str]) -> tuple[str, ...]:
    return tuple(p.casefold() for p in parts)


def overlapping_outputs(dests: dict[str, str], src: Path, dst: Path | None) -> dict[str, str]:
    """Why each source whose output would overlap another output or a source cannot be converted.

    An output that lies inside another output (``x.zarr/y.zarr`` beside ``x.zarr``) or
    contains one, or that lies inside, equals or contains a source file, would be written
    into or deleted with that other path; both files of such a pair are refused. Paths are
    compared case-insensitively, as a case-insensitive file system (macOS, Windows) would.

    Parameters
    ----------
    dests
        Source name -> destination name (both relative, ``/``-separated).
    src, dst
        The archive and destination roots (``dst`` None: an object-store prefix, which
        holds no source file).

    Returns
    -------
    dict
        Source name -> reason, for the sources refused.
    """
    owner = {_folded(d.split("/")): n for n, d in dests.items()}
    dst_root = _folded(dst.resolve().parts) if dst is not None else None
    src_root = _folded(src.resolve().parts)
    sources = {src_root + _folded(n.split("/")): n for n in dests}
    source_dirs: dict[tuple[str, ...], str] = {}
    first = next(iter(sources.values()), None)
    if first is not None:  # the archive root and the folders above it hold every source: named by the first one
        for i in range(1, len(src_root) + 1):
            source_dirs[src_root[:i]] = first
    for parts, name in sources.items():
        for i in range(len(src_root) + 1, len(parts)):  # its folders inside the archive
            source_dirs.setdefault(parts[:i], name)
    out: dict[str, str] = {}

    def refuse(name: str, why: str) -> None:
        out.setdefault(name, f"its output {dests[name]!r} {why}; exclude one of the two files or rename it, then rerun")

    for parts, name in owner.items():
        for anc in _ancestors(parts):
            if anc in owner:
                refuse(name, f"would lie inside {'/'.join(anc)!r}, the output of {owner[anc]!r}")
                refuse(owner[anc], f"would contain {dests[name]!r}, the output of {name!r}")
        if dst_root is None:
            continue
        full = dst_root + parts
        for i in range(len(src_root) + 1, len(full) + 1):  # no source's path is shorter: only these can be one
            anc = full[:i]
            if anc in sources:
                refuse(name, f"would overwrite or lie inside the source file {sources[anc]!r}")
        if full in source_dirs:
            refuse(name, f"would contain the source file {source_dirs[full]!r}")
    return out
