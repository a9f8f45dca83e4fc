"""Functions the parallel tests send to worker processes (imported there by module name)."""

from __future__ import annotations

import os
import time
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


def slow_pid(block: np.ndarray[Any, Any], sel: tuple[slice, ...]) -> int:
    time.sleep(0.05)  # long enough that one worker cannot take every task
    return os.getpid()


def is_memmap_view(block: np.ndarray[Any, Any], sel: tuple[slice, ...]) -> bool:
    return isinstance(block, np.memmap) and not block.flags.writeable
