"""Icechunk repository (local file system) whose chunks are virtual references into the archive.

The repository is configured with one virtual chunk container whose URL prefix is the
archive root (``file:///abs/archive/``); each chunk is a virtual reference carrying the
file's modification time, so icechunk itself refuses to serve a chunk whose file changed
after the migration. Readers open it with icechunk alone::

    storage = icechunk.local_filesystem_storage("DST/virtual.icechunk")
    repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access={"file:///abs/archive/": None})
    group = zarr.open_group(repo.readonly_session("main").store, mode="r")

Icechunk 1.1 stores absolute ``file://`` URLs (and its local container ignores the path it is
configured with): an archive that moves with its repository is read with ``root=`` its new
place, which re-points the references in a session never committed (:func:`open_icechunk`;
``docs/migration.md`` shows the same in a few lines of icechunk for readers without arraystore).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _fsutil
from ..errors import UnsafeInputError
from .refs import VIRTUAL_KEY, VirtualArray, hierarchy_metadata

if TYPE_CHECKING:
    from .fallback import CopiedArray

__all__ = ["container_prefix", "open_icechunk", "write_icechunk"]


def _icechunk() -> Any:
    """The icechunk module, with :func:`_let_runtime_threads_return` run at exit once it was used."""
    import icechunk

    if not _AT_EXIT:
        atexit.register(_let_runtime_threads_return)
        _AT_EXIT.append(True)
    return icechunk


_AT_EXIT: list[bool] = []


def runtime_threads_running() -> bool | None:
    """Whether a thread of icechunk's tokio runtime is on a CPU now; None where ``/proc`` cannot tell."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        end = stat.rfind(b")")
        if stat[stat.find(b"(") + 1 : end].startswith(b"tokio-runtime") and stat[end + 2 : end + 3] == b"R":
            return True
    return False


def _let_runtime_threads_return(limit_s: float = 0.5) -> None:
    """Before the interpreter finalizes: give icechunk's runtime threads the GIL until they are idle.

    An icechunk call completes by handing its result to the asyncio loop from a tokio thread,
    which lets go of the GIL to wake the loop and then takes it back. When the script ends in
    that gap, the thread finds the interpreter finalizing; Python 3.11 ends the thread with
    ``pthread_exit``, whose unwinding through Rust frames aborts the process (SIGABRT after
    the script's last line ran; pyo3 hangs the thread instead in newer releases, PyO3/pyo3#4874).
    Sleeping here hands the GIL to such a thread; three idle looks 2 ms apart end the wait.
    """
    deadline = time.monotonic() + limit_s
    idle = 0
    while idle < 3 and time.monotonic() < deadline:
        running = runtime_threads_running()
        idle = idle + 1 if running is not True else 0
        time.sleep(0.002)


def container_prefix(root: str | os.PathLike[str]) -> str:
    """The virtual chunk container URL prefix of an archive root (``file:///abs/root/``)."""
    return Path(root).resolve().as_uri().rstrip("/") + "/"


_QUIET_DEPTH = [0]


@contextlib.contextmanager
def _quiet(icechunk: Any) -> Iterator[None]:
    """Icechunk logs a warning that a local repository is not safe for concurrent commits.

    The virtual migration commits once, from one process: unless the user set ``ICECHUNK_LOG``,
    only errors are logged *during the calls inside this block*. Icechunk's log filter is
    process-wide and has no getter: afterwards it is reset to ``ICECHUNK_LOG`` / icechunk's
    default, so the user's own icechunk work logs as before.
    """
    if "ICECHUNK_LOG" in os.environ or _QUIET_DEPTH[0]:  # set by the user, or by an enclosing block
        yield
        return
    icechunk.set_logs_filter("error")
    _QUIET_DEPTH[0] += 1
    try:
        yield
    finally:
        _QUIET_DEPTH[0] -= 1
        icechunk.set_logs_filter(None)


def write_icechunk(
    path: str | os.PathLike[str],
    arrays: Sequence[VirtualArray],
    root: str | os.PathLike[str],
    *,
    attrs: dict[str, Any] | None = None,
    copies: Sequence[CopiedArray] = (),
) -> None:
    """Create the repository at ``path`` (replacing an earlier one only once the new one is committed).

    The arrays of the copying fallback (``copies``) are written as real chunks of the repository.
    """
    icechunk = _icechunk()
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

        extra = {c.path: c.metadata() for c in copies}
        for key, doc in sorted(hierarchy_metadata(arrays, attrs, extra=extra).items(), key=lambda kv: kv[0].count("/")):
            zarr.core.sync.sync(store.set(key, proto.buffer.from_bytes(json.dumps(doc).encode())))
        for c in copies:
            for key in c.chunk_keys():
                data = (c.folder / key).read_bytes()
                zarr.core.sync.sync(store.set(f"{c.path}/{key}", proto.buffer.from_bytes(data)))
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


def recorded_root(path: str | os.PathLike[str]) -> Path:
    """The archive root a virtual repository was made with: its one ``file://`` virtual chunk container.

    Raises
    ------
    UnsafeInputError
        Not exactly one container, or not a ``file://`` one (pass ``root=``).
    """
    from urllib.parse import unquote, urlsplit

    icechunk = _icechunk()

    with _quiet(icechunk):
        config = icechunk.Repository.fetch_config(icechunk.local_filesystem_storage(str(Path(path).resolve())))
        prefixes = list(config.virtual_chunk_containers or {}) if config is not None else []
        if len(prefixes) != 1:
            raise UnsafeInputError(f"{path}: expected one virtual chunk container, found {len(prefixes)}; pass root=")
        if not prefixes[0].startswith("file://"):
            raise UnsafeInputError(f"{path}: expected a file:// container, found {prefixes[0]!r}")
        return Path(unquote(urlsplit(prefixes[0]).path))


def open_icechunk(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Any:
    """A read-only ``zarr`` group of a virtual repository, reading only inside the archive root.

    Only the container of ``root`` (default: the one the repository was made with) is authorised;
    a reference elsewhere is refused by icechunk when read.

    Icechunk 1.1 records absolute ``file://`` locations (its local container ignores the path
    it is configured with). An archive that moved is read with ``root=`` its new place: the
    references of every virtual array are re-pointed below ``root`` in a session that is
    never committed (the repository is not written; it may be on read-only media), from the
    layout each array records under ``arraystore.virtual``.
    """
    icechunk = _icechunk()
    import zarr

    with _quiet(icechunk):
        recorded = recorded_root(path)
        storage = icechunk.local_filesystem_storage(str(Path(path).resolve()))
        if root is None or Path(root).resolve() == recorded.resolve():
            prefix = container_prefix(recorded)
            repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access={prefix: None})
            return zarr.open_group(repo.readonly_session("main").store, mode="r")
        new_root = Path(root).resolve()
        prefix = container_prefix(new_root)
        config = icechunk.RepositoryConfig.default()
        config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(str(new_root))))
        repo = icechunk.Repository.open(storage, config=config, authorize_virtual_chunk_access={prefix: None})
        session = repo.writable_session("main")
        group = zarr.open_group(session.store, mode="r")
        for name, arr in group.members(max_depth=None):
            rec = arr.attrs.get(VIRTUAL_KEY) if hasattr(arr, "shape") else None
            if isinstance(rec, dict):
                _repoint(session.store, name, arr, rec, new_root, path)
        return group


def _repoint(store: Any, name: str, arr: Any, rec: dict[str, Any], root: Path, path: Any) -> None:
    """Point the chunks of one virtual array at its source below ``root``, as :meth:`VirtualArray.refs` lays them out.

    The source must resolve inside ``root`` (symbolic links followed), like every reference.
    """
    icechunk = _icechunk()

    from ..meta import ArrayMeta, dtype_from_json

    source = str(rec["source"])
    prefix = container_prefix(root)
    target = (root / source).resolve()
    if source.startswith("/") or any(p in ("", ".", "..") for p in source.split("/")) or root not in target.parents:
        raise UnsafeInputError(
            f"{path}::{name}: its source {source!r} resolves to {target}, outside the archive root {root}; refused"
        )
    meta = ArrayMeta(tuple(rec["shape"]), dtype_from_json(rec["dtype"]), rec["order"])
    varr = VirtualArray(name, source, meta, int(rec["offset"]), tuple(int(c) for c in arr.chunks),
                        int(rec["size"]), int(rec["mtime_ns"]))
    stamp = datetime.datetime.fromtimestamp(varr.mtime_ns / 1e9 + 1, tz=datetime.timezone.utc)
    specs = [
        icechunk.VirtualChunkSpec(list(r.index), prefix + source, r.offset, r.length, last_updated_at_checksum=stamp)
        for r in varr.refs()
    ]
    if specs and store.set_virtual_refs(name, specs, validate_containers=True):
        raise UnsafeInputError(f"{path}::{name}: references outside the archive container {prefix} refused")
