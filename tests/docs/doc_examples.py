"""Find the Python examples of README.md and docs/*.md and turn each into a script that checks itself.

Conventions (CONTRIBUTING.md):

- Every `` ```python `` block runs, in the order of its file, each block as its own script
  (``python block.py``, as a reader who copies it would run it), all blocks of one file in one fresh
  temporary folder that holds a copy of ``examples/``; so a block may use files an earlier block of
  the same page wrote, and ``examples/legacy/...`` paths as from the repository root.
- Shown output is a ``# -> value`` comment at the end of an expression statement; the value's
  ``repr`` must equal it (whitespace aside).
- A page whose blocks name ``s3://<bucket>/...`` URLs runs against a loopback S3 server (moto) that
  holds those buckets, empty, with the standard AWS variables in the blocks' environment
  (``conftest.py``): a page shows object storage as a reader with credentials would use it.
- A block that cannot run standalone is fenced `` ```python title="skip-run: <reason>" ``: the
  reason shows as the block's title on the site (and in the source), and the block is not run.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```python(?P<info>[^\n]*)\n(?P<code>.*?)^```", re.M | re.S)
SKIP = re.compile(r'title="skip-run:?(?P<reason>[^"]*)"')
SHOWN = re.compile(r"#\s*->\s*(?P<value>.+?)\s*$")


@dataclass(frozen=True)
class Example:
    """One ``python`` block of a Markdown file."""

    doc: str  # path relative to the repository
    line: int  # line of the opening fence
    code: str
    skip_reason: str | None

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.line}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def examples(path: Path) -> list[Example]:
    """The python blocks of one Markdown file, in order."""
    text = path.read_text()
    found = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        code = m.group("code")
        reason = None
        info = SKIP.search(m.group("info"))
        if info:
            reason = info.group("reason").strip()
        found.append(Example(str(path.relative_to(ROOT)), line, code, reason))
    return found


def checked_script(example: Example) -> str:
    """The block's code with every ``expr  # -> value`` turned into a check, on the same lines."""
    code = example.code
    lines = code.splitlines()
    tree = ast.parse(code, filename=example.name)
    edits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Expr) or node.end_lineno is None or node.end_col_offset is None:
            continue
        last = lines[node.end_lineno - 1]
        shown = SHOWN.search(last[node.end_col_offset:])
        if shown:
            edits.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, shown.group("value")))
    for lineno, col, end_lineno, end_col, value in sorted(edits, reverse=True):
        where = f"{example.doc} block at line {example.line}, line {lineno} of the block"
        last = lines[end_lineno - 1]
        lines[end_lineno - 1] = last[:end_col] + f"), {value!r}, {where!r})"
        first = lines[lineno - 1]
        lines[lineno - 1] = first[:col] + "__doc_check__((" + first[col:]
    return "\n".join(lines) + "\n"


#: Installed as ``sitecustomize`` for the example scripts: ``__doc_check__`` in builtins.
CHECKER = '''
import builtins


def __doc_check__(value, shown, where):
    got = " ".join(repr(value).split())
    if got != " ".join(shown.split()):
        raise AssertionError(f"{where}: the doc shows {shown}, Python gives {got}")


builtins.__doc_check__ = __doc_check__
'''
