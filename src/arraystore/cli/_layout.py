"""Options that say what a headerless raw file holds (``--dtype --shape --order --offset``).

Like ``gdal_translate``'s raw options: with them, ``info``, ``convert`` and ``verify``
read a ``.dat`` that has no sidecar or header, and ``--write-sidecar`` records the layout
beside the file so later commands (and Python) need nothing more.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._errors import UsageError

__all__ = ["add_layout_options", "open_source", "parse_shape"]


def parse_shape(text: str) -> tuple[int, ...]:
    """``"256,256"`` or ``"256x256"`` -> ``(256, 256)``; an argparse type."""
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape such as 256,256, found {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers such as 256,256, found {text!r}")
    return values


def _offset(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a byte count such as 512, found {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a byte count of at least 0, found {value}")
    return value


def add_layout_options(p: argparse.ArgumentParser, *, order_flag: str = "--order") -> None:
    """Add the raw-layout group; ``order_flag`` is ``--src-order`` where ``--order`` means the destination."""
    g = p.add_argument_group(
        "layout of a headerless raw file",
        "for a .dat without sidecar or header: what it holds (both --dtype and --shape)",
    )
    g.add_argument("--dtype", help="element type, e.g. float32, <f4, >i2 (big-endian int16), uint8")
    g.add_argument("--shape", type=parse_shape, help="array shape, e.g. 100,512,512")
    flags = [order_flag] if order_flag == "--src-order" else [order_flag, "--src-order"]  # convert's spelling too
    g.add_argument(*flags, dest="raw_order", choices=("C", "F"), help="byte layout: C row-major (default), F column-major")
    g.add_argument("--offset", type=_offset, default=0, help="bytes to skip at the start of the file (a header)")
    g.add_argument(
        "--write-sidecar", action="store_true", help="record the layout in a sidecar FILE.json beside the file"
    )


def open_source(
    args: argparse.Namespace, path: str, *, backend: str | None = None, allow_incomplete: bool = False
) -> Any:
    """Open ``path`` read-only: with the stated raw layout when ``--dtype``/``--shape`` were given."""
    from .._open import open as open_store

    raw_order = args.raw_order or getattr(args, "order", None)
    stated = args.dtype is not None or args.shape is not None
    if not stated:
        if args.write_sidecar or args.offset or args.raw_order:  # --order alone (convert) is the destination's
            raise UsageError("--write-sidecar, --offset and the byte order go with --dtype and --shape")
        return open_store(path, "r", backend=backend, allow_incomplete=allow_incomplete)
    from ..registry import backend_class

    cls = backend_class(backend or "raw")  # a headerless file is raw unless --backend names another
    if not cls.opens_with_meta:
        raise UsageError(f"--dtype and --shape describe a headerless raw file; --backend {backend} files say it themselves")
    if args.dtype is None or args.shape is None:
        raise UsageError("--dtype and --shape go together: a raw file needs both to be read")
    from ..meta import ArrayMeta

    meta = ArrayMeta(args.shape, args.dtype, raw_order or "C")
    store = open_store(
        path, "r", backend=cls.backend, meta=meta, offset=args.offset, write_sidecar=args.write_sidecar,
        allow_incomplete=allow_incomplete,
    )
    if args.write_sidecar:  # on stderr: --json output stays one JSON document
        from pathlib import Path

        from ..sidecar import sidecar_path

        print(f"arraystore: recorded the layout in {sidecar_path(Path(store.path))}; the file now opens without "
              "--dtype and --shape", file=sys.stderr)
    return store
