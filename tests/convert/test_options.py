"""One frozen ConvertOptions travels from the command line through migration to the conversion."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.cli import build_parser
from arraystore.compression import Compression
from arraystore.conversion import ConvertOptions
from arraystore.errors import CompressionError, ConversionError, OptionError
from arraystore.migration._job import Job


def test_values_are_normalised_and_frozen() -> None:
    o = ConvertOptions(chunks=[4, 5], compression="blosc:zstd", max_memory="1MiB", order="F")
    assert o.chunks == (4, 5) and o.max_memory == 1 << 20 and o.order == "F"
    assert o.compression == Compression("blosc", 5, (("cname", "zstd"),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.verify = True  # type: ignore[misc]
    again = ConvertOptions.from_mapping(json.loads(json.dumps(o.to_dict())))
    assert again == o and pickle.loads(pickle.dumps(o)) == o
    assert o.replace(verify=True).verify and not o.verify


@pytest.mark.parametrize(
    ("bad", "error"),
    [({"compression": 3}, CompressionError), ({"max_memory": "lots"}, ConversionError),
     ({"order": "K"}, ConversionError), ({"workers": 0}, ConversionError), ({"chunks": "ab"}, ConversionError)],
)
def test_bad_options_fail_before_anything_is_written(tmp_path: Path, bad: dict[str, object], error: type) -> None:
    src = tmp_path / "a.npy"
    np.save(src, np.arange(12.0))
    with pytest.raises(error):
        ConvertOptions(**bad)  # type: ignore[arg-type]
    with pytest.raises(error):
        arraystore.convert(src, tmp_path / "b.zarr", **bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]
    with pytest.raises(TypeError):
        ConvertOptions(compresion="zstd")  # type: ignore[call-arg]  # a typo is not silently dropped


def test_keywords_override_an_options_object(tmp_path: Path) -> None:
    src = tmp_path / "a.npy"
    data = np.arange(600.0).reshape(20, 30)
    np.save(src, data)
    base = ConvertOptions(chunks=(10, 30), compression="zstd")
    r1 = arraystore.convert(src, tmp_path / "b.zarr", base, compression="gzip:2")
    r2 = arraystore.convert(src, tmp_path / "c.zarr", chunks=(10, 30), compression="gzip:2")
    assert r1.plan["compression"] == r2.plan["compression"] == "gzip:2"
    assert r1.plan["chunks"] == r2.plan["chunks"]
    with arraystore.open(tmp_path / "b.zarr") as s:
        np.testing.assert_array_equal(s[...], data)


def test_every_option_is_reachable_from_the_command_line() -> None:
    parser = build_parser()
    args = parser.parse_args(["convert", "a.npy", "b.zarr"])
    dests = set(vars(args))
    missing = {f.name for f in dataclasses.fields(ConvertOptions)} - dests
    assert missing == set()
    opts = ConvertOptions.from_mapping(vars(parser.parse_args(
        ["convert", "a.npy", "b.zarr", "--to", "zarr", "--chunks", "4,5", "--compression", "zstd:2", "--order", "F",
         "--max-memory", "2MiB", "--workers", "3", "--verify", "--no-resume", "--durable", "--overwrite",
         "--dimension-names", "y,x"])))
    assert opts == ConvertOptions(backend="zarr", chunks=(4, 5), compression="zstd:2", order="F",
                                  max_memory=2 << 20, workers=3, verify=True, resume=False, durable=True,
                                  overwrite=True, dimension_names=("y", "x"))
    raw = ConvertOptions.from_mapping(vars(parser.parse_args(["convert", "a.npy", "b.dat", "--header", "envi:bil"])))
    assert raw.header == "envi:bil"


def test_a_migration_job_carries_the_options(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    data = np.arange(64, dtype="<u2").reshape(8, 8)
    data.tofile(archive / "scan.dat")
    (archive / "scan.dat.json").write_text(json.dumps({"shape": [8, 8], "dtype": "<u2"}))
    report = arraystore.migrate(archive, tmp_path / "out", to="zarr", compression="gzip:1")
    assert report.counts.get("converted") == 1, report.to_dict()
    import zarr

    (out,) = (tmp_path / "out").glob("*.zarr")
    (codec,) = zarr.open_array(out, mode="r").compressors
    assert codec.to_dict()["configuration"]["level"] == 1
    job_fields = {f.name for f in dataclasses.fields(Job)}
    assert "options" in job_fields and not job_fields & {"compression", "max_memory", "threads", "verify"}


def test_dimension_names_option_names_the_destination_axes(tmp_path: Path) -> None:
    np.save(tmp_path / "s.npy", np.arange(6, dtype="<i2").reshape(2, 3))
    arraystore.convert(str(tmp_path / "s.npy"), str(tmp_path / "o.zarr"), dimension_names=("y", "x"))
    assert arraystore.open(str(tmp_path / "o.zarr")).dimension_names == ("y", "x")
    with pytest.raises(ConversionError, match="one name per axis"):
        arraystore.convert(str(tmp_path / "s.npy"), str(tmp_path / "p.zarr"), dimension_names=("y",))
    with pytest.raises(ConversionError, match="nowhere to record"):
        arraystore.convert(str(tmp_path / "s.npy"), str(tmp_path / "p.dat"), dimension_names=("y", "x"))
    with pytest.raises(ConversionError, match="sequence"):
        ConvertOptions(dimension_names="yx")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.zarr", "s.npy"]


def test_a_misspelt_conversion_option_is_named(tmp_path: Path) -> None:
    src = tmp_path / "a.npy"
    np.save(src, np.arange(12.0))
    with pytest.raises(OptionError, match=r"'compresion'.*compression") as caught:
        arraystore.convert(src, tmp_path / "b.zarr", compresion="zstd")
    assert isinstance(caught.value, TypeError)  # as Python's own error for an unknown keyword
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]


def test_a_byte_copy_says_it_uses_less_than_the_budget(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((1024, 256), "<f4"))
    report = arraystore.convert(tmp_path / "a.npy", tmp_path / "b.npy", max_memory="1GiB")
    assert report.plan["max_memory"] < 1 << 30  # the plan's own figure: what it uses
    assert any(f"of the {1 << 30:,}-byte memory budget" in n for n in report.plan["notes"]), report.plan["notes"]
    report = arraystore.convert(tmp_path / "a.npy", tmp_path / "c.npy", max_memory="16MiB")
    assert not any("memory budget" in n for n in report.plan["notes"])


@pytest.mark.parametrize(("source", "dst", "compression", "said"), [
    ("zarr:zstd:3", "out.zarr", None, True),
    ("zarr:zstd:3", "out.zarr", "gzip:1", False),
    ("zarr:zstd:3", "out.h5", None, True),
    ("hdf5:gzip:4", "out.zarr", None, True),
    ("zarr:zstd:3", "out.npy", None, False),  # a format without codecs: nothing could be carried
    ("zarr:none", "out.zarr", None, False),
])
def test_a_compression_not_carried_over_is_said(tmp_path: Path, source: str, dst: str, compression: str | None,
                                                said: bool) -> None:
    """A compressed source converted without compression= gives an uncompressed destination, and the plan says so."""
    backend, _, codec = source.partition(":")
    src = str(tmp_path / ("src.zarr" if backend == "zarr" else "src.h5"))
    with arraystore.create(src, (64, 8), "<f4", chunks=(16, 8), compression=None if codec == "none" else codec) as s:
        s[...] = 1.0
    report = arraystore.convert(src, str(tmp_path / dst), compression=compression)
    notes = [n for n in report.plan["notes"] if "compression is not carried over" in n]
    assert bool(notes) == said, report.plan["notes"]
    with arraystore.open(str(tmp_path / dst)) as out:
        assert (getattr(out, "compression", None) is None) == (compression is None)
