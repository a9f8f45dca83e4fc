"""Object-storage benchmark: Zarr upload and download to a loopback S3 server (moto or s3rver), side by side.

One command::

    python tools/bench_objstore.py --size 64MiB --runs 3
    python tools/bench_objstore.py --size 1GiB --runs 3     # and 4GiB: is peak memory flat?
    python tools/bench_objstore.py --size 256MiB --clients zarr+obstore,arraystore --server s3rver

Starts the server in its own process (so that what it keeps in memory is not counted as the
clients') on 127.0.0.1 (a free port; nothing leaves the machine): ``--server moto`` (default,
``python -m moto.server``, objects in its memory) or ``--server s3rver`` (the Node.js fake S3
server, objects in files under the benchmark's temporary folder; ``ARRAYSTORE_S3RVER`` names its
``bin/s3rver.js``, else ``s3rver`` on ``PATH``; ``npm install --prefix DIR s3rver@3.7.1``). s3rver
ignores conditional requests, which arraystore refuses; the benchmark sets
``ARRAYSTORE_ASSUME_CONDITIONAL_REQUESTS=1`` for it (one writer, nothing to guard against). Then it
writes and reads the same float32 array (shape ``(size / 16 KiB, 4096)``, 1 MiB chunks of 64 whole
rows, uncompressed; ``--compression zstd:3`` compresses them for every Zarr client) with:

* ``zarr+fsspec``: zarr-python 3.1 on ``FsspecStore`` (s3fs), its default for ``s3://``;
* ``zarr+obstore``: zarr-python 3.1 on ``ObjectStore`` (obstore);
* ``zarr+obstore>npy``: download only: zarr-python on obstore reading the array into memory and
  ``np.save``-ing it to a local ``.npy``, the like-for-like peer of arraystore's download (which
  ends in a local ``.npy`` too);
* ``arraystore``: ``arraystore.convert`` from a local ``.npy`` (upload) and back (download),
  with its lease, staging flag, journal, generation checks and commit;
* ``bare``: what the server can take: obstore alone on one asyncio loop, ``--bare-concurrency``
  requests in flight (default 64), putting and then getting as many objects of the chunk's size as
  the array has chunks, from payloads built in memory before the clock starts; no encoding, hashing
  (its PUTs are sent with SigV4's ``UNSIGNED-PAYLOAD``), files or metadata. Every client's rate is
  also shown as a share of it (``of bare``);
* ``bare>npy``: download only: the ``bare`` loop, each object's bytes also written with ``os.pwrite`` at
  its offset into a new ``.npy`` (header from numpy's ``np.lib.format``, the data preallocated with
  ``posix_fallocate`` as arraystore's files are), through the page cache without fsync, like
  arraystore's ``durable=False`` target: what downloading to a local ``.npy`` can reach on this
  server and machine, with no checking, hashing or journal. Downloads are also shown as a share of
  it (``of bare>npy``). Its objects are ``bare``'s (noise, not the array: its file is not compared);
* ``arraystore@base`` (with ``--baseline DIR``): the arraystore of another checkout (``DIR/src``,
  e.g. ``main``), in a child process started once (its imports are not timed), for before/after
  figures from one run.

zarr-python uploads from a memory map of the same ``.npy`` (``arr[:] = np.load(..., mmap_mode="r")``)
and downloads the whole array into memory (``arr[:]``), its fastest use; ``zarr+obstore>npy`` adds
writing the ``.npy`` (through the page cache, no fsync). arraystore converts to a local ``.npy``
(through the page cache, no fsync: ``durable=False``) within its ``max_memory`` budget
(``--max-memory``, default 256MiB). zarr-python uses obstore's defaults (which sign every PUT's
payload with SHA-256); arraystore sends payloads unsigned to loopback and ``https`` endpoints. Runs are interleaved (client after client, ``--runs`` times) so
that load from other processes falls on all of them; the median is printed, with the ratio to
zarr-python on obstore, the share of ``bare``, and the peak *private*
memory of each operation: anonymous memory (``/proc/self/smaps_rollup``), sampled every 10 ms,
above what the process held before it (page cache and file mappings excluded), and the CPU
seconds per GiB moved of the client (this process) and of the server process. Both servers run on
the same cores as the client, so the numbers compare clients against one server: they rank the
clients, they do not predict a real S3 bucket.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil


def _size(text: str) -> int:
    units = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: The Zarr arrays' codec (``--compression``): None, or ``zstd:LEVEL`` for arraystore and zarr-python alike.
COMPRESSION: str | None = None


def _zarr_compressors() -> Any:
    from zarr.codecs import ZstdCodec

    return None if COMPRESSION is None else ZstdCodec(level=int(COMPRESSION.split(":")[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64MiB", help="array size: 64MiB, 1GiB, 4GiB ...")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-memory", default="256MiB", help="arraystore's max_memory budget")
    parser.add_argument("--clients", default="zarr+fsspec,zarr+obstore,zarr+obstore>npy,arraystore,bare,bare>npy")
    parser.add_argument("--bare-concurrency", type=int, default=64, help="requests in flight of the bare client")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a checkout whose src/ arraystore runs too, as client arraystore@base")
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)  # the baseline's child process
    parser.add_argument("--server", choices=("moto", "s3rver"), default="moto", help="the S3 server on loopback")
    parser.add_argument("--compression", default="none",
                        help="the Zarr arrays' codec, none or zstd:LEVEL (the bare clients move uncompressed objects)")
    args = parser.parse_args()
    global COMPRESSION
    COMPRESSION = None if args.compression == "none" else args.compression
    if COMPRESSION is not None and not COMPRESSION.startswith("zstd:"):
        parser.error("--compression: none or zstd:LEVEL")
    if args.serve:
        return _serve(Path(args.serve), args.max_memory)
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-objstore-"))
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret", AWS_REGION="us-east-1",
                      AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true")
    # The server runs in its own process: what it keeps in memory must not be counted as the
    # clients', and its request handling must not share the clients' GIL.
    if args.server == "moto":
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        env = dict(os.environ)
    else:
        script = os.environ.get("ARRAYSTORE_S3RVER") or shutil.which("s3rver")
        node = shutil.which("node")
        if not script or not node:
            parser.error("--server s3rver: set ARRAYSTORE_S3RVER to s3rver's bin/s3rver.js (npm install s3rver@3.7.1)")
        command = [node, script, "-d", str(tmp / "s3rver"), "-a", "127.0.0.1", "-p", str(port), "--silent"]
        # s3rver knows one access key (S3RVER) and checks no SigV4 signature; its DES continuation
        # tokens (listings of over 1000 keys) need OpenSSL's legacy provider on Node >= 17.
        os.environ.update(AWS_ACCESS_KEY_ID="S3RVER", ARRAYSTORE_ASSUME_CONDITIONAL_REQUESTS="1")
        env = {**os.environ, "NODE_OPTIONS": "--openssl-legacy-provider"}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port)
        return _run(endpoint, _size(args.size), args.runs, args.max_memory, args.clients.split(","),
                    tmp=tmp, server=psutil.Process(server.pid), server_name=args.server,
                    bare_concurrency=args.bare_concurrency, baseline=args.baseline)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_for(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _anonymous() -> int:
    """Bytes of anonymous (private, not file-backed) memory of this process."""
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) * 1024
    return psutil.Process().memory_full_info().uss  # pragma: no cover - not Linux


def _trim() -> None:
    """Hand freed heap memory back to the system (glibc keeps it otherwise, hiding the next operation's growth)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name:
        try:
            ctypes.CDLL(name).malloc_trim(0)
        except (OSError, AttributeError):  # pragma: no cover - not glibc
            pass


class PeakSampler:
    """The peak of :func:`_anonymous` above its value at start, sampled on a thread."""

    def __init__(self) -> None:
        _trim()
        self.base = _anonymous()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _anonymous() - self.base)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _anonymous() - self.base)


def _digest(path: Path) -> str:
    import hashlib

    h = hashlib.blake2b()
    m = np.load(path, mmap_mode="r")
    step = max(1, (64 << 20) // max(1, m[0].nbytes))
    for i in range(0, m.shape[0], step):
        h.update(np.ascontiguousarray(m[i : i + step]).data)
    return h.hexdigest()


def _cpu(process: psutil.Process) -> float:
    """CPU seconds (user + system) of ``process`` and its children so far."""
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def _npy_file(path: Path, shape: tuple[int, ...], dtype: np.dtype[Any]) -> tuple[int, int]:
    """A new ``.npy`` at ``path`` (the old one removed) with numpy's own header, its data preallocated as
    arraystore preallocates its files (``posix_fallocate``); ``(open fd, header bytes)``."""
    path.unlink(missing_ok=True)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                 "fortran_order": False, "shape": shape})
        header = f.tell()
    fd = os.open(path, os.O_RDWR)
    nbytes = header + int(np.prod(shape)) * dtype.itemsize
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except (OSError, AttributeError):  # pragma: no cover - a file system without it
        os.ftruncate(fd, nbytes)
    return fd, header


def _bare(concurrency: int, keys: list[str], payloads: list[bytes],
          npy: tuple[Path, tuple[int, ...], np.dtype[Any]] | None = None
          ) -> tuple[Callable[[], None], Callable[[], None], Callable[[], None]]:
    """(put, get, get into ``npy``) of ``keys`` with obstore alone: ``concurrency`` requests in flight on one
    asyncio loop. The third writes each object's bytes at its offset in a new ``.npy`` (path, shape, dtype:
    ``_npy_file``) with ``os.pwrite`` on the loop, through the page cache, no fsync."""
    import asyncio

    import obstore
    from obstore.store import from_url

    store = from_url("s3://bench/bare", config={"unsigned_payload": "true"})  # no hashing of the payload either

    async def each(op: Callable[[int, str], Any]) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int, key: str) -> None:
            async with gate:
                await op(i, key)

        await asyncio.gather(*(one(i, k) for i, k in enumerate(keys)))

    async def put(i: int, key: str) -> None:
        await obstore.put_async(store, key, payloads[i % len(payloads)])

    async def get(i: int, key: str) -> None:
        got = await obstore.get_async(store, key)
        await got.bytes_async()

    def get_npy() -> None:
        assert npy is not None
        path, shape, dtype = npy
        fd, header = _npy_file(path, shape, dtype)
        total = int(np.prod(shape)) * dtype.itemsize
        size = len(payloads[0])

        async def into(i: int, key: str) -> None:
            got = await obstore.get_async(store, key)
            data = memoryview(await got.bytes_async())[: max(0, min(size, total - i * size))]
            done = 0
            while done < len(data):
                done += os.pwrite(fd, data[done:], header + i * size + done)

        try:
            asyncio.run(each(into))
        finally:
            os.close(fd)

    return lambda: asyncio.run(each(put)), lambda: asyncio.run(each(get)), get_npy


def _serve(tmp: Path, max_memory: str) -> int:
    """The baseline's child: one ``up NAME`` or ``down NAME`` per line of stdin, one JSON result per line out."""
    import gc
    import json

    import arraystore

    print(json.dumps({"arraystore": arraystore.__file__}), flush=True)
    for line in sys.stdin:
        op, name = line.split()
        gc.collect()
        with PeakSampler() as sampler:
            c0, t0 = time.process_time(), time.perf_counter()
            if op == "up":
                arraystore.convert(tmp / "src.npy", f"s3://bench/{name}", chunks=(64, 4096), overwrite=True,
                                   max_memory=max_memory, compression=COMPRESSION)
            else:
                arraystore.convert(f"s3://bench/{name}", tmp / "back.npy", overwrite=True, max_memory=max_memory)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(json.dumps({"seconds": seconds, "cpu": cpu, "peak": sampler.peak}), flush=True)
    return 0


class _Baseline:
    """Conversions by another checkout's arraystore, in a child process (see ``_serve``)."""

    def __init__(self, checkout: Path, tmp: Path, max_memory: str) -> None:
        import json

        env = {**os.environ, "PYTHONPATH": str(checkout.resolve() / "src")}
        self._child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(tmp), "--max-memory", max_memory,
             "--compression", COMPRESSION or "none"],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._child.stdout is not None
        self.where = json.loads(self._child.stdout.readline())["arraystore"]
        self.last: dict[str, float] = {}

    def __call__(self, op: str, name: str) -> None:
        import json

        assert self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write(f"{op} {name}\n")
        self._child.stdin.flush()
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError("the baseline's child process died")
        self.last = json.loads(line)

    def close(self) -> None:
        if self._child.stdin is not None:
            self._child.stdin.close()
        self._child.wait(timeout=60)


def _run(endpoint: str, nbytes: int, runs: int, max_memory: str, clients: list[str], *, tmp: Path,
         server: psutil.Process, server_name: str, bare_concurrency: int = 64, baseline: Path | None = None) -> int:
    import gc

    import boto3
    import zarr
    import zarr.storage
    from obstore.store import from_url

    import arraystore

    boto3.client("s3").create_bucket(Bucket="bench")
    rows = max(64, nbytes // (4096 * 4))
    shape, dtype, chunks = (rows, 4096), np.dtype("<f4"), (64, 4096)
    src = np.lib.format.open_memmap(tmp / "src.npy", mode="w+", dtype=dtype, shape=shape)
    rng = np.random.default_rng(0)
    for i in range(0, rows, 4096):
        src[i : i + 4096] = rng.standard_normal((min(4096, rows - i), 4096), dtype=np.float32)
    src.flush()
    del src
    want = _digest(tmp / "src.npy")
    mib = rows * 4096 * 4 / 2**20

    def fsspec_store(name: str) -> Any:
        return zarr.storage.FsspecStore.from_url(f"s3://bench/{name}", storage_options={"endpoint_url": endpoint})

    def obstore_store(name: str) -> Any:
        return zarr.storage.ObjectStore(from_url(f"s3://bench/{name}"))

    def zarr_up(make: Callable[[str], Any], name: str) -> None:
        arr = zarr.create_array(make(name), shape=shape, dtype=dtype, chunks=chunks, compressors=_zarr_compressors(),
                                overwrite=True)
        arr[:] = np.load(tmp / "src.npy", mmap_mode="r")

    def zarr_down(make: Callable[[str], Any], name: str) -> Callable[[], None]:
        got = zarr.open_array(make(name), mode="r")[:]

        def check() -> None:
            np.save(tmp / "back.npy", got)

        return check

    def zarr_down_npy(make: Callable[[str], Any], name: str) -> None:
        np.save(tmp / "back.npy", zarr.open_array(make(name), mode="r")[:])

    def as_up(name: str) -> None:
        arraystore.convert(tmp / "src.npy", f"s3://bench/{name}", chunks=chunks, overwrite=True, max_memory=max_memory,
                           compression=COMPRESSION)

    def as_down(name: str) -> None:
        arraystore.convert(f"s3://bench/{name}", tmp / "back.npy", overwrite=True, max_memory=max_memory)

    chunk_bytes = chunks[0] * chunks[1] * dtype.itemsize
    n_chunks = -(-rows // chunks[0])
    noise = rng.bytes(8 * chunk_bytes)
    payloads = [noise[i * chunk_bytes : (i + 1) * chunk_bytes] for i in range(8)]
    bare_up, bare_down, bare_npy = _bare(bare_concurrency, [f"c/{i}" for i in range(n_chunks)], payloads,
                                         (tmp / "back.npy", shape, dtype))
    if "bare>npy" in clients and "bare" not in clients:
        clients = [*clients, "bare"]  # it reads the objects bare wrote
    if "zarr+obstore>npy" in clients and "zarr+obstore" not in clients:
        clients = [*clients, "zarr+obstore"]  # it reads the array zarr+obstore wrote
    # None: the client has no such operation (zarr+obstore>npy reads what zarr+obstore wrote).
    peers: dict[str, tuple[Callable[[], Any] | None, Callable[[], Any] | None]] = {
        "zarr+fsspec": (lambda: zarr_up(fsspec_store, "f.zarr"), lambda: zarr_down(fsspec_store, "f.zarr")),
        "zarr+obstore": (lambda: zarr_up(obstore_store, "o.zarr"), lambda: zarr_down(obstore_store, "o.zarr")),
        "zarr+obstore>npy": (None, lambda: zarr_down_npy(obstore_store, "o.zarr")),
        "arraystore": (lambda: as_up("a.zarr"), lambda: as_down("a.zarr")),
        "bare": (bare_up, bare_down),
        "bare>npy": (None, bare_npy),
    }
    peers = {k: v for k, v in peers.items() if k in clients}
    base = _Baseline(baseline, tmp, max_memory) if baseline is not None else None
    if base is not None:
        print(f"# arraystore@base: {base.where}; arraystore: {arraystore.__file__}")
        with_base = {}
        for name, ops in peers.items():
            with_base[name] = ops
            if name == "arraystore":  # side by side with the one it is compared with
                with_base["arraystore@base"] = (lambda: base("up", "b.zarr"), lambda: base("down", "b.zarr"))
        peers = with_base if "arraystore" in peers else {**peers, "arraystore@base": (
            lambda: base("up", "b.zarr"), lambda: base("down", "b.zarr"))}
    times: dict[tuple[str, int], list[float]] = {(name, op): [] for name in peers for op in (0, 1)}
    peaks: dict[tuple[str, int], int] = dict.fromkeys(times, 0)
    client_cpu: dict[tuple[str, int], list[float]] = {k: [] for k in times}
    server_cpu: dict[tuple[str, int], list[float]] = {k: [] for k in times}
    loads = [os.getloadavg()[0]]
    for _ in range(runs):
        for op in (0, 1):
            for name, ops in peers.items():
                fn = ops[op]
                if fn is None:
                    continue
                gc.collect()
                with PeakSampler() as sampler:
                    s0, c0 = _cpu(server), time.process_time()
                    t0 = time.perf_counter()
                    after = fn()
                    times[name, op].append(time.perf_counter() - t0)
                    client_cpu[name, op].append(time.process_time() - c0)
                    server_cpu[name, op].append(_cpu(server) - s0)
                peak = sampler.peak
                if name == "arraystore@base" and base is not None:  # the child's own figures, imports excluded
                    times[name, op][-1] = base.last["seconds"]
                    client_cpu[name, op][-1] = base.last["cpu"]
                    peak = int(base.last["peak"])
                peaks[name, op] = max(peaks[name, op], peak)
                loads.append(os.getloadavg()[0])
                if callable(after):
                    after()
                    del after
                if op == 1 and not name.startswith("bare"):  # bare's objects are noise, not the array
                    assert _digest(tmp / "back.npy") == want, f"{name}: the download differs from the source"
    if base is not None:
        base.close()
    med = {k: statistics.median(v) for k, v in times.items() if v}
    ref = "zarr+obstore" if "zarr+obstore" in peers else next(iter(peers))
    bare = "bare" if "bare" in peers else None
    gib = mib / 1024
    print(f"# {mib:.0f} MiB float32 {shape}, chunks {chunks}, {COMPRESSION or 'uncompressed'}, {server_name} on loopback, {runs} "
          f"interleaved runs, median; arraystore max_memory={max_memory}; python {sys.version.split()[0]}, "
          f"zarr {zarr.__version__}; 1-min load average {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs")
    print("# CPU s/GiB: client (this process) / server process, median per operation; of bare: the share of what "
          f"the bare obstore client ({bare_concurrency} requests in flight, no encoding, hashing or files) gets "
          "from the same server")
    if "bare>npy" in peers:
        print("# of bare>npy (downloads): the share of what the bare client gets when it also writes each "
              "object's bytes into a local .npy (pwrite at its offset, page cache, no fsync): the job's limit")
    cols = ["MiB/s", "x " + ref, *(["of bare"] if bare else []), "peak private MiB", "CPU s/GiB"]
    down_cols = [*cols[:-2], *(["of bare>npy"] if "bare>npy" in peers else []), *cols[-2:]]
    print("| client | " + " | ".join([f"upload {c}" for c in cols] + [f"download {c}" for c in down_cols]) + " |")
    print("| --- |" + " ---: |" * (len(cols) + len(down_cols)))
    for name in peers:
        cells = []
        for op in (0, 1):
            if (name, op) not in med:
                cells += ["-"] * len(cols if op == 0 else down_cols)
                continue
            rate = mib / med[name, op]
            cpu = (f"{statistics.median(client_cpu[name, op]) / gib:.2f} / "
                   f"{statistics.median(server_cpu[name, op]) / gib:.2f}")
            ratio = f"{med[ref, op] / med[name, op]:.2f}" if (ref, op) in med else "-"
            share = [f"{med[bare, op] / med[name, op]:.2f}"] if bare else []
            if op == 1 and "bare>npy" in peers:
                share.append(f"{med['bare>npy', op] / med[name, op]:.2f}")
            cells += [f"{rate:.1f}", ratio, *share, f"{peaks[name, op] / 2**20:.0f}", cpu]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
