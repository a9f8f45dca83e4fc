"""Set-up for the reader-side corpus: files written by other tools, read back by arraystore."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

# hdf5plugin registers its filters with HDF5 before any test module imports netCDF4: netCDF4 points
# HDF5_PLUGIN_PATH at its own filter plugins, after which HDF5 fails to create Blosc datasets with
# hdf5plugin's options ("error during user callback"), making test_h5py depend on the import order.
with contextlib.suppress(ImportError):
    import hdf5plugin  # noqa: F401


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One line counting the corpus: cases read the same, refused with a typed error, xfail (known wrong)."""
    from .oracle import OUTCOMES

    if not OUTCOMES:
        return
    passed = {r.nodeid for r in terminalreporter.stats.get("passed", ()) if "tests/outside/" in r.nodeid}
    kinds = {t: set(v) for t, v in OUTCOMES.items() if any(t.endswith(p.split("tests/outside/")[-1]) for p in passed)}
    same = sum(1 for v in kinds.values() if "same" in v)
    refused = sum(1 for v in kinds.values() if v == {"refused"})
    xfail = sum(1 for r in terminalreporter.stats.get("xfailed", ()) if "tests/outside/" in r.nodeid)
    failed = sum(1 for r in terminalreporter.stats.get("failed", ()) if "tests/outside/" in r.nodeid)
    conversions = [o for v in OUTCOMES.values() for o in v if o.startswith("convert-")]
    terminalreporter.write_line(
        f"outside corpus: {same} cases read the same array, {refused} refused with a typed error, "
        f"{xfail} xfail (known wrong, owned elsewhere), {failed} failed; conversions of them: "
        f"{conversions.count('convert-same')} same, {conversions.count('convert-refused')} refused typed"
    )
