"""Pools started from every kind of main module: scripts, stdin, ``python -c``, ``python -i``, notebooks.

Workers of the forkserver/spawn start methods re-import a main *script*; an unguarded one
must be refused with a clear error before a pool breaks, and functions defined where
workers cannot import them (stdin, ``-c``, an interactive session, a notebook cell) must
be sent by value. Every case runs a real Python subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import arraystore

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the cases below use POSIX shells' stdin")

BODY = """
import sys
import numpy as np
from arraystore.parallel import map_blocks

def total(block, sel):
    return float(np.asarray(block, dtype="f8").sum())
"""
CALL = "print('RESULT', sum(map_blocks(total, sys.argv[-1] if len(sys.argv) > 1 else {path!r}, workers=2, max_bytes=4000)))"


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))


@pytest.fixture
def array(tmp_path: Path) -> tuple[str, float]:
    data = np.arange(10_000, dtype="f4").reshape(100, 100)
    path = str(tmp_path / "a.npy")
    with arraystore.create(path, data.shape, data.dtype) as store:
        store[...] = data
    return path, float(data.sum(dtype="f8"))


def _run(argv: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=_env(), cwd=cwd, timeout=120)


def _result(out: subprocess.CompletedProcess[str]) -> float:
    assert out.returncode == 0, out.stderr
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
    assert line, out.stdout + out.stderr
    return float(line[-1].split()[1])


def _guarded(path: str) -> str:
    return BODY + 'if __name__ == "__main__":\n    ' + CALL.format(path=path) + "\n"


def _unguarded(path: str) -> str:
    return BODY + CALL.format(path=path) + "\n"


@pytest.mark.parametrize("guarded", [True, False], ids=["guarded", "unguarded"])
def test_stdin_script_runs_with_functions_sent_by_value(array: tuple[str, float], tmp_path: Path, guarded: bool) -> None:
    path, expected = array
    code = (_guarded(path) if guarded else _unguarded(path)) + "print('FILE', __file__)\n"
    out = _run([sys.executable, "-"], tmp_path, stdin=code)
    assert _result(out) == expected
    assert "FILE <stdin>" in out.stdout  # the main module's file name is given back after the pool


def test_python_c_runs(array: tuple[str, float], tmp_path: Path) -> None:
    path, expected = array
    assert _result(_run([sys.executable, "-c", _unguarded(path)], tmp_path)) == expected


def test_python_i_interactive_session_runs(array: tuple[str, float], tmp_path: Path) -> None:
    path, expected = array
    # An interactive session reads statements one by one: a blank line ends the function.
    session = BODY.replace("def total", "\ndef total") + "\n" + CALL.format(path=path) + "\n"
    out = _run([sys.executable, "-i", "-q"], tmp_path, stdin=session)
    assert _result(out) == expected


def test_notebook_like_main_module_runs(array: tuple[str, float], tmp_path: Path) -> None:
    """A notebook's ``__main__``: a module object without ``__file__``, cells executed into it."""
    path, expected = array
    driver = textwrap.dedent(
        f"""
        import sys, types
        import importlib.util
        user = types.ModuleType("__main__")   # what IPython installs: no __file__
        user.__dict__["__builtins__"] = __builtins__
        # a kernel started with `python -m ipykernel_launcher` may leave a module's spec behind
        user.__spec__ = importlib.util.find_spec("json")
        sys.modules["__main__"] = user
        cells = [{BODY!r}, {CALL.format(path=path)!r}]
        for cell in cells:
            exec(compile(cell, "<cell>", "exec"), user.__dict__)
        """
    )
    assert _result(_run([sys.executable, "-c", driver], tmp_path)) == expected


def test_notebook_lambda_is_sent_by_value(array: tuple[str, float], tmp_path: Path) -> None:
    path, expected = array
    code = f"from arraystore.parallel import map_blocks\nprint('RESULT', sum(map_blocks(lambda b, s: float(b.sum(dtype='f8')), {path!r}, workers=2)))"
    assert _result(_run([sys.executable, "-c", code], tmp_path)) == expected


def test_guarded_script_runs(array: tuple[str, float], tmp_path: Path) -> None:
    path, expected = array
    script = tmp_path / "job.py"
    script.write_text(_guarded(path))
    assert _result(_run([sys.executable, str(script)], tmp_path)) == expected


def test_unguarded_script_gets_a_clear_error_not_a_broken_pool(array: tuple[str, float], tmp_path: Path) -> None:
    path, _ = array
    script = tmp_path / "job.py"
    script.write_text(_unguarded(path))
    out = _run([sys.executable, str(script)], tmp_path)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("arraystore.errors.UnguardedMainError: ")
    assert f"{script}, line {_unguarded(path).count(chr(10))}" in last
    assert 'if __name__ == "__main__":' in last
    assert "BrokenProcessPool" not in out.stderr


def test_unguarded_call_through_a_function_is_detected(array: tuple[str, float], tmp_path: Path) -> None:
    path, _ = array
    script = tmp_path / "job.py"
    script.write_text(BODY + "def main():\n    " + CALL.format(path=path) + "\nmain()\n")
    out = _run([sys.executable, str(script)], tmp_path)
    assert "UnguardedMainError" in out.stderr.strip().splitlines()[-1], out.stderr


MIGRATE = """
import sys
import numpy as np
import arraystore.migration
src, dst = sys.argv[1], sys.argv[2]
for i in range(4):
    np.arange(1000, dtype="<f8").tofile(f"{src}/f{i}_float64.dat")
report = arraystore.migration.migrate(src, dst, to="raw", workers=2)
print("RESULT", report.exit_code)
"""


def test_migrate_from_stdin_with_workers(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    out = _run([sys.executable, "-", str(tmp_path / "src"), str(tmp_path / "dst")], tmp_path, stdin=MIGRATE)
    assert _result(out) == 0
    assert len(list((tmp_path / "dst").glob("*.dat"))) == 4


def test_migrate_from_unguarded_script_gets_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    script = tmp_path / "mig.py"
    script.write_text(MIGRATE)
    out = _run([sys.executable, str(script), str(tmp_path / "src"), str(tmp_path / "dst")], tmp_path)
    assert "UnguardedMainError" in out.stderr.strip().splitlines()[-1], out.stderr
    assert "BrokenProcessPool" not in out.stderr
