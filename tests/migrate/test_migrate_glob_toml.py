"""Globs match in linear time and agree with their reference meaning; names are escaped in every TOML/text output."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from arraystore.migration import migrate
from arraystore.migration._glob import Glob
from arraystore.migration._text import one_line, toml_string
from arraystore.migration.candidates import candidates
from arraystore.migration.evidence import Evidence
from arraystore.migration.resolve import Resolution
from arraystore.migration.rules import Rule, glob_to_regex, parse_rules, suggest_rules

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PIECES = ["a", "b", ".", "/", "*", "?", "**", "**/", "[ab]", "[!a]", "[a-b]", "[", "]", "\n"]
patterns = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)
texts = st.lists(st.sampled_from(["a", "b", ".", "/", "\n", "c", "ab/"]), max_size=10).map("".join)


@settings(max_examples=400)
@given(pattern=patterns, text=texts)
def test_glob_agrees_with_its_reference_regex(pattern: str, text: str) -> None:
    expected = glob_to_regex(pattern).fullmatch(text) is not None
    g = Glob(pattern)
    assert g.automaton_match(text) == expected
    assert g.automaton_match(text) == expected  # again, through the cached transitions
    assert g.fullmatch(text) == expected


@given(pattern=patterns, text=texts)
def test_glob_work_is_bounded_by_pattern_times_text(pattern: str, text: str) -> None:
    g = Glob(pattern)
    g.automaton_match(text)
    assert g.steps <= 2 * (len(pattern) + 2) * (len(text) + 2)


def test_hostile_glob_finishes_with_linear_work() -> None:
    pattern = "**a" * 12 + "**b"
    text = "a" * 2000 + "c"
    g = Glob(pattern)
    assert not g.fullmatch(text)
    assert g.steps <= 2 * (len(pattern) + 2) * (len(text) + 2)
    rules = parse_rules(f'[[rule]]\nglob = "{pattern}"\ndtype = "u1"\n')
    assert rules.match(text) is None


def test_hostile_include_glob_in_migrate_finishes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / ("a" * 200 + "c.dat")).write_bytes(b"\0" * 4)
    report = migrate(src, tmp_path / "dst", include=["**a" * 12 + "**b"], workers=1, dry_run=True)
    assert report.records == []


names = st.lists(
    st.characters(exclude_characters="\x00")
    | st.sampled_from(["\n", "\r", '"', "'", "\\", "\x7f", "\u2028", "\x85", "*", "[", "?", "]", "\udcff", "é", "😀", "#"]),
    min_size=1,
    max_size=24,
).map("".join)


def _undetermined(name: str) -> Resolution:
    return Resolution(
        path=Path("/nonexistent/never"),
        name=name,
        status="undetermined",
        evidence=(Evidence(source=f"legacy-json:{name}", detail=f"{name}\n[[rule]]\nglob = '*'\ndtype = 'u1'"),),
        candidates=candidates(16, limit=3),
    )


@settings(max_examples=200)
@given(name_list=st.lists(names, min_size=1, max_size=3, unique=True))
def test_suggested_rules_hold_exactly_one_inactive_rule_per_name(name_list: list[str]) -> None:
    text = suggest_rules([_undetermined(n) for n in name_list])
    text.encode("utf-8")  # valid UTF-8 whatever the names
    data = tomllib.loads(text)
    assert set(data) == {"rule"}
    tables = data["rule"]
    assert len(tables) == len(name_list)
    for table, name in zip(tables, name_list):
        assert set(table) == {"glob"}  # no fact: nothing injected, nothing guessed
        rule = Rule(1, table["glob"], dtype=np.dtype("u1"))
        assert rule.matches(name)


@given(text=names)
def test_toml_string_reads_back_exactly(text: str) -> None:
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return
    assert tomllib.loads(f"k = {toml_string(text)}")["k"] == text


@given(text=names)
def test_one_line_is_one_line_and_tells_names_apart(text: str) -> None:
    out = one_line(text)
    assert len(out.splitlines()) <= 1 and "\n" not in out and "\r" not in out
    out.encode("utf-8")
    assert one_line(text + "x") != out


def test_newline_in_a_real_file_name_injects_no_rule(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    evil = 'x"\n[[rule]]\nglob = "**"\ndtype = "u1"\n#.bin'
    (src / evil).write_bytes(b"\0" * 64)
    dst = tmp_path / "dst"
    report = migrate(src, dst, workers=1)
    assert [r.status for r in report.records] == ["undetermined"]
    text = (dst / "rules-suggested.toml").read_text(encoding="utf-8")
    tables = tomllib.loads(text)["rule"]
    assert len(tables) == 1 and set(tables[0]) == {"glob"}
    summary = (dst / "migration-summary.txt").read_text(encoding="utf-8")
    assert "\n[[rule]]" not in summary
