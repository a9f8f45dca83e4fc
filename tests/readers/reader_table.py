"""The reader table: what each outside reader sees of the files arraystore writes.

Source of the "Outside readers" tables in docs/fidelity.md (``python tools/make_reader_table.py``)
and of the expectations of ``tests/readers/test_hdf5_readers.py`` (HDF5) and
``tests/readers/test_format_readers.py`` (Zarr, raw + ENVI header, npy), which run the readers
and fail when a cell reads differently from what is written here (a new difference, or a
documented one that went away), or when arraystore refuses other dtypes than listed.
"""

from __future__ import annotations

from typing import Any

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

#: The other formats arraystore writes and the readers run on them (tests/readers/test_format_readers.py).
FORMAT_READERS: dict[str, tuple[str, ...]] = {
    "zarr": ("zarr-python", "xarray-zarr", "TensorStore"),
    "zarr-portable": ("zarr-python", "xarray-zarr", "TensorStore"),
    "raw+envi": ("GDAL", "spectral"),
    "npy": ("numpy",),
}

#: What each of those formats is, for the page.
FORMAT_TITLES: dict[str, str] = {
    "zarr": "Zarr v3 (default), converted into a group: `c.zarr::data`",
    "zarr-portable": "Zarr v3 with `portable=True`, converted into a group",
    "raw+envi": "raw `.dat` with `header=\"envi\"` (`.dat.hdr` beside it)",
    "npy": "`.npy`",
}

_TS_EXT = (
    "TensorStore refuses zarr-python's extension data type ({}): not a Zarr v3 core type; "
    "write with portable=True"
)
_NO_CF = "int64 with CF units/calendar: this reader does not decode CF times (xarray does)"

#: (format, family, reader) -> why that reader does not read the same array.
DOCUMENTED_FORMATS: dict[tuple[str, str, str], str] = {
    ("zarr", "bytes", "TensorStore"): _TS_EXT.format("null_terminated_bytes"),
    ("zarr", "unicode", "TensorStore"): _TS_EXT.format("fixed_length_utf32"),
    ("zarr", "datetime64", "TensorStore"): _TS_EXT.format("numpy.datetime64"),
    ("zarr", "timedelta64", "TensorStore"): _TS_EXT.format("numpy.timedelta64"),
    ("zarr", "structured", "TensorStore"): (
        "TensorStore opens a structured array one field at a time (a \"field\" in its spec), never the whole record"
    ),
    ("zarr-portable", "datetime64", "zarr-python"): _NO_CF,
    ("zarr-portable", "datetime64", "TensorStore"): _NO_CF,
    ("zarr-portable", "timedelta64", "zarr-python"): _NO_CF,
    ("zarr-portable", "timedelta64", "TensorStore"): _NO_CF,
}

_NO_CORE = "refused by portable=True: Zarr v3 has no core data type for {}"
_ENVI = "refused by header=\"envi\": ENVI has no data type for {}"

#: (format, dtype) -> why arraystore refuses to write that dtype in that format (a typed error, nothing written).
REFUSED: dict[tuple[str, str], str] = {
    ("zarr-portable", "|S5"): _NO_CORE.format("fixed-length bytes"),
    ("zarr-portable", "<U3"): _NO_CORE.format("fixed-length strings"),
    ("zarr-portable", ">U7"): _NO_CORE.format("fixed-length strings"),
    ("zarr-portable", "[('a', '<i4'), ('b', '<f8')]"): _NO_CORE.format("structured records"),
    ("raw+envi", "|b1"): _ENVI.format("bool (store it as uint8)"),
    ("raw+envi", "|i1"): _ENVI.format("int8 (code 1 is unsigned; store it as int16)"),
    ("raw+envi", "<f2"): _ENVI.format("float16 (store it as float32)"),
    ("raw+envi", "|S5"): _ENVI.format("bytes or strings (numbers only)"),
    ("raw+envi", "<U3"): _ENVI.format("bytes or strings (numbers only)"),
    ("raw+envi", ">U7"): _ENVI.format("bytes or strings (numbers only)"),
    ("raw+envi", "<M8[ns]"): _ENVI.format("times"),
    ("raw+envi", "<M8[s]"): _ENVI.format("times"),
    ("raw+envi", "<m8[ms]"): _ENVI.format("times"),
    ("raw+envi", "[('a', '<i4'), ('b', '<f8')]"): _ENVI.format("structured records (one number per sample)"),
}

# -- layouts, attributes and fill values (tests/readers/test_layout_readers.py) --------------

#: Layouts: (format, label) -> create() keywords.
LAYOUTS: dict[tuple[str, str], dict[str, Any]] = {
    ("hdf5", "contiguous"): {},
    ("hdf5", "chunked"): {"chunks": (2, 3, 5)},
    ("hdf5", "gzip"): {"chunks": (2, 3, 5), "compression": "gzip:4"},
    ("hdf5", "lzf"): {"chunks": (2, 3, 5), "compression": "lzf"},
    ("hdf5", "zstd"): {"chunks": (2, 3, 5), "compression": "zstd:3"},
    ("hdf5", "blosc"): {"chunks": (2, 3, 5), "compression": "blosc:lz4:5"},
    ("zarr", "uncompressed"): {"chunks": (2, 3, 5)},
    ("zarr", "zstd"): {"chunks": (2, 3, 5), "compression": "zstd:3"},
    ("zarr", "blosc"): {"chunks": (2, 3, 5), "compression": "blosc:zstd:5"},
    ("zarr", "gzip"): {"chunks": (2, 4, 5), "compression": "gzip:6"},
    ("zarr", "sharded"): {"chunks": (1, 2, 5), "shards": (2, 4, 5)},
    ("zarr", "sharded-zstd"): {"chunks": (1, 2, 5), "shards": (2, 4, 5), "compression": "zstd:3"},
    ("raw", "envi"): {"header": "envi"},
}

LAYOUT_READERS: dict[str, tuple[str, ...]] = {
    "hdf5": ("h5py", "netCDF4", "xarray-h5netcdf", "xarray-netcdf4", "GDAL-HDF5"),
    "zarr": ("zarr-python", "xarray-zarr", "TensorStore", "GDAL-Zarr"),
    "raw": ("GDAL",),
}

_BOOL = "netCDF has no boolean type: netCDF-C skips h5py's boolean (enum) attributes, GDAL shows them empty"
_LZF = "lzf is h5py's own filter (not in hdf5plugin): netCDF-C and GDAL cannot decompress it; use gzip or zstd"

#: (format, layout or "*", reader, what) -> why the reader differs; ``what`` is "values", "fill" or "attrs:<name>".
LAYOUT_DOCUMENTED: dict[tuple[str, str, str, str], str] = {
    ("hdf5", "*", "netCDF4", "attrs:calibrated"): _BOOL,
    ("hdf5", "*", "xarray-netcdf4", "attrs:calibrated"): _BOOL,
    ("hdf5", "*", "GDAL-HDF5", "attrs:calibrated"): _BOOL,
    ("hdf5", "lzf", "netCDF4", "values"): _LZF,
    ("hdf5", "lzf", "xarray-netcdf4", "values"): _LZF,
    ("hdf5", "lzf", "GDAL-HDF5", "values"): _LZF,
    ("raw", "*", "GDAL", "attrs:*"): "an ENVI header holds no attributes: they are in the JSON sidecar only",
    ("zarr", "*", "GDAL-Zarr", "values"): (
        "GDAL 3.10 (rasterio 1.4's wheels) refuses every Zarr v3 array zarr-python writes, xarray's too: "
        "\"Unsupported codec: bytes\""
    ),
}
