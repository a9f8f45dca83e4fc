"""The installed ``arraystore`` command converting to and from the S3 test server, credentials from the environment."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest

import arraystore

from .conftest import SECRET, env_for_subprocess

SCRIPT = Path(sys.executable).with_name("arraystore")
pytestmark = pytest.mark.timeout(180)


def _run(args: list[str], env: dict[str, str], *, tty: bool = False) -> tuple[int, str, str]:
    """Run the console script; with ``tty`` its stderr is a terminal (so it draws progress)."""
    assert SCRIPT.exists(), f"expected the console script at {SCRIPT}; pip install -e ."
    if not tty:
        done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=150, check=False)
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real terminal has a width
    try:
        proc = subprocess.Popen([str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=slave, env=env, text=True)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        out, _ = proc.communicate(timeout=150)
    finally:
        os.close(master)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace")


def test_convert_raw_to_s3_and_back_with_progress(bucket: str, s3_env: dict[str, str], tmp_path: Path) -> None:
    a = (np.arange(300 * 200, dtype="<f4").reshape(300, 200) / 3).astype("<f4")
    with arraystore.create(tmp_path / "frames.dat", a.shape, a.dtype, attrs={"exposure": 0.5}) as s:
        s[:] = a
    env = env_for_subprocess(s3_env)
    url = f"{bucket}/frames.zarr"
    code, out, err = _run(["convert", str(tmp_path / "frames.dat"), url, "--compression", "zstd:3", "--verify"], env,
                          tty=True)
    assert code == 0, err
    assert "%" in err or "MiB" in err or "B/s" in err, err  # the progress bar was drawn on the terminal
    with arraystore.open(url) as r:
        assert r[:].tobytes() == a.tobytes() and r.attrs["exposure"] == 0.5 and r.compression == "zstd(level=3)"
    code, out, err = _run(["convert", url, str(tmp_path / "back.dat"), "--verify"], env)
    assert code == 0, err
    with arraystore.open(tmp_path / "back.dat") as r:
        assert r[:].tobytes() == a.tobytes() and r.attrs["exposure"] == 0.5
    code, out, err = _run(["info", url], env)
    assert code == 0 and "300" in out, err
    assert SECRET not in out + err


def test_cli_error_for_a_missing_object_names_no_secret(bucket: str, s3_env: dict[str, str], tmp_path: Path) -> None:
    code, out, err = _run(["convert", f"{bucket}/missing.zarr", str(tmp_path / "x.npy")], env_for_subprocess(s3_env))
    assert code != 0 and "missing.zarr" in err and "Traceback" not in err, err
    assert SECRET not in out + err
