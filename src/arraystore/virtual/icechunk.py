"""Icechunk repository (local file system) whose chunks are virtual references into the archive.

The repository is configured with one virtual chunk container whose URL prefix is the
archive root (``file:///abs/archive/``); each chunk is a virtual reference carrying the
file's modification time, so icechunk itself refuses to serve a chunk whose file changed
after the migration. Readers open it with icechunk alone::

    storage = icechunk.local_filesystem_storage("DST/virtual.icechunk")
    repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access={"file:///abs/archive/": None})
    group = zarr.open_group(repo.readonly_session("main").store, mode="r")

Icechunk 1.1 stores absolute ``file://`` URLs: an archive that moves needs its references
rewritten (migrate again with ``--no-checksum``), or the kerchunk format, whose root is a
parameter at read time.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import _fsutil
from ..errors import UnsafeInputError
from .refs import VirtualArray, hierarchy_metadata

__all__ = ["container_prefix", "open_icechunk", "write_icechunk"]


def container_prefix(root: str | os.PathLike[str]) -> str:
    """The virtual chunk container URL prefix of an archive root (``file:///abs/root/``)."""
    return Path(root).resolve().as_uri().rstrip("/") + "/"


@contextlib.contextmanager
def _quiet(icechunk: Any) -> Iterator[None]:
    """Icechunk logs a warning that a local repository is not safe for concurrent commits.

    The virtual migration commits once, from one process: unless the user set ``ICECHUNK_LOG``,
    only errors are logged *during the calls inside this block*. Icechunk's log filter is
    process-wide and has no getter: afterwards it is reset to ``ICECHUNK_LOG`` / icechunk's
    default, so the user's own icechunk work logs as before.
    """
    if "ICECHUNK_LOG" in os.environ:
        yield
        return
    icechunk.set_logs_filter("error")
    try:
        yield
    finally:
        icechunk.set_logs_filter(None)


def write_icechunk(
    path: str | os.PathLike[str],
    arrays: Sequence[VirtualArray],
    root: str | os.PathLike[str],
    *,
    attrs: dict[str, Any] | None = None,
) -> None:
    """Create the repository at ``path`` (replacing an earlier one only once the new one is committed)."""
    import icechunk
    import zarr
    from zarr.core.buffer import default_buffer_prototype

    with _quiet(icechunk):
        prefix = container_prefix(root)
        dest = Path(path)
        tmp = _fsutil.partial_path(dest)
        if tmp.exists():
            shutil.rmtree(tmp)
        config = icechunk.RepositoryConfig.default()
        config.set_virtual_chunk_container(
            icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(str(Path(root).resolve())))
        )
        repo = icechunk.Repository.create(
            icechunk.local_filesystem_storage(str(tmp)), config=config, authorize_virtual_chunk_access={prefix: None}
        )
        session = repo.writable_session("main")
        store = session.store
        proto = default_buffer_prototype()

        for key, doc in sorted(hierarchy_metadata(arrays, attrs).items(), key=lambda kv: kv[0].count("/")):
            zarr.core.sync.sync(store.set(key, proto.buffer.from_bytes(json.dumps(doc).encode())))
        for arr in arrays:
            url = prefix + arr.source
            stamp = datetime.datetime.fromtimestamp(arr.mtime_ns / 1e9 + 1, tz=datetime.timezone.utc)
            specs = [
                icechunk.VirtualChunkSpec(list(r.index), url, r.offset, r.length, last_updated_at_checksum=stamp)
                for r in arr.refs()
            ]
            if specs:
                failed = store.set_virtual_refs(arr.path, specs, validate_containers=True)
                if failed:
                    raise UnsafeInputError(f"{url}: references outside the archive container {prefix} refused")
        session.commit("arraystore virtual migration")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)


def open_icechunk(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Any:
    """A read-only ``zarr`` group of a virtual repository, reading only inside the archive root.

    Only the container of ``root`` (default: the one the repository was made with) is authorised;
    a reference elsewhere is refused by icechunk when read.
    """
    import icechunk
    import zarr

    with _quiet(icechunk):
        storage = icechunk.local_filesystem_storage(str(Path(path).resolve()))
        if root is None:
            containers = icechunk.Repository.fetch_config(storage)
            prefixes = list(containers.virtual_chunk_containers or {}) if containers is not None else []
            if len(prefixes) != 1:
                raise UnsafeInputError(f"{path}: expected one virtual chunk container, found {len(prefixes)}; pass root=")
            prefix = prefixes[0]
            if not prefix.startswith("file://"):
                raise UnsafeInputError(f"{path}: expected a file:// container, found {prefix!r}")
        else:
            prefix = container_prefix(root)
        repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access={prefix: None})
        return zarr.open_group(repo.readonly_session("main").store, mode="r")
