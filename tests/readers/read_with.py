"""Read files with one outside reader, in a process that cannot import arraystore.

Usage: ``python read_with.py READER MANIFEST OUTDIR START``. MANIFEST is a JSON list of
``{"path", "var"}``; from entry START on, the values read are saved to ``OUTDIR/<i>.npy``
and a line ``{"i", "ok", "shape", "dtype", "dims", "attrs", "fill", "error"}`` is appended to
``OUTDIR/results.jsonl`` per entry (so that a reader crashing the process loses one entry).
``attrs`` are the attributes the reader shows (as JSON values: one-element arrays as lists), ``fill``
its fill value (netCDF/xarray: ``_FillValue``; Zarr: the array's ``fill_value``; GDAL: nodata).
A compressed HDF5 file needs hdf5plugin's filters in every reader: the caller sets
``HDF5_PLUGIN_PATH`` (netCDF-C, GDAL) and h5py's reader imports ``hdf5plugin``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

sys.modules["arraystore"] = None  # type: ignore[assignment]  # the readers alone, never arraystore

import numpy as np  # noqa: E402

#: What a reader returns: values, dimension names (None: it has none), attributes, fill value (None: none).
Read = tuple[Any, "list[str] | None", dict[str, Any], Any]


def _json(value: Any) -> Any:
    """An attribute or fill value as JSON: numbers, text, lists (a one-element array stays a list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return _json(value.item())
    if isinstance(value, np.ndarray):
        return [_json(v) for v in value.tolist()] if value.ndim else _json(value.item())
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def _h5py(path: str, var: str) -> Read:
    import h5py
    import hdf5plugin  # noqa: F401  # zstd and blosc filters, as any h5py user of such a file needs

    with h5py.File(path, "r") as f:
        ds = f[var]
        attrs = {k: _json(ds.attrs[k]) for k in ds.attrs}
        fill = _json(ds.attrs["_FillValue"]) if "_FillValue" in ds.attrs else None
        if ds.dtype.kind == "S" and h5py.check_string_dtype(ds.dtype) and h5py.check_string_dtype(ds.dtype).encoding == "utf-8":
            return np.asarray(ds.asstr()[...], dtype=str), None, attrs, fill
        return ds[...], None, attrs, fill


def _netcdf4(path: str, var: str) -> Read:
    import netCDF4

    with netCDF4.Dataset(path) as d:
        v = d[var]
        v.set_auto_maskandscale(False)
        attrs = {k: _json(v.getncattr(k)) for k in v.ncattrs()}
        return np.asarray(v[...]), list(v.dimensions), attrs, attrs.get("_FillValue")


def _xarray(engine: str) -> Any:
    def read(path: str, var: str) -> Read:
        import xarray as xr

        with xr.open_dataset(path, engine=engine) as ds:
            v = ds[var]
            return np.asarray(v.values), [str(d) for d in v.dims], _json(dict(v.attrs)), _json(v.encoding.get("_FillValue"))

    return read


def _zarr(path: str, var: str) -> Read:
    import zarr

    arr = zarr.open_array(path, path=var or None, mode="r")
    names = getattr(arr.metadata, "dimension_names", None)
    return arr[...], None if names is None else [str(n) for n in names], _json(dict(arr.attrs)), _json(arr.fill_value)


def _xarray_zarr(path: str, var: str) -> Read:
    import xarray as xr

    group, _, name = (var or "data").rpartition("/")
    with xr.open_zarr(path, group=group or None) as ds:
        v = ds[name]
        return np.asarray(v.values), [str(d) for d in v.dims], _json(dict(v.attrs)), _json(v.encoding.get("_FillValue"))


def _tensorstore(path: str, var: str) -> Read:
    import tensorstore as ts

    where = f"{path}/{var}" if var else path
    arr = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": where}}, open=True).result()
    names = [str(n) for n in arr.domain.labels]
    attrs = arr.spec().to_json().get("metadata", {}).get("attributes", {})
    fill = arr.fill_value
    return arr.read().result(), names, _json(attrs), None if fill is None else _json(np.asarray(fill))


def _numpy(path: str, var: str) -> Read:
    return np.load(path, allow_pickle=False), None, {}, None


def _rasterio(path: str, var: str) -> Read:
    import rasterio

    with rasterio.open(path) as ds:  # GDAL's ENVI driver: (bands, lines, samples) whatever the interleave
        return ds.read(), None, _json(ds.tags()), ds.nodata


def _gdal_hdf5(path: str, var: str) -> Read:
    import rasterio

    with rasterio.open(f'HDF5:"{path}"://{var}') as ds:  # a 3-D dataset: one band per index of its first axis
        return ds.read(), None, _json(ds.tags(1)), ds.nodata


def _gdal_zarr(path: str, var: str) -> Read:
    import rasterio

    with rasterio.open(f'ZARR:"{path}":/{var}') as ds:  # a 3-D array: one band per index of its first axis
        return ds.read(), None, _json(ds.tags(1)), ds.nodata


def _spectral(path: str, var: str) -> Read:
    import spectral.io.envi as envi

    img = envi.open(var, path)  # var: the header
    return np.array(img.open_memmap(interleave="bip")), None, {}, None  # (lines, samples, bands)


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
    "GDAL-HDF5": _gdal_hdf5,
    "GDAL-Zarr": _gdal_zarr,
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
                values, dims, attrs, fill = READERS[reader](entry["path"], entry["var"])
            values = np.asarray(values)
            if values.dtype == object and all(isinstance(v, str) for v in values.reshape(-1)):
                values = np.array(values.tolist(), dtype=str).reshape(values.shape)  # strings as Python str
            np.save(out / f"{i}.npy", np.asarray(values, dtype=values.dtype.newbyteorder("=") if values.dtype.names is None else values.dtype), allow_pickle=False)
            result.update(ok=True, shape=list(values.shape), dtype=values.dtype.str, dims=dims, attrs=attrs, fill=fill)
        except Exception as exc:
            result.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
