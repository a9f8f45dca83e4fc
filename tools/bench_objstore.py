"""Object-storage benchmark: Zarr upload and download to a loopback S3 server (moto), side by side.

One command::

    python tools/bench_objstore.py --size 64MiB --runs 3

Starts moto's ThreadedMotoServer on 127.0.0.1 (a free port; nothing leaves the
machine), then writes and reads the same float32 array (shape ``(size / 16 KiB, 4096)``,
1 MiB chunks of 64 whole rows, uncompressed) with:

* ``zarr+fsspec``: zarr-python 3.1 on ``FsspecStore`` (s3fs), its default for ``s3://``;
* ``zarr+obstore``: zarr-python 3.1 on ``ObjectStore`` (obstore);
* ``arraystore``: ``arraystore.convert`` from a local ``.npy`` (upload) and back (download),
  with its lease, staging flag, journal and commit.

Prints the median seconds and MiB/s of ``--runs`` runs and the peak RSS growth of the
process. moto is a Python server on the same cores, so the numbers compare clients
against one slow server: they rank the clients, they do not predict a real S3 bucket.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64MiB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret", AWS_REGION="us-east-1",
                      AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        return _run(endpoint, _size(args.size), args.runs)
    finally:
        server.stop()


def _run(endpoint: str, nbytes: int, runs: int) -> int:
    import logging

    import boto3
    import zarr
    import zarr.storage
    from obstore.store import from_url

    import arraystore

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    boto3.client("s3").create_bucket(Bucket="bench")
    rows = max(64, nbytes // (4096 * 4))
    data = np.random.default_rng(0).standard_normal((rows, 4096)).astype("<f4")
    chunks = (64, 4096)
    tmp = Path(tempfile.mkdtemp(prefix="bench-objstore-"))
    np.save(tmp / "src.npy", data)

    def fsspec_store(name: str) -> Any:
        return zarr.storage.FsspecStore.from_url(f"s3://bench/{name}", storage_options={"endpoint_url": endpoint})

    def obstore_store(name: str) -> Any:
        return zarr.storage.ObjectStore(from_url(f"s3://bench/{name}"))

    def zarr_up(make: Callable[[str], Any], name: str) -> None:
        arr = zarr.create_array(make(name), shape=data.shape, dtype=data.dtype, chunks=chunks, compressors=None,
                                overwrite=True)
        arr[:] = data

    def zarr_down(make: Callable[[str], Any], name: str) -> None:
        assert zarr.open_array(make(name), mode="r")[:].tobytes() == data.tobytes()

    def as_up(name: str) -> None:
        arraystore.convert(tmp / "src.npy", f"s3://bench/{name}", chunks=chunks, overwrite=True)

    def as_down(name: str) -> None:
        out = tmp / "back.npy"
        arraystore.convert(f"s3://bench/{name}", out, overwrite=True)
        assert np.load(out).tobytes() == data.tobytes()

    peers: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
        "zarr+fsspec": (lambda: zarr_up(fsspec_store, "f.zarr"), lambda: zarr_down(fsspec_store, "f.zarr")),
        "zarr+obstore": (lambda: zarr_up(obstore_store, "o.zarr"), lambda: zarr_down(obstore_store, "o.zarr")),
        "arraystore": (lambda: as_up("a.zarr"), lambda: as_down("a.zarr")),
    }
    proc = psutil.Process()
    print(f"# {data.nbytes / 2**20:.0f} MiB float32 {data.shape}, chunks {chunks}, uncompressed, moto on loopback, "
          f"{runs} runs, median; python {sys.version.split()[0]}, zarr {zarr.__version__}")
    print(f"| {'client':<13} | {'upload s':>8} | {'upload MiB/s':>12} | {'download s':>10} | {'download MiB/s':>14} |")
    print(f"|{'-' * 15}|{'-' * 10}|{'-' * 14}|{'-' * 12}|{'-' * 16}|")
    base = proc.memory_info().rss
    for name, (up, down) in peers.items():
        times = []
        for op in (up, down):
            samples = []
            for _ in range(runs):
                t0 = time.perf_counter()
                op()
                samples.append(time.perf_counter() - t0)
            times.append(statistics.median(samples))
        mib = data.nbytes / 2**20
        print(f"| {name:<13} | {times[0]:8.2f} | {mib / times[0]:12.1f} | {times[1]:10.2f} | {mib / times[1]:14.1f} |")
    print(f"# peak RSS growth of the process over the whole run: {(proc.memory_info().rss - base) / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
