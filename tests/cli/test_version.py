"""One version number: ``arraystore.__version__``, the package metadata and ``arraystore --version`` agree."""

from __future__ import annotations

import re
import sys
from importlib.metadata import version
from pathlib import Path

import arraystore

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]


def test_version_has_one_source() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert version("arraystore") == arraystore.__version__, "reinstall the package: pip install -e ."
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"arraystore {arraystore.__version__}"


def test_changelog_has_unreleased_and_the_current_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", text, re.M)
    assert versions and versions[0] == arraystore.__version__
