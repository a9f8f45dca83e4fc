"""``arraystore migrate SRC DST``: convert a legacy raw archive, resumably, with a manifest.

Exit codes: 0 every file converted or skipped; 3 some files undetermined (none failed);
4 some files failed; 1 an arraystore error stopped the run (a full disk: ``StorageFullError``);
2 bad usage; 130 interrupted (Ctrl-C or SIGTERM: queued files cancelled, files in flight
abandoned as ``.partial``, the manifest of what was done written).
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..migration import MigrationReport

from ..integrations.scheduler import raise_interrupt
from ..registry import target_names
from ._errors import UsageError
from ._errors import report as report_error

EPILOG = """\
exit codes: 0 all converted or skipped; 3 some undetermined (none failed); 4 some failed;
1 error (nothing or part done, e.g. a full disk: rerun after fixing it); 2 usage;
130 interrupted by Ctrl-C or SIGTERM (the manifest of what was done is written; rerun to resume).
The manifest DST/migration.jsonl records every file (an object under DST when DST is
s3://bucket/prefix); rerun the same command to resume."""


def register(sub: Any) -> None:
    """Add the ``migrate`` sub-command."""
    p = sub.add_parser(
        "migrate",
        help="convert a legacy archive of raw files (resumable, verified, with a manifest)",
        description="Convert every raw data file of SRC whose layout is known from evidence into DST, "
        "mirroring the folder tree. Originals are never modified. See docs/migration.md.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("src", help="the archive folder")
    p.add_argument("dst", help="the destination folder (created), or an object-store prefix (s3://bucket/prefix; --to zarr)")
    p.add_argument(
        "--to", choices=target_names(), default="zarr", help="target format (default zarr)"
    )
    p.add_argument(
        "--rules",
        action="append",
        metavar="RULES.toml",
        help="rules file for files without metadata (repeatable; the first matching rule wins)",
    )
    p.add_argument(
        "--include",
        action="append",
        metavar="GLOB",
        help="data file glob (repeatable; default *.dat *.raw *.bin, plus header dialects' data)",
    )
    p.add_argument(
        "--exclude", action="append", metavar="GLOB", default=[], help="skip matching files (repeatable)"
    )
    p.add_argument("--compression", help="zarr/hdf5 compression, e.g. zstd, zstd:5, gzip (default none)")
    p.add_argument("--dry-run", action="store_true", help="resolve and print the plan; write nothing")
    p.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per CPU)")
    p.add_argument(
        "--scheduler", metavar="ADDRESS|local", help="run on Dask: a scheduler address, or 'local'"
    )
    p.add_argument("--no-verify", action="store_true", help="do not read destinations back before publishing")
    p.add_argument(
        "--recheck",
        action="store_true",
        help="also read back destinations converted by earlier runs and compare checksums",
    )
    p.add_argument(
        "--durable", action="store_true", help="fsync every file and manifest line (power-loss safe)"
    )
    p.add_argument(
        "--portable", action="store_true", help="zarr: only Zarr v3 core data types, readable by every Zarr reader"
    )
    p.add_argument(
        "--into", metavar="NAME.zarr",
        help="zarr: put every array into one group DST/NAME.zarr at its relative path (run1/t.dat -> "
        "NAME.zarr::run1/t), with dimension names and consolidated metadata, so xr.open_zarr opens it",
    )
    p.add_argument(
        "--header", choices=("envi", "envi:bsq", "envi:bil", "envi:bip"),
        help="raw: also write an ENVI .hdr beside every output (GDAL, QGIS, spectral, ENVI read it)",
    )
    p.add_argument(
        "--max-memory", default="256MiB", help="buffer budget per file conversion (default 256MiB)"
    )
    p.add_argument(
        "--virtual",
        action="store_true",
        help="copy nothing: write a Zarr v3 store of byte-range references to the originals (DST/virtual.json "
        "or DST/virtual.icechunk); see 'Virtual migration' in docs/migration.md",
    )
    p.add_argument(
        "--format",
        choices=("kerchunk", "icechunk"),
        default="kerchunk",
        help="virtual store format (with --virtual; default kerchunk)",
    )
    p.add_argument(
        "--chunk-bytes", metavar="N", help="target size of one chunk reference, e.g. 16MiB (with --virtual; default 4MiB)"
    )
    p.add_argument(
        "--no-checksum",
        action="store_true",
        help="with --virtual: record size and modification time only, not a content checksum (metadata only)",
    )
    p.add_argument(
        "--no-fallback",
        action="store_true",
        help="with --virtual: refuse a file no reference can express (reported failed with the reason) instead of "
        "copying it into the hierarchy (DST/virtual.copies)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Migrate; print the summary (or JSON); return the documented exit code."""
    if args.workers is not None and args.workers < 1:
        bad = UsageError(f"expected --workers of at least 1, found {args.workers}")
        return report_error(bad, command="migrate", path=None, as_json=args.json)
    if not args.virtual and (
        args.chunk_bytes is not None or args.no_checksum or args.no_fallback or args.format != "kerchunk"
    ):
        bad = UsageError("--format, --chunk-bytes, --no-checksum and --no-fallback apply to --virtual only; add --virtual")
        return report_error(bad, command="migrate", path=None, as_json=args.json)
    main = threading.current_thread() is threading.main_thread()  # signal handlers live in the main thread
    # SIGTERM stops a migration like Ctrl-C: queued files cancelled, the manifest written, exit 130
    previous = signal.signal(signal.SIGTERM, raise_interrupt) if main else None
    try:
        report = _migrate(args)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    print(report.to_json() if args.json else report.summary())
    return report.exit_code


def _migrate(args: argparse.Namespace) -> MigrationReport:
    from ..migration import migrate
    from ..migration._discover import DEFAULT_INCLUDE

    return migrate(
        args.src,
        args.dst,
        to=args.to,
        rules=args.rules,
        include=tuple(args.include or DEFAULT_INCLUDE),
        exclude=tuple(args.exclude),
        compression=args.compression,
        workers=args.workers,
        scheduler=args.scheduler,
        verify=not args.no_verify,
        dry_run=args.dry_run,
        progress=not args.json and not args.dry_run,
        max_memory=args.max_memory,
        recheck=args.recheck,
        durable=args.durable,
        virtual=args.virtual,
        format=args.format,
        chunk_bytes=args.chunk_bytes,
        checksum=not args.no_checksum,
        fallback=not args.no_fallback,
        portable=args.portable,
        header=args.header,
        into=args.into,
    )
