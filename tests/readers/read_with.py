"""Read files with one outside reader, in a process that cannot import arraystore.

Usage: ``python read_with.py READER MANIFEST OUTDIR START``. MANIFEST is a JSON list of
``{"path", "var"}``; from entry START on, the values read are saved to ``OUTDIR/<i>.npy``
and a line ``{"i", "ok", "shape", "dtype", "dims", "error"}`` is appended to
``OUTDIR/results.jsonl`` per entry (so that a reader crashing the process loses one entry).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

sys.modules["arraystore"] = None  # type: ignore[assignment]  # the readers alone, never arraystore

import numpy as np  # noqa: E402


def _h5py(path: str, var: str) -> tuple[Any, list[str] | None]:
    import h5py

    with h5py.File(path, "r") as f:
        ds = f[var]
        if ds.dtype.kind == "S" and h5py.check_string_dtype(ds.dtype) and h5py.check_string_dtype(ds.dtype).encoding == "utf-8":
            return np.asarray(ds.asstr()[...], dtype=str), None
        return ds[...], None


def _netcdf4(path: str, var: str) -> tuple[Any, list[str] | None]:
    import netCDF4

    with netCDF4.Dataset(path) as d:
        v = d[var]
        v.set_auto_maskandscale(False)
        return np.asarray(v[...]), list(v.dimensions)


def _xarray(engine: str) -> Any:
    def read(path: str, var: str) -> tuple[Any, list[str] | None]:
        import xarray as xr

        with xr.open_dataset(path, engine=engine) as ds:
            v = ds[var]
            return np.asarray(v.values), [str(d) for d in v.dims]

    return read


def _zarr(path: str, var: str) -> tuple[Any, list[str] | None]:
    import zarr

    arr = zarr.open_array(path, path=var or None, mode="r")
    names = getattr(arr.metadata, "dimension_names", None)
    return arr[...], None if names is None else [str(n) for n in names]


def _xarray_zarr(path: str, var: str) -> tuple[Any, list[str] | None]:
    import xarray as xr

    group, _, name = (var or "data").rpartition("/")
    with xr.open_zarr(path, group=group or None) as ds:
        v = ds[name]
        return np.asarray(v.values), [str(d) for d in v.dims]


def _tensorstore(path: str, var: str) -> tuple[Any, list[str] | None]:
    import tensorstore as ts

    where = f"{path}/{var}" if var else path
    arr = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": where}}, open=True).result()
    names = [str(n) for n in arr.domain.labels]
    return arr.read().result(), names


def _numpy(path: str, var: str) -> tuple[Any, list[str] | None]:
    return np.load(path, allow_pickle=False), None


def _rasterio(path: str, var: str) -> tuple[Any, list[str] | None]:
    import rasterio

    with rasterio.open(path) as ds:  # GDAL's ENVI driver: (bands, lines, samples) whatever the interleave
        return ds.read(), None


def _spectral(path: str, var: str) -> tuple[Any, list[str] | None]:
    import spectral.io.envi as envi

    img = envi.open(var, path)  # var: the header
    return np.array(img.open_memmap(interleave="bip")), None  # (lines, samples, bands)


READERS = {
    "h5py": _h5py,
    "netCDF4": _netcdf4,
    "xarray-h5netcdf": _xarray("h5netcdf"),
    "xarray-netcdf4": _xarray("netcdf4"),
    "zarr-python": _zarr,
    "xarray-zarr": _xarray_zarr,
    "TensorStore": _tensorstore,
    "numpy": _numpy,
    "GDAL": _rasterio,
    "spectral": _spectral,
}


def main() -> None:
    reader, manifest, out, start = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    out.mkdir(parents=True, exist_ok=True)
    for i, entry in enumerate(json.loads(manifest.read_text())):
        if i < start:
            continue
        result: dict[str, Any] = {"i": i}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values, dims = READERS[reader](entry["path"], entry["var"])
            values = np.asarray(values)
            if values.dtype == object and all(isinstance(v, str) for v in values.reshape(-1)):
                values = np.array(values.tolist(), dtype=str).reshape(values.shape)  # strings as Python str
            np.save(out / f"{i}.npy", np.asarray(values, dtype=values.dtype.newbyteorder("=") if values.dtype.names is None else values.dtype), allow_pickle=False)
            result.update(ok=True, shape=list(values.shape), dtype=values.dtype.str, dims=dims)
        except Exception as exc:
            result.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
