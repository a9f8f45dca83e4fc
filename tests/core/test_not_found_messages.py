"""Opening what is not there says which part is missing: the file, or the array inside an existing file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.errors import ArrayNotFoundError, BackendError, MetadataError, UnsafeInputError
from arraystore.location import REMOTE_SCHEMES, parse_location


@pytest.mark.parametrize("name", ["missing.dat", "missing.npy", "missing.h5", "missing.zarr"])
def test_missing_file_says_no_such_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(ArrayNotFoundError, match="no such file or folder; check the path"):
        arraystore.open(tmp_path / name)


def test_missing_key_in_existing_hdf5_names_the_key(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py", reason="needs h5py to write the HDF5 file")
    p = tmp_path / "exp.h5"
    with h5py.File(p, "w") as f:
        f["raw"] = np.zeros(4)
        f["meta/temps"] = np.arange(3)
    with pytest.raises(ArrayNotFoundError, match=r"exp.h5 exists, but holds no hdf5 array at 'nope'.*after '::'"):
        arraystore.open(f"{p}::nope")
    assert arraystore.open(f"{p}::/meta/temps").shape == (3,)


def test_shards_that_are_not_multiples_of_the_chunks_name_the_axis_and_a_fix(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match=r"axis 2: 96 is not a multiple of 64\): give shards=20,64,64") as caught:
        arraystore.create(tmp_path / "a.zarr", (20, 128, 96), "<f4", chunks=(10, 32, 64), shards=(20, 64, 96))
    assert ".partial" not in str(caught.value)  # the array being created, not its staging path
    assert list(tmp_path.iterdir()) == []


def test_a_zarr_group_opened_as_an_array_lists_the_arrays_inside(tmp_path: Path) -> None:
    import zarr

    g = zarr.open_group(tmp_path / "g.zarr", mode="w")
    g.create_array("a", shape=(4,), dtype="f4")
    g.create_array("sub/b", shape=(4,), dtype="i2")
    g.create_group("empty")
    for path, listed, example in [
        ("g.zarr", "/a, /sub/b", "g.zarr::/a"),
        ("g.zarr::sub", "/sub/b", "g.zarr::/sub/b"),
    ]:
        with pytest.raises(MetadataError, match="found a Zarr group: its arrays include") as caught:
            arraystore.open(tmp_path / path if "::" not in path else f"{tmp_path}/{path}")
        assert listed in str(caught.value) and example in str(caught.value)
    with pytest.raises(MetadataError, match="holds no Zarr v3 array"):
        arraystore.open(f"{tmp_path}/g.zarr::empty")
    with arraystore.open(f"{tmp_path}/g.zarr::/sub/b") as s:  # as the message says
        assert s.shape == (4,)


@pytest.mark.parametrize("scheme", sorted(REMOTE_SCHEMES))
@pytest.mark.parametrize("tail", ["", "/", "//", "::/a"])
def test_a_url_naming_nothing_is_a_typed_error(scheme: str, tail: str, tmp_path: Path) -> None:
    """``s3://`` and the like (no bucket, no name) are ArrayNotFoundError saying what a URL must name, from every
    entry point; they were an IndexError (or obstore's "empty host" ValueError), a traceback from the CLI."""
    url = f"{scheme}://{tail}"
    source = tmp_path / "a.npy"
    np.save(source, np.arange(3))
    calls = [lambda: arraystore.open(url), lambda: arraystore.create(url, (2,), "f4"),
             lambda: arraystore.convert(source, url), lambda: arraystore.checksum(url)]
    for call in calls:
        with pytest.raises(ArrayNotFoundError, match=r"scheme://bucket/name"):
            call()
    if tail:
        return
    done = subprocess.run([sys.executable, "-m", "arraystore", "info", url], capture_output=True, text=True)
    assert done.returncode != 0 and "ArrayNotFoundError" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("url", ["foo://bucket/a.zarr", "s4://b/x.npy", "ftp://host/x.npy"])
def test_an_unknown_url_scheme_is_a_typed_error(url: str) -> None:
    """An unknown ``scheme://`` is a BackendError (also the ValueError it was) naming the schemes known."""
    with pytest.raises(BackendError, match="s3") as info:
        arraystore.open(url)
    assert isinstance(info.value, ValueError)


MALFORMED_URLS = [
    ("s3:///x.zarr", ArrayNotFoundError, "found no bucket"),
    ("http://[::1/x.zarr", BackendError, "does not parse"),
    ("https://host:port/x.zarr", BackendError, "does not parse"),
    ("gs://b/../x.zarr", UnsafeInputError, "a '..' segment"),
    ("s3://b/./x.zarr", UnsafeInputError, "a '.' segment"),
    ("memory://b/a/../../x.zarr", UnsafeInputError, "a '..' segment"),
    ("s3://b//x.zarr", UnsafeInputError, "an empty segment"),
    ("s3://b/x.zarr?versionId=3", BackendError, "a query '\\?versionId=3'"),
    ("memory://b/y.npy#frag", BackendError, "a fragment '#frag'"),
    ("gs://b/p%2Fq.zarr", BackendError, "a percent-escape"),
]


@pytest.mark.parametrize(("url", "error", "found"), MALFORMED_URLS)
def test_a_malformed_url_is_a_typed_error_naming_it_as_written(
    url: str, error: type[Exception], found: str, tmp_path: Path
) -> None:
    """A URL with no bucket, a host that does not parse, '.', '..' or empty path segments, a query, a fragment or a
    percent-escape is refused before any request, from every entry point and the CLI: it was a bare ValueError from
    obstore (a traceback-free 'internal error' from the CLI), or the store read it as another object than the one
    named: ``gs://b/../x`` outside bucket ``b``, ``s3://b/x.zarr?versionId=3`` the current ``x.zarr``,
    ``s3://b/y.npy#frag`` created a Zarr array at ``y.npy``; the CLI's message showed ``gs://b/../x`` as
    ``gs://x``, naming another bucket."""
    source = tmp_path / "a.npy"
    np.save(source, np.arange(3))
    calls = [lambda: arraystore.open(url), lambda: arraystore.create(url, (2,), "f4"),
             lambda: arraystore.convert(source, url), lambda: arraystore.convert(url, tmp_path / "b.npy"),
             lambda: arraystore.checksum(url)]
    for call in calls:
        with pytest.raises(error, match=found) as caught:
            call()
        assert str(caught.value).startswith(url + ":")
    done = subprocess.run([sys.executable, "-m", "arraystore", "info", url], capture_output=True, text=True)
    assert done.returncode != 0 and error.__name__ in done.stderr and "Traceback" not in done.stderr
    assert f"error: {url}: expected" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]


def test_an_ipv6_host_is_not_cut_at_its_colons() -> None:
    """``::`` inside ``[...]`` is the host's, not the separator of a key inside the hierarchy."""
    loc = parse_location("http://[::1]:9000/b/x.zarr::/g/a")
    assert (loc.url, loc.key) == ("http://[::1]:9000/b/x.zarr", "/g/a")
    assert parse_location("s3://b/x.zarr::g/a").key == "g/a"


def test_the_cli_takes_file_urls_and_refuses_unknown_schemes_as_the_api_does(tmp_path: Path) -> None:
    """The CLI normalised every argument but the remote URLs as a path: ``file:///x`` became the relative path
    ``file:/x`` (no such file) and ``foo://b/x`` a local ``foo:/b/x``, not the BackendError the API gives."""
    source = tmp_path / "a.npy"
    np.save(source, np.arange(3))
    done = subprocess.run([sys.executable, "-m", "arraystore", "info", source.as_uri()], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-m", "arraystore", "info", "foo://b/x.npy"], capture_output=True, text=True)
    assert done.returncode != 0 and "BackendError" in done.stderr and "found the scheme 'foo'" in done.stderr


@pytest.mark.parametrize("path", [123, None, 1.5, ["a.npy"]])
def test_a_path_of_another_type_is_a_typed_error(path: object, tmp_path: Path) -> None:
    """``open(123)`` or ``open(None)`` raised os.fspath's bare TypeError from every entry point."""
    from arraystore.errors import OptionError

    source = tmp_path / "a.npy"
    np.save(source, np.arange(3))
    calls = [lambda: arraystore.open(path), lambda: arraystore.create(path, (2,), "f4"),  # type: ignore[arg-type]
             lambda: arraystore.convert(path, tmp_path / "b.npy"),  # type: ignore[arg-type]
             lambda: arraystore.convert(source, path), lambda: arraystore.checksum(path),  # type: ignore[arg-type]
             lambda: arraystore.verify(path)]  # type: ignore[arg-type]
    for call in calls:
        with pytest.raises(OptionError, match="expected a path"):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]


def test_a_bytes_path_is_a_path(tmp_path: Path) -> None:
    """A bytes path (as os.open takes one) was a TypeError from a regular expression."""
    source = tmp_path / "a.npy"
    np.save(source, np.arange(3))
    with arraystore.open(bytes(source)) as s:
        assert s[...].tolist() == [0, 1, 2]
    arraystore.convert(bytes(source), bytes(tmp_path / "b.zarr"))
    assert arraystore.open(tmp_path / "b.zarr")[...].tolist() == [0, 1, 2]
