"""Tell a virtual store by its content without importing zarr, fsspec or icechunk (the registry's light guess)."""

from __future__ import annotations

from ..location import Location

__all__ = ["looks_virtual"]

_HEAD = 256


def looks_virtual(location: Location) -> bool:
    """True for a kerchunk reference document (``.json``) or an icechunk repository (folder)."""
    if location.remote:
        return False
    p = location.file
    try:
        if p.is_dir():
            return (p / "refs").is_dir() and (p / "snapshots").is_dir() and not (p / "zarr.json").exists()
        if not p.is_file() or p.suffix.lower() != ".json":
            return False
        with open(p, "rb") as f:
            head = f.read(_HEAD).lstrip()
    except OSError:
        return False
    return head.startswith(b"{") and b'"version"' in head and (b'"refs"' in head or b'"templates"' in head)
