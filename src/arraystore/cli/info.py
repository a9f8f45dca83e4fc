"""``arraystore info PATH [--json]``: what a store holds, from its metadata only."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .._open import open as open_store


def register(sub: Any) -> None:
    """Add the ``info`` sub-command."""
    p = sub.add_parser("info", help="show format, shape, dtype, order, chunks, size, completeness and attrs")
    p.add_argument("path", help="array path (file, folder, or file::/key)")
    p.add_argument("--backend", help="raw, npy, hdf5 or zarr (default: detect)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def describe(store: Any) -> dict[str, Any]:
    """The facts ``info`` prints, as a JSON-ready dict."""
    meta = store.meta.to_dict()
    return {
        "path": store.path,
        "format": store.backend,
        "shape": list(store.shape),
        "dtype": meta["dtype"],
        "order": store.order,
        "chunks": list(store.chunks) if store.chunks else None,
        "nbytes": store.nbytes,
        "complete": store.complete,
        "attrs": meta["attrs"],
    }


def run(args: argparse.Namespace) -> int:
    """Print what the store holds."""
    with open_store(args.path, "r", backend=args.backend, allow_incomplete=True) as store:
        facts = describe(store)
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        if key == "nbytes":
            value = f"{value:,} bytes"
        print(f"{key:<{width}}  {value}")
    return 0
