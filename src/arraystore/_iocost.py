"""What a gather of rows costs on this machine: a calibration measured on the file's own device, and the model.

:func:`arraystore.access.take` reads rows of a raw or ``.npy`` file in one of three ways:

``"sequential"``
    one pass of large ``preadv`` calls over the span from the first to the last row,
    picking the rows from each block;
``"gather"``
    only the runs of rows: ``posix_fadvise(WILLNEED)`` on every run ahead of the copy, so the
    kernel queues their reads in parallel, then a copy from the memory map (threads of
    ``preadv`` for stores read with buffered I/O);
``"mapped"``
    a sorted-order gather from the memory map, nothing advised: each page fault reads
    one read-around window of the device (``read_ahead_kb``), one fault at a time.

Which is fastest depends on the device (latency of one read, of many in parallel, its
sequential rate, its read-around window), on how much of the file is already in the
page cache, and on how the rows spread over the file. :func:`measure` measures the
device on the file itself, each mode's reads as that mode makes them: a few ``O_DIRECT``
reads (which neither use nor disturb the page cache); a small ``WILLNEED`` gather of single
pages that are not in the page cache and one of ranges of 32 pages, read through a map as
``"gather"`` does at scale (a run's share, and a further page's, with the kernel's work per
page); a read through the kernel's read-ahead, which is what the sequential pass gets; and a
sorted gather from a map of rows at random places, which is what ``"mapped"`` gets (the
pages its first fault reads are its read-around window). What they read is evicted again;
:func:`calibration_for`
does that once per device and process (and reads or writes a user cache file when asked,
never anything next to the data); :func:`gather_costs` turns a calibration and a gather's
statistics into seconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import json
import mmap
import os
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "MAX_MERGE_GAP",
    "MODES",
    "Calibration",
    "GatherStats",
    "cache_file",
    "cached_calibration",
    "calibration_for",
    "choose_gather",
    "gather_costs",
    "libc_mincore",
    "measure",
    "memory_calibration",
    "merge_gap_bytes",
    "reset",
    "resident_fraction",
    "resident_pages",
]

MODES: tuple[str, ...] = ("sequential", "gather", "mapped")
PAGE = mmap.PAGESIZE

#: Reads of the measurement (bounded: about 50 small reads and 8 MiB per device).
_SINGLE_READS = 16
_PARALLEL_READS = 32
_PARALLEL_THREADS = 8
_SEQUENTIAL_BYTES = 8 << 20
_SEQUENTIAL_REQUEST = 1 << 20
#: Pages sampled to estimate how much of a gather's span is in the page cache.
_RESIDENCY_SAMPLES = 64
#: Pages of the measured ``WILLNEED`` gather (at most; a quarter of a small file's).
_GATHER_PAGES = 1024
#: Fewer pages out of the page cache than this: no gather is measured (the ``O_DIRECT`` figure serves).
_GATHER_MIN_PAGES = 32
#: Version of the calibration entries in the user cache file; entries of another version are measured again.
FORMAT = 4


@dataclass(frozen=True)
class Calibration:
    """Measured costs of reading one device (all in seconds or bytes per second).

    Attributes
    ----------
    device
        What was measured (``"<host>:<major>:<minor>"`` of the file's device, or a label).
    read_bytes_per_s
        Sequential reads from the device (not the page cache): the better of up to 8 MiB read with
        ``O_DIRECT`` and up to 64 MiB out of the page cache read through it (the kernel's read-ahead,
        as the sequential pass and the map's read-around get it; evicted again).
    random_read_s
        One page read alone (queue depth 1), as a page fault waits for it.
    parallel_read_s
        One run's share of the time of a gather of many: measured by advising
        (``posix_fadvise(WILLNEED)``) and then reading about 1,000 pages of the file that
        are not in the page cache, as the ``"gather"`` mode does; where the page cache
        cannot be inspected (no ``mincore``, or a file this user may not write), one
        page's share of ``O_DIRECT`` reads 8 at once.
    memory_bytes_per_s
        Copying bytes that are in memory (the page cache into an array): the slower of a 4 MiB copy
        between arrays and a read of up to 64 MiB of the file from the page cache.
    call_s
        One system call or page fault on data in the page cache.
    fault_window_bytes
        What one page fault of a memory map reads from the device (its read-around): measured as the
        pages one fault on a map of the file brings into the page cache, else the device's
        ``read_ahead_kb``.
    sample_bytes
        Bytes the measurement read sequentially (a small file gives a rougher figure, which a
        larger file of the same device later replaces).
    source
        ``"measured"``, ``"cache file"`` or ``"given"``.
    gather_page_s
        Each further page of a range the gather advises (the kernel's work per page included:
        its page-cache entry, its part of the read and of the map's faults): measured as the
        difference between a gather of ranges of 8 pages and one of single pages, from the same
        stretch of the file and through a map as ``"gather"`` reads; 0 where not measured (then one
        page at ``read_bytes_per_s``).
    mapped_bytes_per_s
        Read-around windows read one after another by a sorted gather from the map (one page in
        16 touched over a stretch of the file: each fault's window and the read-ahead it starts,
        the faults' kernel work included); 0 where not measured (then ``read_bytes_per_s``).
    stream_bytes_per_s
        The kernel's read-ahead once it is under way: the rate of the second half of the
        sequential read that measures ``read_bytes_per_s`` (its window grows over the first reads of
        a stream, so a long stream runs faster than the whole sample shows). A long sequential pass,
        and a long run of read-around windows of a gather from the map, read their first
        :data:`STREAM_SAMPLE_BYTES` / :data:`MAPPED_SAMPLE_BYTES` at the rate measured over them and
        the rest at this one; 0 where not measured (every byte at the sampled rate).
    """

    device: str
    read_bytes_per_s: float
    random_read_s: float
    parallel_read_s: float
    memory_bytes_per_s: float
    call_s: float
    fault_window_bytes: int
    sample_bytes: int = 0
    source: str = "given"
    gather_page_s: float = 0.0
    mapped_bytes_per_s: float = 0.0
    stream_bytes_per_s: float = 0.0

    def page_s(self) -> float:
        """Seconds per further page of a range the ``"gather"`` mode advises: :attr:`gather_page_s` where
        measured, else one page at the sequential rate."""
        return self.gather_page_s if self.gather_page_s > 0 else PAGE / self.read_bytes_per_s

    def mapped_rate(self) -> float:
        """Bytes per second of read-around windows read one after another by a sorted gather from the map:
        :attr:`mapped_bytes_per_s` where measured, else the sequential rate."""
        return self.mapped_bytes_per_s if self.mapped_bytes_per_s > 0 else self.read_bytes_per_s

    def streamed_s(self, nbytes: float, sampled_rate: float, sample_bytes: int) -> float:
        """Seconds to read ``nbytes`` in one stream: the first ``sample_bytes`` at ``sampled_rate`` (what a sample
        of that length measured, the read-ahead's ramp included), the rest at :attr:`stream_bytes_per_s`
        (at least ``sampled_rate``; every byte at ``sampled_rate`` where it is not measured)."""
        steady = max(self.stream_bytes_per_s, sampled_rate)
        head = min(nbytes, sample_bytes)
        return head / sampled_rate + (nbytes - head) / steady

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        """The inverse of :meth:`to_dict` (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class GatherStats:
    """How a gather's rows lie in the file: what the cost model needs.

    ``span_bytes``: from the first row's page to the last row's; ``touched_pages``: pages the
    rows touch; ``runs``: runs of consecutive rows; ``windows``: read-around windows the rows
    touch; ``resident``: share of the touched pages already in the page cache (0..1);
    ``block_bytes``: bytes per call of a sequential pass; ``row_bytes``: bytes of all the rows;
    ``advised_runs`` / ``advised_pages``: ranges the ``"gather"`` mode advises once runs closer than
    :func:`merge_gap_bytes` share one, and the pages they cover (0: one range per run, its pages only);
    ``window_runs``: runs of consecutive windows among ``windows`` (a sorted gather from the map waits for
    the device once per run: within one, each window's read-ahead has started the next; 0: as many as
    ``windows``).
    """

    span_bytes: int
    touched_pages: int
    runs: int
    windows: int
    resident: float
    block_bytes: int
    row_bytes: int
    advised_runs: int = 0
    advised_pages: int = 0
    window_runs: int = 0


#: Runs of a gather are never merged across more than this (a bound on the bytes read in between).
MAX_MERGE_GAP = 1 << 20


def merge_gap_bytes(cal: Calibration | None) -> int:
    """Gap below which two runs of a gather are advised as one range: where reading the pages in between costs
    less than one more read in the gather (``parallel_read_s / page_s() * PAGE``, at most
    :data:`MAX_MERGE_GAP`; 0 without a calibration)."""
    if cal is None:
        return 0
    return round(min(max(cal.parallel_read_s / cal.page_s() * PAGE, 0.0), MAX_MERGE_GAP))


def gather_costs(stats: GatherStats, cal: Calibration, io: str = "mmap") -> dict[str, float]:
    """Estimated seconds of each way to read the rows (``"mapped"`` only when the store reads through a map)."""
    cold = 1.0 - min(max(stats.resident, 0.0), 1.0)
    touched = stats.touched_pages * PAGE
    copy_rows = stats.row_bytes / cal.memory_bytes_per_s
    calls = -(-stats.span_bytes // max(stats.block_bytes, 1))
    merged = io == "mmap" and stats.advised_runs > 0  # threads of preadv (buffered I/O) read each run alone
    advised = stats.advised_runs if merged else stats.runs
    advised_pages = stats.advised_pages if merged else stats.touched_pages
    costs = {
        "sequential": cold * cal.streamed_s(stats.span_bytes, cal.read_bytes_per_s, STREAM_SAMPLE_BYTES)
        + stats.span_bytes / cal.memory_bytes_per_s
        + calls * cal.call_s + copy_rows,
        # one advice (or preadv) per range, its first page included; the map's pages are faulted in (or copied)
        # once they are read
        "gather": cold * (advised * cal.parallel_read_s + max(advised_pages - advised, 0) * cal.page_s())
        + (advised + (stats.touched_pages if io == "mmap" else 0)) * cal.call_s
        + touched / cal.memory_bytes_per_s + copy_rows,
    }
    if io == "mmap":
        # one wait for the device per run of consecutive windows; within a run each window streams in
        # one wait for the device per run of consecutive windows; within a run each window streams in, and a
        # long run gets the read-ahead's steady rate (runs taken as equally long)
        waits = stats.window_runs if 0 < stats.window_runs <= stats.windows else stats.windows
        per_run = stats.windows * cal.fault_window_bytes / max(waits, 1)
        costs["mapped"] = (cold * (waits * cal.random_read_s
                                   + waits * cal.streamed_s(per_run, cal.mapped_rate(), MAPPED_SAMPLE_BYTES))
                           + stats.touched_pages * cal.call_s + touched / cal.memory_bytes_per_s + copy_rows)
    return costs


def choose_gather(stats: GatherStats, cal: Calibration, io: str = "mmap") -> str:
    """The cheapest mode by :func:`gather_costs` (ties: the order of :data:`MODES`)."""
    costs = gather_costs(stats, cal, io)
    return min((m for m in MODES if m in costs), key=lambda m: costs[m])


# -- residency ---------------------------------------------------------------------------------------------------


def resident_fraction(fd: int, offsets: np.ndarray[Any, Any], limit: int = _RESIDENCY_SAMPLES, *,
                      all_or_none: bool = False) -> float | None:
    """Share of the pages at ``offsets`` (a sample, the first ``limit``) in the page cache, probed with
    ``preadv2(RWF_NOWAIT)``: a 1-byte read that returns at once instead of waiting for the device (recent
    kernels then start reading that page in the background, a page the gather reads anyway); None where the
    kernel cannot tell. ``all_or_none``: stop at the first page out of the page cache (and return 0.0): the
    caller only asks whether all are in it, and a probe of a page out of it costs a read submitted."""
    flag = getattr(os, "RWF_NOWAIT", None)
    if flag is None or not hasattr(os, "preadv") or offsets.size == 0:
        return None
    buf = bytearray(1)
    hits = 0
    for off in offsets[:limit].tolist():
        try:
            os.preadv(fd, [buf], int(off), flag)
            hits += 1
        except BlockingIOError:
            if all_or_none:
                return 0.0
        except OSError:  # not supported by this file system
            return None
    return hits / min(offsets.size, limit)


_MINCORE: Any = None


def libc_function(name: str) -> Any | None:
    """libc's function ``name`` through ctypes (``errno`` kept), or None where there is none.

    Looked up first among the symbols this process has loaded (libc is one of its libraries on Linux and the BSDs),
    then in the library ``ctypes.util.find_library("c")`` names, which runs ``ldconfig -p`` in a subprocess: a fork
    of this process, 3-6 ms on the 2-core VM, paid by the first conversion of a process that asked it.
    """
    try:
        fn = getattr(ctypes.CDLL(None, use_errno=True), name, None)
    except (OSError, TypeError):  # TypeError: a platform whose ctypes cannot open the process itself
        fn = None
    if fn is None:
        lib = ctypes.util.find_library("c")
        try:
            fn = getattr(ctypes.CDLL(lib, use_errno=True), name, None) if lib else None
        except OSError:
            fn = None
    return fn


def libc_mincore() -> Any:
    """libc's ``mincore`` (None where there is none: not Linux or BSD, or no libc found)."""
    global _MINCORE
    if _MINCORE is None:
        _MINCORE = False
        fn = libc_function("mincore")
        if fn is not None:
            fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
            fn.restype = ctypes.c_int
            _MINCORE = fn
    return _MINCORE or None


def _page_cache_visible(path: str) -> bool:
    """Whether ``mincore`` on a map of ``path`` reports the page cache (Linux tells it only to the file's owner
    and to those who may write it; to others it reports the pages mapped by the caller)."""
    st = os.stat(path)
    return os.geteuid() in (0, st.st_uid) or os.access(path, os.W_OK)


def resident_pages(m: mmap.mmap, pages: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
    """Which of ``pages`` (page numbers within map ``m``) are in the page cache, by ``mincore``: nothing is
    read. None where ``mincore`` is missing or fails."""
    fn = libc_mincore()
    if fn is None:
        return None
    base = np.frombuffer(m, np.uint8).ctypes.data
    if pages.size > 1 and int(pages[-1]) - int(pages[0]) + 1 == pages.size and bool(np.all(np.diff(pages) == 1)):
        span = np.zeros(pages.size, np.uint8)  # a range of pages: one call
        ptr = span.ctypes.data_as(ctypes.POINTER(ctypes.c_ubyte))
        if fn(ctypes.c_void_p(base + int(pages[0]) * PAGE), pages.size * PAGE, ptr) != 0:
            return None
        return (span & 1).astype(bool)
    vec = (ctypes.c_ubyte * 1)()
    out = np.zeros(pages.size, bool)
    for k, p in enumerate(pages.tolist()):
        if fn(ctypes.c_void_p(base + p * PAGE), PAGE, vec) != 0:
            return None
        out[k] = bool(vec[0] & 1)
    return out


def sampled_residency(path: str, offsets: np.ndarray[Any, Any], limit: int = _RESIDENCY_SAMPLES, *,
                      all_or_none: bool = False) -> float | None:
    """Share of the pages at ``offsets`` (the first ``limit``) in the page cache, read from the page tables
    (``mincore`` on a map of ``path``) where the kernel shows them to this user: no read is started. Else
    :func:`resident_fraction`'s probes, each of which may start reading a page that is out (scattered reads
    that would break the read-ahead of a gather from the map into slow windows)."""
    pages = np.unique(np.asarray(offsets[:limit], np.int64) // PAGE)
    if pages.size and libc_mincore() is not None and _page_cache_visible(path):
        # an empty or unmappable file: the probes say
        with open(path, "rb") as f, contextlib.suppress(ValueError, OSError), \
                mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
            got = resident_pages(m, pages)
            if got is not None:
                return float(got.mean())
    fd = os.open(path, os.O_RDONLY)
    try:
        return resident_fraction(fd, offsets, limit, all_or_none=all_or_none)
    finally:
        os.close(fd)


# -- measuring -----------------------------------------------------------------------------------------------------


def _device_key(path: str) -> str:
    st = os.stat(path)
    return f"{socket.gethostname()}:{os.major(st.st_dev)}:{os.minor(st.st_dev)}"


def _fault_window(path: str) -> int:
    """The device's read-around (``read_ahead_kb`` of its backing device); one page when unknown."""
    st = os.stat(path)
    dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    for candidate in (f"/sys/class/bdi/{dev}/read_ahead_kb", f"/sys/dev/block/{dev}/queue/read_ahead_kb"):
        try:
            kb = int(Path(candidate).read_text().strip())
        except (OSError, ValueError):
            continue
        return max(PAGE, kb * 1024)
    return PAGE


_MEMORY: tuple[float, float] | None = None


def _memory_rate() -> tuple[float, float]:
    """(bytes/s of an in-memory copy, seconds of one cached 1-byte pread), best of a few; measured once."""
    global _MEMORY
    if _MEMORY is None:
        _MEMORY = _measure_memory()
    return _MEMORY


def _measure_memory() -> tuple[float, float]:
    src = np.ones(4 << 20, np.uint8)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(3))
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        n = 200
        call = min(_timed(lambda: [os.pread(fd, 1, 0) for _ in range(n)]) for _ in range(3)) / n
    finally:
        os.close(fd)
    return src.nbytes / max(best, 1e-9), max(call, 1e-9)


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(path: str | os.PathLike[str]) -> Calibration:
    """Measure the device that holds ``path`` by reading ``path`` itself.

    About 50 single-page ``O_DIRECT`` reads (alone, then 8 threads at once) at pages chosen
    by the file's inode number, up to 8 MiB read sequentially with ``O_DIRECT`` (neither
    uses nor changes the page cache), a gather as ``take`` does it (up to 1,024 pages that
    ``mincore`` shows are not in the page cache, advised with ``WILLNEED`` and read, about
    10 ms on a local disk) and up to 64 MiB out of the page cache read through the kernel's
    read-ahead; what these two read is evicted again. A file system without ``O_DIRECT``
    (tmpfs, some network and FUSE file systems) is measured as memory: its reads are the
    page cache's.
    """
    path = os.fspath(path)
    memory, call = _memory_rate()
    key = _device_key(path)
    window = _fault_window(path)
    size = os.path.getsize(path)
    pages = max(1, -(-size // PAGE))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
    except OSError:
        fd = -1
    if fd < 0 or not getattr(os, "O_DIRECT", 0):
        if fd >= 0:
            os.close(fd)
        return _as_memory(key, memory, call, window)
    rng = np.random.default_rng(os.stat(path).st_ino)
    try:
        random_read, parallel, sequential, sampled = _direct_reads(fd, pages, rng)
    except OSError:  # O_DIRECT refused at read time (alignment rules of this file system)
        return _as_memory(key, memory, call, window)
    finally:
        os.close(fd)
    gathered = _willneed_gather(path, pages, rng)
    if gathered is not None:
        parallel = gathered
    streamed = _streaming_read(path, pages, rng, parallel)
    mapped, page_s, stream = 0.0, 0.0, 0.0
    if streamed is not None:
        sequential = max(sequential, streamed.read)
        memory = min(memory, streamed.cached)
        mapped, page_s, stream = streamed.mapped, streamed.page_s, streamed.stream
        if streamed.window >= PAGE:
            window = streamed.window
    return Calibration(key, sequential, max(random_read, call), max(parallel, call), memory, call, window, sampled,
                       "measured", gather_page_s=page_s, mapped_bytes_per_s=mapped,
                       stream_bytes_per_s=stream)


def _willneed_gather(path: str, pages: int, rng: np.random.Generator) -> float | None:
    """Seconds per page of a gather of pages not in the page cache: each advised with ``WILLNEED`` (the kernel
    queues their reads together), then read in file order through a map of the file (its page faults
    included), as the ``"gather"`` mode does; the median of four gathers of a quarter of the pages each.

    The page cache is left as found: pages that were out of it are evicted again after the measurement (clean
    and mapped by no one: the kernel drops them). Where too few are out, up to 8 regions of 2 MiB that are in
    it are evicted first (whole regions: the kernel keeps a partly evicted large folio) and read back
    afterwards. None where the page cache cannot be inspected (no ``mincore``, or a file whose cache
    ``mincore`` does not report to this user) or nothing could be evicted."""
    want = min(_GATHER_PAGES, pages // 4)
    if (want < _GATHER_MIN_PAGES or not hasattr(os, "posix_fadvise") or libc_mincore() is None
            or not _page_cache_visible(path)):
        return None
    fd = os.open(path, os.O_RDONLY)
    regions: list[int] = []
    try:
        candidates = rng.permutation(np.unique(rng.integers(0, pages, 2 * want)))
        with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m:  # closed before the gather: no page stays mapped
            resident = resident_pages(m, candidates)
            if resident is None:
                return None
            cold = np.sort(candidates[~resident][:want])
            borrowed = _borrow(fd, m, pages, want - cold.size, rng, regions)
        picked = np.sort(np.concatenate((cold, borrowed)))
        if picked.size < _GATHER_MIN_PAGES:
            return None
        try:
            # four gathers of a quarter each (every 4th page, spread over the file): the median resists a
            # moment of contention from other processes
            shares = [_advised_gather(fd, part * PAGE, np.ones(part.size, np.int64)) / part.size
                      for part in (picked[k::4] for k in range(4)) if part.size]
        finally:
            for off in (cold * PAGE).tolist():
                os.posix_fadvise(fd, off, PAGE, os.POSIX_FADV_DONTNEED)
        return statistics.median(shares)
    finally:
        try:
            for first in regions:  # what was in the page cache before is again
                os.pread(fd, _BORROW_PAGES * PAGE, first * PAGE)
        finally:
            os.close(fd)


def _advised_gather(fd: int, offsets: np.ndarray[Any, Any], lengths: np.ndarray[Any, Any]) -> float:
    """Seconds of a gather as the ``"gather"`` mode reads: ranges at ``offsets`` (bytes) of ``lengths`` pages advised
    with ``WILLNEED``, then the first page of each read through a map of the file (its page faults included).
    The map is closed afterwards: no page stays mapped, so all can be evicted."""
    with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m:
        view = np.frombuffer(m, np.uint8)
        try:
            t = time.perf_counter()
            for off, n in zip(offsets.tolist(), lengths.tolist()):
                os.posix_fadvise(fd, off, n * PAGE, os.POSIX_FADV_WILLNEED)
            int(view[offsets].sum())  # each page faulted in, in file order
            return time.perf_counter() - t
        finally:
            del view


class _Stretch(NamedTuple):
    """What :func:`_streaming_read` measured: bytes per second read ahead from the device (``read``) and out of
    the page cache into an array (``cached``); a sorted gather from the map (``mapped``, bytes per second), one
    fault's read-around (``window``, bytes), a further page of an advised range (``page_s``) and the read-ahead's
    steady rate (``stream``, the second half of the sequential read); 0 for those not measured (a file too small
    to hold their stretches)."""

    read: float
    cached: float
    mapped: float = 0.0
    window: int = 0
    page_s: float = 0.0
    stream: float = 0.0


def _streaming_read(path: str, pages: int, rng: np.random.Generator, parallel_s: float = 0.0) -> _Stretch | None:
    """Bytes per second of a buffered sequential read of a stretch of the file out of the page cache (up to
    64 MiB, a quarter of a smaller file's), and of reading it again from the page cache.

    The first is the kernel's read-ahead, which both the sequential pass and the map's read-around use and
    which keeps larger reads in flight than a few ``O_DIRECT`` reads do (on a virtual disk, twice their
    rate); the second is what copying the page cache into a large array costs, which a sequential pass pays
    for every byte of its span and a gather from the map does not (a copy within the CPU's caches, as a
    small buffer gets, is several times faster). The stretch is evicted again, and the few pages of it that
    were in the page cache before (at most :data:`_STREAM_MAX_RESIDENT` of it: pages a residency probe or an
    earlier gather read) are read back. None where the page cache cannot be inspected, or no stretch tried (4)
    is out of it.

    Where the file holds it (a stretch of up to a half of the file), the same stretch goes on with what
    :func:`_mapped_and_ranges` measures past the read-ahead of the sequential read: a sorted gather from the
    map, and gathers of single pages and of ranges, all evicted with it."""
    span = min(_STREAM_BYTES, pages // 4 * PAGE) // _STREAM_REQUEST * _STREAM_REQUEST
    if span < _SEQUENTIAL_BYTES or libc_mincore() is None or not _page_cache_visible(path):
        return None
    sys_window = _fault_window(path)
    gap = max(_STREAM_TAIL, 2 * sys_window)  # read-ahead goes on past a read: out of the cache too
    full = span + gap + sys_window + _MAPPED_BYTES + gap + _RANGES_BYTES
    more = full <= pages // 2 * PAGE
    fd = os.open(path, os.O_RDONLY)
    try:
        reach = min(pages, (full if more else span + _STREAM_TAIL) // PAGE)
        start = -1
        was: list[int] = []  # pages of the stretch in the page cache before: read back after the eviction
        with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m:
            for first in (rng.integers(0, pages - reach + 1, 4) // 512 * 512).tolist():
                resident = resident_pages(m, np.arange(first, first + reach))
                if resident is not None and resident.mean() <= _STREAM_MAX_RESIDENT:
                    start = first * PAGE
                    was = (first + np.flatnonzero(resident)).tolist()
                    break
        if start < 0:
            return None
        buf = bytearray(_STREAM_REQUEST)
        quarter = start + span // 2 // _STREAM_REQUEST * _STREAM_REQUEST  # the second half: past the ramp
        try:
            t = time.perf_counter()
            t_quarter = t
            for off in range(start, start + span, _STREAM_REQUEST):
                if off == quarter:
                    t_quarter = time.perf_counter()
                os.preadv(fd, [buf], off)
            done = time.perf_counter()
            elapsed = done - t
            steady = (start + span - quarter) / max(done - t_quarter, 1e-9) if quarter > start else 0.0
            whole = np.empty(span, np.uint8)
            whole[::PAGE] = 0  # its pages exist before the clock starts
            t = time.perf_counter()
            os.preadv(fd, [whole.data], start)  # one call into one array, as the sequential pass reads
            cached = time.perf_counter() - t
            del whole
            extra = (_mapped_and_ranges(fd, start + span + gap, sys_window, gap, parallel_s, rng) if more
                     else _Stretch(0.0, 0.0))
        finally:
            _evict_settled(fd, start, reach)
            if was:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no read-ahead: those pages only
                for page in was:
                    os.pread(fd, 1, page * PAGE)
        return extra._replace(read=span / max(elapsed, 1e-9), cached=span / max(cached, 1e-9), stream=steady)
    finally:
        os.close(fd)


def _mapped_and_ranges(fd: int, first: int, sys_window: int, gap: int, parallel_s: float,
                       rng: np.random.Generator) -> _Stretch:
    """From byte ``first`` on (all out of the page cache): a sorted gather from a map of the file over
    :data:`_MAPPED_BYTES` (bytes at random places, one per 8 pages on average, after a lead of one ``sys_window``: a fault reads around the
    page, before it too), the pages its first fault brought into the page cache (the read-around in effect,
    counted once their reads ended), then past ``gap`` (the read-ahead the gather started) a gather as the
    ``"gather"`` mode reads of 64 ranges of 32 pages, every 64th page: less the 64 reads at ``parallel_s``
    each, the cost of the further pages of a range. Fields ``read`` and ``cached`` are left 0."""
    start = first + sys_window
    # row-like reads at random places (sorted), one per 8 pages on average: regular ones would meet the pages that
    # start the read-ahead of the next window every time, which rows at random places mostly miss
    touches = start + np.sort(rng.integers(0, _MAPPED_BYTES, _MAPPED_BYTES // (8 * PAGE)))
    touches[0] = start
    around = np.arange((start - 2 * sys_window) // PAGE, (start + 2 * sys_window) // PAGE)
    with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m:
        view = np.frombuffer(m, np.uint8)
        try:
            before = resident_pages(m, around)  # read-ahead of the sequential read may reach this far
            int(view[touches[0]])  # one fault: its read-around
            after = _settled_count(m, around)
            t = time.perf_counter()
            int(view[touches[1:]].sum())  # past the first window: the read-ahead each window starts
            mapped = time.perf_counter() - t
        finally:
            del view
    window = after - int(before.sum()) if before is not None and after >= 0 else 0
    ranges = start + _MAPPED_BYTES + gap
    count, length = _RANGES_BYTES // (64 * PAGE), 32
    gathered = _advised_gather(fd, ranges + np.arange(count) * 64 * PAGE, np.full(count, length, np.int64))
    page_s = max(gathered - count * parallel_s, 0.0) / (count * (length - 1))
    return _Stretch(0.0, 0.0, max(_MAPPED_BYTES - window * PAGE // 2, PAGE) / max(mapped, 1e-9), window * PAGE,
                    page_s)


def _settled_count(m: mmap.mmap, pages: np.ndarray[Any, Any]) -> int:
    """How many of ``pages`` are in the page cache once the reads in flight ended (a page being read is not
    shown): counted every 2 ms until two counts agree (at most 10). -1 where ``mincore`` fails."""
    last = -1
    for _ in range(10):
        got = resident_pages(m, pages)
        if got is None:
            return -1
        count = int(got.sum())
        if count == last:
            break
        last = count
        time.sleep(0.002)
    return last


def _evict_settled(fd: int, start: int, pages: int) -> None:
    """Evict ``pages`` pages from ``start``, again until none has shown up for three checks 5 ms apart (at most
    80 checks): pages still being read ahead are neither evicted nor shown by ``mincore`` until their read ends."""
    clean = 0
    with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m:
        for _ in range(80):
            os.posix_fadvise(fd, start, pages * PAGE, os.POSIX_FADV_DONTNEED)
            time.sleep(0.005)
            left = resident_pages(m, np.arange(start // PAGE, start // PAGE + pages))
            if left is None:
                return
            clean = 0 if left.any() else clean + 1
            if clean == 3:
                return


#: The buffered sequential read of the measurement (bytes, and per call).
_STREAM_BYTES = 64 << 20
_STREAM_REQUEST = 1 << 20
#: Beyond the stretch, what read-ahead may have read too (twice the largest usual ``read_ahead_kb``, 8 MiB).
_STREAM_TAIL = 16 << 20
#: The sorted gather from the map (bytes of the file it reads one place per 8 pages of) and the gather of ranges (64
#: ranges of 32 pages, one every 64 pages).
_MAPPED_BYTES = 32 << 20
#: What the sampled rates cover before a stream's steady rate applies (see :attr:`Calibration.stream_bytes_per_s`).
STREAM_SAMPLE_BYTES = _STREAM_BYTES
MAPPED_SAMPLE_BYTES = _MAPPED_BYTES
_RANGES_BYTES = 16 << 20
#: Share of a stretch that may be in the page cache and still be measured (the residency probes of the ``take``
#: that measures the device leave a page here and there: with 64 probes over a file, most stretches of 80 MiB of
#: a 2 GiB file hold one, and none would be measured).
_STREAM_MAX_RESIDENT = 0.01


#: Pages of one region evicted to measure the gather on a file that is in the page cache (2 MiB: the largest
#: folio the page cache usually keeps), at most 8 of them; 64 of each region's pages are gathered.
_BORROW_PAGES = 512
_BORROW_REGIONS = 8


def _borrow(fd: int, m: mmap.mmap, pages: int, need: int, rng: np.random.Generator,
            regions: list[int]) -> np.ndarray[Any, Any]:
    """Pages out of the page cache for the measurement, made by evicting whole regions that are in it (their
    first pages are appended to ``regions``, to be read back)."""
    got: list[np.ndarray[Any, Any]] = []
    per = _BORROW_PAGES // 8
    if need <= 0 or pages < 2 * _BORROW_PAGES:
        return np.empty(0, np.int64)
    count = min(_BORROW_REGIONS, -(-need // per))
    for first in (rng.permutation(pages // _BORROW_PAGES)[:count] * _BORROW_PAGES).tolist():
        span = np.arange(first, first + _BORROW_PAGES)
        before = resident_pages(m, span)
        if before is None or not before.all():
            continue  # partly out already: its cold pages are candidates of their own
        os.posix_fadvise(fd, first * PAGE, _BORROW_PAGES * PAGE, os.POSIX_FADV_DONTNEED)
        regions.append(first)
        after = resident_pages(m, span)
        out = span[~after] if after is not None else span[:0]
        got.append(np.sort(rng.permutation(out)[:per]))
    return np.concatenate(got) if got else np.empty(0, np.int64)


def _as_memory(key: str, memory: float, call: float, window: int, source: str = "measured") -> Calibration:
    """A device whose reads are the page cache's (no ``O_DIRECT``: tmpfs and some network file systems)."""
    page = call + PAGE / memory
    return Calibration(key, memory, page, page, memory, call, window, _SEQUENTIAL_BYTES, source)


def _direct_reads(fd: int, pages: int, rng: np.random.Generator) -> tuple[float, float, float, int]:
    """(one page read alone, one page read's share with 8 in flight, sequential bytes/s, bytes read sequentially)
    on an ``O_DIRECT`` fd."""
    bufs = [mmap.mmap(-1, max(PAGE, _SEQUENTIAL_REQUEST)) for _ in range(_PARALLEL_THREADS)]  # page-aligned
    page_views = [memoryview(b)[:PAGE] for b in bufs]
    singles = [_timed(lambda off=off: os.preadv(fd, [page_views[0]], off))
               for off in (rng.integers(0, pages, _SINGLE_READS) * PAGE).tolist()]
    offsets = iter((rng.integers(0, pages, _PARALLEL_READS) * PAGE).tolist())
    lock = threading.Lock()

    def worker(k: int) -> None:
        while True:
            with lock:
                off = next(offsets, None)
            if off is None:
                return
            os.preadv(fd, [page_views[k]], off)

    with ThreadPoolExecutor(_PARALLEL_THREADS) as pool:
        list(pool.map(lambda k: k, range(_PARALLEL_THREADS)))  # the threads exist before the clock starts
        t = time.perf_counter()
        list(pool.map(worker, range(_PARALLEL_THREADS)))
        parallel = (time.perf_counter() - t) / _PARALLEL_READS
    span = min(_SEQUENTIAL_BYTES, pages * PAGE)
    start = int(rng.integers(0, max(1, pages - span // PAGE + 1))) * PAGE
    whole = memoryview(bufs[0])
    got = 0
    t = time.perf_counter()
    while got < span:
        n = os.preadv(fd, [whole[: min(_SEQUENTIAL_REQUEST, span - got)]], start + got)
        if n <= 0:
            break
        got += n
    sequential = max(got, PAGE) / max(time.perf_counter() - t, 1e-9)
    single = statistics.median(singles)
    return single, min(parallel, single), sequential, got


# -- the per-device cache ----------------------------------------------------------------------------------------

_CACHE: dict[str, Calibration] = {}
_CACHE_LOCK = threading.Lock()


def cache_file() -> Path:
    """The user cache file of calibrations: ``$XDG_CACHE_HOME/arraystore/io-calibration.json``
    (``~/.cache/...`` without ``XDG_CACHE_HOME``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "arraystore" / "io-calibration.json"


def _load_file() -> dict[str, Any]:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_file(entries: dict[str, Any]) -> None:
    path = cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(entries, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def cached_calibration(path: str | os.PathLike[str]) -> Calibration | None:
    """This process's calibration of ``path``'s device, if one was measured (nothing is measured here)."""
    with _CACHE_LOCK:
        return _CACHE.get(_device_key(os.fspath(path)))


def memory_calibration(path: str | os.PathLike[str]) -> Calibration:
    """What reading rows that are all in the page cache costs: copies and calls only (measured once per process,
    in a few milliseconds); the device's latencies play no part, so none is measured."""
    path = os.fspath(path)
    memory, call = _memory_rate()
    return _as_memory(_device_key(path), memory, call, _fault_window(path), source="memory only")


def calibration_for(path: str | os.PathLike[str], *, force: bool = False, persist: bool = False) -> Calibration:
    """The calibration of ``path``'s device: from this process's cache, else the user cache file, else measured.

    ``force`` measures again; ``persist`` also writes the result to :func:`cache_file` (a
    later process then reads it instead of measuring).
    """
    path = os.fspath(path)
    key = _device_key(path)
    with _CACHE_LOCK:
        rough = key in _CACHE and _CACHE[key].sample_bytes < min(_SEQUENTIAL_BYTES, os.path.getsize(path))
        if not force and key in _CACHE and not rough:  # a rough one (from a smaller file) is measured again
            cal = _CACHE[key]
            if persist and cal.source != "cache file":
                _save_file({**_load_file(), key: {**cal.to_dict(), "format": FORMAT}})
            return cal
        if not force:
            stored = _load_file().get(key)
            if isinstance(stored, dict) and stored.get("format") == FORMAT:  # another version's: measure again
                try:
                    loaded = dataclasses.replace(Calibration.from_dict(stored), source="cache file")
                except (TypeError, ValueError):  # an entry from another version: measure again
                    loaded = None
                if loaded is not None:
                    _CACHE[key] = loaded
                    return loaded
        cal = measure(path)
        _CACHE[key] = cal
        if persist:
            _save_file({**_load_file(), key: {**cal.to_dict(), "format": FORMAT}})
        return cal


def reset(*, persisted: bool = False) -> None:
    """Forget every calibration of this process (and, with ``persisted``, remove the user cache file)."""
    global _MEMORY
    with _CACHE_LOCK:
        _CACHE.clear()
        _MEMORY = None
        if persisted:
            cache_file().unlink(missing_ok=True)
