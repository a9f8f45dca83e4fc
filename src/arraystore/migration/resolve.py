"""Resolve a raw file's layout from every evidence source, or say why it cannot be.

Sources, in priority order: arraystore's own sidecar; header dialects (ENVI, EHdr,
MetaImage, IDX, when :mod:`arraystore.dialects` is installed); legacy JSON sidecars;
folder manifests; the user's rules; the file name. Every source is read, and each fact
(dtype, shape, order, offset, byte order) it states is cross-checked against the
others: a disagreement is a conflict naming both sources. A fact no source states is
filled only by a documented rule that is recorded as evidence (source ``"inference"``
or ``"default"``): a dtype alone gives a 1-D shape when the size divides evenly; a
``-1`` dimension is inferred from the size; order defaults to C, offset to 0, byte order
to little-endian. Without a dtype the file is *undetermined* and gets candidates.
Finally the layout must account for the file's size exactly.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._attr_bounds import bound_attrs
from .._attrs import copy_plain
from .._listing import may_exist_in, may_exist_with_suffix, real_path
from ..errors import (
    ArrayNotFoundError,
    ArrayStoreError,
    IncompleteArrayError,
    MetadataError,
    SizeMismatchError,
    UnsafeInputError,
)
from ..meta import ArrayMeta, dtype_to_json
from ..sidecar import Sidecar
from ._realdirs import real_root
from .candidates import Candidate, candidates
from .evidence import Evidence, MetadataConflictError, dtype_label, infer_shape
from .evidence_data import DataContradictsEvidenceError, contradiction
from .filenames import parse_filename
from .legacy_json import evidence_from_mapping, is_own_sidecar, legacy_sidecar_names, manifest_entries, read_json
from .rules import Rule, Rules

try:
    from .. import dialects
except ImportError:  # the header dialects are optional evidence
    dialects = None  # type: ignore[assignment]

__all__ = ["PROVENANCE_KEY", "Resolution", "Status", "is_metadata_file", "resolve"]

Status = Literal["resolved", "undetermined", "conflict", "invalid"]
#: The attrs key under which a resolved file's provenance is recorded.
PROVENANCE_KEY = "arraystore.migrated_from"
#: Suffixes of files that are evidence about other files, never data themselves.
METADATA_SUFFIXES = (".json", ".toml", ".hdr", ".mhd")


def is_metadata_file(path: str | os.PathLike[str]) -> bool:
    """Whether a file in an archive is metadata (sidecar, manifest, header, rules), not data.

    MetaImage ``.mha`` files hold their header and data in one file and count as data.
    """
    return Path(path).suffix.lower() in METADATA_SUFFIXES


@dataclass(frozen=True)
class Resolution:
    """The outcome of resolving one raw file.

    Attributes
    ----------
    path
        The data file.
    name
        Its ``/``-separated path relative to the archive root (the file name without a root).
    status
        ``"resolved"`` (``meta`` and ``offset`` are set), ``"undetermined"`` (no dtype,
        or the sampled data contradict weak evidence, see ``error``: see ``candidates``), ``"conflict"`` (two sources disagree: see ``error``) or
        ``"invalid"`` (a source is broken or the size contradicts the layout: see ``error``).
    meta
        The resolved metadata; its attrs hold the provenance under :data:`PROVENANCE_KEY`
        (none when resolved with ``attrs=False``).
    offset
        Byte offset of the data in the file.
    evidence
        Every source that stated something, in priority order, then the inferences and
        defaults applied.
    candidates
        For an undetermined file: (dtype, shape) pairs consistent with its size.
    error
        For a conflict or an invalid file.
    notes
        Remarks that are not evidence (a file name not used because it is ambiguous, a
        source overridden by a rule).
    dtype_source
        The source that stated the dtype (also in the provenance, when ``meta`` has it).
    """

    path: Path
    name: str
    status: Status
    meta: ArrayMeta | None = None
    offset: int = 0
    evidence: tuple[Evidence, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    error: ArrayStoreError | None = None
    notes: tuple[str, ...] = ()
    dtype_source: str | None = None

    @property
    def source(self) -> str | None:
        """The source that stated the dtype of a resolved file."""
        if self.meta is None:
            return None
        provenance = self.meta.attrs.get(PROVENANCE_KEY)
        return self.dtype_source if provenance is None else str(provenance["source"])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record for the migration manifest."""
        d: dict[str, Any] = {"path": str(self.path), "name": self.name, "status": self.status}
        if self.meta is not None:
            d.update(
                dtype=dtype_to_json(self.meta.dtype), shape=list(self.meta.shape),
                order=self.meta.order, offset=self.offset, source=self.source,
            )
        d["evidence"] = [e.to_dict() for e in self.evidence]
        if self.candidates:
            d["candidates"] = [c.to_dict() for c in self.candidates]
        if self.error is not None:
            d["error"] = {"type": type(self.error).__name__, "message": str(self.error)}
        if self.notes:
            d["notes"] = list(self.notes)
        return d


def _inside(real: str, base: str) -> str | None:
    """``real`` relative to ``base`` (both resolved paths), ``/``-separated; None when not below it.

    A prefix test on the two strings: resolved paths hold no ``..`` or doubled separators left.
    """
    prefix = os.path.join(base, "")
    if real.startswith(prefix) and len(real) > len(prefix):
        rel = real[len(prefix) :]
        return rel if os.sep == "/" else rel.replace(os.sep, "/")
    return None


def _relname(path: Path, root: Path | None, link: bool = True) -> str:
    """``path`` relative to ``root`` once links are resolved (``link=False``: ``path`` itself is no link)."""
    if root is not None:
        if not link:  # the usual case, without pathlib's parsing: the strings of two remembered folders
            rel = _inside(os.path.join(real_root(path.parent), path.name), os.fspath(real_root(root)))
            if rel is not None:
                return rel
        real = path.resolve() if link else real_root(path.parent) / path.name
        try:
            return real.relative_to(real_root(root)).as_posix()
        except ValueError:
            raise UnsafeInputError(
                f"{path} is not inside the archive root {root} once symbolic links are resolved "
                f"({path.resolve()}); refused: copy the file into the archive instead of linking to it"
            ) from None
    return path.name


def _fenced(evidence: Path, fence: Path, data: Path) -> Path:
    """``evidence`` (a file read about ``data``), refused when it resolves outside ``fence`` through a link."""
    real, base = real_path(evidence), real_root(fence)
    if _inside(os.fspath(real), os.fspath(base)) is None and real != base and base not in real.parents:
        raise UnsafeInputError(
            f"{evidence}: this metadata file about {data.name} resolves through a symbolic link to {real}, "
            f"outside {fence}; refused: copy it into the archive instead of linking to it"
        )
    return evidence


def _byteorder_of(dtype: np.dtype[Any]) -> Literal["<", ">"] | None:
    if dtype.fields is not None or dtype.itemsize == 1 or dtype.byteorder == "|":
        return None
    return ">" if dtype.str[0] == ">" else "<"


def _describe_meta(meta: ArrayMeta, offset: int) -> str:
    return f"dtype {dtype_label(meta.dtype)}, shape {list(meta.shape)}, order {meta.order}, offset {offset}"


def _regular_beside(path: Path, name: str, fence: Path) -> Path | None:
    """The file ``name`` beside ``path`` if it is a file (:func:`is_file`), checked by :func:`_fenced`.

    A file that is no link, the usual case, costs one ``lstat`` and a comparison of strings.
    """
    folder = os.path.dirname(os.fspath(path)) or "."  # str(path.parent), without a Path
    if not may_exist_in(folder, name):
        return None
    sp = path.with_name(name)
    try:
        mode = os.lstat(os.path.join(folder, name)).st_mode
    except OSError:
        mode = 0  # what Path.is_file makes of it, below
    if not stat.S_ISREG(mode):
        return _fenced(sp, fence, path) if sp.is_file() else None  # a link, or what is_file refuses or raises
    if _inside(os.path.join(real_root(path.parent), name), os.fspath(real_root(fence))) is None:
        _fenced(sp, fence, path)  # no link here, but the folder may be one out of the fence
    return sp


def _sidecar_evidence(path: Path, fence: Path) -> Evidence | None:
    sp = _regular_beside(path, path.name + ".json", fence)  # sidecar_path(path)
    if sp is None:
        return None
    obj = read_json(sp)  # parsed once (read_sidecar would read it again)
    if not is_own_sidecar(obj):
        return None
    sc = Sidecar.from_dict(obj, source=str(sp))
    if not sc.complete:
        raise IncompleteArrayError(
            f"{path}: its arraystore sidecar says the array was never completed (written by a process "
            "that stopped); it is not migrated: rewrite it, or delete the sidecar and state its layout in rules"
        )
    extra = dict(sc.extra)
    if sc.checksum is not None:
        extra["checksum"] = dict(sc.checksum)
    return Evidence(
        "sidecar", f"{sp.name} (arraystore sidecar, version {sc.version}) states {_describe_meta(sc.meta, sc.offset)}",
        sc.meta, sc.meta.dtype, sc.meta.shape, sc.meta.order, sc.offset, _byteorder_of(sc.meta.dtype),
        extra, dict(sc.meta.attrs),
    )


def _dialect_evidence(path: Path, fence: Path, notes: list[str]) -> Evidence | None:
    if dialects is None:
        return None
    parsed = dialects.detect(path)
    if parsed is None:
        return None
    _fenced(Path(parsed.header_path), fence, path)
    if real_path(Path(parsed.data_path)) != real_path(path):
        notes.append(f"{parsed.dialect} header {parsed.header_path} describes {parsed.data_path}, not this file")
        return None
    meta: ArrayMeta = parsed.meta
    header = Path(parsed.header_path).name
    return Evidence(
        f"dialect:{parsed.dialect}", f"{header} ({parsed.dialect} header) states {_describe_meta(meta, parsed.offset)}",
        meta, meta.dtype, meta.shape, meta.order, parsed.offset, _byteorder_of(meta.dtype),
        dict(parsed.extra or {}), dict(meta.attrs),
    )


def _rule_evidence(rule: Rule, source: str, size: int) -> Evidence:
    detail = f"{rule.describe()} in {source}" + (" (override)" if rule.override else "")
    return Evidence.build(
        f"rules:{rule.glob}", detail, data_bytes=size - (rule.offset or 0), dtype=rule.dtype,
        shape=rule.shape, order=rule.order, offset=rule.offset, byteorder=rule.byteorder,
        extra={"note": rule.note} if rule.note else None,
    )


def _gather(
    path: Path, name: str, root: Path | None, rules: Rules | None, size: int, found: list[Evidence], notes: list[str]
) -> Rule | None:
    """Append every source's evidence to ``found``; return the rule applied, if any."""
    fence = root if root is not None else path.parent
    own = _sidecar_evidence(path, fence)
    if own is not None:
        found.append(own)
    dialect = _dialect_evidence(path, fence, notes)
    if dialect is not None:
        found.append(dialect)
    seen: set[str] = set()
    folder = os.path.dirname(os.fspath(path)) or "."  # str(path.parent), without a Path
    legacy = legacy_sidecar_names(path.name) if may_exist_with_suffix(folder, ".json") else []
    for candidate in legacy:
        # Names first (the folder's listing answers most of them), a Path only for a file that may exist.
        if candidate in seen or (own is not None and candidate == path.name + ".json"):
            continue
        seen.add(candidate)
        sp = _regular_beside(path, candidate, fence)
        if sp is None:
            continue
        obj = read_json(sp)
        if is_own_sidecar(obj):
            continue  # a sidecar of another data file sharing the stem
        strict = sp.name != path.stem + ".json"
        ev = evidence_from_mapping(obj, source=f"legacy-json:{sp.name}", where=str(sp), file_size=size, strict=strict)
        if ev is None:
            notes.append(f"{sp.name} holds JSON without layout keys; not used as evidence")
        else:
            found.append(ev)
    for manifest, entry in manifest_entries(path, root):
        label = _relname(manifest, root) if root is not None else manifest.name
        found.append(evidence_from_mapping(
            entry, source=f"folder-json:{label}", where=f"{manifest} entry for {path.name!r}",
            file_size=size, strict=True,
        ))  # type: ignore[arg-type]  # strict=True never returns None
    rule = rules.match(name) if rules is not None else None
    if rule is not None:
        found.append(_rule_evidence(rule, rules.source if rules is not None else "", size))
    try:
        facts = parse_filename(path.name)
    except MetadataError as exc:
        notes.append(str(exc))
        facts = None
    if facts is not None:
        found.append(Evidence.build(
            "filename", f"file name {path.name!r} states {facts.describe()}", data_bytes=size,
            dtype=facts.dtype, shape=facts.shape, order=facts.order, byteorder=facts.byteorder,
        ))
    return rule


def _key(fact: str, value: Any) -> Any:
    if fact == "dtype" and value.fields is None:
        return value.newbyteorder("<")
    return value


def _show(fact: str, value: Any) -> str:
    if fact == "dtype":
        return dtype_label(value if value.fields is not None else value.newbyteorder("<")).lstrip("<")
    if fact == "shape":
        return str(list(value))
    return str(value)


def _merge_shapes(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    if len(a) != len(b) or any(x != y and -1 not in (x, y) for x, y in zip(a, b, strict=True)):
        return None
    return tuple(y if x == -1 else x for x, y in zip(a, b, strict=True))


def _merge(path: Path, found: list[Evidence], override: Evidence | None, notes: list[str]) -> dict[str, Any]:
    merged: dict[str, tuple[Any, Evidence]] = {}
    ordered = ([override] if override is not None else []) + [e for e in found if e is not override]
    for ev in ordered:
        for fact, value in ev.stated().items():
            if fact not in merged:
                merged[fact] = (value, ev)
                continue
            prev, first = merged[fact]
            if fact == "shape":
                both = _merge_shapes(prev, value)
                if both is not None:
                    merged[fact] = (both, first)
                    continue
            elif _key(fact, prev) == _key(fact, value):
                continue
            if first is override:
                notes.append(f"{ev.source} says {fact} {_show(fact, value)}, overridden by {first.source}")
                continue
            raise MetadataConflictError(
                str(path), fact, (first.source, _show(fact, prev)), (ev.source, _show(fact, value))
            )
    return {fact: value for fact, (value, _) in merged.items()} | {
        f"{fact}_source": ev.source for fact, (_, ev) in merged.items()
    }


def _size_error(path: Path, unit: int, data_bytes: int, itemsize: int) -> SizeMismatchError:
    """The size does not hold a whole number of ``unit``-byte rows."""
    expected = -(-data_bytes // unit) * unit if unit else 0
    return SizeMismatchError(str(path), expected, data_bytes, itemsize)


def _bounded_evidence(ev: Evidence) -> dict[str, Any]:
    """``ev.to_dict()`` with its extra fields within the header-attrs bounds (``arraystore._attr_bounds``)."""
    d = ev.to_dict()
    if "extra" in d:
        d["extra"] = bound_attrs(d["extra"])
    return d


def _provenance_attrs(name: str, facts: dict[str, Any], evidence: list[Evidence]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for ev in evidence:
        for k, v in ev.attrs.items():
            attrs.setdefault(k, v)
    record: dict[str, Any] = {
        "file": name,
        "source": facts["dtype_source"],
        "evidence": [_bounded_evidence(e) for e in evidence],
    }
    dialect = next((e for e in evidence if e.source.startswith("dialect:")), None)
    if dialect is not None:
        record["dialect"] = dialect.source.split(":", 1)[1]
        record["header_extra"] = bound_attrs(dict(dialect.extra))
    try:  # already plain JSON values (the usual case): a copy, without a JSON round trip
        attrs[PROVENANCE_KEY] = copy_plain(record)
    except ValueError:
        attrs[PROVENANCE_KEY] = json.loads(json.dumps(record, default=str))
    return attrs


#: The defaults of the facts no source states, made once (evidence is immutable).
_DEFAULT_OFFSET = Evidence("default", "no source states a header offset: 0 (data from the first byte)", offset=0)
_DEFAULT_LITTLE_ENDIAN = Evidence("default", "no source states the byte order: little-endian", byteorder="<")
_DEFAULT_C_ORDER = Evidence("default", "no source states the order: C (row-major)", order="C")


def _finish(path: Path, name: str, size: int, facts: dict[str, Any], found: list[Evidence],
            notes: list[str], attrs: bool = True, data: list[bytes] | None = None) -> Resolution:
    evidence = list(found)
    offset = facts.get("offset")
    data_bytes = size - (offset or 0)
    shape: tuple[int, ...] | None = facts.get("shape")
    if "dtype" not in facts:
        fixed = shape if shape is not None and -1 not in shape else None
        cands = candidates(max(data_bytes, 0), shape=fixed)
        if fixed is not None and not cands:
            notes.append(f"no common dtype makes shape {list(fixed)} span {data_bytes:,} bytes")
        return Resolution(path, name, "undetermined", offset=offset or 0, evidence=tuple(evidence),
                          candidates=cands, notes=tuple(notes))
    dtype: np.dtype[Any] = facts["dtype"]
    if offset is None:
        offset = 0
        evidence.append(_DEFAULT_OFFSET)
    if data_bytes < 0:
        raise SizeMismatchError(str(path), offset, size, dtype.itemsize)
    byteorder: Literal["<", ">"] | None = facts.get("byteorder")
    byteorder_weak = byteorder is None or facts.get("byteorder_source") == "filename"
    if dtype.fields is None and _byteorder_of(dtype.newbyteorder("<")) is not None:
        if byteorder is None:
            byteorder = "<"
            evidence.append(_DEFAULT_LITTLE_ENDIAN)
        dtype = dtype.newbyteorder(byteorder)
    if shape is None:
        if data_bytes % dtype.itemsize:
            raise _size_error(path, dtype.itemsize, data_bytes, dtype.itemsize)
        shape = (data_bytes // dtype.itemsize,)
        evidence.append(Evidence(
            "inference", f"no source states a shape: 1-D {list(shape)} from {data_bytes:,} bytes of "
            f"{dtype.itemsize}-byte items (a dtype alone gives a 1-D array when the size divides evenly)",
            shape=shape))
    elif -1 in shape:
        full = infer_shape(shape, dtype.itemsize, data_bytes)
        if full is None:
            unit = math.prod(n for n in shape if n != -1) * dtype.itemsize
            raise _size_error(path, unit, data_bytes, dtype.itemsize)
        evidence.append(Evidence(
            "inference", f"shape {list(shape)}: the -1 is {full[shape.index(-1)]:,}, inferred from {data_bytes:,} "
            "bytes of data", shape=full))
        shape = full
    order: Literal["C", "F"] | None = facts.get("order")
    if order is None:
        order = "C"
        evidence.append(_DEFAULT_C_ORDER)
    meta = ArrayMeta(shape, dtype, order)
    if meta.nbytes != data_bytes:
        raise SizeMismatchError(str(path), meta.nbytes, data_bytes, dtype.itemsize, shape)
    contradicted = _check_data(path, name, meta, offset, facts, evidence, notes, byteorder_weak, data)
    if contradicted is not None:
        return contradicted
    if attrs:
        meta = meta._with_attrs(_provenance_attrs(name, facts, evidence))
    return Resolution(path, name, "resolved", meta, offset, tuple(evidence), notes=tuple(notes),
                      dtype_source=facts["dtype_source"])


def _check_data(path: Path, name: str, meta: ArrayMeta, offset: int, facts: dict[str, Any],
                evidence: list[Evidence], notes: list[str], byteorder_weak: bool,
                data: list[bytes] | None = None) -> Resolution | None:
    """An undetermined resolution when the data contradict a reading that only weak evidence supports.

    Weak: a dtype stated only by the file name, a byte order stated only by the file name
    or by no source at all (the little-endian default). Sidecars, header dialects, legacy
    and folder JSON and rules that state a fact are not second-guessed. When ``data`` is a
    list and the check read all of the file's data (a small file), the bytes are appended to
    it for the conversion (the reading is not contradicted).
    """
    dtype_source = facts.get("dtype_source")
    dtype_weak = dtype_source == "filename"
    check, whole = contradiction(path, meta.dtype, offset, meta.nbytes, byteorder_weak=byteorder_weak,
                                 dtype_weak=dtype_weak)
    if check is None:
        if data is not None and whole is not None:
            data.append(whole)
        return None
    bo = "big-endian" if meta.dtype.str[0] == ">" else "little-endian"
    kind = meta.dtype.newbyteorder("=").name
    if dtype_weak and facts.get("byteorder_source") == "filename":
        said = f"the file name says {kind}, {bo}"
    elif dtype_weak:
        said = f"the file name says {kind} and no source states the byte order ({bo} by default)"
    elif facts.get("byteorder_source") == "filename":
        said = f"{dtype_source} says {kind} and the file name says {bo}"
    else:
        said = f"{dtype_source} says {kind} and no source states the byte order ({bo} by default)"
    best = check.best
    # A rule contradicting what the file name states is a conflict unless it overrides it.
    override = " with override = true" if dtype_weak or facts.get("byteorder_source") == "filename" else ""
    error = DataContradictsEvidenceError(
        f"{path}: {said}, but the data contradict that reading and fit {dtype_label(best.dtype)} "
        f"({check.describe()}); nothing is converted on evidence the data contradict: add a rule{override} "
        f"stating dtype and byteorder (the data suggest dtype = \"{best.dtype.newbyteorder('=').name}\", "
        f"byteorder = \"{'big' if best.dtype.str[0] == '>' else 'little'}\")"
    )
    evidence = [*evidence, Evidence("data", f"sampled data: {check.describe()}")]
    readings = sorted((check.chosen, *check.alternatives), key=lambda r: r.score)
    return Resolution(path, name, "undetermined", offset=offset, evidence=tuple(evidence),
                      candidates=tuple(Candidate(r.dtype, meta.shape) for r in readings),
                      error=error, notes=tuple(notes))


def resolve(path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None,
            rules: Rules | None = None, attrs: bool = True) -> Resolution:
    """Decide a raw data file's dtype, shape, order and offset from the evidence.

    Parameters
    ----------
    path
        The raw data file (never modified, never read beyond its size).
    root
        The archive root: folder manifests are looked for up to it, rules globs and
        :attr:`Resolution.name` are relative to it. Without it, only the file's own
        folder is searched and globs match the file name.
    rules
        User rules from :func:`load_rules`; the matching rule is recorded as used.
    attrs
        False: the resolved ``meta`` has no attrs (no provenance, no attributes from the
        sources), for a destination that holds none (``.npy``); the evidence is the same.

    Returns
    -------
    Resolution
        Every foreseen problem with the file or its metadata is a status with an
        ``error`` (``"conflict"``: :class:`MetadataConflictError`; ``"invalid"``:
        ``SizeMismatchError``, ``IncompleteArrayError``, ``MetadataError``, ...).

    Raises
    ------
    ArrayNotFoundError
        When ``path`` does not exist.
    MetadataError
        When ``path`` is a folder or not inside ``root``.
    """
    p = Path(path)
    try:
        st = os.lstat(p)
        link = stat.S_ISLNK(st.st_mode)
        if link:
            st = os.stat(p)
    except OSError as exc:  # what Path.exists() treats as absent
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP):
            raise
        raise ArrayNotFoundError(f"{p}: no such file to resolve") from None
    return _resolve_stat(p, st, link, Path(root) if root is not None else None, rules, attrs)


def _resolve_stat(p: Path, st: os.stat_result, link: bool, root_path: Path | None, rules: Rules | None,
                 attrs: bool, data: list[bytes] | None = None) -> Resolution:
    """:func:`resolve` of a file whose ``stat`` (links followed) the caller has: ``link`` if ``p`` is one.

    ``data``: a list to which the file's data bytes are appended when the data check read all
    of them (a small file resolved on a weak reading), for the conversion to reuse.
    """
    if not stat.S_ISREG(st.st_mode):
        raise MetadataError(f"{p}: expected a raw data file, found a folder or special file")
    name = _relname(p, root_path, link)
    size = st.st_size
    found: list[Evidence] = []
    notes: list[str] = []
    try:
        rule = _gather(p, name, root_path, rules, size, found, notes)
        override = next((e for e in found if e.source.startswith("rules:")), None) if rule and rule.override else None
        facts = _merge(p, found, override, notes)
        return _finish(p, name, size, facts, found, notes, attrs, data)
    except MetadataConflictError as exc:
        return Resolution(p, name, "conflict", evidence=tuple(found), error=exc, notes=tuple(notes))
    except ArrayStoreError as exc:
        return Resolution(p, name, "invalid", evidence=tuple(found), error=exc, notes=tuple(notes))
