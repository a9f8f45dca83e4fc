"""``ConvertOptions``: what a conversion is asked to make, as one frozen value.

The command line builds one from its arguments, a migration puts one in every job,
the Dask path receives the one :func:`~arraystore.convert` was given; nobody types
the keyword list again. Values are checked and normalised on construction (chunk
tuples, a parsed :class:`~arraystore.compression.Compression`, a byte budget), so a
bad option fails before anything is planned or written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from ..compression import Compression, parse_compression
from ..dialects.envi_write import HEADER_CHOICES
from ..errors import ConversionError, OptionError
from ._plan import default_workers, parse_size

__all__ = ["ConvertOptions"]


def _shape(value: Any, what: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConversionError(f"expected {what} as a tuple of positive integers (or None), found {value!r}") from None


@dataclass(frozen=True)
class ConvertOptions:
    """The options of :func:`arraystore.convert` (everything but ``progress`` and ``scheduler``).

    Parameters
    ----------
    backend
        Destination format; default from the destination's suffix.
    chunks, shards
        Destination chunk and shard shapes (chunked backends); None: chosen by the plan.
    compression
        Any spelling :func:`arraystore.compression.parse_compression` accepts; stored parsed.
    order
        ``"C"`` or ``"F"`` for the destination; None: the source's.
    max_memory
        Buffer budget: bytes or ``"256MiB"``; stored in bytes.
    workers
        Threads (or a ``"local"`` cluster's processes); None: one per CPU.
    verify, resume, durable, overwrite
        As in :func:`arraystore.convert`.
    attrs
        ``"keep"`` (the default) or ``"drop"``: write the destination without the source's
        attrs (e.g. a plain ``.npy``, which cannot hold them).
    portable
        Zarr destinations: only Zarr v3 core data types, so every Zarr implementation
        reads the array (times as int64 with CF ``units``; strings and structured
        arrays refused). See docs/interoperability.md.
    header
        Raw destinations: ``"envi"`` also writes an ENVI header (``out.dat.hdr``) that GDAL,
        QGIS, spectral and ENVI read; the data is then stored in C order. The interleave
        comes from the source's dimension names (an axis named ``band``: its position picks
        bsq, bil or bip), else bsq; ``"envi:bsq"``, ``"envi:bil"``, ``"envi:bip"`` fix it.
        See :mod:`arraystore.dialects.envi_write`.
    dimension_names
        One name (str, or None) per axis for the destination (backends with
        ``supports_dimension_names``: HDF5, Zarr), instead of the source's; checked against
        the source's number of axes when the conversion starts.

    Raises
    ------
    ConversionError
        A malformed chunk or shard shape, a bad memory size, workers below 1, an order other than C/F,
        or an unknown header.
    CompressionError
        A compression the grammar refuses.
    """

    backend: str | None = None
    chunks: tuple[int, ...] | None = None
    shards: tuple[int, ...] | None = None
    compression: Compression | None = None
    order: Literal["C", "F"] | None = None
    max_memory: int = 256 * 1024 * 1024
    workers: int | None = None
    verify: bool = False
    resume: bool = True
    durable: bool = False
    overwrite: bool = False
    attrs: Literal["keep", "drop"] = "keep"
    portable: bool = False
    header: Literal["envi", "envi:bsq", "envi:bil", "envi:bip"] | None = None
    dimension_names: tuple[str | None, ...] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "chunks", _shape(self.chunks, "chunks"))
        set_(self, "shards", _shape(self.shards, "shards"))
        set_(self, "compression", parse_compression(self.compression))
        set_(self, "max_memory", parse_size(self.max_memory))
        if self.dimension_names is not None:
            names = self.dimension_names
            if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
                raise ConversionError(
                    f"expected dimension_names as a sequence of one name (str or None) per axis, found {names!r}"
                )
            set_(self, "dimension_names", tuple(names))
        if self.order not in (None, "C", "F"):
            raise ConversionError(f"expected order 'C' or 'F' (or None for the source's), found {self.order!r}")
        if self.workers is not None:
            default_workers(self.workers)  # ConversionError below 1
        if self.attrs not in ("keep", "drop"):
            raise ConversionError(f"expected attrs='keep' or attrs='drop', found {self.attrs!r}")
        if self.header not in (None, *HEADER_CHOICES):
            choices = ", ".join(repr(c) for c in HEADER_CHOICES)
            raise ConversionError(f"expected header= one of {choices} (or None), found {self.header!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ConvertOptions:
        """Options from the entries of ``values`` that name a field (others, e.g. a CLI's ``json``, are ignored).

        Values may be in any spelling the constructor normalises (``"zstd:3"``, ``"1GiB"``, lists)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def replace(self, **changes: Any) -> ConvertOptions:
        """A copy with ``changes`` (checked like the constructor's arguments).

        Raises
        ------
        OptionError
            A name that is not an option (also a TypeError).
        """
        known = {f.name for f in dataclasses.fields(self) if f.init}
        unknown = [k for k in changes if k not in known]
        if unknown:
            raise OptionError(
                f"convert() got {', '.join(map(repr, unknown))}, which is not a conversion option; the options are "
                f"{', '.join(sorted(known))} (and storage_options, progress, scheduler): check the spelling"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: compression as its canonical string (``"zstd:3"``), shapes as lists."""
        out = dataclasses.asdict(self)
        out["compression"] = None if self.compression is None else str(self.compression)
        for key in ("chunks", "shards", "dimension_names"):
            out[key] = None if out[key] is None else list(out[key])
        return out
