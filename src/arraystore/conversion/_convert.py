"""``arraystore.convert()``: options in, a :class:`ConversionReport` out; locally or on a Dask cluster."""

from __future__ import annotations

import os
from typing import Any

from ..store import ArrayStore
from ._movers import Progress
from ._options import ConvertOptions
from ._report import ConversionReport
from ._run import run_conversion

__all__ = ["convert"]


def convert(
    src: str | os.PathLike[str] | ArrayStore,
    dst: str | os.PathLike[str],
    options: ConvertOptions | None = None,
    *,
    progress: Progress | bool | None = None,
    scheduler: Any = None,
    **overrides: Any,
) -> ConversionReport:
    """Convert an array to another format (or layout) in bounded memory, atomically, resumably.

    Parameters
    ----------
    src
        Source path (``file::key`` inside HDF5/Zarr hierarchies) or an open store.
    dst
        Destination path; it must not exist unless ``overwrite=True``.
    options
        A :class:`ConvertOptions` (the CLI and migration pass one); keyword arguments
        below override its fields. The options:
    backend
        Destination format; default from ``dst``'s suffix.
    chunks, shards, compression
        Destination layout (HDF5, Zarr). ``chunks=None`` picks about 4 MiB chunks
        that are whole along the source's fastest-varying axes; an uncompressed HDF5
        destination without chunks is contiguous.
    order
        ``"C"`` or ``"F"`` for the destination; default: the source's.
    max_memory
        Budget for the conversion's buffers: ``"256MiB"``, ``"1GB"`` or bytes.
    workers
        Writer threads for compressed Zarr destinations, compression threads for deflated
        (gzip) HDF5 destinations; default: one per CPU.
    verify
        Re-read the destination before publishing it and compare checksums.
    resume
        Continue an interrupted conversion of the same source with the same options;
        ``False`` starts from scratch.
    durable
        fsync data, metadata, journal and folder before the rename.
    overwrite
        Replace an existing destination (only when the new one is complete).
    storage_options
        (not an option: secrets stay out of options, plans and journals) Settings for
        object-store URLs (``s3://``...) on either side, as in :func:`arraystore.open`;
        default: the cloud's standard environment variables.
    progress
        (not an option: how this call reports) ``True`` for a tqdm bar on stderr, or a callable ``(done_bytes, total_bytes)``.
    scheduler
        (not an option: where this call runs) Run the blocks on a Dask cluster: a scheduler address, a ``distributed.Client``,
        or ``"local"`` for a temporary ``LocalCluster`` of ``workers`` processes. The
        workers must see both paths; see docs/conversion.md, "On a Dask cluster".

    Returns
    -------
    ConversionReport

    Raises
    ------
    UnsupportedDtypeError
        The destination cannot store the dtype exactly (nothing is written).
    MemoryBudgetError
        ``max_memory`` cannot hold one destination chunk (nothing is written).
    CompressionError
        A compression the grammar refuses, or that the destination backend does not write.
    AlreadyExistsError, ConversionError, VerificationError, StorageFullError
    """
    opts = options if options is not None else ConvertOptions()
    storage_options = overrides.pop("storage_options", None)  # secrets: never in the options, plan or journal
    if overrides:
        opts = opts.replace(**overrides)
    from ..objstore import current_storage_options, default_storage_options

    # None keeps the options of an enclosing call (a migration job's), else the environment's
    with default_storage_options(storage_options if storage_options is not None else current_storage_options()):
        if scheduler is not None:
            from ._dask import convert_on_dask

            return convert_on_dask(src, dst, opts, scheduler=scheduler, progress=progress)
        return run_conversion(src, dst, opts, progress)
