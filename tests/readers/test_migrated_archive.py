"""A legacy Fortran-order raw archive migrated to HDF5 opens with the right shape and values elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import arraystore

from .test_hdf5_readers import run_reader


def test_fortran_archive_migrated_to_hdf5_reads_the_same_in_h5py_netcdf4_xarray(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    (archive / "run1").mkdir(parents=True)
    arrays = {
        "run1/temperature.dat": np.asfortranarray(np.arange(6 * 5 * 4, dtype=">f4").reshape(6, 5, 4) / 7),
        "run1/counts.dat": np.asfortranarray(np.arange(9 * 2, dtype="<i8").reshape(9, 2) * 3 - 5),
        "pressure.dat": np.asfortranarray(np.linspace(0, 1, 3 * 4 * 5 * 2).reshape(3, 4, 5, 2)),
    }
    for name, data in arrays.items():  # raw Fortran-order files described by sidecars
        data.ravel(order="F").tofile(archive / name)
        (archive / (name + ".json")).write_text(json.dumps(
            {"shape": list(data.shape), "dtype": data.dtype.str, "order": "F"}))
    report = arraystore.migrate(archive, tmp_path / "out", to="hdf5", max_memory="4KiB")
    assert report.counts["converted"] == len(arrays), report.counts
    entries = [{"path": str(tmp_path / "out" / name.replace(".dat", ".h5")), "var": "data"} for name in arrays]
    for reader in ("h5py", "netCDF4", "xarray-h5netcdf", "xarray-netcdf4"):
        for (name, data), got in zip(arrays.items(), run_reader(reader, entries, tmp_path / reader)):
            assert got["ok"], (reader, name, got)
            assert got["values"].shape == data.shape, (reader, name)
            assert np.array_equal(got["values"], data), (reader, name)
            if reader != "h5py":
                assert got["dims"] == [f"dim_{i}" for i in range(data.ndim)], (reader, name, got["dims"])
