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


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removeprefix("test_").removesuffix(".py")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Count the corpus per writer: cases read the same, refused with a typed error, xfail, failed."""
    from .oracle import OUTCOMES

    if not OUTCOMES:
        return
    stats = terminalreporter.stats
    passed = {r.nodeid.split("tests/outside/")[-1] for r in stats.get("passed", ()) if "outside/" in r.nodeid}
    rows: dict[str, list[int]] = {}
    for test, outcomes in OUTCOMES.items():
        if test.split("tests/outside/")[-1] not in passed:
            continue
        row = rows.setdefault(_module(test), [0, 0, 0, 0, 0, 0])
        row[0 if "same" in outcomes else 1] += 1
        row[4] += outcomes.count("convert-same")
        row[5] += outcomes.count("convert-refused")
    for column, key in ((2, "xfailed"), (3, "failed")):
        for report in stats.get(key, ()):
            if "outside/" in report.nodeid:
                rows.setdefault(_module(report.nodeid), [0, 0, 0, 0, 0, 0])[column] += 1
    terminalreporter.section("outside corpus")
    terminalreporter.write_line("writer: read the same / refused typed / xfail / failed; conversions same / refused")
    for name, r in [*sorted(rows.items()), ("total", [sum(c) for c in zip(*rows.values())])]:
        terminalreporter.write_line(f"{name}: {r[0]} / {r[1]} / {r[2]} / {r[3]}; {r[4]} / {r[5]}")
