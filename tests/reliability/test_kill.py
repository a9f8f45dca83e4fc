"""Kill tests: SIGKILL writers and conversions at seeded progress points, then check nothing was lost.

The default (CI) profile kills 39 times (3 per job); ``ARRAYSTORE_KILLS=200`` runs the full profile
(see ``docs/reliability.md`` for its figures and ``tools/kill_harness.py`` for the harness).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from .conftest import env_int

KILLS = env_int("ARRAYSTORE_KILLS", 39)

pytestmark = pytest.mark.slow


def test_kills_lose_nothing_before_the_checkpoint(kill_harness: ModuleType, tmp_path: Path) -> None:
    outcomes = kill_harness.run_all(tmp_path, KILLS, seed=1)
    summary = kill_harness.summarize(outcomes)
    problems = [f"{o.job} killed at {o.kill_at}: {p}" for o in outcomes for p in o.problems]
    assert not problems, "\n".join(problems)
    assert summary["kills"] >= min(KILLS, 30)
    landed = sum(o.killed for o in outcomes)
    assert landed >= summary["kills"] * 0.9, f"only {landed} of {summary['kills']} kills landed before the end"
    # The checkpointing strategies lose at most what was written since the last flush.
    jobs = summary["jobs"]
    assert jobs["writer/every-write.dat"]["max_lost"] <= 1
    assert jobs["writer/every-N/durable.dat"]["max_lost"] <= 16
