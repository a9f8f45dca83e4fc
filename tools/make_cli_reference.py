"""Generate the command-line reference in docs/cli.md from the parser itself.

Usage::

    python tools/make_cli_reference.py          # rewrite the generated part of docs/cli.md
    python tools/make_cli_reference.py --check  # exit 1 if it is stale (CI)

Everything between the ``<!-- cli-reference:start -->`` and ``<!-- cli-reference:end -->``
markers is generated: every sub-command's usage, each option with its default and help,
and the exit codes (from ``arraystore.cli._errors.EXIT_CODES``). Text outside the markers is
written by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arraystore.cli import COMMANDS, build_parser
from arraystore.cli._errors import EXIT_CODES

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;").replace("*", "\\*")


def _name(action: argparse.Action) -> str:
    if not action.option_strings:
        return str(action.metavar or action.dest).upper() + ("..." if action.nargs in ("+", "*") else "")
    name = action.option_strings[-1]  # the long form
    if action.nargs != 0:
        name += " " + str(action.metavar or (
            "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()))
    return name


def _usage(parser: argparse.ArgumentParser) -> str:
    """One usage line, independent of the Python version's help formatter and the terminal width."""
    actions = [a for a in parser._actions
               if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and a.help != argparse.SUPPRESS]
    options = [f"[{_name(a)}]" for a in actions if a.option_strings]
    positionals = [_name(a) for a in actions if not a.option_strings]
    return " ".join([parser.prog, *options, *positionals])


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        name = _name(action)
        if len(action.option_strings) > 1:
            name = ", ".join(action.option_strings[:-1]) + ", " + name
        help_text = action.help or ""
        has_default = action.option_strings and action.nargs != 0 and action.default not in (None, [], argparse.SUPPRESS)
        if has_default and "default" not in help_text:
            help_text += f" (default: {action.default})"
        rows.append(f"| `{_cell(name)}` | {_cell(help_text)} |")
    return rows


def render() -> str:
    """The generated part of docs/cli.md."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = [START, "", "```text", _usage(parser).replace("[--debug]", "[--debug] COMMAND ..."), "```", "", "| option | meaning |", "| --- | --- |"]
    out += _option_rows(parser)
    for name in COMMANDS:
        p = sub.choices[name]
        out += ["", f"### `arraystore {name}`", ""]
        if p.description:
            out += [" ".join(p.description.split()), ""]
        out += ["```text", _usage(p), "```", "", "| argument | meaning |", "| --- | --- |"]
        out += _option_rows(p)
        if p.epilog:
            out += ["", " ".join(p.epilog.split())]
    out += ["", "### Exit codes", "", "| exit code | meaning |", "| --- | --- |"]
    out += [f"| {code} | {_cell(text)} |" for code, text in EXIT_CODES.items()]
    out += ["", END]
    return "\n".join(out)


def updated(text: str) -> str:
    """``text`` with its generated part replaced."""
    if START not in text or END not in text:
        raise SystemExit(f"{DOC}: expected the markers {START} and {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + render() + tail


def main(argv: list[str]) -> int:
    text = DOC.read_text()
    new = updated(text)
    if "--check" in argv:
        if new != text:
            print(f"{DOC} is stale: run python tools/make_cli_reference.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
