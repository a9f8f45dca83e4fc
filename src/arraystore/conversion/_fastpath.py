"""Moving byte ranges between files fast: kernel copies and drop-behind writes.

On the build machine (2 cores, virtio disk, ext4) a plain ``cp`` of 2 GB, which
writes through the page cache, ran at 0.42 GB/s while a sequential write that
starts write-back of each 64 MiB window as soon as it is written, waits for the
previous window and then drops it from the cache (``sync_file_range`` +
``posix_fadvise(DONTNEED)``) ran at 1.41 GB/s. :class:`DropBehindWriter` does
that; reads drop their pages behind them too, so a conversion never floods the
page cache. ``sync_file_range`` is called through ``ctypes`` (Linux); elsewhere
``fdatasync`` takes its place.

Same-layout copies from a source read from the disk move their blocks with
:func:`copy_range` (the kernel's ``copy_file_range``), and hash the source's pages the
copy brought into the page cache; from a cached source they go through a ring of
buffers, hashed on a second thread (:class:`~._movers.PieceRing`).

Drop-behind pays only when the output would not stay in the page cache anyway:
on an output that fits, waiting for each window's write-back costs up to 4x against
leaving the pages to the kernel, and the verification read then comes from the disk.
:func:`cache_regime` chooses, from the output's size against the memory this process
can actually use (:func:`available_memory`: psutil's ``available``, capped by the
memory cgroup's limit) and ``durable``:

* ``"page-cache"``: plain writes, pages left to the kernel (``durable=True`` still
  fsyncs at publish); outputs below a quarter of the available memory;
* ``"write-through"``: the same, but write-back of each window is started as soon as it
  is written (``sync_file_range(WRITE)``, no wait, no drop), so the fsync at publish
  finds little left to write; durable outputs that fit, whose source is in the page
  cache (:func:`resident_share`: the disk only writes);
* ``"drop-behind"``: write-back started, waited for one window later, pages dropped;
  source pages dropped behind the reads; outputs that do not fit.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import mmap
import os
from typing import Any, Literal

from .._fsutil import raise_if_full
from .._iocost import libc_function, libc_mincore

__all__ = [
    "CACHE_SHARE",
    "COLD_SHARE",
    "DROP_BEHIND_MIN",
    "KERNEL_COPY",
    "WINDOW",
    "DropBehindWriter",
    "available_memory",
    "cache_regime",
    "copy_range",
    "drop_cache",
    "pread_into",
    "pwrite_all",
    "reserve",
    "resident_share",
    "settle_close_flush",
    "start_writeback",
]

#: True where the kernel copies between files (``copy_file_range``): same-layout copies are then copied there
#: and hashed from the page cache (:class:`~._movers.ByteMover`).
KERNEL_COPY = hasattr(os, "copy_file_range")

#: Bytes between write-back kicks.
WINDOW = 64 * 1024 * 1024

#: Conversions smaller than this neither start write-back early nor drop pages behind them.
DROP_BEHIND_MIN = 64 * 1024 * 1024

#: An output larger than 1/CACHE_SHARE of the available memory is written around the page cache.
CACHE_SHARE = 4

CacheRegime = Literal["page-cache", "write-through", "drop-behind"]


def cache_regime(nbytes: int, available: int, durable: bool, source_cold: bool = False, *,
                 decoded: bool = False, chunk_files: bool = False) -> CacheRegime:
    """How a conversion writing ``nbytes`` treats the page cache, given ``available`` bytes of memory.

    ``"drop-behind"`` when the output is larger than ``available // CACHE_SHARE``
    (it would push other pages out, and the kernel's own write-back would stall the
    writer). Otherwise, for an output of at least one :data:`WINDOW`:

    * from a source read from the disk (``source_cold``, see :func:`resident_share`), into
      one file: ``"page-cache"``, read first and written after, as ``cp`` (and ``sync``)
      does: a disk reading and writing at once shares its bandwidth between the two (on
      the 2-core VM a cold read and a drop-behind write ran at 2.6 GB/s each alone and
      about 0.9 each together). But a source whose chunks are ``decoded`` here, into a file
      the conversion writes by byte ranges, is read at the decoding's pace, below the
      disk's: its output is written ``"drop-behind"`` beside the reads, in pages used again;
    * from a source read from the disk, into many ``chunk_files`` (Zarr):
      ``"write-through"``, each file's write-back started once written: many small files
      left to one sync at the end wrote slower (1 GiB raw -> Zarr, cold: 0.98-1.06 against
      0.88-0.93 GiB/s);
    * ``durable``, from a source in the page cache: ``"write-through"`` (the disk writes
      while the copy runs from memory, and the fsync at publish finds little left);

    else ``"page-cache"``.
    """
    if nbytes > available // CACHE_SHARE:
        return "drop-behind"
    if nbytes < WINDOW:
        return "page-cache"
    if source_cold:
        if chunk_files:
            return "write-through"
        return "drop-behind" if decoded else "page-cache"
    return "write-through" if durable else "page-cache"


#: Sampled pages of a source of which less than this share are in the page cache: the source is read from disk.
COLD_SHARE = 0.5


def resident_share(fd: int, offset: int, nbytes: int, probes: int = 32) -> float | None:
    """The share of ``[offset, offset + nbytes)`` of a file that is in the page cache, or None where unknown.

    ``mincore`` over ``probes`` windows of up to 256 KiB spread over the range (a few
    hundred microseconds, nothing read: the file is mapped, never touched).
    """
    mincore = libc_mincore()
    if mincore is None or nbytes <= 0:
        return None
    span = min(256 * 1024, max(mmap.PAGESIZE, nbytes // probes))
    step = max(span, nbytes // probes)
    resident = pages = 0
    for lo in range(offset, offset + nbytes, step):
        start = lo - lo % mmap.ALLOCATIONGRANULARITY
        length = min(lo + span, offset + nbytes) - start
        try:
            mapped = mmap.mmap(fd, length, access=mmap.ACCESS_COPY, offset=start)  # writable view: ctypes' address
        except (OSError, ValueError):
            return None
        n = -(-length // mmap.PAGESIZE)
        vec = (ctypes.c_ubyte * n)()
        try:
            addr = (ctypes.c_char * length).from_buffer(mapped)
            failed = mincore(ctypes.addressof(addr), length, vec) != 0
            del addr
        finally:
            mapped.close()
        if failed:
            return None
        resident += sum(b & 1 for b in bytes(vec))
        pages += n
    return resident / pages


def _cgroup_room() -> int | None:
    """Bytes this process's memory cgroup still allows (v2 ``memory.max``, v1 ``memory.limit_in_bytes``), or None."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _id, controllers, path = parts
        if controllers == "":  # v2 unified hierarchy
            base = f"/sys/fs/cgroup{path}"
            limit_file, usage_file = f"{base}/memory.max", f"{base}/memory.current"
        elif "memory" in controllers.split(","):
            base = f"/sys/fs/cgroup/memory{path}"
            limit_file, usage_file = f"{base}/memory.limit_in_bytes", f"{base}/memory.usage_in_bytes"
        else:
            continue
        try:
            with open(limit_file) as f:
                text = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if text == "max" or not text.isdigit() or int(text) >= 1 << 60:
            continue
        return max(0, int(text) - usage)
    return None


def _meminfo_available() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (what psutil reports on Linux), or None."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory() -> int:
    """Memory this process can use without pushing out other pages: psutil's ``available``, capped by its cgroup.

    On Linux the figure is read from ``/proc/meminfo`` directly: importing psutil costs
    10-25 ms, a tenth of a 512 MiB copy from the page cache.
    """
    room = _cgroup_room()
    avail = _meminfo_available()
    if avail is None:
        import psutil

        avail = int(psutil.virtual_memory().available)
    return avail if room is None else min(avail, room)

_SYNC_FILE_RANGE_WAIT_BEFORE = 1
_SYNC_FILE_RANGE_WRITE = 2
_SYNC_FILE_RANGE_WAIT_AFTER = 4


@functools.cache
def _load_sync_file_range() -> Any:
    """libc's ``sync_file_range``, or None; looked up at the first call, not at import."""
    fn = libc_function("sync_file_range")
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _sfr(fd: int, offset: int, nbytes: int, flags: int) -> None:
    sync_file_range = _load_sync_file_range()
    failed = sync_file_range is None or sync_file_range(fd, offset, nbytes, flags) != 0
    if failed and flags & _SYNC_FILE_RANGE_WAIT_AFTER:
        os.fdatasync(fd)


def start_writeback(fd: int) -> None:
    """Start writing a file's dirty pages to the disk, without waiting (``sync_file_range(WRITE)``; Linux)."""
    _sfr(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def drop_cache(fd: int, offset: int, nbytes: int) -> None:
    """Ask the kernel to drop a (clean) range of a file from the page cache."""
    if hasattr(os, "posix_fadvise") and nbytes > 0:
        try:
            os.posix_fadvise(fd, offset, nbytes, os.POSIX_FADV_DONTNEED)
        except OSError:  # pragma: no cover - advice only
            pass


class DropBehindWriter:
    """Tracks written ranges of one file and pushes them out of the page cache behind the writer.

    Call :meth:`wrote` after each write; every :data:`WINDOW` bytes it starts
    write-back of the new window and waits for and drops the one before. Writes
    must be roughly sequential (a conversion's blocks are).
    """

    def __init__(self, fd: int, *, enabled: bool = True, drop: bool = True) -> None:
        self.fd = fd
        self.enabled = enabled
        self.drop = drop  # False: write-through (write-back started per window, pages kept, nothing waited for)
        self._lo: int | None = None  # start of the window being filled
        self._hi = 0
        self._pending: tuple[int, int] | None = None  # window whose write-back was started

    def wrote(self, offset: int, nbytes: int) -> None:
        """Record that ``[offset, offset + nbytes)`` was written."""
        if not self.enabled or nbytes <= 0:
            return
        if self._lo is None or offset != self._hi:
            self._close_window()
            self._lo = offset
        self._hi = offset + nbytes
        if self._hi - self._lo >= WINDOW:
            self._close_window()

    def _close_window(self) -> None:
        if self._lo is None or self._hi <= self._lo:
            return
        lo, n = self._lo, self._hi - self._lo
        _sfr(self.fd, lo, n, _SYNC_FILE_RANGE_WRITE)
        if not self.drop:
            self._lo = None
            return
        self._retire()
        self._pending = (lo, n)
        self._lo = None

    def _retire(self) -> None:
        if self._pending is not None:
            lo, n = self._pending
            _sfr(self.fd, lo, n, _SYNC_FILE_RANGE_WAIT_BEFORE | _SYNC_FILE_RANGE_WRITE | _SYNC_FILE_RANGE_WAIT_AFTER)
            drop_cache(self.fd, lo, n)
            self._pending = None

    def finish(self) -> None:
        """Write back and drop everything still tracked."""
        if not self.enabled:
            return
        self._close_window()
        self._retire()


def reserve(fd: int, offset: int, nbytes: int, path: str) -> None:
    """Allocate ``[offset, offset + nbytes)`` of a file before a copy writes it (``posix_fallocate``).

    A full disk then fails before the first byte (``StorageFullError``), and ext4 has no
    delayed allocation left to do when the file is closed: a file truncated to zero
    since it was opened (h5py's new files) would otherwise have all its dirty pages
    flushed by that close. Already allocated ranges (raw and npy destinations) cost
    nothing; a file system without ``fallocate`` is left as it is.
    """
    if nbytes <= 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, offset, nbytes)
    except OSError as exc:
        raise_if_full(exc, path, "preallocating")
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


def settle_close_flush(path: str) -> None:
    """Open and close ``path`` once, before a copy writes it.

    ext4 flushes a file's dirty pages when the first handle opened on it since it was
    truncated to zero is closed, if any of them still awaits allocation (its
    ``auto_da_alloc`` guard against replace-by-truncate; h5py's new files are truncated
    and their metadata is written with delayed allocation). Closing a handle now flushes
    those few pages; closing the copy's handle after the copy would start write-back of
    everything it copied, inside the conversion (290 ms of a cached 512 MiB HDF5 copy).
    """
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_RDONLY))


def pread_into(fd: int, buf: memoryview, offset: int) -> None:
    """Fill ``buf`` from ``fd`` at ``offset``; a short file raises ``EOFError``."""
    view = buf.cast("B") if buf.format != "B" or buf.ndim != 1 else buf
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            raise EOFError(f"file ended {len(view) - done:,} bytes early at offset {offset + done:,}")
        done += n


def pwrite_all(fd: int, buf: memoryview, offset: int, path: str) -> None:
    """Write all of ``buf`` at ``offset``; a full disk raises ``StorageFullError``."""
    view = buf.cast("B") if buf.format != "B" or buf.ndim != 1 else buf
    done = 0
    try:
        while done < len(view):
            done += os.pwritev(fd, [view[done:]], offset + done)
    except OSError as exc:
        raise_if_full(exc, path, "writing")
        raise


def copy_range(src_fd: int, src_off: int, dst_fd: int, dst_off: int, nbytes: int, writer: DropBehindWriter,
               path: str, method: str = "auto", *, drop_source: bool = True) -> str:
    """Copy ``nbytes`` between files in the kernel; returns the method that worked.

    Tries ``os.copy_file_range``, then ``os.sendfile``, then a buffered loop of
    ``preadv``/``pwritev`` through one 8 MiB buffer. When ``drop_source`` (the
    default), source pages are dropped behind the copy and the written range is
    reported to ``writer`` as it goes; otherwise the caller does both (after hashing
    the source's pages, say).
    """
    done = 0
    order = ["copy_file_range", "sendfile", "buffered"]
    if method != "auto":
        order = order[order.index(method):]
    for how in order:
        try:
            while done < nbytes:
                step = min(WINDOW, nbytes - done)
                n = _copy_once(how, src_fd, src_off + done, dst_fd, dst_off + done, step)
                if n == 0:
                    raise EOFError(f"source ended {nbytes - done:,} bytes early")
                if drop_source:
                    if writer.enabled and writer.drop:
                        drop_cache(src_fd, src_off + done, n)
                    writer.wrote(dst_off + done, n)
                done += n
            return how
        except OSError as exc:
            raise_if_full(exc, path, "writing")
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF):
                raise
    return "buffered"  # pragma: no cover - the buffered loop never falls through


def _copy_once(how: str, src_fd: int, src_off: int, dst_fd: int, dst_off: int, nbytes: int) -> int:
    if how == "copy_file_range":
        return os.copy_file_range(src_fd, dst_fd, nbytes, src_off, dst_off)
    if how == "sendfile":
        os.lseek(dst_fd, dst_off, os.SEEK_SET)
        return os.sendfile(dst_fd, src_fd, src_off, nbytes)
    buf = bytearray(min(nbytes, 8 * 1024 * 1024))
    view = memoryview(buf)
    n = os.preadv(src_fd, [view], src_off)
    if n:
        pwrite_all(dst_fd, view[:n], dst_off, f"fd {dst_fd}")
    return n

