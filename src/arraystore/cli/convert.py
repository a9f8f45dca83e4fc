"""``arraystore convert SRC DST``: any format to any other, in bounded memory, verified, resumable."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    """Add the ``convert`` sub-command."""
    p = sub.add_parser(
        "convert",
        help="convert an array between formats (raw, npy, hdf5, zarr) in bounded memory",
        description="Convert SRC to DST block by block. Rerunning an interrupted command resumes it.",
    )
    p.add_argument("src", help="source array (file, folder, or file::/key)")
    p.add_argument("dst", help="destination; the format comes from --to or the suffix")
    p.add_argument("--to", dest="backend", metavar="FORMAT", help="raw, npy, hdf5 or zarr (default: from DST's suffix)")
    p.add_argument("--chunks", type=_shape, help="destination chunk shape, e.g. 256,256 (hdf5, zarr)")
    p.add_argument("--shards", type=_shape, help="zarr shard shape, e.g. 4096,4096")
    p.add_argument("--compression", help="e.g. zstd:3, gzip:1, lzf, blosc (hdf5, zarr)")
    p.add_argument("--order", choices=("C", "F"), help="destination order (default: the source's)")
    p.add_argument("--max-memory", default="256MiB", help="memory budget for buffers (default: 256MiB)")
    p.add_argument(
        "--workers",
        type=int,
        help="writer threads for compressed zarr; with --scheduler local, worker processes (default: one per CPU)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS|local",
        help="run the blocks on a Dask cluster: a scheduler address (tcp://host:8786) or 'local' for a temporary "
        "one; the workers must see SRC and DST under the same paths",
    )
    p.add_argument("--verify", action="store_true", help="re-read the result and compare checksums before publishing")
    p.add_argument("--no-resume", dest="resume", action="store_false", help="ignore an interrupted run and restart")
    p.add_argument("--durable", action="store_true", help="fsync data, metadata and folder before publishing")
    p.add_argument("--overwrite", action="store_true", help="replace an existing destination")
    p.add_argument(
        "--drop-attrs", action="store_true", help="write the destination without the source's attrs (e.g. a plain .npy)"
    )
    p.add_argument("--json", action="store_true", help="print the conversion report as JSON")
    p.set_defaults(func=run)


def _shape(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape such as 256,256, found {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers such as 256,256, found {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    """Convert, with a progress bar on a terminal; print a summary or the JSON report."""
    from ..conversion import convert

    report = convert(
        args.src,
        args.dst,
        backend=args.backend,
        chunks=args.chunks,
        shards=args.shards,
        compression=args.compression,
        order=args.order,
        max_memory=args.max_memory,
        workers=args.workers,
        verify=args.verify,
        resume=args.resume,
        durable=args.durable,
        overwrite=args.overwrite,
        progress=sys.stderr.isatty() and not args.json,
        scheduler=args.scheduler,
        attrs="drop" if args.drop_attrs else "keep",
    )
    if report.restarted:
        print(f"arraystore: {report.restarted}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
    return 0
