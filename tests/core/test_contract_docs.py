"""The error tree and the hook list are drawn where readers look, and match the code."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import arraystore
from arraystore import errors, store

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _all_modules() -> None:
    for info in pkgutil.walk_packages(arraystore.__path__, "arraystore."):
        if info.name.startswith(("arraystore.integrations", "arraystore.testing", "arraystore.__main__",
                                 "arraystore.cli.__main__")):
            continue
        importlib.import_module(info.name)


def _subclasses(root: type) -> set[type]:
    out: set[type] = set()
    todo = [root]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in out and sub.__module__.startswith("arraystore"):
                out.add(sub)
                todo.append(sub)
    return out


def _tree(text: str) -> dict[str, str | None]:
    """``name -> parent`` from a tree drawn with ├── / └── / │ (4 columns per level)."""
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in text.splitlines():
        m = re.match(r"^(\s*)((?:[│ ]   )*)(?:[├└]── )?([A-Z]\w+(?:Error|Warning))\b", line)
        if not m:
            continue
        depth = len(m.group(2)) // 4 + (1 if ("├" in line or "└" in line) else 0)
        name = m.group(3)
        stack[depth:] = [name]
        parents[name] = stack[depth - 1] if depth else None
    return parents


@pytest.mark.parametrize("where", ["errors.py docstring", "docs/errors.md"])
def test_every_error_is_in_errors_py_and_in_the_drawn_tree(where: str) -> None:
    _all_modules()
    classes = _subclasses(errors.ArrayStoreError) | _subclasses(errors.ArrayStoreWarning)
    classes |= {errors.ArrayStoreError, errors.ArrayStoreWarning}
    text = errors.__doc__ or "" if where.startswith("errors.py") else (DOCS / "errors.md").read_text()
    drawn = _tree(text)
    for cls in sorted(classes, key=lambda c: c.__name__):
        assert cls.__module__ == "arraystore.errors", f"{cls.__name__} is defined in {cls.__module__}"
        assert cls.__name__ in errors.__all__
        assert cls.__name__ in drawn, f"{cls.__name__} missing from the tree in {where}"
        parent = drawn[cls.__name__]
        if parent is not None:
            assert parent in [b.__name__ for b in cls.__bases__], f"{cls.__name__} drawn under {parent}"


NOT_HOOKS = {"_check_open", "_check_writable", "_release_locks", "_replace_attrs", "_abc_impl",
             "_plan", "_as_result", "_iter_rows"}  # derived machinery of selections, not hooks


def test_the_hook_list_names_every_hook() -> None:
    doc = store.__doc__ or ""
    hooks = {name for name, _ in inspect.getmembers(store.ArrayStore)
             if name.startswith("_") and not name.startswith("__") and name not in NOT_HOOKS}
    hooks |= {"chunks", "recorded_checksum", "set_checksum", "guess_can_open"}
    missing = sorted(h for h in hooks if f"``{h}" not in doc)
    assert missing == []
    capabilities = [n for n, v in vars(store.ArrayStore).items()
                    if not n.startswith("_") and isinstance(v, (bool, str, tuple, frozenset, type(None)))]
    assert [c for c in capabilities if f"``{c}``" not in doc] == []


def test_arraystore_checksum_is_the_function_whatever_was_imported_first() -> None:
    import subprocess
    import sys

    code = (
        "import arraystore\n"
        "import arraystore.conversion, arraystore.checksums\n"  # importing the module must not shadow the function
        "print(callable(arraystore.checksum), arraystore.checksum.__module__, callable(arraystore.verify))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "arraystore.checksums", "True"]
