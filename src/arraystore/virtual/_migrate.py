"""The virtual side of ``migrate(..., virtual=True)``: one file's references job, and the store written at the end.

The discovery, resolution, manifest and reports are :mod:`arraystore.migration.run`'s; a
virtual job only checks the file is unchanged and expressible, and checksums its content.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..checksums import StreamHasher
from ..errors import ArrayStoreError, MetadataError, UnsafeInputError
from ..meta import ArrayMeta
from .refs import DEFAULT_CHUNK_BYTES, VirtualArray, check_expressible

__all__ = ["FORMATS", "STORE_NAMES", "file_checksum", "run_virtual_job", "store_path", "write_store"]

Format = Literal["kerchunk", "icechunk"]
FORMATS: tuple[str, ...] = ("kerchunk", "icechunk")
#: Name of the virtual store inside the destination folder, by format.
STORE_NAMES = {"kerchunk": "virtual.json", "icechunk": "virtual.icechunk"}
_READ = 8 << 20


def store_path(dst: str | os.PathLike[str], fmt: str) -> Path:
    """Where a virtual migration into ``dst`` writes its store."""
    return Path(dst) / STORE_NAMES[fmt]


def file_checksum(path: str | os.PathLike[str]) -> dict[str, str]:
    """``xxh3_128`` of a file's whole content, read once sequentially."""
    h = StreamHasher()
    buf = bytearray(_READ)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(np.frombuffer(view[:n], dtype=np.uint8))
    return h.result()


def run_virtual_job(job: Any) -> Any:
    """Reference one file instead of converting it: a ``converted`` record with its content checksum."""
    from ..migration._job import _error, _record, _unchanged

    t0 = time.perf_counter()
    try:
        check_expressible(ArrayMeta.from_dict(job.meta).dtype)
        _check_inside(Path(job.src_path), job.source)
        changed = _unchanged(job)
        if changed is None and job.checksum:
            digest = file_checksum(job.src_path)
            changed = _unchanged(job)
        else:
            digest = None
        if changed is not None:
            return _record(job, "failed", t0, error={"type": "SourceChangedError", "message": changed})
        return _record(job, "converted", t0, source_checksum=digest, note="referenced in place (virtual)")
    except (OSError, ArrayStoreError) as exc:
        return _record(job, "failed", t0, error=_error(exc))


def _check_inside(path: Path, name: str) -> None:
    """Refuse a file whose resolved path (symbolic links followed) leaves the archive root."""
    root = path.parents[len(Path(name).parts) - 1].resolve()
    target = path.resolve()
    if root not in target.parents:
        raise UnsafeInputError(
            f"{path}: resolves to {target}, outside the archive root {root}; a reference must stay inside the archive"
        )


def write_store(
    dst: Path,
    src: Path,
    fmt: str,
    entries: Sequence[tuple[Any, Any]],
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    attrs: dict[str, Any] | None = None,
    durable: bool = False,
) -> Path:
    """Write the virtual store of every ``(job, converted record)`` pair; returns its path."""
    arrays = [
        VirtualArray.from_meta(
            job.source,
            job.source,
            ArrayMeta.from_dict(job.meta),
            job.offset,
            size=job.size,
            mtime_ns=job.mtime_ns,
            checksum=rec.source_checksum,
            chunk_bytes=chunk_bytes,
        )
        for job, rec in sorted(entries, key=lambda e: e[0].source)
    ]
    out = store_path(dst, fmt)
    if fmt == "kerchunk":
        from .kerchunk import write_kerchunk

        write_kerchunk(out, arrays, src, attrs=attrs, durable=durable)
    elif fmt == "icechunk":
        from .icechunk import write_icechunk

        write_icechunk(out, arrays, src, attrs=attrs)
    else:
        raise MetadataError(f"expected a virtual format among {', '.join(FORMATS)}, found {fmt!r}")
    return out
