"""The session check of tests/conftest.py: a test that leaves a process running fails the session.

A real pytest subprocess runs a test that leaves an orphaned grandchild (the way a killed
command leaves its pool workers), with tests/conftest.py loaded as a plugin.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent

LEAKY = textwrap.dedent(
    """
    import subprocess, sys

    def test_leaves_an_orphan():
        # the child starts a long sleep and exits at once: the sleep is orphaned
        subprocess.run([sys.executable, "-c",
                        "import subprocess; subprocess.Popen(['sleep', '300'], stdout=subprocess.DEVNULL, "
                        "stderr=subprocess.DEVNULL)"], check=True)
    """
)
CLEAN = "def test_nothing():\n    pass\n"


def _pytest(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_case.py").write_text(body)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
               ARRAYSTORE_LEFTOVER_WAIT="5")  # the orphan sleeps 300 s: it is still there after 5
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         str(tmp_path / "test_case.py")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="orphans are re-parented to pytest through prctl")
def test_a_leaked_orphan_fails_the_session_and_is_killed(tmp_path: Path) -> None:
    out = _pytest(tmp_path, LEAKY)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 passed" in out.stdout
    assert "the tests left these processes running (now killed)" in out.stderr
    assert "sleep 300" in out.stderr
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "300"]
                and p.ppid() == 1 and p.create_time() > psutil.Process().create_time()]


def test_a_clean_session_passes(tmp_path: Path) -> None:
    out = _pytest(tmp_path, CLEAN)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "left these processes" not in out.stderr
