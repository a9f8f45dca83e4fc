"""Shared helpers of the conversion tests: available backends, suffixes, writing a source."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.errors import MissingDependencyError
from arraystore.registry import backend_class

SUFFIX = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}


def available() -> list[str]:
    out = []
    for name in SUFFIX:
        try:
            backend_class(name)
        except (MissingDependencyError, ImportError):
            continue
        out.append(name)
    return out


BACKENDS = available()
CHUNKED = [b for b in BACKENDS if b in ("hdf5", "zarr")]
COMPRESSION = {"hdf5": "gzip:1", "zarr": "zstd:1"}


def write_source(path: Path | str, data: np.ndarray[Any, Any], order: str = "C", attrs: dict[str, Any] | None = None,
                 **options: Any) -> str:
    with arraystore.create(str(path), data.shape, data.dtype, order=order, attrs=attrs, **options) as s:  # type: ignore[arg-type]
        if data.size:
            s[...] = data
    return str(path)


def read_back(path: str) -> tuple[np.ndarray[Any, Any], Any]:
    with arraystore.open(path) as s:
        return s[...], (s.shape, s.dtype, s.order, dict(s.attrs))


def bytes_equal(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


@pytest.fixture
def sample() -> np.ndarray[Any, Any]:
    return np.arange(200 * 33, dtype="<f8").reshape(200, 33) * 1.5


def journal_lines(path: Path) -> list[dict[str, Any]]:
    """The block records of a conversion journal (after its header line); a line torn by a kill is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines()[1:]:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # torn by the kill
    return out


class Stop(Exception):
    """Raised by :func:`stop_after`'s progress callback: a conversion interrupted mid-run."""


def stop_after(n: int) -> Any:
    """A ``progress=`` callback that raises :class:`Stop` on its ``n``-th call."""
    calls = [0]

    def progress(done: int, total: int) -> None:
        calls[0] += 1
        if calls[0] >= n:
            raise Stop

    return progress


def truncate_on_second_call(src: Path, calls: list[int]) -> Any:
    """A ``progress=`` callback that cuts ``src`` to a third of its size on its second call (counted in ``calls``):
    a source cut short by another writer after the first blocks were read."""

    def cut(done: int, total: int) -> None:
        calls[0] += 1
        if calls[0] == 2:
            os.truncate(src, src.stat().st_size // 3)

    return cut
