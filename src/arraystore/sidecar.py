"""arraystore's own JSON sidecar for raw data files (``<data file>.json``).

Format ``arraystore.raw``, version 1::

    {
      "format": "arraystore.raw",
      "version": 1,
      "shape": [1000, 64],
      "dtype": "<f4",
      "order": "C",
      "offset": 0,
      "nbytes": 256000,
      "complete": true,
      "attrs": {},
      "checksum": {"algorithm": "xxh3_128", "value": "..."}   (optional)
    }

Readers accept every earlier version; a newer version is refused with a message
asking for a newer arraystore (golden files in ``tests/fixtures/`` pin this).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._fsutil import atomic_write_bytes, read_json_file
from .errors import MetadataError
from .meta import ArrayMeta

__all__ = ["FORMAT", "MAX_SIDECAR_BYTES", "VERSION", "Sidecar", "read_sidecar", "sidecar_path", "write_sidecar"]

FORMAT = "arraystore.raw"
VERSION = 1
#: Sidecars are tiny; anything larger is not one of ours (or is hostile).
MAX_SIDECAR_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Sidecar:
    """The content of a raw data file's sidecar."""

    meta: ArrayMeta
    offset: int = 0
    complete: bool = True
    checksum: Mapping[str, str] | None = None
    version: int = VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of array data after ``offset``."""
        return self.meta.nbytes

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to disk."""
        d: dict[str, Any] = {"format": FORMAT, "version": VERSION}
        m = self.meta.to_dict()
        d.update(
            shape=m["shape"],
            dtype=m["dtype"],
            order=m["order"],
            offset=self.offset,
            nbytes=self.nbytes,
            complete=self.complete,
            attrs=m["attrs"],
        )
        if self.checksum is not None:
            d["checksum"] = dict(self.checksum)
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "sidecar") -> Sidecar:
        """Parse and validate a sidecar object; raises ``MetadataError``."""
        if not isinstance(d, dict):
            raise MetadataError(f"{source}: expected a JSON object, found {type(d).__name__}")
        if d.get("format") != FORMAT:
            raise MetadataError(
                f'{source}: expected "format": "{FORMAT}", found {d.get("format")!r}; '
                "this is not an arraystore sidecar (use `arraystore inspect` on the data file)"
            )
        version = d.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise MetadataError(f'{source}: expected a positive integer "version", found {version!r}')
        if version > VERSION:
            raise MetadataError(
                f"{source}: sidecar version {version} is newer than this arraystore reads "
                f"(up to {VERSION}); upgrade arraystore"
            )
        try:
            meta = ArrayMeta.from_dict(d)
        except MetadataError as exc:
            raise MetadataError(f"{source}: {exc}") from None
        offset = d.get("offset", 0)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise MetadataError(f'{source}: expected a non-negative integer "offset", found {offset!r}')
        nbytes = d.get("nbytes", meta.nbytes)
        if nbytes != meta.nbytes or isinstance(nbytes, bool):
            raise MetadataError(
                f'{source}: "nbytes" is {nbytes!r} but shape {list(meta.shape)} of {meta.dtype.str} '
                f"needs {meta.nbytes:,} bytes; the sidecar is inconsistent, fix or regenerate it"
            )
        complete = d.get("complete", True)
        if not isinstance(complete, bool):
            raise MetadataError(f'{source}: expected true/false for "complete", found {complete!r}')
        checksum = d.get("checksum")
        if checksum is not None and not (
            isinstance(checksum, dict)
            and isinstance(checksum.get("algorithm"), str)
            and isinstance(checksum.get("value"), str)
        ):
            raise MetadataError(f'{source}: expected "checksum" as {{algorithm, value}}, found {checksum!r}')
        known = {"format", "version", "shape", "dtype", "order", "offset", "nbytes", "complete", "attrs", "checksum"}
        extra = {k: v for k, v in d.items() if k not in known}
        return cls(meta, offset, complete, checksum, version, extra)


def sidecar_path(data_path: str | os.PathLike[str]) -> Path:
    """``frames.dat`` -> ``frames.dat.json``."""
    p = Path(data_path)
    return p.with_name(p.name + ".json")


def read_sidecar(data_path: str | os.PathLike[str]) -> Sidecar | None:
    """Read the sidecar of ``data_path``; ``None`` when there is none.

    Raises
    ------
    MetadataError
        When a sidecar exists but is not valid JSON or not a valid sidecar.
    """
    sp = sidecar_path(data_path)
    d = read_json_file(sp, MAX_SIDECAR_BYTES, "sidecar")
    if d is None:
        return None
    return Sidecar.from_dict(d, source=str(sp))


def write_sidecar(data_path: str | os.PathLike[str], sidecar: Sidecar, *, durable: bool = True) -> None:
    """Write the sidecar of ``data_path`` atomically (temp file, fsync, rename, fsync folder)."""
    text = json.dumps(sidecar.to_dict(), indent=2, allow_nan=True) + "\n"
    # A new sidecar is readable by the same people as its data file.
    atomic_write_bytes(sidecar_path(data_path), text.encode(), durable=durable, like=data_path)
