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
    else:
        import icechunk

        storage = icechunk.local_filesystem_storage(store)
        prefix = next(iter(icechunk.Repository.fetch_config(storage).virtual_chunk_containers))
        repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access={prefix: None})
        zstore = repo.readonly_session("main").store
    return zstore


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
