"""Structured items with padding: conversions verify, and checksums agree, whatever the padding holds.

docs/fidelity.md: padding bytes (no field covers them) are not kept; numpy's own copies and
assignments leave them as ``np.empty`` found them. The content checksum counted them, so a
conversion of such an array into a Fortran-order raw/npy destination (or from an HDF5 file into a
C-order one) failed with a VerificationError on every run, and a checksum of the same array could
differ from one read to the next.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraystore
from arraystore.checksums import StreamHasher, padding_mask

PADDED = [
    np.dtype({"names": ["a", "b"], "formats": ["<i2", ">f8"], "offsets": [0, 8], "itemsize": 24}),
    np.dtype({"names": ["x"], "formats": ["u1"], "offsets": [1], "itemsize": 3}),
    np.dtype([("n", np.dtype({"names": ["p"], "formats": ["<u2"], "offsets": [2], "itemsize": 6}), (2,)), ("m", "<f4")]),
]
BACKENDS = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}


def _values(dtype: np.dtype[Any], shape: tuple[int, ...], seed: int) -> np.ndarray[Any, Any]:
    """Random bytes for every item, padding included; NaN-free floats (so equal values mean equal bytes)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    out = np.frombuffer(rng.integers(0, 256, n * dtype.itemsize, dtype=np.uint8).tobytes(), dtype).reshape(shape)
    out = out.copy()
    for name in ("b", "m"):
        if name in (dtype.names or ()):
            out[name] = rng.integers(-1000, 1000, shape)
    return out


def _with_garbage_padding(path: Path, values: np.ndarray[Any, Any]) -> None:
    """Overwrite a raw file's bytes with ``values``' own, their padding bytes included."""
    raw = np.memmap(path, np.uint8, "r+")
    raw[:] = values.view(np.uint8).reshape(-1)
    raw.flush()
    del raw


def test_the_padding_mask_covers_the_fields_only() -> None:
    mask = padding_mask(PADDED[0])
    assert mask is not None and mask.tolist() == [255] * 2 + [0] * 6 + [255] * 8 + [0] * 8
    assert padding_mask(np.dtype([("a", "<i4"), ("b", "u1")])) is None  # packed: nothing to mask
    assert padding_mask(np.dtype("<f8")) is None


@given(dtype=st.sampled_from(PADDED), n=st.integers(0, 40), cuts=st.lists(st.integers(0, 1000), max_size=6),
       seed=st.integers(0, 2**32 - 1))
def test_a_checksum_does_not_depend_on_padding_nor_on_how_the_bytes_are_cut(
    dtype: np.dtype[Any], n: int, cuts: list[int], seed: int
) -> None:
    a = _values(dtype, (n,), seed)
    b = a.copy()  # numpy: the fields, padding as np.empty left it
    bytes_ = a.view(np.uint8).reshape(-1)
    pieces = np.split(bytes_, sorted({c % (bytes_.size + 1) for c in cuts}))
    by_bytes = StreamHasher(dtype)
    for piece in pieces:
        by_bytes.update(piece)
    assert StreamHasher.of(a) == StreamHasher.of(b) == by_bytes.result()


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(BACKENDS, BACKENDS)))
def test_padded_items_convert_and_verify_between_every_pair_in_both_orders(tmp_path: Path, src: str, dst: str) -> None:
    dtype = PADDED[0]
    shape = (37, 5, 3)
    values = _values(dtype, shape, seed=7)
    source = tmp_path / f"s{BACKENDS[src]}"
    with arraystore.create(source, shape, dtype) as s:
        s[...] = values
    if src == "raw":
        _with_garbage_padding(source, values)
    for options in [{}, {"order": "F"}, {"compression": "zstd:1"} if dst in ("zarr", "hdf5") else {"order": "C"}]:
        out = tmp_path / f"d{BACKENDS[dst]}"
        report = arraystore.convert(source, out, verify=True, overwrite=True, **options)  # type: ignore[arg-type]
        assert report.verified
        with arraystore.open(out) as o:
            got = o[...]
            for name in dtype.names or ():
                np.testing.assert_array_equal(got[name], values[name])
        assert arraystore.checksum(out) == arraystore.checksum(source) == report.checksum
        assert arraystore.verify(out, against=source)["match"]


def test_an_hdf5_compound_written_by_h5py_converts_to_raw_and_npy_verified(tmp_path: Path) -> None:
    """The HDF5 file's padding (copied byte for byte) and the destination's as numpy reads it back differed."""
    h5py = pytest.importorskip("h5py", reason="needs h5py to write the compound as another tool does")
    values = _values(PADDED[0], (37, 5, 3), seed=3)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("x", data=values)
    for name in ("o.dat", "o.npy", "o.zarr"):
        report = arraystore.convert(f"{tmp_path / 's.h5'}::x", tmp_path / name, verify=True)
        assert report.verified
