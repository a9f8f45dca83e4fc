"""Raw and npy readers keep reading the generation they opened when another process replaces the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import arraystore

from .test_zarr_generations import run_py


@pytest.mark.parametrize("suffix", [".dat", ".npy"])
@pytest.mark.parametrize("io", ["mmap", "buffered"])
@pytest.mark.parametrize("how", ["create", "convert"])
@pytest.mark.parametrize("first_read", [False, True])
def test_reader_keeps_the_generation_it_opened(
    tmp_path: Path, suffix: str, io: str, how: str, first_read: bool
) -> None:
    path = tmp_path / f"a{suffix}"
    old = np.arange(64, dtype="<i4")
    with arraystore.create(path, old.shape, old.dtype) as s:
        s[...] = old
    with arraystore.open(path, io=io) as reader:
        if first_read:
            assert np.array_equal(reader[:4], old[:4])
        if how == "create":
            run_py(
                f"""
                import numpy as np, arraystore
                with arraystore.create({str(path)!r}, (64,), "<f4", overwrite=True) as s:
                    s[...] = np.full(64, 1.5, "<f4")
                """
            )
        else:
            run_py(
                f"""
                import numpy as np, arraystore
                np.save({str(tmp_path / "new.npy")!r}, np.full(64, 1.5, "<f4"))
                arraystore.convert({str(tmp_path / "new.npy")!r}, {str(path)!r}, overwrite=True)
                """
            )
        # Before: the new float32 bytes read as int32 (1069547520) when the replace came before the first read.
        assert reader.dtype == old.dtype
        assert np.array_equal(reader[...], old)
        assert np.array_equal(np.concatenate([b for _, b in reader.iter_blocks(64)]), old)
    with arraystore.open(path) as s:
        assert np.array_equal(s[...], np.full(64, 1.5, "<f4"))
