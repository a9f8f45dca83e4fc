"""Functions the parallel tests send to worker processes (imported there by module name)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np


def block_sum(
    block: np.ndarray[Any, Any], sel: tuple[slice, ...]
) -> tuple[tuple[tuple[int, int], ...], float]:
    return tuple((s.start, s.stop) for s in sel), float(np.sum(block, dtype=np.float64))


def fail_after_first(block: np.ndarray[Any, Any], sel: tuple[slice, ...]) -> int:
    if sel[0].start != 0:
        raise ZeroDivisionError("boom")
    return 0


def pid_once_two_met(folder: str, block: np.ndarray[Any, Any], sel: tuple[slice, ...]) -> int:
    """This worker's pid, once a second process has run a task too (``folder`` holds one file per process).

    A worker that finds no other within 60 s (a safety net) gives up for every task, and the caller
    sees one pid.
    """
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(os.listdir(folder)) < 2:  # the "gave-up" file counts too: after it, no task waits
        if time.monotonic() > deadline:
            Path(folder, "gave-up").touch()
        time.sleep(0.001)
    return os.getpid()


def is_memmap_view(block: np.ndarray[Any, Any], sel: tuple[slice, ...]) -> bool:
    return isinstance(block, np.memmap) and not block.flags.writeable
