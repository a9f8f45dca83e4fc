"""The hostile-input corpus: every malformed or malicious file gets a typed error, in bounded time and memory.

``tools/make_bad_inputs.py`` writes the corpus into a temporary folder; one subprocess
(``corpus_runner.py``) opens and fully reads every case, with a watchdog per case, and
reports its peak RSS. Nothing else is allowed: no untyped exception, no crash, no hang,
no success on a file that is not a valid array.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, env_int

#: Seconds one case may take before the watchdog calls it a hang.
CASE_TIMEOUT = env_int("ARRAYSTORE_CORPUS_TIMEOUT", 20)
#: The corpus run's peak RSS must stay under this.
RSS_LIMIT = 200 * 1024 * 1024

pytestmark = pytest.mark.slow


def run_corpus(corpus: Path, results: Path) -> tuple[list[dict[str, Any]], int]:
    """Run the corpus in one subprocess (restarted after a hang); returns the records and the peak RSS."""
    env_path = f"{ROOT / 'src'}"
    n = len(json.loads((corpus / "manifest.json").read_text()))
    start, peak = 0, 0
    records: list[dict[str, Any]] = []
    while start < n:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("corpus_runner.py")), str(corpus), str(results),
             str(start), str(CASE_TIMEOUT)],
            env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, capture_output=True, timeout=CASE_TIMEOUT * 30,
        )
        lines = [json.loads(x) for x in results.read_text().splitlines()]
        results.unlink()
        peak = max([peak] + [x["peak_rss"] for x in lines if "peak_rss" in x])
        done = [x for x in lines if "index" in x]
        records += done
        last = done[-1]["index"] if done else start - 1
        if proc.returncode not in (0, 3):  # crashed (e.g. a signal): the case after the last record is at fault
            records.append({"index": last + 1, "name": f"case {last + 1}", "outcome": "crash",
                            "type": f"exit {proc.returncode}", "message": proc.stderr.decode(errors="replace")[-800:]})
            last += 1
        start = last + 1
    return records, peak


@pytest.fixture(scope="module")
def corpus_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], int, int]:
    corpus = tmp_path_factory.mktemp("corpus")
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_bad_inputs.py"), str(corpus)], check=True,
                   env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}, capture_output=True)
    n = len(json.loads((corpus / "manifest.json").read_text()))
    records, peak = run_corpus(corpus, tmp_path_factory.mktemp("results") / "results.jsonl")
    return records, peak, n


def test_corpus_is_large_enough(corpus_results: tuple[list[dict[str, Any]], int, int]) -> None:
    records, _peak, n = corpus_results
    assert n >= 200
    assert len(records) == n
    assert {r["name"].split("/")[0] for r in records} >= {"raw", "npy", "hdf5", "zarr", "dialects"}


def test_every_case_gets_a_typed_error(corpus_results: tuple[list[dict[str, Any]], int, int]) -> None:
    records, _peak, _n = corpus_results
    bad = [f"{r['name']}: {r['outcome']} {r['type']}: {r['message'][:300]}" for r in records
           if r["outcome"] != "typed" and not (r["outcome"] == "ok" and r.get("may_open"))]
    counts = Counter(r["outcome"] for r in records)
    assert not bad, f"{counts}\n" + "\n".join(bad)


def test_corpus_peak_rss_is_bounded(corpus_results: tuple[list[dict[str, Any]], int, int]) -> None:
    _records, peak, _n = corpus_results
    assert peak < RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB over the {RSS_LIMIT / 2**20:.0f} MiB limit"


def test_corpus_cases_hit_every_error_family(corpus_results: tuple[list[dict[str, Any]], int, int]) -> None:
    records, _peak, _n = corpus_results
    types = Counter(r["type"] for r in records if r["outcome"] == "typed")
    assert {"MetadataError", "SizeMismatchError", "UnsafeInputError", "UnsupportedDtypeError"} <= set(types), types


def test_typed_errors_have_useful_messages(corpus_results: tuple[list[dict[str, Any]], int, int]) -> None:
    records, _peak, _n = corpus_results
    short = [f"{r['name']}: {r['type']}: {r['message']!r}" for r in records
             if r["outcome"] == "typed" and len(r["message"]) < 40]
    assert not short, "\n".join(short)
