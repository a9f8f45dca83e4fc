"""``arraystore convert SRC DST``: any format to any other, in bounded memory, verified, resumable."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._layout import add_layout_options, open_source, parse_shape


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
    p.add_argument("--chunks", type=parse_shape, help="destination chunk shape, e.g. 256,256 (hdf5, zarr)")
    p.add_argument("--shards", type=parse_shape, help="zarr shard shape, e.g. 4096,4096")
    p.add_argument("--compression", help="e.g. zstd:3, gzip:1, lzf, blosc (hdf5, zarr); default: none, whatever "
                   "the source's (the plan's notes say when the source was compressed)")
    p.add_argument(
        "--order",
        choices=("C", "F"),
        help="destination order (default: the source's); with --dtype/--shape also the source's unless --src-order",
    )
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
    p.add_argument("--portable", action="store_true",
                   help="zarr: only Zarr v3 core data types, readable by every Zarr implementation")
    p.add_argument("--header", choices=("envi", "envi:bsq", "envi:bil", "envi:bip"),
                   help="raw: also write an ENVI .hdr (GDAL, QGIS, spectral, ENVI read it); the data is stored in C "
                   "order, interleave from the dimension names (a 'band' axis) or as given (default bsq)")
    p.add_argument("--dimension-names", type=_names, metavar="NAME,NAME,...",
                   help="hdf5, zarr: one name per axis for the destination, e.g. time,y,x (default: the source's)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (none either when piped or with --json)")
    p.add_argument(
        "--drop-attrs", dest="attrs", action="store_const", const="drop", default="keep", help="write the destination without the source's attrs (e.g. a plain .npy)"
    )
    p.add_argument("--json", action="store_true", help="print the conversion report as JSON")
    add_layout_options(p, order_flag="--src-order")
    p.set_defaults(func=run)


def _names(text: str) -> tuple[str, ...]:
    """``"time,y,x"`` -> ``("time", "y", "x")``; an argparse type."""
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected names separated by commas such as time,y,x, found {text!r}")
    return names


def run(args: argparse.Namespace) -> int:
    """Convert, with a progress bar on a terminal; print a summary or the JSON report."""
    stated = args.dtype is not None or args.shape is not None or args.write_sidecar or args.raw_order or args.offset
    src = open_source(args, args.src) if stated else _virtual_or_path(args.src)
    try:
        report = _convert(args, src)
    finally:
        if src is not args.src:
            src.close()
    if report.restarted:
        print(f"arraystore: {report.restarted}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
    return 0


def _virtual_or_path(src: str) -> Any:
    """``virtual.json::/group/array`` (a virtual migration's store): the array's original file; else the path."""
    from ..virtual._array import open_virtual_array, split_virtual

    found = split_virtual(src)
    return src if found is None else open_virtual_array(*found)


def _convert(args: argparse.Namespace, src: Any) -> Any:
    from ..conversion import ConvertOptions, convert

    options = ConvertOptions.from_mapping(vars(args))  # the sub-command's dests are the options' names
    progress = sys.stderr.isatty() and not args.json and not args.quiet
    return convert(src, args.dst, options, progress=progress, scheduler=args.scheduler)
