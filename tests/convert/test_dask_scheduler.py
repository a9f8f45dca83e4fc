"""``convert(scheduler=...)`` on a Dask ``LocalCluster``: same output and checksum as the local path, resumable."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="convert(scheduler=...) needs dask.distributed")

import arraystore  # noqa: E402
from arraystore.checksums import StreamHasher  # noqa: E402
from arraystore.cli import convert as cli_convert  # noqa: E402
from arraystore.conversion import convert  # noqa: E402
from arraystore.errors import ConversionError  # noqa: E402
from arraystore.meta import ArrayMeta  # noqa: E402

from .conftest import BACKENDS, SUFFIX, Stop, bytes_equal, read_back, stop_after, write_source  # noqa: E402

DATA = (np.random.default_rng(5).standard_normal((200, 33)) * 1e3).astype("<f8")
#: Several blocks per conversion (about 16 KiB each).
BUDGET = "64KiB"
SOURCE_OPTIONS: dict[str, dict[str, Any]] = {
    "raw": {},
    "npy": {},
    "hdf5": {"chunks": (40, 33), "compression": "gzip:1"},
    "zarr": {"chunks": (50, 11), "compression": "zstd:1"},
}
DEST_OPTIONS: dict[str, dict[str, Any]] = {"raw": {}, "npy": {}, "hdf5": {"compression": "gzip:1"},
                                           "zarr": {"compression": "zstd:1"}}


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """Two worker processes with one thread each, started once for the module."""
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        yield c


def _layout(path: str) -> tuple[Any, ...]:
    with arraystore.open(path) as s:
        return s.shape, s.dtype, s.order, dict(s.attrs), s.chunks, s.recorded_checksum


def _same_as_local(tmp_path: Path, src: str, name: str, scheduler: Any, **options: Any) -> Any:
    """Convert ``src`` locally and on the cluster; assert identical results; return the cluster's report."""
    local_dst, dask_dst = str(tmp_path / f"local-{name}"), str(tmp_path / f"dask-{name}")
    local = convert(src, local_dst, max_memory=BUDGET, **options)
    report = convert(src, dask_dst, max_memory=BUDGET, scheduler=scheduler, **options)
    assert report.checksum == local.checksum and report.checksum_recorded == local.checksum_recorded
    assert (report.method, report.blocks_total, report.plan["blocks"]) == (local.method, local.blocks_total,
                                                                          local.plan["blocks"])
    assert report.blocks_written == report.blocks_total and report.blocks_resumed == 0
    assert _layout(dask_dst) == _layout(local_dst)
    assert bytes_equal(read_back(dask_dst)[0], read_back(local_dst)[0])
    if report.dst_backend in ("raw", "npy"):  # contiguous files: compare every byte
        assert Path(dask_dst).read_bytes() == Path(local_dst).read_bytes()
    assert not list(tmp_path.glob("*.partial*"))
    return report


@pytest.mark.parametrize("dst_backend", BACKENDS)
@pytest.mark.parametrize("src_backend", BACKENDS)
def test_every_pair_matches_local(tmp_path: Path, client: Any, src_backend: str, dst_backend: str) -> None:
    src = write_source(tmp_path / f"src{SUFFIX[src_backend]}", DATA, **SOURCE_OPTIONS[src_backend])
    report = _same_as_local(tmp_path, src, f"out{SUFFIX[dst_backend]}", client, verify=True,
                            **DEST_OPTIONS[dst_backend])
    assert report.verified and report.checksum == StreamHasher.of(DATA)
    assert report.blocks_total > 1 or report.method != "blocks"  # byte copies take 64 KiB at once
    writes = "client" if dst_backend == "hdf5" else "workers"
    assert report.plan["scheduler"] == {"address": client.scheduler.address, "writes": writes}


@pytest.mark.parametrize(
    ("dst_name", "options", "writes", "method"),
    [
        ("same.npy", {}, "workers", "kernel-copy"),  # same bytes, same layout: copy_file_range on the workers
        ("c.dat", {"order": "C"}, "client", "blocks"),  # blocks are not byte runs of a C-order destination
        ("f.zarr", {"chunks": (64, 8)}, "workers", "blocks"),
        ("c.h5", {"order": "C"}, "client", "blocks"),  # HDF5 of a Fortran source: C-order chunks, written by the client
    ],
)
def test_fortran_big_endian_source(tmp_path: Path, client: Any, dst_name: str, options: dict[str, Any], writes: str,
                                   method: str) -> None:
    data = np.asfortranarray(np.arange(150 * 40, dtype=">i4").reshape(150, 40))
    src = write_source(tmp_path / "src.dat", data, order="F")
    report = _same_as_local(tmp_path, src, dst_name, client, **options)
    assert report.plan["scheduler"]["writes"] == writes and report.method == method
    assert report.checksum == StreamHasher.of(data)


@pytest.mark.parametrize(
    "data",
    [
        np.arange(3000, dtype=">i4").reshape(100, 30),
        np.array(3.5, ">f8"),
        np.zeros((0, 4), "<i2"),
        np.array([(i, i / 3) for i in range(500)], dtype=[("a", "<i4"), ("b", ">f8")]),
        np.arange(800).astype(">M8[s]"),
    ],
    ids=["big-endian", "0-d", "empty", "structured", "datetime"],
)
@pytest.mark.parametrize("dst_name", ["out.h5", "out.zarr"])
def test_dtypes_keep_their_bytes(tmp_path: Path, client: Any, data: np.ndarray[Any, Any], dst_name: str) -> None:
    """Blocks that travel to the client keep their byte order (distributed would make them native)."""
    src = write_source(tmp_path / "src.npy", data)
    report = _same_as_local(tmp_path, src, dst_name, client, verify=True)
    assert report.checksum == StreamHasher.of(data)
    assert bytes_equal(read_back(str(tmp_path / f"dask-{dst_name}"))[0], data)


@pytest.mark.filterwarnings("ignore:Port 8787 is already in use:UserWarning")  # the module's cluster holds it
def test_scheduler_local_starts_a_cluster(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src.npy", DATA)
    report = _same_as_local(tmp_path, src, "out.zarr", "local", workers=2, compression="zstd:1")
    assert report.plan["scheduler"] == {"address": "local", "writes": "workers"}


def test_scheduler_address(tmp_path: Path, client: Any) -> None:
    src = write_source(tmp_path / "src.h5", DATA, chunks=(25, 33))
    report = _same_as_local(tmp_path, src, "out.dat", client.scheduler.address, durable=True)
    assert report.plan["scheduler"]["address"] == client.scheduler.address


def test_cli_scheduler_flag(tmp_path: Path, client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_source(tmp_path / "src.npy", DATA)
    dst = tmp_path / "out.zarr"
    parser = argparse.ArgumentParser(prog="arraystore")
    cli_convert.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["convert", src, str(dst), "--scheduler", client.scheduler.address,
                              "--max-memory", BUDGET, "--compression", "zstd:1", "--json"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["plan"]["scheduler"]["address"] == client.scheduler.address
    assert report["checksum"] == StreamHasher.of(DATA) and bytes_equal(read_back(str(dst))[0], DATA)



@pytest.mark.parametrize(("dst_name", "options"), [("out.zarr", {"compression": "zstd:1"}),
                                                   ("out.h5", {"compression": "gzip:1"}),
                                                   ("out.dat", {})])
@pytest.mark.parametrize("first", ["local", "dask"])
def test_interrupted_then_resumed_on_cluster(tmp_path: Path, client: Any, dst_name: str, options: dict[str, Any],
                                             first: str) -> None:
    src = write_source(tmp_path / "src.zarr", DATA, chunks=(20, 33))
    dst = tmp_path / dst_name
    with pytest.raises(Stop):
        convert(src, str(dst), max_memory=BUDGET, progress=stop_after(3),
                scheduler=client if first == "dask" else None, **options)
    assert not dst.exists()
    report = convert(src, str(dst), max_memory=BUDGET, scheduler=client, verify=True, **options)
    assert (report.blocks_resumed, report.blocks_rewritten, report.restarted) == (3, 0, None)
    assert report.blocks_written == report.blocks_total - 3
    assert report.checksum == StreamHasher.of(DATA) and bytes_equal(read_back(str(dst))[0], DATA)
    assert not list(tmp_path.glob("*.partial*"))


def test_changed_block_is_rewritten(tmp_path: Path, client: Any) -> None:
    src = write_source(tmp_path / "src.npy", DATA)
    dst = tmp_path / "out.zarr"
    opts: dict[str, Any] = {"max_memory": BUDGET, "chunks": (40, 33), "scheduler": client}  # one chunk per block
    with pytest.raises(Stop):
        convert(src, str(dst), progress=stop_after(2), **opts)
    journal = tmp_path / "out.zarr.partial.journal.jsonl"
    done = [json.loads(line)["block"] for line in journal.read_text().splitlines()[1:]]
    assert len(done) == 2
    staged = arraystore.backends.zarr.ZarrStore._open(arraystore.registry.parse_location(f"{dst}.partial"), "r+",
                                                      allow_incomplete=True)
    staged[40 * done[0] : 40 * done[0] + 40] = -1.0  # journaled as done, no longer holds the source's values
    staged.close()
    report = convert(src, str(dst), **opts)
    assert (report.blocks_resumed, report.blocks_rewritten) == (1, 1)
    assert report.blocks_written == report.blocks_total - 1
    assert bytes_equal(read_back(str(dst))[0], DATA)


def test_source_opened_with_meta(tmp_path: Path, client: Any) -> None:
    """A raw source without a sidecar reaches the workers with its metadata."""
    bare = tmp_path / "bare.bin"
    bare.write_bytes(b"\0" * 16 + DATA.tobytes())
    with arraystore.open(str(bare), backend="raw", meta=ArrayMeta(DATA.shape, DATA.dtype), offset=16) as src:
        report = convert(src, str(tmp_path / "out.zarr"), max_memory=BUDGET, scheduler=client)
    assert report.plan["scheduler"]["writes"] == "workers" and report.blocks_total > 1
    assert bytes_equal(read_back(str(tmp_path / "out.zarr"))[0], DATA)


def test_zip_destination_written_by_client(tmp_path: Path, client: Any) -> None:
    src = write_source(tmp_path / "src.dat", DATA)
    report = _same_as_local(tmp_path, src, "out.zarr.zip", client, chunks=(20, 33))
    assert report.plan["scheduler"]["writes"] == "client"


@pytest.mark.parametrize("scheduler", [42, "", object()])
def test_bad_scheduler_refused_before_writing(tmp_path: Path, scheduler: Any) -> None:
    src = write_source(tmp_path / "src.npy", DATA)
    with pytest.raises(ConversionError, match="expected scheduler="):
        convert(src, str(tmp_path / "out.zarr"), scheduler=scheduler)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.npy"]


def test_unicode_to_and_from_hdf5_strings_on_the_cluster(tmp_path: Path, client: Any) -> None:
    """Unicode in HDF5 is UTF-8 strings sized by the values: the cluster writes and reads them as the local path."""
    words = np.array(["", "a", "é", "日本語", "\U0001f600x", "zzzzzz"], dtype=">U6")
    data = words[np.arange(600) % len(words)].reshape(100, 6)
    np.save(tmp_path / "src.npy", data)
    report = _same_as_local(tmp_path, str(tmp_path / "src.npy"), "out.h5", client, verify=True)
    assert report.checksum == StreamHasher.of(data)
    with h5py.File(tmp_path / "dask-out.h5", "r") as f:
        assert f["data"].dtype.itemsize == 9 and f["data"].asstr()[...].tolist() == data.tolist()
    back = _same_as_local(tmp_path, str(tmp_path / "dask-out.h5"), "back.npy", client, verify=True)
    assert back.checksum == StreamHasher.of(data)
    assert np.load(tmp_path / "dask-back.npy").tobytes() == data.tobytes()


def test_a_local_cluster_leaves_port_8787_alone(tmp_path: Path) -> None:
    """``scheduler="local"`` beside a running cluster (or notebook dashboard) that holds port 8787: no warning."""
    import socket
    import warnings

    src = write_source(tmp_path / "src.npy", DATA)
    with socket.socket() as held:
        try:
            held.bind(("", 8787))
            held.listen()
        except OSError:  # something else holds it already: the case this test is about
            pass
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            convert(src, str(tmp_path / "dst.zarr"), max_memory=BUDGET, scheduler="local", workers=1)
    assert [str(w.message) for w in caught if "8787" in str(w.message)] == []
    got, _ = read_back(str(tmp_path / "dst.zarr"))
    assert bytes_equal(got, DATA)
