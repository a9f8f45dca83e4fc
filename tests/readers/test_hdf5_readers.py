"""HDF5 files arraystore writes read as the same array in h5py, netCDF4 and xarray (or are a documented row).

The readers run in subprocesses that cannot import arraystore (``tests/readers/read_with.py``);
numpy is the oracle. The matrix: every dtype family x order (C, F) x layout (contiguous,
chunked) x dimension names (given, default).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import hdf5plugin
import numpy as np
import pytest

import arraystore
from arraystore.testing.dtypes import sample_data

from .reader_table import DOCUMENTED, FAMILIES, READERS

HERE = Path(__file__).parent
SHAPE = (3, 4, 5)
NAMES = ("time", "lat", "lon")


def _dtype(text: str) -> np.dtype[Any]:
    return np.dtype(eval(text)) if text.startswith("[") else np.dtype(text)


def _data(dtype: np.dtype[Any], seed: int) -> np.ndarray[Any, Any]:
    if dtype.kind in "Mm":
        out = (np.arange(np.prod(SHAPE), dtype="i8") * 86_400 + 1_000_000).astype(dtype).reshape(SHAPE)
        out.flat[3] = np.datetime64("NaT") if dtype.kind == "M" else np.timedelta64("NaT")
        return out
    if dtype.kind == "U":
        full = "\U0001f600é日本abcd"[: dtype.itemsize // 4]  # a value of the full width
        words = np.array(["", "a", "é", "日本", "\U0001f600x", full], dtype=dtype)
        return words[np.arange(np.prod(SHAPE)) % len(words)].reshape(SHAPE)
    data = sample_data(dtype, SHAPE, seed=seed)
    if dtype.kind in "fc":
        data = np.where(np.isfinite(data), data, 0).astype(dtype)
    return data


def run_reader(reader: str, entries: list[dict[str, str]], tmp: Path) -> list[dict[str, Any]]:
    """Run one reader over ``entries`` in a subprocess without arraystore on its path."""
    tmp.mkdir(parents=True, exist_ok=True)
    manifest = tmp / f"{reader}.json"
    manifest.write_text(json.dumps(entries))
    out = tmp / f"out-{reader}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HDF5_PLUGIN_PATH"] = hdf5plugin.PLUGINS_PATH  # zstd and blosc HDF5 filters for netCDF-C and GDAL
    log = out / "results.jsonl"
    done: dict[int, dict[str, Any]] = {}
    while len(done) < len(entries):
        start = len(done)
        proc = subprocess.run([sys.executable, str(HERE / "read_with.py"), reader, str(manifest), str(out), str(start)],
                              env=env, timeout=600, cwd=tmp, capture_output=True, text=True)
        if log.exists():
            for line in log.read_text().splitlines():
                r = json.loads(line)
                done[r["i"]] = r
        if proc.returncode != 0 and len(done) < len(entries):  # the reader crashed the process on this entry
            done[len(done)] = {"i": len(done), "ok": False, "error": f"reader process died ({proc.returncode})"}
            log.open("a").write(json.dumps(done[len(done) - 1]) + "\n")
    results = [done[i] for i in range(len(entries))]
    for i, r in enumerate(results):
        if r["ok"]:
            r["values"] = np.load(out / f"{i}.npy", allow_pickle=False)
    return results


def outcome(reader: str, data: np.ndarray[Any, Any], names: tuple[str, ...], got: dict[str, Any]) -> str:
    """``"same"``, or what the reader saw instead."""
    if not got["ok"]:
        return f"error: {got['error']}"
    values: np.ndarray[Any, Any] = got["values"]
    if values.shape != data.shape:
        return f"shape {values.shape} instead of {data.shape}"
    if reader != "h5py" and tuple(got["dims"]) != names:
        return f"dimensions {got['dims']} instead of {list(names)}"
    if data.dtype.kind == "U":
        same = values.dtype.kind == "U" and values.astype(data.dtype).tolist() == data.tolist()
    elif data.dtype.kind in "Mm":
        same = values.dtype.kind == data.dtype.kind and np.array_equal(
            values.astype(data.dtype).view("i8"), data.view("i8"))
    elif data.dtype.names is not None:
        same = values.dtype.names == data.dtype.names and values.tolist() == data.tolist()
    else:
        same = values.dtype.newbyteorder("=") == data.dtype.newbyteorder("=") and np.array_equal(values, data)
    return "same" if same else f"reads dtype {values.dtype}"


CASES = [
    (family, text, order, chunks, named)
    for family, dtypes in FAMILIES.items()
    for text in dtypes
    for order in ("C", "F")
    for chunks in (None, (2, 3, 5))
    for named in (True, False)
]


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(family, reader) -> [(case, outcome)] for every case of the matrix, each file written by arraystore."""
    tmp = tmp_path_factory.mktemp("readers")
    entries, expected = [], []
    for i, (_family, text, order, chunks, named) in enumerate(CASES):
        dtype = _dtype(text)
        data = _data(dtype, seed=i)
        path = tmp / f"c{i}.h5"
        kw: dict[str, Any] = {"dimension_names": NAMES} if named else {}
        with arraystore.create(str(path), SHAPE, dtype, order=order, chunks=chunks, **kw) as s:
            s[...] = np.asfortranarray(data) if order == "F" else data
        with arraystore.open(str(path)) as s:  # arraystore itself still round-trips exactly
            assert s.shape == SHAPE and s.dtype == dtype and s[...].tobytes() == data.tobytes()
        entries.append({"path": str(path), "var": "data"})
        expected.append((data, NAMES if named else tuple(f"dim_{k}" for k in range(3))))
    seen: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for reader in READERS:
        for case, (data, names), got in zip(CASES, expected, run_reader(reader, entries, tmp)):
            label = f"{case[1]} order={case[2]} chunks={case[3]} named={case[4]}"
            seen.setdefault((case[0], reader), []).append((label, outcome(reader, data, names, got)))
    return seen


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_reader_sees_the_same_array_or_a_documented_row(
    observed: dict[tuple[str, str], list[tuple[str, str]]], family: str, reader: str
) -> None:
    cells = observed[(family, reader)]
    different = [(label, out) for label, out in cells if out != "same"]
    if (family, reader) in DOCUMENTED:
        assert different, f"{family} now reads the same in {reader}: remove its row from tests/readers/reader_table.py"
    else:
        assert not different, f"{family} in {reader}: {different[:4]}"


def _random_text(rng: np.random.Generator, shape: tuple[int, ...], n: int, order: str) -> np.ndarray[Any, Any]:
    """Random strings of 0..n characters from ASCII, the rest of the BMP and the astral planes."""
    pools = [(0x20, 0x7F), (0xA0, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFD)]
    values = []
    for k in range(int(np.prod(shape))):
        length = n if k == 1 else int(rng.integers(0, n + 1))  # one value of the full width
        chars = [chr(int(rng.integers(*pools[int(rng.integers(0, len(pools)))]))) for _ in range(length)]
        values.append("".join(chars))
    return np.array(values, dtype=f"{order}U{n}").reshape(shape)


def test_converted_unicode_reads_as_the_same_strings(tmp_path: Path) -> None:
    """convert() sizes the UTF-8 strings by the values; every reader still sees the same strings."""
    rng = np.random.default_rng(18)
    entries, arrays = [], []
    for i, (shape, n, order) in enumerate([((4, 5), 1, "<"), ((3, 2, 2), 6, ">"), ((7,), 3, "<"), ((2, 3), 9, ">")]):
        data = _random_text(rng, shape, n, order)
        np.save(tmp_path / f"u{i}.npy", data)
        arraystore.convert(tmp_path / f"u{i}.npy", tmp_path / f"u{i}.h5", verify=True)
        entries.append({"path": str(tmp_path / f"u{i}.h5"), "var": "data"})
        arrays.append(data)
    for reader in READERS:
        for data, got in zip(arrays, run_reader(reader, entries, tmp_path / "conv")):
            names = tuple(f"dim_{k}" for k in range(data.ndim))
            seen = outcome(reader, data, names, got)
            if ("unicode", reader) in DOCUMENTED:  # h5netcdf: the UTF-8 bytes of the same strings
                assert got["ok"] and got["values"].tolist() == np.strings.encode(data, "utf-8").tolist(), seen
            else:
                assert seen == "same", (reader, seen)
