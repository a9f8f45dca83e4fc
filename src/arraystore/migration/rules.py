"""User rules (TOML) mapping file globs to layout facts, and a template writer.

A rules file is a list of ``[[rule]]`` tables::

    [[rule]]
    glob = "instrument_b/*.bin"   # required; matched against the path relative to the archive root
    dtype = "int16"               # any of dtype, shape, order, offset, byteorder; at least one
    shape = [-1, 128]             # one -1 is inferred from the file size
    order = "C"                   # "C" (row-major) or "F" (column-major)
    offset = 512                  # header bytes before the data
    byteorder = "big"             # "little" or "big"
    override = false              # true: this rule wins over every other source (see docs)
    note = "free text"            # kept in the provenance

A glob without ``/`` matches the file name in any folder; with ``/`` it matches the whole
relative path. ``*`` and ``?`` do not cross ``/``; ``**`` matches any number of folders;
``[abc]`` and ``[!abc]`` are character classes. The first matching rule applies; rules
that apply to no file are reported by :meth:`Rules.unused`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import MetadataError
from ._glob import Glob, to_regex
from ._text import one_line, toml_string
from .evidence import (
    ByteOrder,
    dtype_label,
    parse_byteorder,
    parse_dtype,
    parse_offset,
    parse_order,
    parse_shape,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

if TYPE_CHECKING:
    from .resolve import Resolution

__all__ = ["Rule", "Rules", "glob_to_regex", "load_rules", "parse_rules", "suggest_rules"]

_RULE_KEYS = ("glob", "dtype", "shape", "order", "offset", "byteorder", "override", "note")
_FACT_KEYS = ("dtype", "shape", "order", "offset", "byteorder")


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """The reference meaning of a rules glob (``*``, ``?``, ``**``, ``[...]``) as a regular expression.

    Matching itself uses :class:`arraystore.migration._glob.Glob`, which agrees with this
    expression's ``fullmatch`` and runs in linear time; a regular-expression engine can
    backtrack for minutes on globs such as ``"**a" * 12 + "**b"``.
    """
    return to_regex(glob)


def _escape_glob(name: str) -> str:
    """A glob matching ``name``: wildcards bracketed; a backslash or a lone surrogate (no TOML
    spelling, and refused in globs) becomes ``?``, which matches it."""
    escaped = re.sub(r"([*?\[])", r"[\1]", name)
    return "".join("?" if c == "\\" or 0xD800 <= ord(c) <= 0xDFFF else c for c in escaped)


@dataclass(frozen=True)
class Rule:
    """One validated ``[[rule]]``: a glob and the facts it states."""

    index: int
    glob: str
    dtype: np.dtype[Any] | None = None
    byteorder: ByteOrder | None = None
    shape: tuple[int, ...] | None = None
    order: Literal["C", "F"] | None = None
    offset: int | None = None
    override: bool = False
    note: str | None = None
    pattern: Glob = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", Glob(self.glob))

    def matches(self, relpath: str) -> bool:
        """Whether the rule's glob matches ``relpath`` (``/``-separated, relative to the root)."""
        target = relpath if "/" in self.glob else relpath.rsplit("/", 1)[-1]
        return self.pattern.fullmatch(target)

    def describe(self) -> str:
        """``rule 2 (glob 'a/*.bin'): dtype <i2, shape [-1, 128]``."""
        parts = []
        if self.dtype is not None:
            parts.append(f"dtype {dtype_label(self.dtype)}")
        if self.shape is not None:
            parts.append(f"shape {list(self.shape)}")
        for name in ("order", "offset", "byteorder"):
            if getattr(self, name) is not None:
                parts.append(f"{name} {getattr(self, name)}")
        return f"rule {self.index} (glob {self.glob!r}): " + ", ".join(parts)


class Rules:
    """A validated rules file; remembers which rules were applied.

    Use :func:`load_rules` or :func:`parse_rules` to make one.
    """

    def __init__(self, rules: Sequence[Rule], source: str = "<rules>"):
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.source = source
        self._used: set[int] = set()

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"Rules({self.source!r}, {len(self.rules)} rules)"

    def match(self, relpath: str) -> Rule | None:
        """The first rule whose glob matches ``relpath``, recorded as used; ``None`` if none."""
        for rule in self.rules:
            if rule.matches(relpath):
                self._used.add(rule.index)
                return rule
        return None

    def used_indices(self) -> frozenset[int]:
        """The :attr:`Rule.index` of every rule applied so far (sent back by worker processes)."""
        return frozenset(self._used)

    def mark_used(self, indices: Iterable[int]) -> None:
        """Record rules applied elsewhere (in a worker process's copy of these rules) as used."""
        self._used.update(indices)

    def unused(self) -> list[Rule]:
        """The rules that have not been applied to any file so far, in file order."""
        return [r for r in self.rules if r.index not in self._used]


def _rule(index: int, table: Any, source: str) -> Rule:
    where = f"{source}: rule {index}"
    if not isinstance(table, dict):
        raise MetadataError(f"{where}: expected a [[rule]] table, found {table!r}")
    unknown = sorted(set(table) - set(_RULE_KEYS))
    if unknown:
        raise MetadataError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed keys are {', '.join(_RULE_KEYS)}")
    glob = table.get("glob")
    if not isinstance(glob, str) or not glob.strip() or glob.startswith("/") or "\\" in glob:
        raise MetadataError(
            f"{where}: expected 'glob' as a relative, '/'-separated pattern such as 'data/*.bin', found {glob!r}"
        )
    if not any(k in table for k in _FACT_KEYS):
        raise MetadataError(
            f"{where} (glob {glob!r}) states nothing: set at least one of {', '.join(_FACT_KEYS)} "
            "(a template from suggest_rules lists candidates in comments)"
        )
    try:
        dtype, stated = parse_dtype(table["dtype"]) if "dtype" in table else (None, None)
        byteorder = parse_byteorder(table["byteorder"]) if "byteorder" in table else None
        shape = parse_shape(table["shape"]) if "shape" in table else None
        order = parse_order(table["order"]) if "order" in table else None
        offset = parse_offset(table["offset"]) if "offset" in table else None
    except MetadataError as exc:
        raise MetadataError(f"{where} (glob {glob!r}): {exc}") from None
    if stated is not None and byteorder is not None and stated != byteorder:
        raise MetadataError(f"{where}: dtype {table['dtype']!r} contradicts byteorder {table['byteorder']!r}")
    byteorder = byteorder or stated
    if dtype is not None and byteorder is not None and dtype.fields is None:
        dtype = dtype.newbyteorder(byteorder)
    override = table.get("override", False)
    if not isinstance(override, bool):
        raise MetadataError(f"{where}: expected 'override' as true or false, found {override!r}")
    note = table.get("note")
    if note is not None and not isinstance(note, str):
        raise MetadataError(f"{where}: expected 'note' as a string, found {note!r}")
    try:
        return Rule(index, glob, dtype, byteorder, shape, order, offset, override, note)
    except re.error as exc:
        raise MetadataError(f"{where}: invalid glob {glob!r} ({exc})") from None


def rules_from_dict(data: Mapping[str, Any], source: str = "<rules>") -> Rules:
    """Validate a parsed rules document (``{"rule": [...]}``)."""
    unknown = sorted(set(data) - {"rule"})
    if unknown:
        raise MetadataError(
            f"{source}: unknown top-level key(s) {', '.join(unknown)}; a rules file holds only [[rule]] tables"
        )
    tables = data.get("rule", [])
    if not isinstance(tables, list):
        raise MetadataError(f"{source}: expected [[rule]] tables (an array of tables), found a single value")
    return Rules([_rule(i, t, source) for i, t in enumerate(tables, 1)], source)


def parse_rules(text: str, source: str = "<rules>") -> Rules:
    """Parse and validate rules from TOML text.

    Raises
    ------
    MetadataError
        On invalid TOML or an invalid rule; the message names the rule and the key.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MetadataError(f"{source}: invalid TOML ({exc})") from None
    return rules_from_dict(data, source)


def load_rules(path: str | os.PathLike[str]) -> Rules:
    """Read and validate a rules file.

    Parameters
    ----------
    path
        A TOML file of ``[[rule]]`` tables (format in this module's docstring).

    Returns
    -------
    Rules

    Raises
    ------
    MetadataError
        When the file cannot be read, is not TOML, or holds an invalid rule.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MetadataError(f"{path}: cannot read the rules file ({exc})") from None
    return parse_rules(text, str(path))


def suggest_rules(resolutions: Iterable[Resolution]) -> str:
    """A rules-file template for the undetermined files among ``resolutions``.

    Each undetermined file gets a ``[[rule]]`` with its glob and, in comments, the
    facts already known and the candidate (dtype, shape) pairs. The template states
    no fact, so it is refused until the user fills it in: nothing is guessed. A file whose
    name states a reading the data contradict gets ``override = true``, so that the filled-in
    rule wins over the name instead of conflicting with it.
    """
    lines = [
        "# arraystore migration rules: fill in each rule, then pass this file with --rules.",
        "# Keys: dtype, shape (one -1 is inferred from the file size), order, offset, byteorder.",
        "",
    ]
    count = 0
    for res in resolutions:
        if res.status != "undetermined":
            continue
        count += 1
        size = res.path.stat().st_size if res.path.exists() else 0
        contradicted = any(ev.source == "data" for ev in res.evidence)
        named = contradicted and any(ev.source == "filename" and (ev.dtype is not None or ev.byteorder is not None)
                                     for ev in res.evidence)
        why = "the data contradict the weak evidence for its dtype" if contradicted else "no source states its dtype"
        lines.append(f"# {one_line(res.name)}: {size:,} bytes; {why}.")
        for ev in res.evidence:
            lines.append(f"#   known from {one_line(str(ev.source))}: {one_line(str(ev.detail))}")
        if res.candidates:
            lines.append("#   candidates (dtype, shape):")
            lines.extend(
                f"#     dtype = {toml_string(dtype_label(c.dtype))}  shape = {list(c.shape)}" for c in res.candidates
            )
        lines.append("[[rule]]")
        lines.append(f"glob = {toml_string(_escape_glob(res.name))}")
        lines.append(f"# dtype = {toml_string(dtype_label(res.candidates[0].dtype))}" if res.candidates else '# dtype = ""')
        lines.append(f"# shape = {list(res.candidates[0].shape)}" if res.candidates else "# shape = [-1]")
        if named:
            lines.append("override = true  # the file name states another reading: without this the rule conflicts with it")
        lines.append("")
    if not count:
        lines.append("# No undetermined files: no rule is needed.")
    return "\n".join(lines).rstrip("\n") + "\n"
