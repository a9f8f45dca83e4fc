"""Shared test set-up.

Hypothesis profiles: ``ci`` (deterministic, the default) and ``dev`` (larger, randomised);
select with ``HYPOTHESIS_PROFILE=dev pytest`` (``.ci/run`` sets ``ci`` explicitly).

Fixtures ``case`` and ``make_store``: stores of every available backend filled with known
data, for the access, parallel and integration tests.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import arraystore
from arraystore.registry import BACKENDS

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=300,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SUFFIX = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}


def _importable(name: str) -> bool:
    try:
        importlib.import_module(BACKENDS[name].target.partition(":")[0])
    except ImportError:
        return False
    return True


#: (backend, chunks) cases: contiguous for every backend, chunked where the backend chunks.
AVAILABLE = [b for b in SUFFIX if _importable(b)]
CASES = [(b, None) for b in AVAILABLE] + [(b, "chunked") for b in AVAILABLE if b in ("hdf5", "zarr")]


@pytest.fixture(params=CASES, ids=[f"{b}-{c or 'contiguous'}" for b, c in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    return request.param  # type: ignore[no-any-return]


def _make(
    tmp_path: Path, backend: str, data: np.ndarray[Any, Any], chunks: Any = None, name: str = "a", **kw: Any
) -> str:
    path = str(tmp_path / f"{name}{SUFFIX[backend]}")
    if chunks == "chunked":
        chunks = tuple(max(1, n // 3) for n in data.shape)
    with arraystore.create(path, data.shape, data.dtype, backend=backend, chunks=chunks, **kw) as store:
        store[...] = data
    return path


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[..., str]:
    """``make_store(backend, data, chunks=None, **create_kwargs)``: write ``data`` as a new array, return its path.

    ``chunks="chunked"`` picks chunks of about a third of each axis.
    """
    return lambda backend, data, chunks=None, **kw: _make(tmp_path, backend, data, chunks, **kw)
