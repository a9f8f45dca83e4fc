"""Backends are asked what they can do, never which one they are."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

import arraystore
from arraystore import registry
from arraystore.location import Location
from arraystore.store import ArrayStore

SRC = Path(arraystore.__file__).parent


@pytest.mark.parametrize("name", list(registry.BACKENDS))
def test_the_registry_table_agrees_with_the_class(name: str) -> None:
    cls = registry.backend_class(name)
    spec = registry.BACKENDS[name]
    assert cls.backend == name
    assert spec.suffixes == cls.suffixes
    assert spec.creates == cls.supports_create
    assert cls.publishes in ("rename", "metadata-last")
    assert cls.locks in ("flock", "lease", None)
    assert cls.layouts and cls.layouts <= {"contiguous", "chunked"}
    if cls.memory_mappable:
        assert cls.layouts == {"contiguous"} and cls.supports_memmap


def _samples(tmp: Path) -> dict[str, Location]:
    np.save(tmp / "a-npy", np.arange(3))  # np.save adds .npy
    (tmp / "a-npy.npy").rename(tmp / "a-npy")
    with h5py.File(tmp / "a-h5", "w", userblock_size=1024) as f:
        f["x"] = np.arange(3)
    zarr.create_array(tmp / "a-zarr", shape=(3,), dtype="i4")
    (tmp / "a-raw").write_bytes(b"\0" * 12)
    with arraystore.create(tmp / "sc.dat", (3,), "i4"):
        pass
    (tmp / "sc.dat").rename(tmp / "a-raw")
    (tmp / "sc.dat.json").rename(tmp / "a-raw.json")
    (tmp / "other").write_bytes(b"hello")
    return {n: Location(tmp / n) for n in ("a-npy", "a-h5", "a-zarr", "a-raw", "other")}


def test_guess_can_open_by_content_and_the_light_guesses_agree(tmp_path: Path) -> None:
    samples = _samples(tmp_path)
    expected = {"a-npy": "npy", "a-h5": "hdf5", "a-zarr": "zarr", "a-raw": "raw"}
    for sample, loc in samples.items():
        claims = {name for name in registry.BACKENDS if registry.backend_class(name).guess_can_open(loc)}
        assert claims == ({expected[sample]} if sample in expected else set()), sample
        for name, spec in registry.BACKENDS.items():
            if spec.guess is not None:
                module, _, attr = spec.guess.partition(":")
                light = getattr(__import__(module, fromlist=[attr]), attr)
                assert light(loc) == registry.backend_class(name).guess_can_open(loc), (sample, name)
        if sample in expected:
            assert registry.detect_backend(loc) == expected[sample]
    with pytest.raises(arraystore.errors.BackendError):
        registry.detect_backend(samples["other"])


def test_detecting_by_content_imports_neither_h5py_nor_zarr(tmp_path: Path) -> None:
    samples = _samples(tmp_path)
    code = (
        "import sys, arraystore\n"
        "from arraystore.registry import detect_backend, parse_location\n"
        f"paths = {[str(loc.file) for loc in samples.values()]!r}\n"
        "got = []\n"
        "for p in paths:\n"
        "    try:\n"
        "        got.append(detect_backend(parse_location(p)))\n"
        "    except arraystore.errors.BackendError:\n"
        "        got.append(None)\n"
        "print(got, 'h5py' in sys.modules, 'zarr' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "['npy', 'hdf5', 'zarr', 'raw', None] False False"


NAMES = frozenset(registry.BACKENDS)


def _names_compared(node: ast.Compare) -> set[str]:
    found: set[str] = set()
    for side in (node.left, *node.comparators):
        elts = side.elts if isinstance(side, (ast.Tuple, ast.Set, ast.List)) else [side]
        found |= {e.value for e in elts if isinstance(e, ast.Constant) and e.value in NAMES}
    return found


#: Name checks allowed outside the backends (none left: ``info``'s on-disk size is the ``stored_bytes()``
#: hook, ``--dtype/--shape`` asks ``opens_with_meta``). The test fails on any other, and on these once gone.
KNOWN: set[tuple[str, str]] = set()


def test_no_backend_name_checks_outside_the_backends() -> None:
    """``x == "hdf5"``, ``b in ("raw", "npy")``, ``isinstance(s, MappedFileStore)``: only backends may ask."""
    offenders = []
    known_seen = set()
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("backends/") or rel in ("registry.py",):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and _names_compared(node):
                names = _names_compared(node)
                if all((rel, n) in KNOWN for n in names):
                    known_seen |= {(rel, n) for n in names}
                    continue
                offenders.append(f"{rel}:{node.lineno} compares with {sorted(names)}")
            if isinstance(node, ast.Name) and node.id in ("MappedFileStore", "HDF5Store", "ZarrStore", "NpyStore",
                                                          "RawStore"):
                offenders.append(f"{rel}:{node.lineno} names {node.id}")
    assert offenders == []
    assert known_seen == KNOWN  # a known exception that is gone must leave the list


def test_base_class_defaults_are_the_safe_ones() -> None:
    assert ArrayStore.publishes == "rename" and ArrayStore.locks == "flock"
    assert not ArrayStore.memory_mappable and not ArrayStore.parallel_chunk_writers
    assert not ArrayStore.writes_go_through and not ArrayStore.thread_safe_writes  # flush, lock: always correct
    assert ArrayStore.guess_can_open(Location(Path("x.anything"))) is False


def test_stored_bytes_counts_the_arrays_own_storage(tmp_path: Path) -> None:
    """``stored_bytes()``: a raw file and its sidecar, a .npy, one HDF5 dataset, one Zarr array of a group."""
    data = np.arange(1000, dtype="<f8")
    with arraystore.create(tmp_path / "a.dat", data.shape, data.dtype) as s:
        s[...] = data
    with arraystore.open(tmp_path / "a.dat") as s:
        assert s.stored_bytes() == 8000 + (tmp_path / "a.dat.json").stat().st_size
    np.save(tmp_path / "a.npy", data)
    with arraystore.open(tmp_path / "a.npy") as s:
        assert s.stored_bytes() == (tmp_path / "a.npy").stat().st_size
    for key in ("/x", "/y"):
        with arraystore.create(f"{tmp_path / 'a.h5'}::{key}", data.shape, data.dtype) as s:
            s[...] = data
    with arraystore.open(f"{tmp_path / 'a.h5'}::/x") as s:
        assert s.stored_bytes() == 8000 < (tmp_path / "a.h5").stat().st_size  # the dataset, not the file
    for key in ("x", "y"):
        with arraystore.create(f"{tmp_path / 'g.zarr'}::{key}", data.shape, data.dtype) as s:
            s[...] = data
    with arraystore.open(f"{tmp_path / 'g.zarr'}::x") as s:
        own = sum(p.stat().st_size for p in (tmp_path / "g.zarr" / "x").rglob("*") if p.is_file())
        assert s.stored_bytes() == own > 0
        total = sum(p.stat().st_size for p in (tmp_path / "g.zarr").rglob("*") if p.is_file())
        assert own < total


def test_only_backends_that_open_with_meta_take_a_stated_layout(tmp_path: Path) -> None:
    assert [n for n in registry.BACKENDS if registry.backend_class(n).opens_with_meta] == ["raw"]
    np.arange(6, dtype="<i2").tofile(tmp_path / "bare.bin")
    cli = [sys.executable, "-m", "arraystore", "info", "--json", "--dtype", "<i2", "--shape", "2,3"]
    ok = subprocess.run([*cli, str(tmp_path / "bare.bin")], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    refused = subprocess.run([*cli, "--backend", "npy", str(tmp_path / "bare.bin")], capture_output=True, text=True,
                             check=False)
    assert refused.returncode != 0 and "headerless" in refused.stderr
