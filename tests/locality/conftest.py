"""Fixtures for the locality tests: a real sshfs mount over loopback, and a clean policy/cache per test."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from arraystore.filesystems import ENV_VAR, clear_cache, set_network_fs_policy

_TOOLS = Path(__file__).resolve().parents[2] / "tools"


def _load_sshfs_helper() -> ModuleType:
    name = "arraystore_tools_sshfs_loopback"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _TOOLS / "sshfs_loopback.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _unavailable(reason: str) -> None:
    """Skip on a developer machine without sshfs; fail in CI, where the mount is required."""
    if os.environ.get("CI"):
        pytest.fail(f"sshfs loopback mount required in CI but unavailable: {reason}", pytrace=False)
    pytest.skip(f"sshfs loopback mount unavailable: {reason}")


@pytest.fixture(scope="session")
def sshfs_mount() -> Iterator[Path]:
    """A folder on a real ``fuse.sshfs`` mount (sshd on 127.0.0.1, throwaway keys)."""
    if not sys.platform.startswith("linux"):
        _unavailable(f"sshfs loopback is set up on Linux only, not {sys.platform}")
    helper = _load_sshfs_helper()
    reason = helper.unavailable_reason()
    if reason:
        _unavailable(reason)
    try:
        ctx = helper.sshfs_loopback()
        mount = ctx.__enter__()
    except helper.SshfsUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield Path(mount.mount_point)
    finally:
        ctx.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def _clean_locality_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(ENV_VAR, raising=False)
    set_network_fs_policy(None)
    clear_cache()
    yield
    set_network_fs_policy(None)
    clear_cache()
