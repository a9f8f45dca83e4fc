"""Set-up for the reader-side corpus: files written by other tools, read back by arraystore."""

from __future__ import annotations

import contextlib

# hdf5plugin registers its filters with HDF5 before any test module imports netCDF4: netCDF4 points
# HDF5_PLUGIN_PATH at its own filter plugins, after which HDF5 fails to create Blosc datasets with
# hdf5plugin's options ("error during user callback"), making test_h5py depend on the import order.
with contextlib.suppress(ImportError):
    import hdf5plugin  # noqa: F401
