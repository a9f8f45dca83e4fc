"""The house drawn from the imports: no circle through the contract, no import pointing up a layer."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "import_graph.py"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", TOOL)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_no_cycle_through_the_contract(tool: ModuleType) -> None:
    g = tool.graph()
    assert "arraystore.store" in g and "arraystore.access" in g["arraystore.store"]  # the graph is real
    through_store = [c for c in tool.cycles(g) if "arraystore.store" in c]
    assert through_store == []


def test_no_cycles_at_all(tool: ModuleType) -> None:
    assert tool.cycles(tool.graph()) == []


def test_no_import_points_up_a_layer(tool: ModuleType) -> None:
    assert tool.upward(tool.graph()) == []


def test_the_contract_imports_no_backend_and_nothing_above_it(tool: ModuleType) -> None:
    g = tool.graph()
    store_layer = tool.layer_of("arraystore.store")
    assert all(tool.layer_of(m) > store_layer for m in g["arraystore.store"])
    reach: set[str] = set()
    todo = ["arraystore.store"]
    while todo:
        for m in g[todo.pop()]:
            if m not in reach:
                reach.add(m)
                todo.append(m)
    assert not any(m.startswith(("arraystore.backends", "arraystore.conversion")) for m in reach)


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "arraystore" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_tool_sees_lazy_imports_and_skips_type_checking(tool: ModuleType, tmp_path: Path) -> None:
    root = _package(tmp_path, {
        "__init__.py": "",
        "store.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .writer import W\n"
                    "def f():\n    from . import access\n",
        "access.py": "from .store import f\n",
        "writer.py": "import arraystore.store\n",
    })
    g = tool.graph(root)
    assert g["arraystore.store"] == {"arraystore.access"}
    assert g["arraystore.writer"] == {"arraystore.store"}
    assert tool.cycles(g) == [["arraystore.access", "arraystore.store"]]


def test_the_tool_reports_an_upward_import(tool: ModuleType, tmp_path: Path) -> None:
    root = _package(tmp_path, {"__init__.py": "", "errors.py": "from . import store\n", "store.py": ""})
    assert tool.upward(tool.graph(root)) == [("arraystore.errors", "arraystore.store")]


def test_every_module_has_a_layer(tool: ModuleType) -> None:
    for module in tool.graph():
        tool.layer_of(module)  # KeyError names a module missing from LAYERS
