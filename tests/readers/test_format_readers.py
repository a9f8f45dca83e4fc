"""Zarr (default and portable), raw + ENVI header and npy files read as the same array elsewhere (or a documented row).

Like ``test_hdf5_readers.py`` for the other formats arraystore writes: zarr-python,
xarray (``open_zarr``) and TensorStore on Zarr; GDAL (rasterio) and spectral on raw + ENVI;
numpy (``np.load``) on npy; each in a subprocess that cannot import arraystore, numpy the
oracle. Zarr arrays are written into a group (``c.zarr::data``), the layout xarray opens.
The matrix: every dtype family x order (C, F), and for Zarr x chunking x dimension names.
A dtype arraystore refuses to write in a format must be a documented refusal
(``reader_table.REFUSED``); every reader that does not see the same array, a documented row
(``reader_table.DOCUMENTED_FORMATS``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.errors import UnsupportedDtypeError

from .reader_table import DOCUMENTED_FORMATS, FAMILIES, FORMAT_READERS, REFUSED
from .test_hdf5_readers import NAMES, SHAPE, _data, _dtype, run_reader

#: How a reader arranges the array's axes (spectral: an ENVI raster as (lines, samples, bands)).
AXES = {"spectral": (1, 2, 0)}


def _cases() -> list[tuple[str, str, str, str, tuple[int, ...] | None, bool]]:
    out = []
    for fmt in FORMAT_READERS:
        zarr = fmt.startswith("zarr")
        for family, dtypes in FAMILIES.items():
            for text in dtypes:
                for order in ("C", "F"):
                    for chunks in ((None, (2, 3, 5)) if zarr else (None,)):
                        for named in ((True, False) if zarr else (False,)):
                            out.append((fmt, family, text, order, chunks, named))
    return out


CASES = _cases()


def _write(fmt: str, path: Path, data: np.ndarray[Any, Any], order: str, chunks: Any, named: bool) -> dict[str, str]:
    """Write ``data`` as ``fmt`` with arraystore; the reader manifest entry."""
    kw: dict[str, Any] = {"order": order}
    if fmt.startswith("zarr"):
        where, entry = f"{path}.zarr::data", {"path": f"{path}.zarr", "var": "data"}
        kw.update(chunks=chunks, portable=fmt == "zarr-portable")
        if named:
            kw["dimension_names"] = NAMES
    elif fmt == "raw+envi":
        where, entry = f"{path}.dat", {"path": f"{path}.dat", "var": f"{path}.dat.hdr"}
        kw["header"] = "envi"
    else:
        where, entry = f"{path}.npy", {"path": f"{path}.npy", "var": ""}
    with arraystore.create(where, data.shape, data.dtype, **kw) as s:
        s[...] = np.asfortranarray(data) if order == "F" else data
    with arraystore.open(where) as s:  # arraystore itself reads every written cell back exactly
        assert s.shape == data.shape and s.dtype == data.dtype and s[...].tobytes() == data.tobytes()
    return entry


def _outcome(data: np.ndarray[Any, Any], names: tuple[str, ...], got: dict[str, Any], axes: Any) -> str:
    if not got["ok"]:
        return f"error: {got['error']}"
    values: np.ndarray[Any, Any] = got["values"]
    want = data.transpose(axes) if axes is not None else data
    if values.shape != want.shape:
        return f"shape {values.shape} instead of {want.shape}"
    if got["dims"] is not None and tuple(got["dims"]) != names:
        return f"dimensions {got['dims']} instead of {list(names)}"
    if want.dtype.kind == "U":
        same = values.dtype.kind == "U" and values.astype(want.dtype).tolist() == want.tolist()
    elif want.dtype.kind in "Mm":
        same = values.dtype.kind == want.dtype.kind and np.array_equal(
            values.astype(want.dtype).view("i8"), want.view("i8"))
    elif want.dtype.names is not None:
        same = values.dtype.names == want.dtype.names and values.tolist() == want.tolist()
    else:
        same = values.dtype.newbyteorder("=") == want.dtype.newbyteorder("=") and np.array_equal(values, want)
    return "same" if same else f"reads dtype {values.dtype}"


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[tuple[str, str, str], list[tuple[str, str]]],
                                                                 dict[tuple[str, str], str]]:
    """(format, family, reader) -> [(case, outcome)], and (format, dtype) -> why arraystore refused to write it."""
    tmp = tmp_path_factory.mktemp("formats")
    entries: dict[str, list[tuple[int, dict[str, str]]]] = {}
    expected: dict[int, tuple[np.ndarray[Any, Any], tuple[str, ...]]] = {}
    refused: dict[tuple[str, str], str] = {}
    for i, (fmt, _family, text, order, chunks, named) in enumerate(CASES):
        data = _data(_dtype(text), seed=i)
        try:
            entry = _write(fmt, tmp / f"c{i}", data, order, chunks, named)
        except UnsupportedDtypeError as exc:
            refused[(fmt, text)] = str(exc)
            continue
        for reader in FORMAT_READERS[fmt]:
            entries.setdefault(reader, []).append((i, entry))
        expected[i] = (data, NAMES if named else tuple(f"dim_{k}" for k in range(len(SHAPE))))
    seen: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for reader, items in entries.items():  # one process per reader for every file it reads
        results = run_reader(reader, [e for _, e in items], tmp / reader)
        for (i, _), got in zip(items, results):
            fmt, family, text, order, chunks, named = CASES[i]
            data, names = expected[i]
            label = f"{text} order={order} chunks={chunks} named={named}"
            seen.setdefault((fmt, family, reader), []).append((label, _outcome(data, names, got, AXES.get(reader))))
    return seen, refused


def test_arraystore_refuses_exactly_the_documented_dtypes(
    observed: tuple[dict[tuple[str, str, str], list[tuple[str, str]]], dict[tuple[str, str], str]],
) -> None:
    assert set(observed[1]) == set(REFUSED), (sorted(set(observed[1]) ^ set(REFUSED)), observed[1])


@pytest.mark.parametrize(("fmt", "reader"), [(f, r) for f, readers in FORMAT_READERS.items() for r in readers])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_reader_sees_the_same_array_or_a_documented_row(
    observed: tuple[dict[tuple[str, str, str], list[tuple[str, str]]], dict[tuple[str, str], str]],
    fmt: str, family: str, reader: str,
) -> None:
    cells = observed[0].get((fmt, family, reader), [])
    if not cells:
        assert all((fmt, t) in REFUSED for t in FAMILIES[family]), (fmt, family, reader)
        return
    different = [(label, out) for label, out in cells if out != "same"]
    if (fmt, family, reader) in DOCUMENTED_FORMATS:
        assert different, f"{fmt} {family} now reads the same in {reader}: remove its row from reader_table.py"
    else:
        assert not different, f"{fmt} {family} in {reader}: {different[:4]}"
