"""The reader table: what each outside reader sees of the HDF5 files arraystore writes.

Source of the "Outside readers" table in docs/fidelity.md (``python tools/make_reader_table.py``)
and of the expectations of ``tests/readers/test_hdf5_readers.py``, which runs the readers and
fails when a cell reads differently from what is written here (a new difference, or a
documented one that went away).
"""

from __future__ import annotations

#: Dtype families and the dtypes that stand for them.
FAMILIES: dict[str, tuple[str, ...]] = {
    "bool": ("|b1",),
    "integers": ("|i1", "<u2", ">i4", "<i8", "<u8"),
    "float16": ("<f2",),
    "floats": ("<f4", ">f8"),
    "complex": ("<c8", "<c16"),
    "bytes": ("|S5",),
    "unicode": ("<U3", ">U7"),
    "datetime64": ("<M8[ns]", "<M8[s]"),
    "timedelta64": ("<m8[ms]",),
    "structured": ("[('a', '<i4'), ('b', '<f8')]",),
}

#: Readers, as run by tests/readers/read_with.py (in a process without arraystore).
READERS: tuple[str, ...] = ("h5py", "netCDF4", "xarray-h5netcdf", "xarray-netcdf4")

#: (family, reader) -> why that reader does not read the same array. Every other cell reads the same
#: array (shape, dimension names for the netCDF readers, values, dtype up to byte order).
_NC = ("netCDF4", "xarray-netcdf4")
_TIMES = "int64 with CF units/calendar: this reader does not decode CF times (cftime.num2date / xarray do)"
DOCUMENTED: dict[tuple[str, str], str] = {
    **{("bool", r): "int8: netCDF-C reads h5py's bool enum as its base integer (values 0/1)" for r in _NC},
    **{("float16", r): "netCDF-C has no float16: netCDF4-python crashes the process opening it" for r in _NC},
    **{("complex", r): "compound {r, i}: netCDF-C has no complex type (xarray-h5netcdf reads complex)" for r in _NC},
    **{("bytes", r): "netCDF reads fixed-length HDF5 strings as UTF-8 text: bytes that are not UTF-8 fail" for r in _NC},
    ("unicode", "xarray-h5netcdf"): (
        "bytes: h5netcdf returns fixed-length strings undecoded (the UTF-8 bytes; `.str.decode('utf-8')` gives the "
        "text). An `_Encoding` attribute would make xarray decode them here, but breaks xarray's netCDF4 engine"
    ),
    ("datetime64", "h5py"): _TIMES,
    ("datetime64", "netCDF4"): _TIMES,
    ("timedelta64", "h5py"): _TIMES,
    ("timedelta64", "netCDF4"): _TIMES,
}

#: Formats the table covers; the Zarr columns join when the Zarr backend writes for other readers.
FORMATS: tuple[str, ...] = ("hdf5",)
