"""Sampling this process's private memory while a conversion runs.

``RssAnon`` in ``/proc/self/status`` counts private anonymous pages: heap, numpy
buffers, codec outputs. File-backed pages of memory maps (``RssFile``) are
reclaimable page cache and are reported separately, never counted against the
budget. Elsewhere than Linux, psutil's ``rss`` stands in for both.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import TracebackType

__all__ = ["MemorySample", "MemorySampler", "read_status"]

_STATUS = "/proc/self/status"


@dataclass
class MemorySample:
    """Bytes of private (``RssAnon``) and file-backed (``RssFile``) resident memory."""

    anon: int
    file: int


def read_status() -> MemorySample:
    """The current ``RssAnon`` and ``RssFile`` of this process, in bytes."""
    anon = file = -1
    try:
        with open(_STATUS, "rb") as f:
            for line in f:
                if line.startswith(b"RssAnon:"):
                    anon = int(line.split()[1]) * 1024
                elif line.startswith(b"RssFile:"):
                    file = int(line.split()[1]) * 1024
    except OSError:
        pass
    if anon < 0:
        import psutil

        rss = int(psutil.Process().memory_info().rss)
        return MemorySample(rss, 0)
    return MemorySample(anon, max(file, 0))


class MemorySampler:
    """A daemon thread that records the peak ``RssAnon``/``RssFile`` every ``interval`` seconds.

    Use as a context manager; ``baseline`` is the sample at start, ``peak_anon`` and
    ``peak_file`` the maxima seen (including a final sample at stop).
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.baseline = read_status()
        self.peak_anon = self.baseline.anon
        self.peak_file = self.baseline.file
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arraystore-memory-sampler", daemon=True)

    def _sample(self) -> None:
        s = read_status()
        self.peak_anon = max(self.peak_anon, s.anon)
        self.peak_file = max(self.peak_file, s.file)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> MemorySampler:
        """Start sampling."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (takes one last sample)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._sample()

    def __enter__(self) -> MemorySampler:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
