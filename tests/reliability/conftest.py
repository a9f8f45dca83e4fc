"""Shared fixtures of the reliability suite: the tools it drives, loaded from ``tools/``."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` (the folder is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def env_int(name: str, default: int) -> int:
    """An integer from the environment (the full profile sets e.g. ``ARRAYSTORE_KILLS=200``)."""
    return int(os.environ.get(name, default))


@pytest.fixture(scope="session")
def kill_harness() -> ModuleType:
    return load_tool("kill_harness")
