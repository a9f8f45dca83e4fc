"""docs/errors.md and docs/fidelity.md say what the code does, cell by cell.

The error tree drawn in docs/errors.md (and in the ``arraystore.errors`` docstring) is parsed
line by line: every drawn name is a class of ``arraystore.errors``, its drawn parent is a
direct base, the builtin named in parentheses is a direct base too (and no builtin that is not
named is), ``(+ X)`` names a second arraystore base; and every class is drawn.
``test_contract_docs.py`` checks names and parents in one direction; this adds the builtins,
the reverse direction and that the two drawings agree. fidelity.md is generated:
``make_fidelity_table.py --check`` must pass and every cell it draws must come from the
backends' declared fidelity, which ``tests/properties`` exercise.
"""

from __future__ import annotations

import builtins
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

import arraystore
from arraystore import errors
from arraystore.errors import UnsupportedDtypeError
from arraystore.fidelity import FAMILIES, Support, byte_order, dtype_family
from arraystore.registry import BACKENDS, backend_class
from arraystore.testing import CONFORMANCE_DTYPES

ROOT = Path(__file__).resolve().parents[2]


class Drawn(NamedTuple):
    parent: str | None
    extra: tuple[str, ...]  # names in "( ... )": builtins, or "+ Other" for a second arraystore base


def _drawn_tree(text: str) -> dict[str, Drawn]:
    """Every ``Name (Extra)`` of the first tree drawn in ``text`` (4 columns per level)."""
    start = text.index("ArrayStoreError\n")
    out: dict[str, Drawn] = {}
    stack: list[str] = []
    for line in text[start:].splitlines():
        if line.strip().startswith("```") or line.strip() == '"""':
            break
        m = re.match(r"^\s*((?:[│ ]   )*)(?:[├└]── )?([A-Z]\w+)(?: \(([^)]*)\))?", line)
        if not m:
            continue
        depth = len(m.group(1)) // 4 + (1 if re.search("[├└]── ", line) else 0)
        name = m.group(2)
        stack[depth:] = [name]
        extra = tuple(x.strip() for x in m.group(3).split(",")) if m.group(3) else ()
        assert name not in out, f"{name} drawn twice"
        out[name] = Drawn(stack[depth - 1] if depth else None, extra)
    return out


def _sources() -> list[tuple[str, str]]:
    return [("docs/errors.md", (ROOT / "docs" / "errors.md").read_text()),
            ("errors.py docstring", errors.__doc__ or "")]


@pytest.mark.parametrize(("where", "text"), _sources(), ids=[w for w, _ in _sources()])
def test_drawn_tree_is_the_class_tree(where: str, text: str) -> None:
    drawn = _drawn_tree(text)
    classes = {n: getattr(errors, n) for n in errors.__all__ if inspect.isclass(getattr(errors, n))}
    assert set(drawn) == set(classes), (f"{where}: drawn but not a class {sorted(set(drawn) - set(classes))}; "
                                       f"a class not drawn {sorted(set(classes) - set(drawn))}")
    for name, (parent, extra) in drawn.items():
        cls = classes[name]
        bases = {b.__name__ for b in cls.__bases__}
        named_builtins = {x for x in extra if not x.startswith("+")}
        second_bases = {x.lstrip("+ ").strip() for x in extra if x.startswith("+")}
        expected = ({parent} if parent else set()) | named_builtins | second_bases
        if parent is None:  # the roots: drawn with the builtin they derive from (none drawn: Exception)
            assert bases == (named_builtins or {"Exception"}), f"{where}: {name} is drawn ({', '.join(extra)}) but derives from {bases}"
            continue
        assert bases == expected, f"{where}: {name} drawn as {expected}, its bases are {bases}"
        for b in named_builtins:
            assert isinstance(getattr(builtins, b, None), type), f"{where}: {name} names {b}, not a builtin"


def test_the_two_drawings_agree() -> None:
    (_, doc), (_, code) = _sources()
    assert _drawn_tree(doc) == _drawn_tree(code)


def test_every_error_that_inherits_a_builtin_is_caught_by_it() -> None:
    # The promise of docs/errors.md: "except FileNotFoundError keeps working around arraystore calls".
    for name, (_parent, extra) in _drawn_tree(_sources()[0][1]).items():
        for b in extra:
            if not b.startswith("+"):  # subclassing is what makes `except <builtin>` catch it
                assert issubclass(getattr(errors, name), getattr(builtins, b)), (name, b)


def test_fidelity_table_is_generated_from_the_declared_fidelity() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "make_fidelity_table.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


ONE_BYTE = {"bool", "int8", "uint8", "bytes", "void"}
#: Cells of the fidelity table that CONFORMANCE_DTYPES (the deterministic per-backend round trip of
#: ``arraystore.testing.ArrayStoreTests``) does not reach; round-tripped here instead.
EXTRA_CELL_DTYPES = {np.dtype(c) for c in ("<g", ">g", "<G", ">G")}


def _cells() -> list[tuple[str, str]]:
    orders = {"structured": ("little", "big", "mixed")}
    return [(f, o) for f in FAMILIES for o in (("n/a",) if f in ONE_BYTE else orders.get(f, ("little", "big")))]


def test_every_fidelity_cell_is_exercised() -> None:
    reached = {(dtype_family(d), byte_order(d)) for d in (*CONFORMANCE_DTYPES, *EXTRA_CELL_DTYPES)}
    drawn = re.findall(r"^\| (\w+) \| (little|big|mixed|n/a) \|", (ROOT / "docs" / "fidelity.md").read_text(), re.M)
    assert set(drawn) == set(_cells())
    assert [c for c in _cells() if c not in reached] == []


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("dtype", sorted(EXTRA_CELL_DTYPES, key=str), ids=str)
def test_extra_cells_round_trip_as_declared(backend: str, dtype: np.dtype[Any], tmp_path: Path) -> None:
    cls = backend_class(backend)
    values = np.array([1.5, -0.0, np.inf, np.nan, 1e-300, -3.25e300, 2.0**-16000], dtype=np.longdouble)
    data = (values if dtype.kind == "f" else values * (1 - 2j)).astype(dtype)
    path = str(tmp_path / f"a.{backend}")
    if cls.fidelity.support(dtype)[0] is Support.NO:
        with pytest.raises(UnsupportedDtypeError):
            arraystore.create(path, data.shape, dtype, backend=backend)
        assert list(tmp_path.iterdir()) == []
        return
    with arraystore.create(path, data.shape, dtype, backend=backend) as s:
        s[...] = data
    with arraystore.open(path) as s:
        got = s[...]
    assert got.dtype == dtype and got.tobytes() == data.tobytes()
