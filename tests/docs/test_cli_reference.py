"""docs/cli.md's reference is generated from the parser and cannot drift from it."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from arraystore.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_reference_is_current() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "make_cli_reference.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_every_option_of_every_command_is_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in COMMANDS:
        section = text.split(f"### `arraystore {name}`", 1)[1].split("### ", 1)[0]
        for action in sub.choices[name]._actions:
            if action.help == argparse.SUPPRESS:  # --debug, documented once for all commands
                continue
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in section or f", {flag}" in section, f"{name} {flag} missing"
    for flag in ("--root", "--include", "--exclude", "--recheck", "--durable", "--max-memory"):
        assert flag in text
