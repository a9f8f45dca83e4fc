"""A keyword argument no function or backend takes is a typed error naming it, before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.errors import OptionError

SUFFIXES = [".dat", ".npy", ".h5", ".zarr"]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("mode", ["w", "x", "a"])
def test_creating_with_an_unknown_option_writes_nothing(tmp_path: Path, suffix: str, mode: str) -> None:
    path = tmp_path / f"a{suffix}"
    with pytest.raises(OptionError, match=r"'fill_valu'.*does not take") as caught:
        arraystore.open(path, mode, shape=(4, 3), dtype="<f4", fill_valu=0)
    assert isinstance(caught.value, TypeError)
    with pytest.raises(OptionError, match="'fill_valu'"):
        arraystore.create(path, (4, 3), "<f4", fill_valu=0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("mode", ["r", "r+", "a"])
def test_opening_with_an_unknown_option_names_it_and_the_known_ones(tmp_path: Path, suffix: str, mode: str) -> None:
    path = tmp_path / f"a{suffix}"
    with arraystore.create(path, (4, 3), "<f4") as s:
        s[...] = np.arange(12, dtype="<f4").reshape(4, 3)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(OptionError, match=r"'alow_incomplete'.*allow_incomplete"):
        arraystore.open(path, mode, alow_incomplete=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    with arraystore.open(path) as s:  # untouched, and not left locked
        assert np.array_equal(s[...], np.arange(12, dtype="<f4").reshape(4, 3))


def test_every_public_function_names_a_misspelt_keyword(tmp_path: Path) -> None:
    """The public functions with a fixed signature (checksum, verify, migrate, locality) raise OptionError (a
    TypeError and an ArrayStoreError) naming the keyword and the ones they take, not a bare TypeError; nothing is
    written."""
    from arraystore.migration import migrate

    src = tmp_path / "a.npy"
    np.save(src, np.arange(6, dtype="<f4"))
    bad: dict[str, Any] = {"worker": 2}  # misspelt on purpose: not in any signature
    calls: dict[str, Callable[[], object]] = {
        "checksum": lambda: arraystore.checksum(src, **bad),
        "verify": lambda: arraystore.verify(src, **bad),
        "migrate": lambda: migrate(tmp_path, tmp_path / "out", to="npy", **bad),
        "locality": lambda: arraystore.locality(str(src), **bad),
    }
    for name, call in calls.items():
        with pytest.raises(OptionError, match=rf"{name}\(\) got 'worker', which it does not take; its options are ") as e:
            call()
        assert isinstance(e.value, TypeError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]
    assert arraystore.checksum(src, workers=1) == arraystore.checksum(src)  # known keywords still pass
