"""Compressed, chunked and sharded files with attributes and a fill value read the same elsewhere.

``test_hdf5_readers.py`` and ``test_format_readers.py`` cover every dtype family in the default
layouts, values and dimension names only. This matrix covers what a climate or instrument file
carries: HDF5 contiguous, chunked, gzip, lzf, zstd and blosc; Zarr v3 uncompressed, zstd, blosc,
gzip, sharded; raw with an ENVI header; each with dimension names, CF attributes (``units``, ``valid_range``, a boolean,
``_FillValue`` as netCDF-4 stores it, packed integers' ``scale_factor``/``add_offset``) and cells
holding the fill value. Each reader runs in a process without arraystore; numpy is the oracle:

* readers that return the stored values (h5py, netCDF4 with auto-masking off, zarr-python,
  TensorStore, GDAL's HDF5 driver) see the values written, and every attribute written (``_FillValue``
  of a Zarr float array in xarray's base64 form, the form xarray writes);
* xarray (``h5netcdf``, ``netcdf4``, ``open_zarr``) decodes CF as it does for files it wrote itself:
  cells equal to ``_FillValue`` are NaN, packed integers are ``value * scale_factor + add_offset``, the
  fill value is in ``encoding["_FillValue"]``;
* the netCDF and GDAL readers report ``_FillValue`` as the fill value (GDAL: nodata; for a raw
  output, the ENVI header's ``data ignore value``).

A reader that does not is a row of ``reader_table.LAYOUT_DOCUMENTED`` (the table in docs/fidelity.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import arraystore

from .reader_table import LAYOUT_DOCUMENTED as DOCUMENTED
from .reader_table import LAYOUT_READERS as READERS
from .reader_table import LAYOUTS
from .test_hdf5_readers import NAMES, SHAPE, run_reader

#: Readers that decode CF (mask the fill value, unpack scale_factor/add_offset).
DECODING = {"xarray-h5netcdf", "xarray-netcdf4", "xarray-zarr"}
#: Readers that report ``_FillValue`` as their fill value.
CF_FILL = DECODING | {"h5py", "netCDF4", "GDAL-HDF5", "GDAL", "GDAL-Zarr"}

#: dtype -> (fill value, extra attributes): packed integers carry scale_factor/add_offset.
DTYPES: dict[str, tuple[float | int, dict[str, Any]]] = {
    "<f4": (-999.0, {}),
    ">f8": (1e20, {}),
    ">i2": (-32768, {"scale_factor": [0.5], "add_offset": [10.0]}),
    "<i4": (-1, {}),
    "|u1": (255, {}),
}

BASE_ATTRS: dict[str, Any] = {
    "units": "K",
    "long_name": "air temperature at 2 m",
    "valid_range": [0, 100],
    "calibrated": True,
    "gain": 2.5,
    "count": 7,
}

def _cases() -> list[tuple[str, str, str]]:
    return [(fmt, layout, dtype) for (fmt, layout) in LAYOUTS for dtype in DTYPES]


CASES = _cases()


def _data(dtype: np.dtype[Any], fill: float | int, seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 100, SHAPE).astype(dtype)
    data.flat[[0, 7, 59]] = fill
    return data


def _attrs(fill: float | int, extra: dict[str, Any]) -> dict[str, Any]:
    return {**BASE_ATTRS, **extra, "_FillValue": [fill]}  # as netCDF-4 sources hand it over: a one-element array


def _decoded(data: np.ndarray[Any, Any], attrs: dict[str, Any]) -> np.ndarray[Any, Any]:
    """What CF decoding gives, in numpy: the fill value masked (NaN), packed values unpacked."""
    fill = attrs["_FillValue"][0]
    scale, offset = attrs.get("scale_factor", [None])[0], attrs.get("add_offset", [None])[0]
    out = data.astype("f8" if data.dtype.itemsize > 2 or scale is not None else "f4")
    if scale is not None:
        out = out * scale + offset
    out[data == fill] = np.nan
    return out


def _scalar(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _same_value(got: Any, want: Any) -> bool:
    got, want = _scalar(got), _scalar(want)
    if isinstance(want, bool) or isinstance(got, bool):
        return bool(got) == want and got in (0, 1, True, False)
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        return got == want or (math.isnan(want) and math.isnan(got))
    if isinstance(want, (int, float)) and isinstance(got, str):  # GDAL's tags are text
        try:
            return float(got) == want
        except ValueError:
            return False
    if isinstance(want, list) and isinstance(got, str):
        return got.replace(",", " ").split() == [str(v) for v in want]
    return bool(got == want)


def _outcome(fmt: str, reader: str, data: np.ndarray[Any, Any], attrs: dict[str, Any],
             got: dict[str, Any]) -> dict[str, str]:
    """``{"values"|"fill"|"attrs:<name>": what differs}``; empty when the reader sees the same array."""
    if not got["ok"]:
        return {"values": f"error: {got['error']}"}
    out: dict[str, str] = {}
    values: np.ndarray[Any, Any] = got["values"]
    decoding = reader in DECODING
    want = _decoded(data, attrs) if decoding else data
    if values.shape != want.shape:
        out["values"] = f"shape {values.shape} instead of {want.shape}"
    elif got["dims"] is not None and tuple(got["dims"]) != NAMES:
        out["values"] = f"dimensions {got['dims']} instead of {list(NAMES)}"
    elif decoding and not np.allclose(values, want, equal_nan=True, rtol=0, atol=0):
        out["values"] = f"values {values.ravel()[:4].tolist()} instead of {want.ravel()[:4].tolist()} (CF-decoded)"
    elif not decoding and (values.dtype.newbyteorder("=") != want.dtype.newbyteorder("=")
                           or not np.array_equal(values, want)):
        out["values"] = f"dtype {values.dtype} values {values.ravel()[:4].tolist()} instead of {want.dtype}"
    shown = got["attrs"] or {}
    cf_moved = {"_FillValue", "scale_factor", "add_offset"} if decoding else set()
    expected = {k: v for k, v in attrs.items() if k not in cf_moved}
    if fmt == "zarr" and np.dtype(data.dtype).kind == "f":
        expected.pop("_FillValue", None)  # xarray's base64 form of a float: what decoding it gives is checked below
    for k, v in expected.items():
        if k not in shown or not _same_value(shown[k], v):
            out[f"attrs:{k}"] = f"attribute {k}: {shown.get(k, '<absent>')!r} instead of {v!r}"
    if reader in CF_FILL and not _same_value(got["fill"], attrs["_FillValue"]):
        out["fill"] = f"fill value {got['fill']!r} instead of {attrs['_FillValue'][0]!r}"
    return out


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], list[tuple[str, dict[str, str]]]]:
    """(format, layout, reader) -> [(dtype, differences)] for every case, each file written by arraystore."""
    tmp = tmp_path_factory.mktemp("layouts")
    entries: dict[str, list[tuple[int, dict[str, str]]]] = {}
    expected: dict[int, tuple[np.ndarray[Any, Any], dict[str, Any]]] = {}
    for i, (fmt, layout, text) in enumerate(CASES):
        fill, extra = DTYPES[text]
        data, attrs = _data(np.dtype(text), fill, seed=i), _attrs(fill, extra)
        if fmt == "hdf5":
            where, entry = f"{tmp}/c{i}.h5", {"path": f"{tmp}/c{i}.h5", "var": "data"}
        elif fmt == "raw":
            where, entry = f"{tmp}/c{i}.dat", {"path": f"{tmp}/c{i}.dat", "var": f"{tmp}/c{i}.dat.hdr"}
        else:
            where, entry = f"{tmp}/c{i}.zarr::data", {"path": f"{tmp}/c{i}.zarr", "var": "data"}
        named: dict[str, Any] = {"dimension_names": NAMES} if fmt != "raw" else {}  # raw records no names
        with arraystore.create(where, SHAPE, data.dtype, attrs=attrs, **named, **LAYOUTS[(fmt, layout)]) as s:
            s[...] = data
        with arraystore.open(where) as s:  # arraystore itself reads back what it wrote
            assert s[...].tobytes() == data.tobytes() and dict(s.attrs) == attrs
            assert s.dimension_names == (None if fmt == "raw" else NAMES)
        for reader in READERS[fmt]:
            entries.setdefault(reader, []).append((i, entry))
        expected[i] = (data, attrs)
    seen: dict[tuple[str, str, str], list[tuple[str, dict[str, str]]]] = {}
    for reader, items in entries.items():  # one process per reader for every file it reads
        for (i, _), got in zip(items, run_reader(reader, [e for _, e in items], tmp / reader)):
            fmt, layout, text = CASES[i]
            data, attrs = expected[i]
            if reader.startswith("GDAL-") and got["ok"] and got["values"].ndim == 2:
                got["values"] = got["values"][None]
            seen.setdefault((fmt, layout, reader), []).append((text, _outcome(fmt, reader, data, attrs, got)))
    return seen


def _documented(fmt: str, layout: str, reader: str, what: str) -> str | None:
    whats = (what, "attrs:*") if what.startswith("attrs:") else (what,)
    return next((DOCUMENTED[k] for w in whats for k in ((fmt, layout, reader, w), (fmt, "*", reader, w))
                 if k in DOCUMENTED), None)


@pytest.mark.parametrize(("fmt", "layout", "reader"),
                         [(f, lay, r) for (f, lay) in LAYOUTS for r in READERS[f]])
def test_reader_sees_the_same_array_attrs_and_fill_or_a_documented_row(
    observed: dict[tuple[str, str, str], list[tuple[str, dict[str, str]]]], fmt: str, layout: str, reader: str,
) -> None:
    cells = observed[(fmt, layout, reader)]
    whats = {"values", "fill", *(f"attrs:{k}" for k in BASE_ATTRS)} | {w for _, diff in cells for w in diff}
    for what in sorted(whats):
        different = [(text, diff[what]) for text, diff in cells if what in diff]
        if what != "values" and _documented(fmt, layout, reader, "values"):
            continue  # the reader cannot open the file at all
        if _documented(fmt, layout, reader, what):
            assert different, f"{fmt} {layout} now reads the same {what} in {reader}: remove its DOCUMENTED row"
        else:
            assert not different, f"{fmt} {layout} in {reader}, {what}: {different[:3]}"
