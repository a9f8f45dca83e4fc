"""Sampling this process's private memory while a conversion runs.

Private memory is ``RssAnon``: heap, numpy buffers, codec outputs. File-backed pages
of memory maps (``RssFile``) are reclaimable page cache and are reported separately,
never counted against the budget. On Linux both come from ``/proc/self/statm``
(``resident - shared`` and ``shared`` pages: one ``pread`` of a short line, about
2 µs, against 45 µs for parsing ``/proc/self/status``); elsewhere psutil's ``rss``
stands in for both.

Small conversions do not start the sampling thread (starting and joining one costs
about 0.2-1.5 ms, more than a 64 KiB conversion): they sample at their start, after
their blocks moved and at their end, which is where their few buffers are alive.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from types import TracebackType

__all__ = ["SAMPLE_THREAD_MIN", "MemorySample", "MemorySampler", "read_status"]

#: Conversions of at least this many bytes are sampled by a thread every ``interval``.
SAMPLE_THREAD_MIN = 64 * 1024 * 1024

_STATM = "/proc/self/statm"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_statm: tuple[int, int] | None = None  # (pid, fd): /proc/self resolves at open, so a forked child reopens


@dataclass
class MemorySample:
    """Bytes of private (``RssAnon``) and file-backed (``RssFile``) resident memory."""

    anon: int
    file: int


def _statm_fd() -> int | None:
    global _statm
    pid = os.getpid()
    if _statm is not None and _statm[0] == pid:
        return _statm[1]
    try:
        fd = os.open(_STATM, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    _statm = (pid, fd)
    return fd


def read_status() -> MemorySample:
    """The current ``RssAnon`` and ``RssFile`` of this process, in bytes."""
    fd = _statm_fd()
    if fd is not None:
        try:
            fields = os.pread(fd, 256, 0).split()
            resident, shared = int(fields[1]), int(fields[2])
            return MemorySample((resident - shared) * _PAGE, shared * _PAGE)
        except (OSError, IndexError, ValueError):  # pragma: no cover - procfs without statm
            pass
    import psutil

    rss = int(psutil.Process().memory_info().rss)
    return MemorySample(rss, 0)


class MemorySampler:
    """Records the peak ``RssAnon``/``RssFile``: on :meth:`sample` calls and, once started, every ``interval`` s.

    Use as a context manager (which starts the thread), or call :meth:`start` only
    for long runs and :meth:`sample` at the points where buffers are alive.
    ``baseline`` is the sample at construction, ``peak_anon`` and ``peak_file`` the
    maxima seen (including a final sample at :meth:`stop`).
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.baseline = read_status()
        self.peak_anon = self.baseline.anon
        self.peak_file = self.baseline.file
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the sampling thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def sample(self) -> None:
        """Take one sample now."""
        s = read_status()
        self.peak_anon = max(self.peak_anon, s.anon)
        self.peak_file = max(self.peak_file, s.file)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> MemorySampler:
        """Start the sampling thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="arraystore-memory-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (takes one last sample)."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()
        self.sample()

    def __enter__(self) -> MemorySampler:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
