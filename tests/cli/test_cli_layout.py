"""Headerless raw files from the command line, dimension counts, ``info`` facts, ``verify`` progress."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import termios
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

import arraystore
from arraystore.errors import DimensionError

from .conftest import SCRIPT, run_cli


@pytest.mark.parametrize(("dtype", "order"), [(">i2", "C"), ("<f4", "F"), ("<u1", "C")])
def test_headerless_convert_with_layout_options(tmp_path: Path, dtype: str, order: str) -> None:
    data = (np.arange(3 * 5 * 7) % 251).astype(dtype).reshape(3, 5, 7)
    src = tmp_path / "frames.dat"
    src.write_bytes(b"HDR!" * 128 + data.tobytes(order=order))  # a 512-byte header before the data
    layout = ["--dtype", dtype, "--shape", "3,5,7", "--offset", "512"]
    proc = run_cli("convert", str(src), str(tmp_path / "out.zarr"), *layout, "--src-order", order, "--order", "C")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "out.zarr", mode="r")[...], data)
    proc = run_cli("convert", str(src), str(tmp_path / "out.h5"), *layout, "--order", order)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(tmp_path / "out.h5", "r") as f:
        stored = f["data"][...] if "data" in f else f[next(iter(f))][...]
    assert stored.size == data.size
    info = json.loads(run_cli("info", str(src), *layout, "--order", order, "--json").stdout)
    assert info["shape"] == [3, 5, 7] and info["dtype"] == np.dtype(dtype).str and info["order"] == order
    assert not (tmp_path / "frames.dat.json").exists()  # nothing written without --write-sidecar


def test_write_sidecar_records_the_layout(tmp_path: Path) -> None:
    data = np.arange(60, dtype=">f8").reshape(6, 10)
    src = tmp_path / "x.dat"
    data.tofile(src)
    assert run_cli("info", str(src)).returncode == 1
    proc = run_cli("info", str(src), "--dtype", ">f8", "--shape", "6,10", "--write-sidecar")
    assert proc.returncode == 0, proc.stderr
    assert "recorded the layout in" in proc.stderr and "x.dat.json" in proc.stderr  # said, not silent
    assert run_cli("info", str(src)).returncode == 0
    with arraystore.open(src) as s:
        np.testing.assert_array_equal(s[...], data)
    # the recorded layout is checked, never silently overridden
    proc = run_cli("info", str(src), "--dtype", "<f4", "--shape", "12,10")
    assert proc.returncode == 1 and "sidecar" in proc.stderr and "--dtype" in proc.stderr
    assert "--dtype and --shape say shape (12, 10)" in proc.stderr and "meta=" not in proc.stderr, proc.stderr


def test_verify_with_layout_and_against(tmp_path: Path) -> None:
    data = np.arange(200, dtype="<i4").reshape(10, 20)
    data.tofile(tmp_path / "a.dat")
    np.save(tmp_path / "b.npy", data)
    proc = run_cli("verify", str(tmp_path / "a.dat"), "--dtype", "int32", "--shape", "10,20",
                   "--against", str(tmp_path / "b.npy"))
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr
    np.save(tmp_path / "c.npy", data + 1)
    proc = run_cli("verify", str(tmp_path / "a.dat"), "--dtype", "int32", "--shape", "10,20",
                   "--against", str(tmp_path / "c.npy"))
    assert proc.returncode == 1 and "VerificationError" in proc.stderr


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--dtype", "f4"], "--dtype and --shape go together"), (["--offset", "4"], "go with --dtype"),
     (["--dtype", "f8", "--shape", "10,10"], "4-byte items")],
)
def test_layout_mistakes_are_one_line(tmp_path: Path, extra: list[str], needle: str) -> None:
    np.arange(100, dtype="<f4").tofile(tmp_path / "x.dat")
    proc = run_cli("info", str(tmp_path / "x.dat"), *extra)
    assert proc.returncode in (1, 2) and proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr


def test_wrong_chunk_dimension_count_names_the_axes(tmp_path: Path, good: Path) -> None:
    proc = run_cli("convert", str(good), str(tmp_path / "o.zarr"), "--chunks", "16,256")
    assert proc.returncode == 1 and "DimensionError" in proc.stderr, proc.stderr
    assert "axis 0 = 4, axis 1 = 16, axis 2 = 32" in proc.stderr and "--chunks 1,16,256" in proc.stderr
    assert "memory" not in proc.stderr and not (tmp_path / "o.zarr").exists()
    proc = run_cli("convert", str(good), str(tmp_path / "o.zarr"), "--shards", "4,16")
    assert proc.returncode == 1 and "DimensionError" in proc.stderr
    with pytest.raises(DimensionError, match="3-d array"):
        arraystore.convert(good, tmp_path / "p.zarr", chunks=(16, 32))
    with pytest.raises(DimensionError, match="found 4 values"):
        arraystore.create(tmp_path / "q.h5", (4, 16, 32), "f4", chunks=(1, 1, 16, 32))
    with pytest.raises(ValueError, match="one value per axis"):  # the builtin it means
        arraystore.create(tmp_path / "q.zarr", (4, 16), "f4", chunks=(16,))


def test_info_shows_compression_chunks_and_stored_size(tmp_path: Path) -> None:
    z = zarr.create_array(tmp_path / "z.zarr", shape=(64, 256), chunks=(16, 256), dtype="<f8",
                          compressors=zarr.codecs.ZstdCodec(level=5))
    z[...] = 0.0  # compresses to almost nothing
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f.create_dataset("v", data=np.zeros((64, 256)), chunks=(8, 256), compression="gzip")
    for path, comp in ((f"{tmp_path}/z.zarr", "zstd"), (f"{tmp_path}/g.h5::/v", "gzip")):
        facts = json.loads(run_cli("info", path, "--json").stdout)
        assert comp in facts["compression"], facts
        assert facts["chunks"] is not None and facts["stored_bytes"] < facts["nbytes"] and facts["ratio"] > 1
        text = run_cli("info", path).stdout
        assert "compression" in text and "stored_bytes" in text and "ratio" in text
    np.zeros(10).tofile(tmp_path / "r.dat")
    facts = json.loads(run_cli("info", str(tmp_path / "r.dat"), "--dtype", "f8", "--shape", "10", "--json").stdout)
    assert facts["compression"] is None and facts["stored_bytes"] == 80 and facts["ratio"] == 1


def _run_on_tty(*args: str) -> str:
    """Run the command with stderr on a pseudo-terminal (a user's terminal); return what it showed there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    try:
        proc = subprocess.run([str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=slave, timeout=120,
                              env=dict(os.environ), check=False)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.returncode == 0
        return b"".join(chunks).decode(errors="replace")
    finally:
        os.close(master)


def test_verify_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    src = tmp_path / "a.npy"
    np.save(src, np.arange(1 << 18, dtype="<f8"))
    arraystore.convert(src, tmp_path / "b.zarr")
    shown = _run_on_tty("verify", str(tmp_path / "b.zarr"))
    assert "verify" in shown and "100%" in shown, shown
    assert "100%" not in _run_on_tty("verify", str(tmp_path / "b.zarr"), "--quiet")
    piped = run_cli("verify", str(tmp_path / "b.zarr"))
    assert piped.returncode == 0 and piped.stderr == ""
