"""Read a virtual store in a fresh Python process that cannot import arraystore.

Run as ``python readers.py KIND STORE EXPECTED.npz [ROOT]``: compares every array of the
npz (key = array path with ``/`` as ``|``) with what the reader gives, bit for bit.
"""

import sys

sys.modules["arraystore"] = None  # type: ignore[assignment]  # any import of arraystore fails

import numpy as np  # noqa: E402
import zarr  # noqa: E402


def bits(a):
    a = np.ascontiguousarray(a)
    return a.astype(a.dtype.newbyteorder("=")).view(np.uint8)


def open_group(kind, store, root):
    if kind.startswith("kerchunk"):
        import fsspec

        over = {"root": "file://" + root} if root else None
        fs = fsspec.filesystem(
            "reference", fo=store, remote_protocol="file", asynchronous=True, template_overrides=over
        )
        zstore = zarr.storage.FsspecStore(fs, read_only=True, path="")
    elif root:
        zstore = relocated_icechunk(store, root)
    else:
        import icechunk

        storage = icechunk.local_filesystem_storage(store)
        prefix = next(iter(icechunk.Repository.fetch_config(storage).virtual_chunk_containers))
        repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access={prefix: None})
        zstore = repo.readonly_session("main").store
    return zstore


def relocated_icechunk(store, root):
    """The recipe of docs/migration.md: re-point each array's chunks below the new root, never committed."""
    import datetime
    import pathlib

    import icechunk

    prefix = pathlib.Path(root).resolve().as_uri() + "/"
    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(root)))
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(store), config=config,
                                    authorize_virtual_chunk_access={prefix: None})
    session = repo.writable_session("main")  # changed in memory only: never committed
    for name, arr in zarr.open_group(session.store, mode="r").members(max_depth=None):
        rec = arr.attrs.get("arraystore.virtual") if isinstance(arr, zarr.Array) else None
        if rec is None:
            continue  # copied by the migration: real chunks of the repository
        grid = [s // c for s, c in zip(arr.shape, arr.chunks)]
        length = int(np.prod(arr.chunks)) * np.dtype(rec["dtype"]).itemsize
        stamp = datetime.datetime.fromtimestamp(rec["mtime_ns"] / 1e9 + 1, tz=datetime.timezone.utc)
        specs = [
            icechunk.VirtualChunkSpec(list(idx), prefix + rec["source"],
                                      rec["offset"] + int(np.ravel_multi_index(idx, grid, order=rec["order"])) * length,
                                      length, last_updated_at_checksum=stamp)
            for idx in np.ndindex(*grid)
        ] if rec["nbytes"] else []
        session.store.set_virtual_refs(name, specs, validate_containers=True)
    return session.store


def main():
    kind, store, expected = sys.argv[1:4]
    root = sys.argv[4] if len(sys.argv) > 4 else None
    zstore = open_group(kind, store, root)
    want = np.load(expected)
    n = 0
    if kind.endswith("xarray"):
        import xarray as xr

        groups = sorted({k.replace("|", "/").rsplit("/", 1)[0] if "|" in k else "" for k in want.files})
        for g in groups:
            ds = xr.open_zarr(zstore, group=g or None, zarr_format=3, mask_and_scale=False,
                              decode_times=False)
            for k in want.files:
                path = k.replace("|", "/")
                parent, _, name = path.rpartition("/")
                if parent == g:
                    assert np.array_equal(bits(ds[name].values), bits(want[k])), path
                    n += 1
    else:
        group = zarr.open_group(zstore, mode="r")
        for k in want.files:
            got = group[k.replace("|", "/")][...]
            assert got.shape == want[k].shape and np.array_equal(bits(got), bits(want[k])), k
            n += 1
    print(f"ok {n}")


main()
