"""``arraystore info PATH [--json]``: what a store holds, from its metadata only."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..meta import dtype_from_json
from ._layout import add_layout_options, open_source


def register(sub: Any) -> None:
    """Add the ``info`` sub-command."""
    p = sub.add_parser(
        "info",
        help="show format, shape, dtype, order, chunks, shards, compression, size on disk, completeness and attrs",
        description="Show what an array holds, from its metadata only (nothing is read but sizes on disk).",
    )
    p.add_argument("path", help="array path (file, folder, or file::/key)")
    p.add_argument("--backend", help="raw, npy, hdf5 or zarr (default: detect)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_layout_options(p)
    p.set_defaults(func=run)


def describe(store: Any) -> dict[str, Any]:
    """The facts ``info`` prints, as a JSON-ready dict."""
    meta = store.meta.to_dict()
    on_disk = store.stored_bytes()
    # Sharded: chunks and shards as `convert --chunks --shards` take them, not the shard as the unit read whole.
    shards = getattr(store, "shards", None)
    chunks = getattr(store, "inner_chunks", None) if shards else store.chunks
    return {
        "path": store.path,
        "format": store.backend,
        "shape": list(store.shape),
        "dtype": meta["dtype"],
        "order": store.order,
        "chunks": list(chunks) if chunks else None,
        "shards": list(shards) if shards else None,
        "compression": getattr(store, "compression", None),
        "nbytes": store.nbytes,
        "stored_bytes": on_disk,
        "ratio": _ratio(store.nbytes, on_disk),
        "complete": store.complete,
        "dimension_names": list(store.dimension_names) if store.dimension_names is not None else None,
        "attrs": meta["attrs"],
        # why other readers do not see the array as netCDF/CF would (HDF5's encoding notes)
        "notes": list(getattr(store, "encoding_notes", ())),
    }


def _ratio(nbytes: int, on_disk: int | None) -> float | None:
    """nbytes / on_disk to two decimals, or two significant digits below 0.01 (0.0019 for a tiny array, not 0)."""
    if not on_disk:
        return None
    ratio = nbytes / on_disk
    return round(ratio, 2) if ratio >= 0.01 or ratio == 0 else float(f"{ratio:.2g}")


def run(args: argparse.Namespace) -> int:
    """Print what the store holds."""
    with open_source(args, args.path, backend=args.backend, allow_incomplete=True) as store:
        facts = describe(store)
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        if key in ("nbytes", "stored_bytes") and value is not None:
            value = f"{value:,} bytes"
        elif key == "dtype" and isinstance(value, list):  # structured: as numpy prints it, not as JSON
            value = str(dtype_from_json(value))
        elif key == "ratio" and value is not None:
            value = f"{value:g} (nbytes / stored_bytes)"
        elif key == "compression" and value is None:
            value = "none"
        elif key == "chunks" and value is None:
            value = "none (contiguous)"
        elif key in ("shards", "dimension_names") and value is None:
            value = "none"
        print(f"{key:<{width}}  {value}")
    return 0
