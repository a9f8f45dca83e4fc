"""Open and fully read every case of the hostile corpus in ONE process; record outcomes as JSON lines.

Usage: ``python corpus_runner.py CORPUS_DIR RESULTS.jsonl START TIMEOUT``

For each case from index ``START`` of ``CORPUS_DIR/manifest.json``: open it, read it
with ``iter_blocks`` in blocks of at most 1 MiB, close it, and append one JSON line
``{"index", "name", "outcome", "type", "message"}`` where outcome is ``ok``, ``typed``
(an ``ArrayStoreError``) or ``untyped`` (anything else). A watchdog thread ends the
process with exit status 3 after writing ``outcome: "hang"`` when one case takes
longer than ``TIMEOUT`` seconds; the caller restarts it after that case. The last line
is ``{"peak_rss": bytes}`` from ``resource.getrusage``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

BLOCK = 1 << 20


def main() -> int:
    corpus, results, start, timeout = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    import arraystore
    from arraystore.errors import ArrayStoreError

    cases: list[dict[str, Any]] = json.loads((corpus / "manifest.json").read_text())
    out = open(results, "a", buffering=1)  # noqa: SIM115 - kept open for the watchdog
    current: dict[str, Any] = {"index": None, "since": time.monotonic()}
    lock = threading.Lock()

    def watchdog() -> None:
        while True:
            time.sleep(0.05)
            with lock:
                i = current["index"]
                if i is not None and time.monotonic() - current["since"] > timeout:
                    out.write(json.dumps({"index": i, "name": cases[i]["name"], "outcome": "hang",
                                          "type": None, "message": f"over {timeout} s"}) + "\n")
                    out.write(json.dumps({"peak_rss": peak_rss()}) + "\n")
                    out.flush()
                    os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    os.chdir(corpus)
    warnings.simplefilter("ignore")
    for i in range(start, len(cases)):
        case = cases[i]
        with lock:
            current["index"], current["since"] = i, time.monotonic()
        rec: dict[str, Any] = {"index": i, "name": case["name"], "may_open": case.get("may_open", False)}
        try:
            with arraystore.open(case["path"], "r", backend=case["backend"], **case["options"]) as store:
                for _sel, _block in store.iter_blocks(BLOCK):
                    pass
            rec.update(outcome="ok", type=None, message=repr(store))
        except ArrayStoreError as exc:
            rec.update(outcome="typed", type=type(exc).__name__, message=str(exc))
        except BaseException as exc:
            rec.update(outcome="untyped", type=f"{type(exc).__module__}.{type(exc).__name__}", message=repr(exc)[:500])
        with lock:
            current["index"] = None
        rec["peak_rss_after"] = peak_rss()
        out.write(json.dumps(rec) + "\n")
    out.write(json.dumps({"peak_rss": peak_rss()}) + "\n")
    out.close()
    return 0


def peak_rss() -> int:
    """Peak resident set size of this process, in bytes.

    ``VmHWM`` from ``/proc/self/status``: the high-water mark of this program's own
    address space. ``getrusage``'s ``ru_maxrss`` would not do: Linux carries it across
    ``fork`` + ``exec``, so it starts at the size of the pytest process that launched us.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    sys.exit(main())
