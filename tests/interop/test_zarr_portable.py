"""Portable Zarr (``portable=True``): core data types only, read the same by TensorStore, zarr-python and xarray."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import arraystore
from arraystore.errors import ConversionError, MetadataError, UnsupportedDtypeError

from .readers import run_reader

CORE = ["?", "i1", "<i2", ">i4", "<i8", "u1", ">u2", "<u4", "u8", "<f2", ">f4", "<f8", "<c8", ">c16"]
TIMES = ["<M8[ns]", "<M8[s]", ">M8[D]", "<m8[ms]", "<m8[h]", "<M8[us]", "<m8[m]"]

READ_TENSORSTORE = """
import numpy as np, tensorstore as ts
t = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}, open=True).result()
np.save(out, t.read().result())
result = str(t.dtype)
"""

READ_ZARR = """
import numpy as np, zarr
a = zarr.open_array(path, mode="r")
np.save(out, a[...])
result = [str(a.metadata.data_type.to_json(zarr_format=3)), dict(a.attrs)]
"""

OPEN_XARRAY = """
import numpy as np, xarray as xr
ds = xr.open_zarr(path)
np.save(out, ds["v"].values)
result = str(ds["v"].dtype)
"""


def _values(dtype: np.dtype, shape: tuple[int, ...], draw: st.DrawFn) -> np.ndarray:
    if dtype.kind in "Mm":
        ints = draw(hnp.arrays("i8", shape, elements=st.integers(-(2**40), 2**40) | st.just(np.iinfo("i8").min)))
        return ints.view(dtype.newbyteorder("=")).astype(dtype)
    return draw(hnp.arrays(dtype, shape))


@st.composite
def cases(draw: st.DrawFn) -> tuple[np.ndarray, str, tuple[int, ...] | None]:
    dtype = np.dtype(draw(st.sampled_from(CORE + TIMES)))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=5))
    order = draw(st.sampled_from(["C", "F"]))
    chunks = draw(st.none() | st.just(tuple(max(1, s // 2) for s in shape)))
    data = _values(dtype, shape, draw)
    return (np.asfortranarray(data) if order == "F" else data), order, chunks


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.tobytes() == b.astype(a.dtype).tobytes()


@settings(max_examples=12, deadline=None)
@given(case=cases())
def test_portable_zarr_reads_the_same_everywhere(tmp_path_factory: pytest.TempPathFactory,
                                                 case: tuple[np.ndarray, str, tuple[int, ...] | None]) -> None:
    data, order, chunks = case
    d = tmp_path_factory.mktemp("p")
    np.save(d / "a.npy", data)
    dst = str(d / "a.zarr")
    arraystore.convert(str(d / "a.npy"), dst, portable=True, chunks=chunks, order=order)
    with arraystore.open(dst) as s:  # the original dtype back, exactly
        back = s[...]
        assert back.dtype == data.dtype
        assert back.tobytes() == data.tobytes() if order == "C" else np.ascontiguousarray(back).tobytes() == \
            np.ascontiguousarray(data).tobytes()
    counts = data.astype(data.dtype.newbyteorder("=")).view("i8") if data.dtype.kind in "Mm" else data
    ts_dtype = run_reader(READ_TENSORSTORE, path=dst, out=str(d / "ts.npy"))
    assert _same(np.ascontiguousarray(counts), np.load(d / "ts.npy")), ts_dtype
    zarr_type, attrs = run_reader(READ_ZARR, path=dst, out=str(d / "z.npy"))
    assert _same(np.ascontiguousarray(counts), np.load(d / "z.npy"))
    assert zarr_type in {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                         "float16", "float32", "float64", "complex64", "complex128"}
    if data.dtype.kind in "Mm":
        assert attrs["units"].split()[0] in {"nanoseconds", "microseconds", "milliseconds", "seconds", "minutes",
                                             "hours", "days"}


@pytest.mark.parametrize("dtype", ["<M8[ns]", "<M8[s]", ">M8[ms]", "<m8[s]", "<m8[ns]"])
def test_xarray_decodes_portable_times(tmp_path: Path, dtype: str) -> None:
    values = np.array([0, 1_700_000_000, np.iinfo("i8").min, -86_400], dtype="i8").view(np.dtype(dtype).newbyteorder("="))
    np.save(tmp_path / "t.npy", values)
    arraystore.convert(str(tmp_path / "t.npy"), str(tmp_path / "g.zarr::v"), portable=True)
    got_dtype = run_reader(OPEN_XARRAY, path=str(tmp_path / "g.zarr"), out=str(tmp_path / "x.npy"))
    got = np.load(tmp_path / "x.npy")
    assert got_dtype.startswith("datetime64" if dtype[1] == "M" else "timedelta64")
    expected = values.astype(got.dtype)
    assert np.array_equal(np.isnat(got), np.isnat(expected))
    assert np.array_equal(got[~np.isnat(got)], expected[~np.isnat(expected)])


REFUSED = ["S3", "<U2", "V4", [("a", "<i4"), ("b", "<f8")], "<M8[W]", "<M8[M]", "<M8", "<m8[ps]", "<M8[10s]", "g", "G"]


@pytest.mark.parametrize("dtype", REFUSED, ids=str)
def test_portable_refuses_what_has_no_core_type(tmp_path: Path, dtype: object) -> None:
    dt = np.dtype(dtype)  # type: ignore[call-overload]
    np.save(tmp_path / "a.npy", np.zeros(3, dtype=dt))
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(UnsupportedDtypeError, match=r"a\.zarr.*portable"):
        arraystore.convert(str(tmp_path / "a.npy"), str(tmp_path / "a.zarr"), portable=True)
    assert sorted(os.listdir(tmp_path)) == before  # nothing left behind


def test_portable_refuses_a_users_units_on_times(tmp_path: Path) -> None:
    src = str(tmp_path / "a.zarr")
    with arraystore.create(src, (2,), "M8[s]", attrs={"units": "mine"}) as s:
        s[...] = np.array([0, 1], dtype="M8[s]")
    with pytest.raises(MetadataError, match="units"):
        arraystore.convert(src, str(tmp_path / "b.zarr"), portable=True)
    assert not (tmp_path / "b.zarr").exists()
    with arraystore.create(str(tmp_path / "c.zarr"), (2,), "M8[s]", portable=True) as s, \
            pytest.raises(MetadataError, match="units"):
        s.attrs["units"] = "days"


def test_portable_needs_a_zarr_destination(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ConversionError, match="Zarr destination"):
        arraystore.convert(str(tmp_path / "a.npy"), str(tmp_path / "a.h5"), portable=True)
    assert not (tmp_path / "a.h5").exists()


def test_cli_portable(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.array([1, 2], dtype="M8[D]"))
    env = {**os.environ, "PYTHONPATH": str(Path(arraystore.__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-m", "arraystore", "convert", str(tmp_path / "a.npy"),
                           str(tmp_path / "a.zarr"), "--portable", "-q"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert arraystore.open(str(tmp_path / "a.zarr")).encoding == "cf"
    np.save(tmp_path / "s.npy", np.array(["x"]))
    proc = subprocess.run([sys.executable, "-m", "arraystore", "convert", str(tmp_path / "s.npy"),
                           str(tmp_path / "s.zarr"), "--portable", "-q"], capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    assert "portable" in proc.stderr and not (tmp_path / "s.zarr").exists()
