"""Rules files: validation, glob semantics, unused-rule reporting, the template writer."""

from __future__ import annotations

import numpy as np
import pytest

from arraystore.errors import MetadataError
from arraystore.migration import load_rules, parse_rules, resolve, suggest_rules
from arraystore.migration.rules import glob_to_regex


def test_load_rules_and_fields(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[rule]]\nglob = "a/*.bin"\ndtype = "uint16"\nbyteorder = "big"\nshape = [-1, 4]\norder = "F"\n'
        'offset = 8\nnote = "from the logbook"\n\n[[rule]]\nglob = "*.raw"\ndtype = "<f4"\n'
    )
    rules = load_rules(path)
    assert len(rules) == 2
    first = rules.rules[0]
    assert (first.dtype.str, first.shape, first.order, first.offset, first.byteorder) == (">u2", (-1, 4), "F", 8, ">")
    assert rules.rules[1].dtype.str == "<f4"
    assert "rule 1" in first.describe()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rule]]\nglob = "*.bin"\ndtyp = "f4"\n', "unknown key"),
        ('[[rule]]\nglob = "*.bin"\n', "states nothing"),
        ('[[rule]]\ndtype = "f4"\n', "glob"),
        ('[[rule]]\nglob = "/abs/*.bin"\ndtype = "f4"\n', "relative"),
        ('[[rule]]\nglob = "*.bin"\ndtype = "float"\n', "ambiguous"),
        ('[[rule]]\nglob = "*.bin"\ndtype = "f4"\nshape = [-1, -1]\n', "shape"),
        ('[[rule]]\nglob = "*.bin"\ndtype = "f4"\norder = "X"\n', "order"),
        ('[[rule]]\nglob = "*.bin"\ndtype = "f4"\noffset = -1\n', "offset"),
        ('[[rule]]\nglob = "*.bin"\ndtype = "f4"\nbyteorder = "middle"\n', "byte order"),
        ('[[rule]]\nglob = "*.bin"\ndtype = "<f4"\nbyteorder = "big"\n', "contradicts"),
        ('[[rule]]\nglob = "*.bin"\ndtype = "f4"\noverride = "yes"\n', "override"),
        ('[[rule]]\nglob = "*.bin"\ndtype = "f4"\nnote = 3\n', "note"),
        ('rule = 3\n', "array of tables"),
        ('version = 2\n', "unknown top-level"),
        ('[[rule]\n', "invalid TOML"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(text, message):
    with pytest.raises(MetadataError, match=message):
        parse_rules(text, "r.toml")


def test_unreadable_rules_file(tmp_path):
    with pytest.raises(MetadataError, match="cannot read"):
        load_rules(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("*.bin", "deep/folder/x.bin", True),
        ("a/*.bin", "a/x.bin", True),
        ("a/*.bin", "a/b/x.bin", False),
        ("a/**/x.bin", "a/x.bin", True),
        ("a/**/x.bin", "a/b/c/x.bin", True),
        ("**/*.dat", "x.dat", True),
        ("run_??.dat", "run_01.dat", True),
        ("run_??.dat", "run_001.dat", False),
        ("run_[0-4].dat", "run_3.dat", True),
        ("run_[!0-4].dat", "run_3.dat", False),
        ("frames_[<]f4.dat", "frames_<f4.dat", True),
        ("a+b.dat", "a+b.dat", True),
    ],
)
def test_glob_semantics(glob, path, matches):
    rules = parse_rules(f'[[rule]]\nglob = "{glob}"\ndtype = "u1"\n')
    assert (rules.match(path) is not None) is matches


def test_first_match_wins_and_unused_rules_are_reported():
    rules = parse_rules(
        '[[rule]]\nglob = "a/*"\ndtype = "u1"\n[[rule]]\nglob = "*.bin"\ndtype = "f4"\n'
        '[[rule]]\nglob = "never/*"\ndtype = "f8"\n'
    )
    assert rules.unused() == list(rules.rules)
    assert rules.match("a/x.bin").index == 1
    assert [r.index for r in rules.unused()] == [2, 3]
    assert rules.match("b/x.bin").index == 2
    assert [r.glob for r in rules.unused()] == ["never/*"]
    assert rules.match("zzz") is None


def test_glob_to_regex_unclosed_bracket_is_literal():
    assert glob_to_regex("a[b").fullmatch("a[b")


def test_suggest_rules_template_is_refused_until_filled_in(tmp_path):
    a = tmp_path / "odd [1].bin"
    a.write_bytes(np.zeros(256, "u1").tobytes())
    b = tmp_path / "known_f4.bin"
    b.write_bytes(np.zeros(4, "<f4").tobytes())
    resolutions = [resolve(a, root=tmp_path), resolve(b, root=tmp_path)]
    text = suggest_rules(resolutions)
    assert text.count("[[rule]]") == 1 and "known_f4" not in text
    assert '# dtype = "<f4"' in text and "candidates" in text
    with pytest.raises(MetadataError, match="states nothing"):
        parse_rules(text)
    filled = text.replace('# dtype = "<f4"', 'dtype = "<f4"')
    rules = parse_rules(filled)
    r = resolve(a, root=tmp_path, rules=rules)
    assert r.status == "resolved" and r.meta.shape == (64,)
    assert suggest_rules([resolutions[1]]).strip().endswith("no rule is needed.")
