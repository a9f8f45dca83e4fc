"""Conversion benchmark: arraystore against cp, numpy, h5py, zarr-python and dask, side by side.

One command::

    python tools/bench_convert.py --size 1GiB --data random --runs 3 [--regime cold|cache|big] [--dir /tmp/bench]
                                  [--only cp,as_raw_npy] [--markdown table.md] [--baseline ../main/src]

``--baseline SRC`` runs every arraystore operation a second time with the package under
``SRC`` (another checkout), alternating the two run by run, so a change is measured against
what it replaces under the same load. ``--interleave`` runs all the selected operations
round-robin (one run of each per round), so peers meet the same load too.

Every operation runs in a fresh process (``--_op``). ``--regime`` says how:

* ``cold`` (default): the source is dropped from the page cache first (fsync +
  ``posix_fadvise(DONTNEED)``) and the time includes an ``os.sync()`` of what was
  written, so page-cache buffering cannot flatter anyone;
* ``cache``: the source is read once beforehand and nothing is synced inside the
  timing (a sync runs between runs, untimed); ``cp`` without sync is the peer, and
  ``cp_fsync`` / ``as_raw_npy_durable`` compare ``cp && sync FILE`` with ``durable=True``.
  Use a size below a quarter of the available memory;
* ``big``: like ``cold``, but every operation (peers and arraystore alike) runs inside
  a memory cgroup limited to ``--memory-limit`` (default a third of the data): cgroup
  v1 ``/sys/fs/cgroup/memory/<name>`` with ``memory.limit_in_bytes``, else cgroup v2
  ``memory.max``; without a writable one the run stops with a message.

With ``duplex`` (a cold read and a drop-behind write of the same size at once, on two
threads) and/or ``cold_read`` + ``dropbehind_write`` (or ``cached_write``) selected, the table also shows each
same-layout copy's ratio (cold and big regimes) to the copy limit measured in the same run, the better of reading
and writing at once (``duplex``) and one after the other (``1 / (1 / read + 1 / write)``),
and whether 1.5x ``cp`` is within it.

With compressed Zarr writes (``as_raw_zarr_zstd``, ``as_raw_zarr_blosc``) selected, lines under the table give
issue 14's verdict for each: the ratio to zarr-python's slab writes (``zarr_slab_zstd``, ``zarr_slab_blosc``; goal
2x) and to min(codec ceiling, I/O limit) (goal 0.85x), the codec ceiling the one-core in-memory encode rate
(``codec_zstd3``, ``blosc_encode_numcodecs``) times the cores, the I/O limit the copy limit above (cold and big
regimes); and the ratio to the bare chunk writer of the same codec (``zstd_write_cores``, ``blosc_write_cores``: a
thread per core over its slab of chunks, read as the regime has it, compressed into a buffer used again, one file per
chunk, no metadata, hashing or atomic publish), what any Zarr writer of these chunks reaches on this machine; and to
the same writer reading its source with ``pread`` in every regime (``zstd_write_cores_pread``,
``blosc_write_cores_pread``), as a writer must that answers a source truncated under it with an error, not SIGBUS.

The bare *overlapped* chunk writers (``zstd_write_overlap``, ``blosc_write_overlap``) are the yardstick of
compressed Zarr writes from a cold source: one thread reads the source in order, ahead of a compressing and writing
thread per core (settings in ``OVERLAP``, overridable with ``BENCH_OVERLAP=depth=4,threads=3,...``); with them
selected, lines under the table give the CPU bound: the cores divided by the CPU seconds per GiB the bare overlapped
writer needs (its process, and with the kernel threads' work), the most any writer needing that CPU reaches here
with every core busy. Without them (the page-cache regime) the same lines use the bare writer reading with ``pread``
(``*_write_cores_pread``, else the memory-mapped ``*_write_cores``) measured in the same run: the CPU bound of a
writer that reads its source as arraystore must. ``codec_zstd3_into`` and ``blosc_encode_into`` give the codecs' own CPU per GiB (one core, the
bare writers' calls, buffers used again).

With Zarr reads selected (``as_zarr_npy``, ``as_zarr_h5``, their ``_sharded`` forms, ``as_open_read``; and the
chunked gzip:1 HDF5 -> Zarr zstd:3 conversion ``as_h5gzip_zarr``), lines under the table give issue 14's verdict for
each: the ratio to the best peer measured (zarr-python, zarrs, TensorStore; for HDF5 -> Zarr h5py's reads written by
each), to min(decode ceiling, I/O limit) (goal 0.85x; the ceiling ``zstd_decode_cores``, for HDF5 -> Zarr the
in-memory inflate + zstd:3 on every core, ``gzip_zstd_cores``), and to the bare loop that does the least the job
needs on this machine: ``zstd_decode_write_cores`` (``_sharded``: a thread per core reads its chunk or shard files,
decodes them into a buffer used again and ``pwrite`` s it into the ``.npy``: in the page cache, the honest limit of
a conversion, decoding on both cores *and* writing its output) and ``zstd_decode_fresh_cores`` (decoded into new
256 MiB arrays, their pages faulted in as any new result's: the limit of reads into memory).

The table shows the median throughput of ``--runs`` runs (source bytes per second),
the ratio to ``cp``, the CPU seconds per GiB (user + system, all threads: steadier than
wall time on a shared machine, but blind to waiting for the disk), the peak private memory (``RssAnon``, sampled every 20 ms),
the CPU seconds per GiB of the kernel's threads meanwhile (write-back, reclaim: shared with anything else running)
and of the whole machine (``/proc/stat``: everything running);
its header gives the regime and the load average before and after (figures taken
with a load above ~1.5 on a 2-core machine measure the other processes, not this).
The data is float32 of shape ``(size / 16 KiB, 4096)``; chunked formats use 4 MiB
chunks of 256 whole rows. TensorStore is skipped when not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROW = 4096  # float32 columns: 16 KiB rows
CHUNK_ROWS = 256  # 4 MiB chunks
SLAB = 64 * 1024 * 1024

OPS = [
    ("cp", "cp (+ sync unless --regime cache)"),
    ("cp_fsync", "cp && sync FILE"),
    ("dropbehind_write", "drop-behind sequential write (from memory)"),
    ("cold_read", "cold sequential read"),
    ("duplex", "cold read + drop-behind write at once (2 threads)"),
    ("cached_write", "sequential write into the page cache (from memory, + sync)"),
    ("codec_zstd3", "zstd:3 one core (in memory)"),
    ("codec_zstd3_cores", "zstd:3 numcodecs, a thread per core (in memory): the ceiling"),
    ("codec_zstd3_stream_cores", "zstd:3 zstandard streamed, a thread per core (in memory)"),
    ("codec_gzip1", "gzip:1 one core (in memory)"),
    ("codec_lzf", "lzf one core (in memory)"),
    ("numpy_naive", "np.fromfile + np.save"),
    ("numpy_memmap", "open_memmap block copy"),
    ("h5py_none", "h5py chunked, no compression"),
    ("h5py_gzip1", "h5py chunked gzip:1"),
    ("h5py_lzf", "h5py chunked lzf"),
    ("zarr_slab_none", "zarr-python slab writes, none"),
    ("zarr_slab_zstd", "zarr-python slab writes, zstd:3"),
    ("zarr_slab_blosc", "zarr-python slab writes, blosc-lz4"),
    ("zarrs_slab_none", "zarr-python + zarrs pipeline slab writes, none"),
    ("zarrs_slab_zstd", "zarr-python + zarrs pipeline slab writes, zstd:3"),
    ("zarr_array_memmap", "zarr.create_array(data=memmap), zstd:3"),
    ("dask_to_zarr", "dask from_array(memmap).to_zarr, zstd:3"),
    ("tensorstore_none", "TensorStore zarr3, none"),
    ("tensorstore_zstd", "TensorStore zarr3, zstd:3"),
    ("zstd_decode_1core", "zstd decode one core (src.zarr chunks, in memory)"),
    ("zstd_decode_cores", "zstd decode, a thread per core (in memory): the decode ceiling"),
    ("zstd_decode_write_cores", "bare Zarr(zstd) -> npy, a thread per core: read, decode, pwrite (the limit)"),
    ("zstd_decode_write_cores_sharded", "bare Zarr(zstd, sharded) -> npy, a thread per core (the limit)"),
    ("zstd_decode_fresh_cores", "bare Zarr(zstd) read into new arrays, a thread per core (the limit)"),
    ("blosc_decode_numcodecs", "blosc-lz4 decode one core, numcodecs (in memory)"),
    ("blosc_decode_blosc2", "blosc-lz4 (blosc1 frames) decode one core, python-blosc2"),
    ("blosc_encode_numcodecs", "blosc-lz4 encode one core, numcodecs (in memory)"),
    ("blosc_encode_blosc2", "blosc-lz4 encode one core, python-blosc2 (blosc2 frames)"),
    ("zstd_write_cores", "bare Zarr chunk writer zstd:3, a thread per core: the write limit"),
    ("blosc_write_cores", "bare Zarr chunk writer blosc-lz4, a thread per core: the write limit"),
    ("zstd_write_cores_pread", "bare Zarr chunk writer zstd:3, source read with pread (no memory map)"),
    ("blosc_write_cores_pread", "bare Zarr chunk writer blosc-lz4, source read with pread (no memory map)"),
    ("zstd_write_overlap", "bare overlapped chunk writer zstd:3 (read-ahead thread + a thread per core)"),
    ("blosc_write_overlap", "bare overlapped chunk writer blosc-lz4 (read-ahead thread + a thread per core)"),
    ("codec_zstd3_into", "zstd:3 one core, buffers used again (in memory): the codec's CPU"),
    ("blosc_encode_into", "blosc-lz4 encode one core, buffers used again (in memory): the codec's CPU"),
    ("zarr_read_npy", "zarr-python read Zarr(zstd) -> npy"),
    ("zarrs_read_npy", "zarr-python + zarrs pipeline read Zarr(zstd) -> npy"),
    ("tensorstore_read_npy", "TensorStore read Zarr(zstd) -> npy"),
    ("zarr_read_npy_sharded", "zarr-python read Zarr(zstd, sharded) -> npy"),
    ("zarrs_read_npy_sharded", "zarr-python + zarrs read Zarr(zstd, sharded) -> npy"),
    ("tensorstore_read_npy_sharded", "TensorStore read Zarr(zstd, sharded) -> npy"),
    ("zarr_open_read", "zarr-python arr[slab] into memory, Zarr(zstd)"),
    ("zarrs_open_read", "zarr-python + zarrs arr[slab] into memory"),
    ("tensorstore_open_read", "TensorStore t[slab].read() into memory"),
    ("as_open_read", "arraystore open(Zarr zstd)[slab] into memory"),
    ("zarr_open_read_sharded", "zarr-python arr[slab], sharded"),
    ("zarrs_open_read_sharded", "zarr-python + zarrs arr[slab], sharded"),
    ("tensorstore_open_read_sharded", "TensorStore t[slab].read(), sharded"),
    ("as_open_read_sharded", "arraystore open(Zarr zstd)[slab], sharded"),
    ("as_raw_npy", "arraystore raw -> npy"),
    ("as_raw_npy_durable", "arraystore raw -> npy, durable=True"),
    ("as_npy_raw", "arraystore npy -> raw"),
    ("as_raw_h5", "arraystore raw -> HDF5 contiguous"),
    ("as_raw_h5_gzip", "arraystore raw -> HDF5 gzip:1"),
    ("as_raw_zarr", "arraystore raw -> Zarr none"),
    ("as_raw_zarr_zstd", "arraystore raw -> Zarr zstd:3"),
    ("as_raw_zarr_blosc", "arraystore raw -> Zarr blosc-lz4"),
    ("as_raw_zarr_gzip", "arraystore raw -> Zarr gzip:1"),
    ("as_raw_zarr_zstd_sharded", "arraystore raw -> Zarr zstd:3, 64 MiB shards"),
    ("as_zarr_npy", "arraystore Zarr(zstd) -> npy"),
    ("as_zarr_h5", "arraystore Zarr(zstd) -> HDF5 contiguous"),
    ("as_zarr_npy_sharded", "arraystore Zarr(zstd, sharded) -> npy"),
    ("as_zarr_h5_sharded", "arraystore Zarr(zstd, sharded) -> HDF5 contiguous"),
    ("as_h5_zarr", "arraystore HDF5 -> Zarr zstd:3"),
    ("gzip_decode_1core", "inflate one core (src_gzip.h5 chunks, in memory)"),
    ("gzip_zstd_1core", "inflate + zstd:3 one core (in memory)"),
    ("gzip_zstd_cores", "inflate + zstd:3, a thread per core (in memory): the CPU ceiling"),
    ("h5py_zarr_gzip", "h5py read HDF5(gzip:1, chunked) -> zarr-python write zstd:3"),
    ("h5py_zarrs_gzip", "h5py read HDF5(gzip:1, chunked) -> zarr-python + zarrs write zstd:3"),
    ("h5py_tensorstore_gzip", "h5py read HDF5(gzip:1, chunked) -> TensorStore write zstd:3"),
    ("as_h5gzip_zarr", "arraystore HDF5(gzip:1, chunked) -> Zarr zstd:3"),
]


def parse_size(text: str) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from arraystore.conversion import parse_size as ps

    return ps(text)


# -- setup ------------------------------------------------------------------


#: Sources other than src.dat, and the operations that read them (made only when one is selected).
DERIVED = {"src.npy": ("as_npy_raw",), "src.h5": ("as_h5_zarr",),
           "src_gzip.h5": ("gzip_decode_1core", "gzip_zstd_1core", "gzip_zstd_cores", "h5py_zarr_gzip",
                           "h5py_zarrs_gzip", "h5py_tensorstore_gzip", "as_h5gzip_zarr"),
           "src.zarr": ("as_zarr_h5", "as_zarr_npy", "zarr_read_npy", "zarrs_read_npy", "tensorstore_read_npy",
                        "zstd_decode_1core", "zstd_decode_cores", "zstd_decode_write_cores", "zstd_decode_fresh_cores",
                        "blosc_decode_numcodecs", "blosc_decode_blosc2",
                        "blosc_encode_numcodecs", "blosc_encode_blosc2", "zarr_open_read", "zarrs_open_read",
                        "tensorstore_open_read", "as_open_read"),
           "src_sharded.zarr": ("as_zarr_npy_sharded", "as_zarr_h5_sharded", "zarr_read_npy_sharded",
                                "zarrs_read_npy_sharded", "tensorstore_read_npy_sharded", "zarr_open_read_sharded",
                                "zarrs_open_read_sharded", "tensorstore_open_read_sharded", "as_open_read_sharded",
                                "zstd_decode_write_cores_sharded")}
#: How each derived source is chunked: 4 MiB chunks; sharded: 16 MiB shards of 1 MiB inner chunks.
ZARR_SOURCES = {"src.zarr": {"chunks": (CHUNK_ROWS, ROW), "compression": "zstd:3"},
                "src_sharded.zarr": {"chunks": (CHUNK_ROWS // 4, ROW), "shards": (CHUNK_ROWS * 4, ROW),
                                     "compression": "zstd:3"},
                "src_gzip.h5": {"chunks": (CHUNK_ROWS, ROW), "compression": "gzip:1"}}


def make_source(folder: Path, size: int, kind: str, ops: list[str]) -> tuple[int, int]:
    from arraystore.conversion import convert

    rows = size // (ROW * 4)
    src = folder / "src.dat"
    if not src.exists():
        _write_source(src, rows, kind)
    for name, users in DERIVED.items():
        if (folder / name).exists() or not any(op in users for op in ops):
            continue
        opts: dict[str, Any] = dict(ZARR_SOURCES.get(name, {}))
        convert(str(src), str(folder / name), **opts)
    os.sync()
    return rows, ROW


def _write_source(src: Path, rows: int, kind: str) -> None:
    import arraystore

    rng = np.random.default_rng(0)
    with arraystore.create(str(src), (rows, ROW), "<f4") as s:
        step = SLAB // (ROW * 4)
        for i in range(0, rows, step):
            n = min(step, rows - i)
            if kind == "random":
                s[i : i + n] = rng.random((n, ROW), dtype=np.float32)
            else:
                y = np.arange(i, i + n, dtype=np.float32)[:, None]
                x = np.arange(ROW, dtype=np.float32)[None, :]
                s[i : i + n] = np.sin(y / 500.0) * np.cos(x / 300.0) * 100.0


def drop_cache(path: Path) -> None:
    # imported here: operation processes import this module with a --baseline tree on their path, which may not
    # have the helper; this runs in the main process only
    from arraystore._fsutil import evict_from_page_cache

    evict_from_page_cache(path)


# -- operations (each in a fresh process) -------------------------------------


def run_op(op: str, folder: Path, sync: bool = True, cgroup: str | None = None,
           src_tree: str | None = None) -> dict[str, Any]:
    sys.path.insert(0, src_tree or str(Path(__file__).resolve().parents[1] / "src"))
    from arraystore.conversion._memory import MemorySampler

    global SOURCE_CACHED
    SOURCE_CACHED = not sync  # only --regime cache runs without a sync
    if cgroup:  # before any work: this process and its children are charged to the cgroup
        Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))

    src = folder / "src.dat"
    out = folder / "out"
    meta = json.loads((folder / "src.dat.json").read_text())
    shape = tuple(meta["shape"])
    nbytes = int(np.prod(shape)) * 4
    _preimport(op)  # import time is not conversion time
    with MemorySampler() as mem:
        cpu0, user0, machine0, kernel0 = _cpu_seconds(), _user_seconds(), _machine_seconds(), _kernel_seconds()
        t0 = time.perf_counter()
        result = OP_FUNCS[op](src, out, shape, folder)
        if sync:
            os.sync()
        seconds = time.perf_counter() - t0
        cpu, user = _cpu_seconds() - cpu0, _user_seconds() - user0
        machine = _machine_seconds() - machine0 if machine0 is not None else None
        kernel = _kernel_seconds() - kernel0 if kernel0 is not None else None
    if isinstance(result, dict) and "skip" in result:
        return result
    if isinstance(result, dict):  # in-memory codec runs time themselves
        return {"cpu": cpu, **result, "peak_anon": mem.peak_anon, "baseline_anon": mem.baseline.anon}
    moved = result if isinstance(result, int) else nbytes
    extra = {"machine_cpu": machine} if machine is not None else {}
    if kernel is not None:
        extra["kernel_cpu"] = kernel
    return {"seconds": seconds, "cpu": cpu, "user": user, "bytes": moved, "peak_anon": mem.peak_anon,
            "baseline_anon": mem.baseline.anon, **extra}


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) and of its finished children (``cp``)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _user_seconds() -> float:
    """User CPU time of this process and its finished children: in the JSON beside ``cpu`` (user + system), as the
    VM's page-cache writes make system time vary from run to run far more than user time."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + kids.ru_utime


def _machine_seconds() -> float | None:
    """Busy CPU seconds of the whole machine (``/proc/stat``: user, nice, system, irq, softirq of every CPU), or None
    off Linux. Unlike :func:`_cpu_seconds` it counts the kernel's threads working for the operation (write-back
    flushers, page reclaim, block-layer completions), and also whatever else runs (the load average says how much)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _kernel_seconds() -> float | None:
    """CPU seconds of the kernel's own threads (children of ``kthreadd``: write-back flushers, ``kswapd``, block-layer
    workers) so far, or None off Linux: the work an operation leaves to the kernel beside its own CPU time (shared
    with whatever else runs; a thread that ended in between is not counted)."""
    total = 0
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
        if fields[1] == "2" or pid == "2":  # ppid (the 4th field) is kthreadd
            total += int(fields[11]) + int(fields[12])  # utime, stime (the 14th and 15th)
    return total / os.sysconf("SC_CLK_TCK")


def _preimport(op: str) -> None:
    import importlib

    mods = {"h5py": ("h5", "as_"), "zarr": ("zarr", "as_", "dask"), "dask.array": ("dask",),
            "numcodecs": ("codec", "decode", "encode", "write_cores", "write_overlap"), "arraystore.conversion": ("as_",),
            "arraystore.backends.hdf5": ("as_",), "arraystore.backends.zarr": ("as_",),
            "arraystore.backends.raw": ("as_",), "arraystore.backends.npy": ("as_",),
            "arraystore.filesystems": ("as_",), "arraystore.filesystems._linux": ("as_",),
            "arraystore.objstore": ("as_",), "zarrs": ("zarrs",), "zstandard": ("stream", "as_", "write_cores", "write_overlap"),
            "tensorstore": ("tensorstore",), "blosc2": ("blosc2",)}
    for mod, keys in mods.items():
        if any(k in op for k in keys):
            with contextlib.suppress(ImportError):  # the operation reports what is missing
                importlib.import_module(mod)


def _memmap(src: Path, shape: tuple[int, ...]) -> np.memmap[Any, Any]:
    return np.memmap(src, dtype="<f4", mode="r", shape=shape)


def op_cp(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> None:
    subprocess.run(["cp", str(src), str(out) + ".dat"], check=True)


def op_cp_fsync(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> None:
    subprocess.run(["cp", str(src), str(out) + ".dat"], check=True)
    subprocess.run(["sync", str(out) + ".dat"], check=True)


def _zarrs(on: bool) -> None:
    """Switch zarr-python's codec pipeline to zarrs (a Rust pipeline, ``pip install zarrs``)."""
    if on:
        import zarr
        import zarrs  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: F401  # registers the pipeline

        zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"})


def _zarr_source(sharded: bool) -> str:
    return "src_sharded.zarr" if sharded else "src.zarr"


def _zarr_read_op(sharded: bool, zarrs: bool) -> Any:
    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        import zarr

        try:
            _zarrs(zarrs)
        except ImportError:
            return {"skip": "zarrs not installed (pip install zarrs)"}
        arr = zarr.open_array(str(folder / _zarr_source(sharded)), mode="r")
        o = np.lib.format.open_memmap(str(out) + ".npy", mode="w+", dtype="<f4", shape=shape)
        step = SLAB // (ROW * 4)
        for i in range(0, shape[0], step):
            o[i : i + step] = arr[i : i + step]
        o.flush()
        del o
        return None

    return op


def _tensorstore_read_op(sharded: bool) -> Any:
    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        try:
            import tensorstore as ts  # type: ignore[import-not-found]
        except ImportError:
            return {"skip": "tensorstore not installed"}
        t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(folder / _zarr_source(sharded))}},
                    open=True).result()
        o = np.lib.format.open_memmap(str(out) + ".npy", mode="w+", dtype="<f4", shape=shape)
        step = SLAB // (ROW * 4)
        for i in range(0, shape[0], step):
            o[i : i + step] = t[i : i + step].read().result()
        o.flush()
        del o
        return None

    return op


#: Rows per slab of the in-memory reads (256 MiB): the whole array up to that size.
READ_SLAB_ROWS = 256 * 1024 * 1024 // (ROW * 4)


def _open_read_op(who: str, sharded: bool) -> Any:
    """Read the Zarr source into memory in slabs of 256 MiB (new arrays, as a user's ``x = arr[a:b]``)."""

    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        path = str(folder / _zarr_source(sharded))
        read: Any
        if who == "tensorstore":
            try:
                import tensorstore as ts
            except ImportError:
                return {"skip": "tensorstore not installed"}
            t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}, open=True).result()
            read = lambda a, b: t[a:b].read().result()  # noqa: E731
        elif who == "arraystore":
            import arraystore

            store = arraystore.open(path)
            read = lambda a, b: store[a:b]  # noqa: E731
        else:
            import zarr

            try:
                _zarrs(who == "zarrs")
            except ImportError:
                return {"skip": "zarrs not installed (pip install zarrs)"}
            arr = zarr.open_array(path, mode="r")
            read = lambda a, b: arr[a:b]  # noqa: E731
        for i in range(0, shape[0], READ_SLAB_ROWS):
            block = read(i, min(shape[0], i + READ_SLAB_ROWS))
            assert block.shape[0] == min(shape[0], i + READ_SLAB_ROWS) - i
            del block
        return None

    return op


def _chunk_files(folder: Path, limit: int = 256 * 1024 * 1024) -> list[bytes]:
    """The stored chunks of src.zarr (up to ``limit`` decoded bytes), read into memory."""
    files = sorted(p for p in (folder / "src.zarr" / "c").rglob("*") if p.is_file())
    per = CHUNK_ROWS * ROW * 4
    return [p.read_bytes() for p in files[: max(1, limit // per)]]


def _decode_op(threads: bool) -> Any:
    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        import numcodecs

        chunks = _chunk_files(folder)
        codec = numcodecs.Zstd()
        per = CHUNK_ROWS * ROW * 4
        outs = [np.empty(per, np.uint8) for _ in range(os.cpu_count() or 1)]
        t0, c0 = time.perf_counter(), time.process_time()
        if threads:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(outs)) as pool:
                list(pool.map(lambda k: codec.decode(chunks[k], out=outs[k % len(outs)]), range(len(chunks))))
        else:
            for c in chunks:
                codec.decode(c, out=outs[0])
        return {"bytes": per * len(chunks), "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}

    return op


def _decode_fresh_op() -> Any:
    """The least a read of the Zarr(zstd) source into memory must do here: for each slab of :data:`READ_SLAB_ROWS`
    rows a new array (its pages faulted in, zeroed, as any new result's are), its chunk files read whole with
    ``pread`` into a buffer per thread used again and decoded straight into it (numcodecs' zstd, ``decode(out=)``),
    a thread per core over the slab's chunks. No bomb checks: the limit of ``open(z)[a:b]``-style reads."""

    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        import itertools
        import threading
        from concurrent.futures import ThreadPoolExecutor

        import numcodecs

        from arraystore.conversion._fastpath import pread_into

        source = folder / "src.zarr"
        per_row = int(np.prod(shape[1:])) * 4
        cores = os.cpu_count() or 1
        codec = numcodecs.Zstd()
        local = threading.local()

        def chunk(i: int, block: Any, lo: int) -> None:
            stored = getattr(local, "buf", None)
            fd = os.open(source / "c" / str(i) / "0", os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                if stored is None or stored.size < size:
                    stored = local.buf = np.empty(size + size // 8, np.uint8)
                pread_into(fd, stored[:size].data, 0)
            finally:
                os.close(fd)
            rows = min(CHUNK_ROWS, shape[0] - i * CHUNK_ROWS)
            codec.decode(stored[:size], out=block[(i * CHUNK_ROWS - lo) * per_row :][: rows * per_row])

        with ThreadPoolExecutor(cores) as pool:
            for lo in range(0, shape[0], READ_SLAB_ROWS):
                hi = min(shape[0], lo + READ_SLAB_ROWS)
                block = np.empty((hi - lo) * per_row, np.uint8)
                ids = range(lo // CHUNK_ROWS, -(-hi // CHUNK_ROWS))
                list(pool.map(chunk, ids, itertools.repeat(block), itertools.repeat(lo)))
                del block
        return None

    return op


def _decode_write_op(sharded: bool) -> Any:
    """The least a Zarr(zstd) -> npy conversion must do here: a thread per core over its slab of chunk (shard) files.

    Each thread reads each of its chunk files whole with ``pread`` (as the regime has it: cold, or from the page
    cache) into a buffer used again, decodes it with numcodecs' zstd (``decode(out=)``, the GIL released) into a
    decoded buffer used again and ``pwrite`` s that into the ``.npy`` at its place, into the page cache; a shard has
    its index read from its end, then its inner chunks read by range and decoded about 4 MiB of rows at a time, each
    such band written at once (buffers on huge pages, staying in the CPU cache). The run's ``os.sync()`` writes it all
    back (cold). No bomb checks, hashing, journal, temporary file or rename: the limit of "decode on every core and
    write the output" on this machine, which any Zarr -> npy conversion is judged against.
    """

    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        import threading

        import numcodecs

        from arraystore.conversion._fastpath import pread_into, pwrite_all
        from arraystore.conversion._movers import huge_page_aligned

        source = folder / _zarr_source(sharded)
        cfg = ZARR_SOURCES[_zarr_source(sharded)]
        unit_rows = cfg.get("shards", cfg["chunks"])[0]
        inner_rows = cfg["chunks"][0]
        per_row = int(np.prod(shape[1:])) * 4
        n_units = -(-shape[0] // unit_rows)
        n_inner = unit_rows // inner_rows
        index_bytes = n_inner * 16 + 4  # the index codecs: bytes + crc32c
        header = np.lib.format.header_data_from_array_1_0(np.empty((0,), "<f4"))
        header["shape"] = shape
        path = str(out) + ".npy"
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            offset = f.tell()
        fd_out = os.open(path, os.O_WRONLY)
        cores = os.cpu_count() or 1
        errors: list[BaseException] = []

        band_rows = unit_rows if not sharded else max(inner_rows, min(unit_rows, (4 << 20) // per_row))

        def work(k: int) -> None:
            try:
                codec = numcodecs.Zstd()
                decoded = huge_page_aligned(band_rows * per_row)
                stored = huge_page_aligned(inner_rows * per_row + (1 << 16))
                index = np.empty(index_bytes, np.uint8)
                for i in range(k * n_units // cores, (k + 1) * n_units // cores):
                    rows = min(unit_rows, shape[0] - i * unit_rows)
                    fd = os.open(source / "c" / str(i) / "0", os.O_RDONLY)
                    try:
                        size = os.fstat(fd).st_size
                        if not sharded:  # the chunk file whole
                            if size > stored.size:
                                stored = np.empty(size, np.uint8)
                            pread_into(fd, stored[:size].data, 0)
                            codec.decode(stored[:size], out=decoded)
                            pwrite_all(fd_out, decoded[: rows * per_row].data, offset + i * unit_rows * per_row, path)
                            continue
                        # a shard: its index, then its inner chunks by range, decoded a band of them at a time
                        pread_into(fd, index.data, size - index_bytes)
                        table = index[:-4].view("<u8").reshape(n_inner, 2)
                        for b0 in range(0, rows, band_rows):
                            n_rows = min(band_rows, rows - b0)
                            for j in range(b0 // inner_rows, -(-(b0 + n_rows) // inner_rows)):
                                at, n = int(table[j, 0]), int(table[j, 1])
                                if n > stored.size:
                                    stored = np.empty(n, np.uint8)
                                pread_into(fd, stored[:n].data, at)
                                lo = (j * inner_rows - b0) * per_row
                                codec.decode(stored[:n], out=decoded[lo : lo + inner_rows * per_row])
                            pwrite_all(fd_out, decoded[: n_rows * per_row].data,
                                       offset + (i * unit_rows + b0) * per_row, path)
                    finally:
                        os.close(fd)
            except BaseException as exc:  # re-raised on the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(cores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        os.close(fd_out)
        if errors:
            raise errors[0]
        return None

    return op


def _gzip_chunks(folder: Path, limit: int = 256 * 1024 * 1024) -> list[bytes]:
    """The stored (deflated) chunks of src_gzip.h5 (up to ``limit`` decoded bytes), read raw into memory."""
    import h5py

    per = CHUNK_ROWS * ROW * 4
    with h5py.File(folder / "src_gzip.h5", "r") as f:
        ds = f["data"]
        n = min(-(-ds.shape[0] // CHUNK_ROWS), max(1, limit // per))
        return [bytes(ds.id.read_direct_chunk((i * CHUNK_ROWS, 0))[1]) for i in range(n)]


def _transcode_op(threads: bool, encode: bool) -> Any:
    """Deflated HDF5 chunks inflated (and, with ``encode``, compressed with zstd:3 into a buffer used again), in
    memory: one core, or a thread per core (zlib and libzstd release the GIL): the CPU ceiling of chunked gzip HDF5
    -> Zarr zstd:3, which reads and writes besides."""

    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        import zlib
        from concurrent.futures import ThreadPoolExecutor

        chunks = _gzip_chunks(folder)
        per = CHUNK_ROWS * ROW * 4
        cores = (os.cpu_count() or 1) if threads else 1
        intos = [_zstd_into() for _ in range(cores)] if encode else []
        if encode and intos[0] is None:
            return {"skip": "numcodecs' Zstd extension does not export ZSTD_compress2"}
        dsts = [np.empty(per + per // 128 + 1024, np.uint8) for _ in range(cores)]

        def one(k: int) -> None:
            raw = np.frombuffer(zlib.decompress(chunks[k]), np.uint8)
            if encode:
                intos[k % cores](raw, dsts[k % cores])

        t0, c0 = time.perf_counter(), _cpu_seconds()
        if cores > 1:
            with ThreadPoolExecutor(cores) as pool:  # chunk k always on slot k % cores: one thread per slot at once
                for lo in range(0, len(chunks), cores):
                    list(pool.map(one, range(lo, min(lo + cores, len(chunks)))))
        else:
            for k in range(len(chunks)):
                one(k)
        return {"bytes": per * len(chunks), "seconds": time.perf_counter() - t0, "cpu": _cpu_seconds() - c0}

    return op


def _h5_to_zarr_op(who: str) -> Any:
    """A user's loop: h5py reads 64 MiB slabs of the chunked gzip dataset, zarr-python (+ zarrs) or TensorStore
    writes them into Zarr zstd:3 chunks of the same shape."""

    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        import h5py

        step = SLAB // (ROW * 4)
        if who == "tensorstore":
            try:
                import tensorstore as ts
            except ImportError:
                return {"skip": "tensorstore not installed"}
            codecs = [{"name": "bytes", "configuration": {"endian": "little"}},
                      {"name": "zstd", "configuration": {"level": 3, "checksum": False}}]
            t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(out) + ".zarr"},
                         "metadata": {"codecs": codecs}}, create=True, dtype=ts.float32, shape=shape,
                        chunk_layout=ts.ChunkLayout(chunk_shape=[CHUNK_ROWS, ROW])).result()
            write = lambda i, x: t[i : i + x.shape[0]].write(x).result()  # noqa: E731
        else:
            import zarr
            import zarr.codecs

            try:
                _zarrs(who == "zarrs")
            except ImportError:
                return {"skip": "zarrs not installed (pip install zarrs)"}
            arr = zarr.create_array(str(out) + ".zarr", shape=shape, dtype="<f4", chunks=(CHUNK_ROWS, ROW),
                                    compressors=[zarr.codecs.ZstdCodec(level=3)], zarr_format=3)

            def write(i: int, x: Any) -> None:
                arr[i : i + x.shape[0]] = x

        with h5py.File(folder / "src_gzip.h5", "r") as f:
            ds = f["data"]
            for i in range(0, shape[0], step):
                write(i, ds[i : i + step])
        return None

    return op


def _blosc_op(lib: str, decode: bool) -> Any:
    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        import numcodecs

        if lib == "blosc2":
            try:
                import blosc2  # type: ignore[import-not-found,import-untyped,unused-ignore]
            except ImportError:
                return {"skip": "python-blosc2 not installed (pip install blosc2)"}
            blosc2.set_nthreads(1)
        numcodecs.blosc.set_nthreads(1)
        data = np.fromfile(src, dtype=np.uint8, count=256 * 1024 * 1024)
        per = CHUNK_ROWS * ROW * 4
        pieces = [data[i : i + per] for i in range(0, data.size, per)]
        nc = numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE, blocksize=0)
        if decode:
            frames = [nc.encode(p.view("<f4")) for p in pieces]  # blosc1 frames, as Zarr's blosc codec writes
            dst = np.empty(per, np.uint8)
            t0, c0 = time.perf_counter(), time.process_time()
            for f in frames:
                if lib == "blosc2":
                    blosc2.decompress(f, dst=dst)
                else:
                    nc.decode(f, out=dst)
        else:
            t0, c0 = time.perf_counter(), time.process_time()
            for p in pieces:
                if lib == "blosc2":
                    blosc2.compress(p, typesize=4, clevel=5, filter=blosc2.Filter.SHUFFLE, codec=blosc2.Codec.LZ4)
                else:
                    nc.encode(p.view("<f4"))
        return {"bytes": int(data.size), "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}

    return op


#: True when the operation runs with its source in the page cache (``--regime cache``): set by :func:`run_op`.
SOURCE_CACHED = False


def _blosc_into() -> Any:
    """``compress(src, dst) -> nbytes``: c-blosc's ``blosc_compress_ctx`` (the library under numcodecs' Blosc, the
    GIL released by ctypes) into a buffer used again, the blosc-lz4:5 shuffled frame numcodecs writes; else numcodecs'
    own encode copied into it (a numcodecs build that does not export the symbol)."""
    import ctypes

    import numcodecs.blosc

    try:
        fn = ctypes.CDLL(numcodecs.blosc.__file__).blosc_compress_ctx
    except (OSError, AttributeError):
        codec = numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE, blocksize=0)

        def slow(src: Any, dst: Any) -> int:
            frame = codec.encode(src.view("<f4"))
            dst[: len(frame)] = np.frombuffer(frame, np.uint8)
            return len(frame)

        return slow
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                   ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]

    def fast(src: Any, dst: Any) -> int:
        n = int(fn(5, 1, 4, src.nbytes, src.ctypes.data, dst.ctypes.data, dst.nbytes, b"lz4", 0, 1))
        if n <= 0:
            raise RuntimeError(f"blosc_compress_ctx returned {n}")
        return n

    return fast


def _zstd_into() -> Any:
    """``compress(src, dst) -> nbytes`` (one per thread): libzstd's ``ZSTD_compress2`` at level 3 (in numcodecs' Zstd
    extension, the GIL released by ctypes) into a buffer used again, numcodecs' own frame; None where the extension
    does not export it (the bare writer then streams with ``zstandard``)."""
    import ctypes

    import numcodecs.zstd

    try:
        lib = ctypes.CDLL(numcodecs.zstd.__file__)
        create, compress = lib.ZSTD_createCCtx, lib.ZSTD_compress2
    except (OSError, AttributeError):
        return None
    create.restype = ctypes.c_void_p
    lib.ZSTD_CCtx_setParameter.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    compress.restype = ctypes.c_size_t
    compress.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
    cctx = create()
    lib.ZSTD_CCtx_setParameter(cctx, 100, 3)  # ZSTD_c_compressionLevel

    def into(src: Any, dst: Any) -> int:
        n = int(compress(cctx, dst.ctypes.data, dst.nbytes, src.ctypes.data, src.nbytes))
        if n > dst.nbytes:  # an error code (ZSTD_isError: the top values of size_t)
            raise RuntimeError(f"ZSTD_compress2 returned {n}")
        return n

    return into


def _bare_writer_op(codec: str, pread: bool = False) -> Any:
    """The least a Zarr writer must do here: a thread per core, each over its own slab of the source's chunks.

    ``pread``: the source is read with ``pread`` into a buffer per thread used again in the page cache regime too,
    as a writer must that gives a typed error, not SIGBUS, when the source is truncated under it (arraystore).

    Each thread reads its chunks in order (cold: ``pread`` from the disk into one buffer used again; cache: straight
    from a memory map of the page cache), compresses each in one call into one buffer used again (libzstd's
    ``ZSTD_compress2`` at level 3, c-blosc's ``blosc_compress_ctx`` lz4:5 shuffled; zstd streamed by ``zstandard``
    where numcodecs does not export libzstd) and writes one file per chunk at Zarr's default key, in 128 KiB pieces
    (``c/i/0``); the run's ``os.sync()`` writes them back (cold). No metadata, no hashing, no temporary file and
    rename: what any Zarr writer of these chunks could reach on this machine, the limit arraystore is judged against.
    """

    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        import threading

        import zstandard

        from arraystore.conversion._fastpath import pread_into

        per = CHUNK_ROWS * ROW * 4
        total = int(np.prod(shape)) * 4
        n_chunks = -(-total // per)
        cores = os.cpu_count() or 1
        root = Path(str(out) + ".zarr") / "c"
        for i in range(n_chunks):
            (root / str(i)).mkdir(parents=True)
        fd = os.open(src, os.O_RDONLY)
        mapped = np.memmap(src, np.uint8, "r") if SOURCE_CACHED and not pread else None
        blosc = _blosc_into() if codec == "blosc" else None
        errors: list[BaseException] = []

        def work(k: int) -> None:
            try:
                buf = np.empty(per, np.uint8)
                dst = np.empty(per + per // 128 + 1024, np.uint8)  # above blosc's and zstd's bounds
                cctx = zstandard.ZstdCompressor(level=3, write_content_size=True)
                into = blosc if blosc is not None else _zstd_into()
                for i in range(k * n_chunks // cores, (k + 1) * n_chunks // cores):
                    off = i * per
                    n = min(per, total - off)
                    if mapped is not None:
                        data = mapped[off : off + n]
                    else:
                        data = buf[:n]
                        pread_into(fd, data.data, off)
                    with open(root / str(i) / "0", "wb") as f:
                        if into is not None:
                            size = into(data, dst)
                            for lo in range(0, size, 128 * 1024):  # pieces: the page cache takes them cheaper
                                f.write(dst[lo : min(size, lo + 128 * 1024)].data)
                        else:
                            w = cctx.stream_writer(f, size=n, write_size=128 * 1024, closefd=False)
                            w.write(data.data)
                            w.flush(zstandard.FLUSH_FRAME)
            except BaseException as exc:  # re-raised on the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(cores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        os.close(fd)
        if errors:
            raise errors[0]
        return None

    return op


#: The bare overlapped writer's settings (``*_write_overlap``), each overridable through the environment variable
#: ``BENCH_OVERLAP`` (e.g. ``BENCH_OVERLAP=depth=4,threads=3``): ``depth`` chunk buffers the reader may fill ahead of
#: the compressing threads, ``threads`` compressing threads (0: one per core), ``read`` chunks per ``pread``,
#: ``advise`` 0 none, 1 ``posix_fadvise(SEQUENTIAL)`` on the source, 2 that and ``WILLNEED`` of the range ``depth``
#: buffers ahead, ``writeback`` 1 ``sync_file_range(WRITE)`` of each chunk file once written (0: the final sync
#: writes them all back), ``drop`` 1 each thread's chunk files written back and dropped from the page cache four files
#: behind (implies writeback), ``direct`` 1 the source read with ``O_DIRECT`` into page-aligned buffers (no copy out
#: of the page cache: the disk writes straight into the buffer; 1.38 CPU s per GiB of random data into zstd:3 against
#: 1.47 through the cache, five alternated runs on the 2-core VM under a load average of 6-10, where depth 3 or 12,
#: 3 threads, 4 chunks a read, no advice, write-back started per file or drop-behind changed nothing measurable).
OVERLAP = {"depth": 6, "threads": 0, "read": 1, "advise": 1, "writeback": 0, "drop": 0, "direct": 1}


def _overlap_settings() -> dict[str, int]:
    settings = dict(OVERLAP)
    for item in filter(None, os.environ.get("BENCH_OVERLAP", "").split(",")):
        key, _, value = item.partition("=")
        if key not in settings:
            raise SystemExit(f"BENCH_OVERLAP: unknown setting {key!r}; choose among {', '.join(settings)}")
        settings[key] = int(value)
    return settings


def _overlap_writer_op(codec: str) -> Any:
    """The least any Zarr writer of these chunks must do from a cold source, with the read overlapped.

    One reader (the main thread) reads the source in order with ``pread`` into a ring of chunk buffers
    (:data:`OVERLAP` ``depth`` of them, ``read`` chunks a call), so the disk never waits for the compressors; a
    thread per core (``threads``) takes each filled buffer, compresses it in one call into a buffer of its own used
    again (libzstd's ``ZSTD_compress2`` level 3, c-blosc's ``blosc_compress_ctx`` lz4:5 shuffled: the bytes
    numcodecs writes) and writes it at Zarr's default key in 128 KiB pieces, then hands the buffer back. No
    metadata, hashing, journal, temporary file or rename; the run's ``os.sync()`` writes back what is left. The
    peer of arraystore's compressed Zarr writes from a cold source: its CPU seconds per GiB (and the machine's)
    are the CPU the job needs on this machine, its rate what the disk and the cores allow together.
    """

    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        import queue
        import threading
        from collections import deque

        from arraystore.conversion import _fastpath
        from arraystore.conversion._fastpath import drop_cache, pread_into, start_writeback

        cfg = _overlap_settings()
        per = CHUNK_ROWS * ROW * 4
        total = int(np.prod(shape)) * 4
        n_chunks = -(-total // per)
        threads = cfg["threads"] or (os.cpu_count() or 1)
        group = max(1, cfg["read"])
        root = Path(str(out) + ".zarr") / "c"
        for i in range(n_chunks):
            (root / str(i)).mkdir(parents=True)
        fd = os.open(src, os.O_RDONLY | (os.O_DIRECT if cfg["direct"] else 0))
        if cfg["advise"]:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        blosc = _blosc_into() if codec == "blosc" else None
        free: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def aligned(n: int) -> Any:  # O_DIRECT wants the buffer aligned to the device's blocks: a page is
            raw = np.empty(n + 4096, np.uint8)
            return raw[-raw.ctypes.data % 4096 :][:n]

        for _ in range(max(1, cfg["depth"])):
            free.put(aligned(per * group))
        filled: queue.SimpleQueue[Any] = queue.SimpleQueue()
        errors: list[BaseException] = []
        wait = _fastpath._SYNC_FILE_RANGE_WAIT_BEFORE | _fastpath._SYNC_FILE_RANGE_WRITE
        wait |= _fastpath._SYNC_FILE_RANGE_WAIT_AFTER

        def work() -> None:
            behind: deque[tuple[int, int]] = deque()
            try:
                dst = np.empty(per + per // 128 + 1024, np.uint8)  # above blosc's and zstd's bounds
                into = blosc if blosc is not None else _zstd_into()
                assert into is not None, "numcodecs' Zstd extension does not export ZSTD_compress2"
                while (item := filled.get()) is not None:
                    first, count, buf = item
                    for j in range(count):
                        i = first + j
                        n = min(per, total - i * per)
                        size = into(buf[j * per : j * per + n], dst)
                        with open(root / str(i) / "0", "wb") as f:
                            for lo in range(0, size, 128 * 1024):
                                f.write(dst[lo : min(size, lo + 128 * 1024)].data)
                            if cfg["writeback"] or cfg["drop"]:
                                f.flush()
                                start_writeback(f.fileno())
                            if cfg["drop"]:
                                behind.append((os.dup(f.fileno()), size))
                        while len(behind) > 4:
                            old, nbytes = behind.popleft()
                            _fastpath._sfr(old, 0, 0, wait)
                            drop_cache(old, 0, nbytes)
                            os.close(old)
                    free.put(buf)
                for old, _ in behind:
                    os.close(old)
            except BaseException as exc:  # re-raised on the main thread
                errors.append(exc)
                free.put(aligned(per * group))  # the reader must not wait for this thread

        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        try:
            for first in range(0, n_chunks, group):
                buf = free.get()
                if errors:
                    break
                count = min(group, n_chunks - first)
                off = first * per
                n = min(per * count, total - off)
                pread_into(fd, buf[:n].data, off)
                if cfg["advise"] >= 2:
                    os.posix_fadvise(fd, off + n + per * group * (cfg["depth"] - 1), per * group,
                                     os.POSIX_FADV_WILLNEED)
                filled.put((first, count, buf))
        finally:
            for _ in pool:
                filled.put(None)
            for t in pool:
                t.join()
            os.close(fd)
        if errors:
            raise errors[0]
        return None

    return op


def _codec_into_op(codec: str) -> Any:
    """One core compressing 4 MiB chunks in memory with the bare writers' calls (a context and an output buffer used
    again): the codec's own CPU seconds per GiB, without numcodecs' fresh output buffer per chunk."""

    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        into = _blosc_into() if codec == "blosc" else _zstd_into()
        if into is None:
            return {"skip": "numcodecs' Zstd extension does not export ZSTD_compress2"}
        data = np.fromfile(src, dtype=np.uint8, count=256 * 1024 * 1024)
        per = CHUNK_ROWS * ROW * 4
        dst = np.empty(per + per // 128 + 1024, np.uint8)
        into(data[:per], dst)  # the context and the output's pages made before the timing
        t0, c0 = time.perf_counter(), time.process_time()
        for off in range(0, data.size, per):
            into(data[off : off + per], dst)
        return {"bytes": int(data.size), "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}

    return op


def op_dropbehind(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> None:
    from arraystore.conversion._fastpath import DropBehindWriter, pwrite_all

    buf = np.empty(SLAB, np.uint8)
    buf[:] = 7  # filled (not lazily zero) pages; generating random bytes would be timed too
    total = int(np.prod(shape)) * 4
    fd = os.open(str(out) + ".dat", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    w = DropBehindWriter(fd)
    for off in range(0, total, SLAB):
        n = min(SLAB, total - off)
        pwrite_all(fd, buf[:n].data, off, "out")
        w.wrote(off, n)
    w.finish()
    os.close(fd)


def op_cold_read(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> None:
    from arraystore.conversion._fastpath import pread_into

    buf = np.empty(SLAB, np.uint8)
    total = int(np.prod(shape)) * 4
    fd = os.open(src, os.O_RDONLY)
    for off in range(0, total, SLAB):
        n = min(SLAB, total - off)
        pread_into(fd, buf[:n].data, off)
    os.close(fd)


def op_cached_write(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> None:
    """Sequential writes into the page cache, as ``cp`` writes; the run's ``sync`` writes them back."""
    from arraystore.conversion._fastpath import pwrite_all

    buf = np.empty(SLAB, np.uint8)
    buf[:] = 7
    total = int(np.prod(shape)) * 4
    fd = os.open(str(out) + ".dat", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    for off in range(0, total, SLAB):
        n = min(SLAB, total - off)
        pwrite_all(fd, buf[:n].data, off, "out")
    os.close(fd)


def op_duplex(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> None:
    """The cold read and the drop-behind write at the same time, on two threads: what the disk gives a copy."""
    import threading

    errors: list[BaseException] = []

    def run(fn: Any) -> None:
        try:
            fn(src, out, shape, folder)
        except BaseException as exc:  # re-raised on the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in (op_cold_read, op_dropbehind)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _codec(name: str) -> Any:
    if name == "zstd":
        import numcodecs

        c = numcodecs.Zstd(level=3)
        return c.encode
    if name == "gzip":
        import zlib

        return lambda b: zlib.compress(b, 1)
    try:
        import lzf  # type: ignore[import-not-found]
    except ImportError:
        return None
    return lambda b: lzf.compress(bytes(b))


def _codec_op(name: str) -> Any:
    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        enc = _codec(name)
        if enc is None:
            return {"skip": f"no standalone {name} module (python-lzf) installed; see h5py_lzf"}
        data = np.fromfile(src, dtype=np.uint8, count=256 * 1024 * 1024)
        chunk = 4 * 1024 * 1024
        t0, c0 = time.perf_counter(), time.process_time()
        for off in range(0, data.size, chunk):
            enc(data[off : off + chunk])
        return {"bytes": int(data.size), "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}

    return op


def _codec_cores_op(stream: bool) -> Any:
    """zstd:3 on 4 MiB chunks, a thread per core: numcodecs' one-shot encode or zstandard streamed to /dev/null."""

    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        from concurrent.futures import ThreadPoolExecutor

        import numcodecs

        data = np.fromfile(src, dtype=np.uint8, count=256 * 1024 * 1024)
        chunk = 4 * 1024 * 1024
        pieces = [data[off : off + chunk] for off in range(0, data.size, chunk)]
        cores = os.cpu_count() or 1
        if stream:
            import threading

            import zstandard

            local = threading.local()
            sink = open(os.devnull, "wb")  # noqa: SIM115

            def enc(p: Any) -> None:
                if not hasattr(local, "c"):
                    local.c = zstandard.ZstdCompressor(level=3)
                w = local.c.stream_writer(sink, size=p.size, write_size=128 * 1024, closefd=False)
                w.write(p)
                w.flush(zstandard.FLUSH_FRAME)
        else:
            enc = numcodecs.Zstd(level=3).encode
        t0, c0 = time.perf_counter(), _cpu_seconds()
        with ThreadPoolExecutor(cores) as pool:
            list(pool.map(enc, pieces))
        return {"bytes": int(data.size), "seconds": time.perf_counter() - t0, "cpu": _cpu_seconds() - c0}

    return op


def op_numpy_naive(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> None:
    np.save(str(out) + ".npy", np.fromfile(src, dtype="<f4").reshape(shape))


def op_numpy_memmap(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> None:
    m = _memmap(src, shape)
    o = np.lib.format.open_memmap(str(out) + ".npy", mode="w+", dtype="<f4", shape=shape)
    step = SLAB // (ROW * 4)
    for i in range(0, shape[0], step):
        o[i : i + step] = m[i : i + step]
    o.flush()
    del o


def _h5py_op(compression: str | None, opts: Any = None) -> Any:
    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> None:
        import h5py

        m = _memmap(src, shape)
        with h5py.File(str(out) + ".h5", "w") as f:
            ds = f.create_dataset("data", shape=shape, dtype="<f4", chunks=(CHUNK_ROWS, ROW), compression=compression,
                                  compression_opts=opts)
            step = SLAB // (ROW * 4)
            for i in range(0, shape[0], step):
                ds[i : i + step] = m[i : i + step]

    return op


def _zarr_slab_op(zstd: bool, zarrs: bool = False, blosc: bool = False) -> Any:
    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        import zarr
        import zarr.codecs

        try:
            _zarrs(zarrs)
        except ImportError:
            return {"skip": "zarrs not installed (pip install zarrs)"}
        m = _memmap(src, shape)
        arr = zarr.create_array(str(out) + ".zarr", shape=shape, dtype="<f4", chunks=(CHUNK_ROWS, ROW),
                                compressors=None if not zstd else [
                                    zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle") if blosc
                                    else zarr.codecs.ZstdCodec(level=3)], zarr_format=3)
        step = SLAB // (ROW * 4)
        for i in range(0, shape[0], step):
            arr[i : i + step] = m[i : i + step]
        return None

    return op


def op_zarr_array_memmap(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> None:
    import zarr
    import zarr.codecs

    zarr.create_array(str(out) + ".zarr", data=_memmap(src, shape), chunks=(CHUNK_ROWS, ROW),
                      compressors=[zarr.codecs.ZstdCodec(level=3)], zarr_format=3)


def op_dask_to_zarr(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> None:
    import dask.array as da
    import zarr
    import zarr.codecs

    arr = zarr.create_array(str(out) + ".zarr", shape=shape, dtype="<f4", chunks=(CHUNK_ROWS, ROW),
                            compressors=[zarr.codecs.ZstdCodec(level=3)], zarr_format=3)
    da.from_array(_memmap(src, shape), chunks=(CHUNK_ROWS, ROW)).to_zarr(arr)  # type: ignore[no-untyped-call]


def _tensorstore_op(zstd: bool) -> Any:
    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> Any:
        return op_tensorstore(src, out, shape, folder, zstd=zstd)

    return op


def op_tensorstore(src: Path, out: Path, shape: tuple[int, ...], folder: Path, zstd: bool = False) -> Any:
    try:
        import tensorstore as ts  # type: ignore[import-not-found]
    except ImportError:
        return {"skip": "tensorstore not installed"}
    codecs = [{"name": "bytes", "configuration": {"endian": "little"}}]
    if zstd:
        codecs.append({"name": "zstd", "configuration": {"level": 3, "checksum": False}})
    t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(out) + ".ts.zarr"},
                 "metadata": {"codecs": codecs}},
                create=True, dtype=ts.float32, shape=shape,
                chunk_layout=ts.ChunkLayout(chunk_shape=[CHUNK_ROWS, ROW])).result()
    m = _memmap(src, shape)
    step = SLAB // (ROW * 4)
    for i in range(0, shape[0], step):
        t[i : i + step].write(m[i : i + step]).result()
    return None


def _as_op(src_name: str, suffix: str, **kw: Any) -> Any:
    def op(src: Path, out: Path, shape: tuple[int, ...], folder: Path) -> None:
        from arraystore.conversion import convert

        convert(str(folder / src_name), str(out) + suffix, **kw)

    return op


OP_FUNCS: dict[str, Any] = {
    "cp": op_cp,
    "cp_fsync": op_cp_fsync,
    "dropbehind_write": op_dropbehind,
    "cold_read": op_cold_read,
    "duplex": op_duplex,
    "cached_write": op_cached_write,
    "codec_zstd3": _codec_op("zstd"),
    "codec_zstd3_cores": _codec_cores_op(False),
    "codec_zstd3_stream_cores": _codec_cores_op(True),
    "codec_gzip1": _codec_op("gzip"),
    "codec_lzf": _codec_op("lzf"),
    "numpy_naive": op_numpy_naive,
    "numpy_memmap": op_numpy_memmap,
    "h5py_none": _h5py_op(None),
    "h5py_gzip1": _h5py_op("gzip", 1),
    "h5py_lzf": _h5py_op("lzf"),
    "zarr_slab_none": _zarr_slab_op(False),
    "zarr_slab_zstd": _zarr_slab_op(True),
    "zarr_slab_blosc": _zarr_slab_op(True, blosc=True),
    "zarrs_slab_none": _zarr_slab_op(False, zarrs=True),
    "zarrs_slab_zstd": _zarr_slab_op(True, zarrs=True),
    "zarr_array_memmap": op_zarr_array_memmap,
    "dask_to_zarr": op_dask_to_zarr,
    "tensorstore_none": _tensorstore_op(False),
    "tensorstore_zstd": _tensorstore_op(True),
    "zstd_decode_1core": _decode_op(False),
    "zstd_decode_cores": _decode_op(True),
    "zstd_decode_write_cores": _decode_write_op(False),
    "zstd_decode_write_cores_sharded": _decode_write_op(True),
    "zstd_decode_fresh_cores": _decode_fresh_op(),
    "blosc_decode_numcodecs": _blosc_op("numcodecs", True),
    "blosc_decode_blosc2": _blosc_op("blosc2", True),
    "blosc_encode_numcodecs": _blosc_op("numcodecs", False),
    "blosc_encode_blosc2": _blosc_op("blosc2", False),
    "zstd_write_cores": _bare_writer_op("zstd"),
    "blosc_write_cores": _bare_writer_op("blosc"),
    "zstd_write_cores_pread": _bare_writer_op("zstd", pread=True),
    "blosc_write_cores_pread": _bare_writer_op("blosc", pread=True),
    "zstd_write_overlap": _overlap_writer_op("zstd"),
    "blosc_write_overlap": _overlap_writer_op("blosc"),
    "codec_zstd3_into": _codec_into_op("zstd"),
    "blosc_encode_into": _codec_into_op("blosc"),
    "zarr_read_npy": _zarr_read_op(False, False),
    "zarrs_read_npy": _zarr_read_op(False, True),
    "tensorstore_read_npy": _tensorstore_read_op(False),
    "zarr_read_npy_sharded": _zarr_read_op(True, False),
    "zarrs_read_npy_sharded": _zarr_read_op(True, True),
    "tensorstore_read_npy_sharded": _tensorstore_read_op(True),
    **{f"{who}_open_read{'_sharded' if sh else ''}": _open_read_op(name, sh)
       for who, name in (("zarr", "zarr"), ("zarrs", "zarrs"), ("tensorstore", "tensorstore"), ("as", "arraystore"))
       for sh in (False, True)},
    "as_raw_npy": _as_op("src.dat", ".npy"),
    "as_raw_npy_durable": _as_op("src.dat", ".npy", durable=True),
    "as_npy_raw": _as_op("src.npy", ".dat"),
    "as_raw_h5": _as_op("src.dat", ".h5"),
    "as_raw_h5_gzip": _as_op("src.dat", ".h5", compression="gzip:1", chunks=(CHUNK_ROWS, ROW)),
    "as_raw_zarr": _as_op("src.dat", ".zarr", chunks=(CHUNK_ROWS, ROW)),
    "as_raw_zarr_zstd": _as_op("src.dat", ".zarr", chunks=(CHUNK_ROWS, ROW), compression="zstd:3"),
    "as_raw_zarr_blosc": _as_op("src.dat", ".zarr", chunks=(CHUNK_ROWS, ROW), compression="blosc:lz4:5"),
    "as_raw_zarr_gzip": _as_op("src.dat", ".zarr", chunks=(CHUNK_ROWS, ROW), compression="gzip:1"),
    "as_raw_zarr_zstd_sharded": _as_op("src.dat", ".zarr", chunks=(CHUNK_ROWS // 4, ROW), shards=(CHUNK_ROWS * 4, ROW),
                                       compression="zstd:3"),
    "as_zarr_npy": _as_op("src.zarr", ".npy"),
    "as_zarr_h5": _as_op("src.zarr", ".h5"),
    "as_zarr_npy_sharded": _as_op("src_sharded.zarr", ".npy"),
    "as_zarr_h5_sharded": _as_op("src_sharded.zarr", ".h5"),
    "as_h5_zarr": _as_op("src.h5", ".zarr", chunks=(CHUNK_ROWS, ROW), compression="zstd:3"),
    "gzip_decode_1core": _transcode_op(False, False),
    "gzip_zstd_1core": _transcode_op(False, True),
    "gzip_zstd_cores": _transcode_op(True, True),
    "h5py_zarr_gzip": _h5_to_zarr_op("zarr"),
    "h5py_zarrs_gzip": _h5_to_zarr_op("zarrs"),
    "h5py_tensorstore_gzip": _h5_to_zarr_op("tensorstore"),
    "as_h5gzip_zarr": _as_op("src_gzip.h5", ".zarr", chunks=(CHUNK_ROWS, ROW), compression="zstd:3"),
}


def clean_outputs(folder: Path) -> None:
    for p in folder.glob("out*"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="2GiB")
    ap.add_argument("--data", choices=("random", "smooth"), default="random")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default=None, help="working folder (default: a new one under /tmp, removed after)")
    ap.add_argument("--only", default=None, help="comma-separated operation names")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--markdown", default=None, help="also write the dated table (for docs/benchmarks.md) here")
    ap.add_argument("--regime", choices=("cold", "cache", "big"), default="cold")
    ap.add_argument("--memory-limit", default=None, help="--regime big: the cgroup's limit (default: data / 3)")
    ap.add_argument("--baseline", default=None, metavar="SRC",
                    help="also run every arraystore operation (as_*) with the arraystore package under SRC (e.g. "
                         "another checkout's src/), alternating run by run with this tree's, as '<op>@baseline'")
    ap.add_argument("--interleave", action="store_true",
                    help="run the operations round-robin (each once per round, --runs rounds) instead of one "
                         "after another, so that a changing load hits peers and arraystore alike")
    ap.add_argument("--_op", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_src", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_nosync", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_cgroup", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._op:
        print(json.dumps(run_op(args._op, Path(args.dir), sync=not args._nosync, cgroup=args._cgroup,
                                src_tree=args._src)))
        return 0
    size = parse_size(args.size)
    cgroup: Path | None = None
    if args.regime == "big":
        limit = parse_size(args.memory_limit) if args.memory_limit else size // 3
        made = make_cgroup(limit)
        if isinstance(made, str):
            print(f"--regime big skipped: {made}", file=sys.stderr)
            return 2
        cgroup = made
    load_before = os.getloadavg()
    keep = args.dir is not None
    folder = Path(args.dir or f"/tmp/arraystore-bench-{os.getpid()}")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        wanted = args.only.split(",") if args.only else []
        unknown = sorted(set(wanted) - {name for name, _ in OPS})
        if unknown:
            raise SystemExit(f"unknown operation(s) {', '.join(unknown)}; choose among {', '.join(n for n, _ in OPS)}")
        ops = [o for o in OPS if not wanted or o[0] in wanted]
        rows, cols = make_source(folder, size, args.data, [name for name, _ in ops])
        nbytes = rows * cols * 4
        results: dict[str, Any] = {}
        baseline = str(Path(args.baseline).resolve()) if args.baseline else None

        def one_run(name: str, tree: str | None) -> dict[str, Any]:
            clean_outputs(folder)
            os.sync()  # untimed: no write-back of the previous run lands in this one
            for p in folder.glob("src*"):
                warm_cache(p) if args.regime == "cache" else drop_cache(p)
            cmd = [sys.executable, __file__, "--_op", name, "--dir", str(folder)]
            env = None
            if tree is not None:
                cmd += ["--_src", tree]
                env = {**os.environ, "PYTHONPATH": tree}
            if args.regime == "cache":
                cmd.append("--_nosync")
            if cgroup is not None:
                cmd += ["--_cgroup", str(cgroup)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                why = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else str(proc.returncode)
                if proc.returncode == -9 and cgroup is not None:
                    why = "killed (SIGKILL): out of memory in the cgroup; raise --memory-limit"
                return {"skip": f"failed: {why}"}
            r: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
            return r

        # Each operation's runs (and its baseline's, alternated); with --interleave every operation once per round.
        groups = [ops] if args.interleave else [[op] for op in ops]
        for group in groups:
            trees = [(name, key, lab, tree) for name, label in group for key, lab, tree in (
                [(f"{name}@baseline", f"{label} (baseline)", baseline)]
                if baseline is not None and name.startswith("as_") else []) + [(name, label, None)]]
            runs_of: dict[str, list[dict[str, Any]]] = {key: [] for _, key, _, _ in trees}
            for _ in range(args.runs):
                for name, key, _, tree in trees:
                    if runs_of[key] and "skip" in runs_of[key][-1]:
                        continue
                    r = one_run(name, tree)
                    runs_of[key] = [r] if "skip" in r else [*runs_of[key], r]
            for _, key, lab, _ in trees:
                results[key] = {"label": lab, "runs": runs_of[key]}
                print(_line(key, lab, runs_of[key], results), flush=True)
        clean_outputs(folder)
        load_after = os.getloadavg()
        limit_text = f" memory cgroup {cgroup_limit(cgroup) / 2**30:.2f} GiB" if cgroup is not None else ""
        header = (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
                  f"{os.cpu_count()} cores  {platform.python_version()}  regime={args.regime}{limit_text}  "
                  f"data={args.data} size={nbytes / 2**30:.2f} GiB runs={args.runs}  "
                  f"load {load_before[0]:.1f} -> {load_after[0]:.1f}\n"
                  f"command: python tools/bench_convert.py {' '.join(sys.argv[1:])}")
        print()
        print(header)
        print(table(results, args.regime))
        if args.json:
            Path(args.json).write_text(json.dumps({"header": header, "results": results}, indent=2))
        if args.markdown:
            Path(args.markdown).write_text(f"```text\n{header}\n```\n\n{table(results, args.regime)}\n")
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
        if cgroup is not None:
            remove_cgroup(cgroup)
    return 0


def warm_cache(path: Path) -> None:
    """Read every file of ``path`` once, so the operation finds the source in the page cache."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while fh.read(SLAB):
                pass


def make_cgroup(limit: int) -> Path | str:
    """A memory cgroup limited to ``limit`` bytes (v1, else v2), or why none could be made."""
    name = f"arraystore-bench-{os.getpid()}"
    reasons = []
    for base, limit_file in ((Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"),
                             (Path("/sys/fs/cgroup"), "memory.max")):
        if not (base / "cgroup.procs").exists() or (limit_file == "memory.max"
                                                     and not (base / "cgroup.controllers").exists()):
            reasons.append(f"{base}: no cgroup {'v1 memory' if 'memory' in str(base) else 'v2'} hierarchy")
            continue
        folder = base / name
        try:
            folder.mkdir()
            (folder / limit_file).write_text(str(limit))
            return folder
        except OSError as exc:
            reasons.append(f"{folder}: {exc.strerror or exc}")
            with contextlib.suppress(OSError):
                folder.rmdir()
    return "; ".join(reasons) + " (needs root and a writable memory cgroup)"


def cgroup_limit(folder: Path) -> int:
    for name in ("memory.limit_in_bytes", "memory.max"):
        with contextlib.suppress(OSError, ValueError):
            return int((folder / name).read_text().strip())
    return 0


def remove_cgroup(folder: Path) -> None:
    """Remove the cgroup (its processes have all ended)."""
    for _ in range(50):
        try:
            folder.rmdir()
            return
        except OSError:
            time.sleep(0.1)
    print(f"could not remove {folder}; remove it with rmdir", file=sys.stderr)


def _median_gbs(runs: list[dict[str, Any]]) -> float | None:
    ok = [r for r in runs if "seconds" in r]
    if not ok:
        return None
    return float(statistics.median(r["bytes"] / r["seconds"] for r in ok)) / 1e9


def _line(name: str, label: str, runs: list[dict[str, Any]], results: dict[str, Any]) -> str:
    g = _median_gbs(runs)
    return f"{name:20s} {label:45s} " + (f"{g:6.2f} GB/s" if g is not None else runs[0].get("skip", "?"))


#: Same-layout copies (and their peer), whose ratio to the copy limit the table shows.
COPY_OPS = ("cp", "cp_fsync", "as_raw_npy", "as_raw_npy_durable", "as_npy_raw", "as_raw_h5")


def copy_limit(results: dict[str, Any]) -> tuple[float, str] | None:
    """What the disk allows a copy, measured in this run, and how it was found; None without the limit rows.

    The best of the ways to move the bytes measured in this run: reading and writing at once
    (``duplex``), one after the other (``1 / (1 / cold_read + 1 / write)``, the faster of the
    drop-behind and the page-cache write), and ``cp`` itself (which may overlap a little of both).
    """
    g = {name: _median_gbs(results[name]["runs"]) if name in results else None
         for name in ("duplex", "cold_read", "dropbehind_write", "cached_write", "cp")}
    found = []
    if g["duplex"]:
        found.append((g["duplex"], f"duplex {g['duplex']:.2f}"))
    write = max(w for w in (g["dropbehind_write"], g["cached_write"], 0.0) if w is not None)
    if g["cold_read"] and write:
        serial = 1 / (1 / g["cold_read"] + 1 / write)
        found.append((serial, f"read then write 1/(1/{g['cold_read']:.2f} + 1/{write:.2f}) = {serial:.2f}"))
    if found and g["cp"]:
        found.append((g["cp"], f"cp {g['cp']:.2f}"))
    if not found:
        return None
    return max(found)[0], "; ".join(text for _, text in found)


#: Compressed Zarr writes judged against their limits: (operation, zarr-python's peer, the one-core in-memory encode
#: rate, the same with a thread per core, the bare chunk writer).
COMPRESSED_WRITES = (("as_raw_zarr_zstd", "zarr_slab_zstd", "codec_zstd3", "codec_zstd3_cores", "zstd_write_cores",
                      "zstd_write_cores_pread"),
                     ("as_raw_zarr_blosc", "zarr_slab_blosc", "blosc_encode_numcodecs", None, "blosc_write_cores",
                      "blosc_write_cores_pread"))


def compression_verdicts(results: dict[str, Any], regime: str) -> list[str]:
    """Issue 14's verdict for each compressed Zarr write measured: >= 2x zarr-python's slab writes and >= 0.85x
    min(codec ceiling, I/O limit), the ceiling the one-core encode rate x the cores (else the threaded rate), the I/O
    limit the copy limit of this run (cold and big regimes: reading and writing the same bytes, duplex or serial);
    and the share of the bare chunk writer (``*_write_cores``), what any Zarr writer reaches here."""
    g = {name: rate for name, r in results.items() if (rate := _median_gbs(r["runs"]))}
    io = copy_limit(results) if regime != "cache" else None
    cores = os.cpu_count() or 1
    lines: list[str] = []
    for op, peer, one_core, threaded, bare, bare_pread in COMPRESSED_WRITES:
        for name in (n for n in results if n.split("@")[0] == op):
            if name not in g:
                continue
            ours = g[name]
            parts = [f"{results[name]['label']}: {ours:.2f} GB/s"]
            if peer in g:
                ratio = ours / g[peer]
                parts.append(f"{ratio:.2f}x zarr-python ({g[peer]:.2f}; goal 2x: {'met' if ratio >= 2 else 'NOT met'})")
            ceiling, how = None, ""
            if one_core in g:
                ceiling, how = g[one_core] * cores, f"{g[one_core]:.2f} x {cores} cores"
            elif threaded in g:
                ceiling, how = g[threaded], "threaded"
            bounds = [(b, w) for b, w in ((ceiling, f"codec ceiling {how}"), (io[0] if io else None, "I/O limit"))
                      if b]
            if bounds:
                bound, what = min(bounds)
                ratio = ours / bound
                parts.append(f"{ratio:.2f}x min(codec ceiling, I/O limit) = {bound:.2f} ({what}; goal 0.85x: "
                             f"{'met' if ratio >= 0.85 else 'NOT met'})")
            if bare in g:
                parts.append(f"{ours / g[bare]:.2f}x the bare chunk writer ({g[bare]:.2f})")
            if bare_pread in g:
                parts.append(f"{ours / g[bare_pread]:.2f}x the bare writer reading with pread ({g[bare_pread]:.2f})")
            lines.append("; ".join(parts) + ".")
    if lines and io is None and regime != "cache":
        lines.append("No I/O limit in this run (select duplex, or cold_read with dropbehind_write/cached_write).")
    return ["", *lines] if lines else []


#: Zarr reads judged against their limits: (operation, its peers, the bare loop doing the least the same job needs).
ZARR_READS = (("as_zarr_npy", ("zarr_read_npy", "zarrs_read_npy", "tensorstore_read_npy"), "zstd_decode_write_cores"),
              ("as_zarr_h5", ("zarr_read_npy", "zarrs_read_npy", "tensorstore_read_npy"), "zstd_decode_write_cores"),
              ("as_zarr_npy_sharded", ("zarr_read_npy_sharded", "zarrs_read_npy_sharded",
                                       "tensorstore_read_npy_sharded"), "zstd_decode_write_cores_sharded"),
              ("as_zarr_h5_sharded", ("zarr_read_npy_sharded", "zarrs_read_npy_sharded",
                                      "tensorstore_read_npy_sharded"), "zstd_decode_write_cores_sharded"),
              ("as_open_read", ("zarr_open_read", "zarrs_open_read", "tensorstore_open_read"), "zstd_decode_fresh_cores"),
              ("as_h5gzip_zarr", ("h5py_zarr_gzip", "h5py_zarrs_gzip", "h5py_tensorstore_gzip"), "gzip_zstd_cores"))


def read_verdicts(results: dict[str, Any], regime: str) -> list[str]:
    """Issue 14's verdict for each Zarr read (and chunked gzip HDF5 -> Zarr) measured: ahead of its best peer, and
    >= 0.85x the decode ceiling (``zstd_decode_cores``; for HDF5 -> Zarr the in-memory inflate + zstd:3 on every
    core, ``gzip_zstd_cores``) or the I/O limit (cold and big regimes), whichever is lower; and the share of the bare
    loop that does the least the job needs (``zstd_decode_write_cores[_sharded]``: read, decode and ``pwrite`` on
    every core; ``zstd_decode_fresh_cores``: read and decode into new arrays), the most any reader reaches here.
    """
    g = {name: rate for name, r in results.items() if (rate := _median_gbs(r["runs"]))}
    io = copy_limit(results) if regime != "cache" else None
    lines: list[str] = []
    for op, peers, bare in ZARR_READS:
        for name in (n for n in results if n.split("@")[0] == op):
            if name not in g:
                continue
            ours = g[name]
            parts = [f"{results[name]['label']}: {ours:.2f} GB/s"]
            measured = [(g[p], p) for p in peers if p in g]
            if measured:
                best, who = max(measured)
                parts.append(f"{ours / best:.2f}x the best peer ({who} {best:.2f}; goal > 1: "
                             f"{'met' if ours > best else 'NOT met'})")
            ceiling = "gzip_zstd_cores" if op == "as_h5gzip_zarr" else "zstd_decode_cores"
            bounds = [(b, w) for b, w in ((g.get(ceiling), f"{ceiling}"), (io[0] if io else None, "I/O limit")) if b]
            if bounds:
                bound, what = min(bounds)
                ratio = ours / bound
                parts.append(f"{ratio:.2f}x min(decode ceiling, I/O limit) = {bound:.2f} ({what}; goal 0.85x: "
                             f"{'met' if ratio >= 0.85 else 'NOT met'})")
            if bare in g:
                parts.append(f"{ours / g[bare]:.2f}x the bare loop ({bare} {g[bare]:.2f}"
                             + (f" = {g[bare] / g[ceiling]:.2f}x the ceiling" if ceiling in g else "") + ")")
            cpu = _cpu_per_gib(results[name]["runs"], False)
            bare_cpu = _cpu_per_gib(results[bare]["runs"], False) if bare in results else None
            if cpu and bare_cpu:
                parts.append(f"CPU s per GiB {cpu:.2f} against the bare loop's {bare_cpu:.2f}")
            lines.append("; ".join(parts) + ".")
    return ["", *lines] if lines else []


def _per_gib(runs: list[dict[str, Any]], key: str) -> str:
    """The median of ``key`` (seconds) per GiB moved over ``runs``, formatted; empty where not measured."""
    values = [x[key] / x["bytes"] * 2**30 for x in runs if x.get(key) is not None and x.get("bytes")]
    return f"{statistics.median(values):.2f}" if values else ""


def _cpu_per_gib(runs: list[dict[str, Any]], kernel: bool) -> float | None:
    """Median CPU seconds per GiB of ``runs``: the process's, plus the kernel threads' when ``kernel``."""
    values = [(x["cpu"] + (x.get("kernel_cpu") or 0.0 if kernel else 0.0)) / x["bytes"] * 2**30
              for x in runs if "cpu" in x and x.get("bytes") and "seconds" in x]
    return float(statistics.median(values)) if values else None


#: The bare writers of each compressed Zarr write whose CPU per GiB bounds any writer on these cores: the overlapped
#: one (a cold source), else the one reading with ``pread`` (as arraystore must), else the one reading a memory map.
BOUND_PEERS = {"as_raw_zarr_zstd": ("zstd_write_overlap", "zstd_write_cores_pread", "zstd_write_cores"),
               "as_raw_zarr_blosc": ("blosc_write_overlap", "blosc_write_cores_pread", "blosc_write_cores")}


def cpu_bounds(results: dict[str, Any]) -> list[str]:
    """For each compressed Zarr write with a bare writer measured beside it (the first of its ``BOUND_PEERS`` in the
    results): the rate the cores allow a writer that needs that writer's CPU per GiB (its process, then with the
    kernel threads' work beside it) with every core busy all the time, the same for arraystore's own CPU per GiB,
    and the share of each bound reached. In the page cache (no overlapped writer run) the bound is the bare
    ``pread`` writer's, measured in the same run."""
    cores = os.cpu_count() or 1
    lines = []
    for op, peers in BOUND_PEERS.items():
        peer = next((p for p in peers if p in results and _median_gbs(results[p]["runs"]) is not None), None)
        if peer is None:
            continue
        for name in (n for n in results if n.split("@")[0] == op):
            ours = _median_gbs(results[name]["runs"])
            if ours is None:
                continue
            parts = []
            for who, runs in ((peer, results[peer]["runs"]), (name, results[name]["runs"])):
                own, with_kernel = _cpu_per_gib(runs, False), _cpu_per_gib(runs, True)
                if not own or not with_kernel:
                    continue
                bound, bound_k = cores / own * 2**30 / 1e9, cores / with_kernel * 2**30 / 1e9
                parts.append(f"{who} {own:.2f} CPU s/GiB (+ kernel threads {with_kernel:.2f}): {cores} cores allow "
                             f"{bound:.2f} ({bound_k:.2f})")
            peer_k = _cpu_per_gib(results[peer]["runs"], True)
            if peer_k:
                limit = cores / peer_k * 2**30 / 1e9
                parts.append(f"{name} {ours:.2f} GB/s = {ours / limit:.2f}x the CPU bound of {peer} with kernel threads "
                             f"({limit:.2f}), {ours / _median_gbs(results[peer]['runs']):.2f}x its rate")
            if parts:
                lines.append("CPU bound: " + "; ".join(parts) + ".")
    return lines


def table(results: dict[str, Any], regime: str = "cold") -> str:
    cp = _median_gbs(results["cp"]["runs"]) if "cp" in results else None
    # The limit rows read from the disk: with the source in the page cache (and nothing synced) they bound nothing.
    limit = copy_limit(results) if regime != "cache" else None
    lines = ["| operation | GB/s (median) | x cp | x copy limit | CPU s per GiB (median) | peak private MiB "
             "| + kernel threads CPU s per GiB | machine CPU s per GiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        g = _median_gbs(r["runs"])
        if g is None:
            lines.append(f"| {r['label']} | skipped: {r['runs'][0].get('skip', '?')} | | | | | | |")
            continue
        peak = max(x["peak_anon"] for x in r["runs"] if "peak_anon" in x) / 2**20
        ratio = f"{g / cp:.2f}" if cp else ""
        of_limit = f"{g / limit[0]:.2f}" if limit and name.split("@")[0] in COPY_OPS else ""
        cpus = [x["cpu"] / x["bytes"] * 2**30 for x in r["runs"] if "cpu" in x and x.get("bytes")]
        cpu = f"{statistics.median(cpus):.2f}" if cpus else ""
        kernel, machine = (_per_gib(r["runs"], key) for key in ("kernel_cpu", "machine_cpu"))
        lines.append(f"| {r['label']} | {g:.2f} | {ratio} | {of_limit} | {cpu} | {peak:.0f} | {kernel} | {machine} |")
    lines += compression_verdicts(results, regime)
    lines += read_verdicts(results, regime)
    bounds = cpu_bounds(results)
    if bounds:
        lines += ["", *bounds]
    if limit is not None:
        lines += ["", f"Copy limit (this run): {limit[0]:.2f} GB/s, the better of {limit[1]}."]
        if cp:
            goal = 1.5 * cp
            verdict = "reachable" if goal <= limit[0] else "NOT reachable on this machine"
            lines.append(f"1.5x cp = {goal:.2f} GB/s = {goal / limit[0]:.2f}x the copy limit: {verdict}; "
                         f"the most a copy can reach is {limit[0] / cp:.2f}x cp.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
