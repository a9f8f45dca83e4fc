"""A reader of a replaced array keeps its generation or gets ArrayChangedError; replaces survive kills.

Every replace is done by a separate Python process (``create(..., overwrite=True)`` or
``convert(..., overwrite=True)``); replaces during a read are placed deterministically
by a hook in arraystore's own chunk-checking store wrapper, never by timing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import arraystore
from arraystore.backends import _zarr_bounds, _zarr_read
from arraystore.errors import ArrayChangedError, ArrayNotFoundError

SRC = str(Path(arraystore.__file__).resolve().parents[1])


def run_py(code: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new Python process with this worktree's arraystore."""
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def replace_in_other_process(path: Path, how: str) -> None:
    if how == "create":
        run_py(
            f"""
            import numpy as np, arraystore
            with arraystore.create({str(path)!r}, (64,), "<f8", chunks=(8,), overwrite=True) as s:
                s[...] = np.full(64, -1.5)
            """
        )
    else:
        src = Path(str(path).split("::")[0]).parent / "new.npy"
        run_py(
            f"""
            import numpy as np, arraystore
            np.save({str(src)!r}, np.full(64, -1.5))
            arraystore.convert({str(src)!r}, {str(path)!r}, backend="zarr", chunks=(8,), overwrite=True)
            """
        )


def make_old(path: Path) -> np.ndarray[Any, Any]:
    data = np.arange(64, dtype="<i4")
    with arraystore.create(path, data.shape, data.dtype, chunks=(8,)) as s:
        s[...] = data
    return data


@pytest.mark.parametrize("how", ["create", "convert"])
@pytest.mark.parametrize("key", [None, "/grp/a"])
def test_replace_between_reads_raises(tmp_path: Path, how: str, key: str | None) -> None:
    root = tmp_path / "x.zarr"
    path = Path(f"{root}::{key}") if key else root
    old = make_old(path)
    with arraystore.open(path) as s:
        assert np.array_equal(s[:8], old[:8])
        replace_in_other_process(path, how)
        # Before the fix: the new float64 bytes read as int32 (or old metadata over new chunks).
        with pytest.raises(ArrayChangedError, match="replaced"):
            s[...]
        with pytest.raises(ArrayChangedError):
            list(s.iter_blocks(64))
    with arraystore.open(path) as s:
        assert s.dtype == np.dtype("<f8")
        assert np.array_equal(s[...], np.full(64, -1.5))


def test_replace_during_a_multichunk_read_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.zarr"
    data = np.arange(64, dtype="<f8")
    with arraystore.create(path, data.shape, data.dtype, chunks=(8,), compression="zstd") as s:
        s[...] = data
    original = _zarr_read._Files.get
    calls: list[str] = []

    def replace_after_first_chunk(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        out = original(self, key, *args, **kwargs)
        if key.startswith("c/") and not calls:
            calls.append(key)
            replace_in_other_process(path, "create")  # same dtype, other values: a mixture would look valid
        return out

    with arraystore.open(path) as s:
        monkeypatch.setattr(_zarr_read._Files, "get", replace_after_first_chunk)
        with pytest.raises(ArrayChangedError):
            s[...]
    assert calls, "the hook never ran: the read did not go through the chunk reader"


def test_replace_during_a_multichunk_zarr_python_read_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through zarr-python's pipeline (a v2 array: not read by the chunk reader)."""
    path = tmp_path / "x.zarr"
    data = np.arange(64, dtype="<f8")
    zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=(8,), zarr_format=2)[...] = data
    original = _zarr_bounds.BoundedStore._checked
    calls: list[str] = []

    async def replace_after_first_chunk(self: Any, key: str, byte_range: Any, buf: Any) -> Any:
        out = await original(self, key, byte_range, buf)
        if key[:1].isdigit() and not calls:
            calls.append(key)
            replace_in_other_process(path, "create")
        return out

    with arraystore.open(path) as s:
        monkeypatch.setattr(_zarr_bounds.BoundedStore, "_checked", replace_after_first_chunk)
        with pytest.raises(ArrayChangedError):
            s[...]
    assert calls, "the hook never ran: the read did not go through the checked store"


def test_zip_store_reader_keeps_its_generation(tmp_path: Path) -> None:
    path = tmp_path / "x.zarr.zip"
    old = make_old(path)
    with arraystore.open(path) as s:
        replace_in_other_process(path, "create")
        assert s.dtype == old.dtype
        assert np.array_equal(s[...], old)  # the open zip file is the old generation


def test_reads_of_an_unchanged_array_still_work(tmp_path: Path) -> None:
    path = tmp_path / "x.zarr"
    old = make_old(path)
    with arraystore.open(path, "r+") as s:
        for i in range(8):
            s[i * 8 : i * 8 + 8] = old[i * 8 : i * 8 + 8] + 1
            assert np.array_equal(s[i * 8 : i * 8 + 8], old[i * 8 : i * 8 + 8] + 1)


# -- kills between the two renames of a folder replace ----------------------------------------


KILL_AT = """
import os, signal, numpy as np, arraystore
from arraystore import _fsutil
def hook(step):
    if step == {step!r}:
        os.kill(os.getpid(), signal.SIGKILL)
_fsutil._replace_hook = hook
with arraystore.create({path!r}, (64,), "<f8", chunks=(8,), overwrite=True) as s:
    s[...] = np.full(64, -1.5)
"""


@pytest.mark.parametrize("key", [None, "/grp/a"])
@pytest.mark.parametrize("step", ["aside", "placed"])
@pytest.mark.parametrize("next_run", ["open", "create", "convert"])
def test_kill_inside_a_folder_replace_is_recovered(tmp_path: Path, key: str | None, step: str, next_run: str) -> None:
    root = tmp_path / "x.zarr"
    path = f"{root}::{key}" if key else str(root)
    folder = root / key.lstrip("/") if key else root
    old = make_old(Path(path))
    proc = run_py(KILL_AT.format(step=step, path=path), check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    aside = folder.with_name(f".{folder.name}.old")
    assert aside.is_dir()  # the kill really landed inside the replace
    assert folder.exists() == (step == "placed")
    if next_run == "open":
        with arraystore.open(path) as s:
            expected = old if step == "aside" else np.full(64, -1.5)
            assert np.array_equal(s[...], expected)  # killed between the renames: the old array is back
    elif next_run == "create":
        with arraystore.create(path, (4,), "<i8", overwrite=True) as s:
            s[...] = 7
    else:
        src = tmp_path / "n.npy"
        np.save(src, np.arange(5))
        arraystore.convert(src, path, backend="zarr", overwrite=True)
    assert not aside.exists()
    leftovers = [p.name for p in folder.parent.iterdir() if p.name.endswith(".old")]
    assert leftovers == []


def test_recovery_leaves_a_replace_in_progress_alone(tmp_path: Path) -> None:
    """While the replacing process lives (and holds its lock), other processes touch nothing."""
    path = tmp_path / "x.zarr"
    make_old(path)
    code = (
        KILL_AT.replace("os.kill(os.getpid(), signal.SIGKILL)", "print('aside', flush=True); input()")
    ).format(step="aside", path=str(path))
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "aside"
        with pytest.raises(ArrayNotFoundError):
            arraystore.open(path)  # between the renames: the recovery must not steal the old folder back
        assert (tmp_path / ".x.zarr.old").is_dir()
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with arraystore.open(path) as s:
        assert np.array_equal(s[...], np.full(64, -1.5))
    assert not (tmp_path / ".x.zarr.old").exists()


def test_zarr_python_still_reads_what_we_replaced(tmp_path: Path) -> None:
    path = tmp_path / "x.zarr"
    make_old(path)
    replace_in_other_process(path, "convert")
    assert np.array_equal(zarr.open_array(str(path), mode="r")[...], np.full(64, -1.5))
