"""Run the installed ``arraystore`` console script in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import arraystore

SCRIPT = Path(sys.executable).with_name("arraystore")


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``arraystore ARGS`` in a subprocess (the environment, PYTHONPATH included, inherited)."""
    assert SCRIPT.exists(), f"expected the console script at {SCRIPT}; install the package (pip install -e .)"
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=timeout, check=False)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    """A small 3-d raw array with its sidecar."""
    p = tmp_path / "good.dat"
    with arraystore.create(p, (4, 16, 32), "<f4") as s:
        s[...] = np.arange(4 * 16 * 32, dtype="<f4").reshape(4, 16, 32)
    return p
