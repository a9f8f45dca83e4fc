"""A legacy Fortran-order raw archive migrated to HDF5 opens with the right shape and values elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.cli import main as cli
from arraystore.errors import BackendError

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


def _fortran_archive(root: Path) -> dict[str, np.ndarray]:
    (root / "run1").mkdir(parents=True)
    arrays = {
        "run1/temperature.dat": np.asfortranarray(np.arange(6 * 5 * 4, dtype=">f4").reshape(6, 5, 4) / 7),
        "run1/counts.dat": np.asfortranarray(np.arange(9 * 2, dtype="<i8").reshape(9, 2) * 3 - 5),
        "pressure.dat": np.asfortranarray(np.linspace(0, 1, 3 * 4 * 5 * 2).reshape(3, 4, 5, 2)),
        "mask.dat": np.asfortranarray(np.arange(3 * 7).reshape(3, 7) % 3 == 0),
    }
    for name, data in arrays.items():
        data.ravel(order="F").tofile(root / name)
        (root / (name + ".json")).write_text(json.dumps({"shape": list(data.shape), "dtype": data.dtype.str, "order": "F"}))
    return arrays


def test_fortran_archive_migrated_into_a_zarr_group_opens_with_xr_open_zarr(tmp_path: Path) -> None:
    arrays = _fortran_archive(tmp_path / "archive")
    report = arraystore.migrate(tmp_path / "archive", tmp_path / "out", to="zarr", into="archive.zarr",
                                max_memory="4KiB", workers=2)
    assert report.counts["converted"] == len(arrays), report.records
    group = tmp_path / "out" / "archive.zarr"
    entries = [{"path": str(group), "var": name.removesuffix(".dat")} for name in arrays]
    for reader in ("xarray-zarr", "zarr-python", "TensorStore"):
        for (name, data), got in zip(arrays.items(), run_reader(reader, entries, tmp_path / reader)):
            assert got["ok"], (reader, name, got)
            assert got["values"].shape == data.shape and np.array_equal(got["values"], data), (reader, name)
            leaf = name.removesuffix(".dat").rsplit("/", 1)[-1]
            assert got["dims"] == [f"{leaf}_dim_{i}" for i in range(data.ndim)], (reader, name, got["dims"])
    # arraystore reads the group's arrays back, and a rerun skips them all
    for name, data in arrays.items():
        with arraystore.open(f"{group}::{name.removesuffix('.dat')}") as s:
            assert s.dtype == data.dtype and np.array_equal(s[...], data)
    again = arraystore.migrate(tmp_path / "archive", tmp_path / "out", to="zarr", into="archive.zarr")
    assert again.counts["skipped"] == len(arrays), again.counts


def test_into_keeps_the_sources_dimension_names_and_refuses_nested_arrays(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    (archive / "a").mkdir(parents=True)
    for name in ("a.dat", "a/b.dat", "c.dat"):
        np.arange(6, dtype="<i2").tofile(archive / name)
        (archive / (name + ".json")).write_text(json.dumps({"shape": [2, 3], "dtype": "<i2", "attrs": {"dims": ["y", "x"]}}))
    report = arraystore.migrate(archive, tmp_path / "out", to="zarr", into="g.zarr")
    status = {r.source: r.status for r in report.records}
    assert status == {"a.dat": "failed", "a/b.dat": "failed", "c.dat": "converted"}, report.records
    assert arraystore.open(str(tmp_path / "out" / "g.zarr::c")).dimension_names == ("y", "x")


def test_into_needs_a_zarr_group_name(tmp_path: Path) -> None:
    _fortran_archive(tmp_path / "archive")
    for to, into in (("hdf5", "archive.h5"), ("zarr", "sub/archive.zarr"), ("zarr", "archive"), ("zarr", "a.zarr::x")):
        with pytest.raises(BackendError, match="into"):
            arraystore.migrate(tmp_path / "archive", tmp_path / "out", to=to, into=into)
    assert not (tmp_path / "out").exists()


def test_cli_migrate_into(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arrays = _fortran_archive(tmp_path / "archive")
    assert cli(["migrate", str(tmp_path / "archive"), str(tmp_path / "out"), "--into", "a.zarr", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["converted"] == len(arrays)
    with arraystore.open(str(tmp_path / "out" / "a.zarr::run1/temperature")) as s:
        assert np.array_equal(s[...], arrays["run1/temperature.dat"])
