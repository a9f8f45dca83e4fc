"""Draw the import graph of ``src/arraystore`` from the source (``ast``, nothing is imported).

Every ``import`` counts, at module level or inside a function (a lazy import is still a
dependency); imports under ``if TYPE_CHECKING:`` do not (they never run). Edges go from
module to module; ``from . import x`` counts as an import of the submodule ``x`` when it
is one, else of the package.

Usage::

    python tools/import_graph.py              # edges, then cycles and upward imports
    python tools/import_graph.py --dot        # Graphviz text (render with: dot -Tsvg)
    python tools/import_graph.py --check      # exit 1 on a cycle or an upward import

The layers (top first) are docs/architecture.md's: an import may point to its own layer
or any layer below it, never up.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "arraystore"

#: Layers, top first; a module belongs to the first layer with a matching pattern.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cli", ("arraystore.cli", "arraystore.cli.*", "arraystore.__main__", "arraystore.testing",
             "arraystore.testing.*")),
    ("virtual parser", ("arraystore.integrations.virtualizarr",)),
    ("migration", ("arraystore.migration", "arraystore.migration.*")),
    ("virtual", ("arraystore.virtual", "arraystore.virtual.*")),
    ("conversion", ("arraystore.conversion", "arraystore.conversion.*", "arraystore.objstore._journal")),
    ("integrations", ("arraystore.integrations", "arraystore.integrations.*")),
    ("services", ("arraystore.parallel", "arraystore.checksums")),
    ("package", ("arraystore",)),
    ("backends", ("arraystore.backends", "arraystore.backends.*", "arraystore.objstore._ranged")),
    ("contract", ("arraystore.store",)),
    ("entry points", ("arraystore._open", "arraystore.writer", "arraystore.access", "arraystore.objstore._dispatch")),
    ("registry", ("arraystore.fidelity", "arraystore.registry")),
    ("parts", ("arraystore.meta", "arraystore.blocks", "arraystore._selection", "arraystore.compression",
               "arraystore.sidecar", "arraystore.dialects", "arraystore.dialects.*", "arraystore._lock",
               "arraystore._fsutil", "arraystore._listing", "arraystore._modes", "arraystore.location",
               "arraystore._optional", "arraystore._attr_bounds", "arraystore._attrs", "arraystore._dtypes",
               "arraystore._gather", "arraystore._values", "arraystore._corder", "arraystore._dimnames",
               "arraystore._iocost", "arraystore.objstore", "arraystore.objstore._lease",
               "arraystore.objstore._rangefile", "arraystore.objstore._dialects", "arraystore._append")),
    ("locality", ("arraystore.filesystems", "arraystore.filesystems.*")),
    ("errors", ("arraystore.errors",)),
)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Every node, skipping the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _walk(other)
            continue
        yield child
        yield from _walk(child)


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The package's modules that module ``name`` imports."""
    known = set(known)
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    out.add(_known_prefix(alias.name, known))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else _known_prefix(base, known))
    out.discard(name)
    return out


def _known_prefix(dotted: str, known: set[str]) -> str:
    parts = dotted.split(".")
    while parts and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts) or PACKAGE


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    mods = modules(root)
    return {name: imports_of(name, path, mods) for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def layer_of(module: str) -> int:
    for i, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, p) for p in patterns):
            return i
    raise KeyError(f"{module}: in no layer of tools/import_graph.py LAYERS; add it there and to docs/architecture.md")


def upward(g: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports from a lower layer to a higher one (the package facade ``arraystore`` counts as the top)."""
    return sorted((a, b) for a, deps in g.items() for b in deps if layer_of(b) < layer_of(a))


def to_dot(g: dict[str, set[str]]) -> str:
    lines = ["digraph arraystore {", "  rankdir=TB; node [shape=box, fontsize=10];"]
    for i, (layer, _) in enumerate(LAYERS):
        members = sorted(m for m in g if layer_of(m) == i)
        if members:
            lines.append(f'  subgraph "cluster_{i}" {{ label="{layer}"; ' + " ".join(f'"{m}";' for m in members) + " }")
    for a in sorted(g):
        for b in sorted(g[a]):
            lines.append(f'  "{a}" -> "{b}";')
    lines.append("}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", action="store_true", help="print Graphviz text")
    parser.add_argument("--check", action="store_true", help="exit 1 on a cycle or an upward import")
    args = parser.parse_args(argv)
    g = graph()
    if args.dot:
        print(to_dot(g))
        return 0
    if not args.check:
        for a in sorted(g):
            print(f"{a} -> {', '.join(sorted(g[a])) or '-'}")
    found = cycles(g)
    up = upward(g)
    for comp in found:
        print("cycle:", " <-> ".join(comp))
    for a, b in up:
        print(f"upward: {a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})")
    return 1 if (found or up) and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
