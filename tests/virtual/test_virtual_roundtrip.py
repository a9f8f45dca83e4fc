"""A virtual array read through zarr-python equals the original read through arraystore, bit for bit.

Property-tested over every dialect (ENVI BSQ/BIL/BIP, EHdr BSQ/BIL/BIP, MetaImage with and
without channels, IDX, raw + arraystore sidecar in C and Fortran order), byte orders, header
offsets and chunk sizes small enough to split the files into many references.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arraystore.meta import ArrayMeta
from arraystore.migration import resolve
from arraystore.migration._job import open_source
from arraystore.virtual import VirtualArray, chunk_shape
from arraystore.virtual.icechunk import open_icechunk, write_icechunk
from arraystore.virtual.kerchunk import open_kerchunk, write_kerchunk

from .legacy import DIALECT_DTYPES, write_legacy

LAYOUTS = {"envi": ["bsq", "bil", "bip"], "ehdr": ["bsq", "bil", "bip"], "metaimage": ["plain", "channels"],
           "idx": ["C"], "raw": ["C", "F"]}  # fmt: skip


def bits(a: np.ndarray) -> np.ndarray:
    """The array's values as native-order bytes: equal bits, NaN payloads included."""
    a = np.ascontiguousarray(a)
    return a.astype(a.dtype.newbyteorder("=")).view(np.uint8)


@st.composite
def legacy_files(draw: st.DrawFn) -> tuple[str, str, str, bool, tuple[int, ...], int, int]:
    dialect = draw(st.sampled_from(sorted(LAYOUTS)))
    layout = draw(st.sampled_from(LAYOUTS[dialect]))
    dtype = draw(st.sampled_from(DIALECT_DTYPES[dialect]))
    big = draw(st.booleans()) if dialect != "idx" else True
    if dialect in ("envi", "ehdr"):
        ndim = 3
    elif dialect == "metaimage":
        ndim = draw(st.integers(2, 3)) + (1 if layout == "channels" else 0)
    else:
        ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=ndim, max_size=ndim)))
    offset = 0 if dialect in ("idx", "raw") else draw(st.sampled_from([0, 1, 16, 513]))
    chunk_bytes = draw(st.sampled_from([1, 7, 64, 1000, 1 << 20]))
    return dialect, layout, dtype, big, shape, offset, chunk_bytes


def _virtual_for(folder: Path, data: Path, chunk_bytes: int) -> tuple[VirtualArray, np.ndarray]:
    res = resolve(data, root=folder)
    assert res.status == "resolved", res.error
    assert res.meta is not None
    st_ = data.stat()
    with open_source(data, res.meta, res.offset, own_sidecar=data.suffix == ".dat") as src:
        original = src[...]
    va = VirtualArray.from_meta(
        data.name, data.name, res.meta, res.offset, size=st_.st_size, mtime_ns=st_.st_mtime_ns, chunk_bytes=chunk_bytes
    )
    return va, original


@settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(legacy_files())
def test_kerchunk_reads_bit_for_bit(case):
    dialect, layout, dtype, big, shape, offset, chunk_bytes = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "archive"
        folder.mkdir()
        data = write_legacy(folder, dialect, layout, dtype, big, shape, offset, seed=len(shape))
        va, original = _virtual_for(folder, data, chunk_bytes)
        write_kerchunk(Path(tmp) / "v.json", [va], folder)
        got = open_kerchunk(Path(tmp) / "v.json")[va.path][...]
        assert got.shape == original.shape
        assert got.dtype == original.dtype.newbyteorder("=")
        np.testing.assert_array_equal(bits(got), bits(original))


@settings(deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(legacy_files())
def test_icechunk_reads_bit_for_bit(case):
    dialect, layout, dtype, big, shape, offset, chunk_bytes = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "archive"
        folder.mkdir()
        data = write_legacy(folder, dialect, layout, dtype, big, shape, offset, seed=len(shape))
        va, original = _virtual_for(folder, data, chunk_bytes)
        write_icechunk(Path(tmp) / "v.icechunk", [va], folder)
        got = open_icechunk(Path(tmp) / "v.icechunk")[va.path][...]
        np.testing.assert_array_equal(bits(got), bits(original))


@given(
    shape=st.lists(st.integers(1, 40), min_size=1, max_size=4).map(tuple),
    itemsize=st.sampled_from([1, 2, 4, 8, 16]),
    order=st.sampled_from("CF"),
    chunk_bytes=st.integers(1, 1 << 16),
)
def test_chunks_are_contiguous_full_and_bounded(shape, itemsize, order, chunk_bytes):
    chunks = chunk_shape(shape, itemsize, order, chunk_bytes)
    assert all(s % c == 0 for s, c in zip(shape, chunks, strict=True)), "a partial edge chunk"
    nbytes = int(np.prod(chunks)) * itemsize
    assert nbytes <= max(chunk_bytes, itemsize)
    meta = ArrayMeta(shape=shape, dtype=np.dtype(f"u{itemsize}") if itemsize <= 8 else np.dtype("c16"), order=order)
    va = VirtualArray.from_meta("a", "a", meta, 5, size=0, mtime_ns=0, chunk_bytes=chunk_bytes)
    refs = sorted(va.refs(), key=lambda r: r.offset)
    # the references tile the data exactly: consecutive, same length, no gap, no overlap
    assert [r.offset for r in refs] == [5 + i * nbytes for i in range(len(refs))]
    assert len(refs) * nbytes == meta.nbytes


@pytest.mark.parametrize("dtype", ["S3", "U2", [("a", "<i4"), ("b", "<f8")], "V8", "O", "g", "G"])
def test_dtypes_without_a_core_zarr_type_are_refused(dtype):
    from arraystore.errors import UnsupportedDtypeError
    from arraystore.virtual import check_expressible

    with pytest.raises(UnsupportedDtypeError, match="copying migration"):
        check_expressible(np.dtype(dtype))


def test_a_short_last_chunk_is_not_readable_by_zarr(tmp_path):
    """Why chunks divide the split axis: zarr-python refuses a reference shorter than a full chunk."""
    import json

    data = tmp_path / "a" / "x.dat"
    data.parent.mkdir()
    data.write_bytes(np.arange(10, dtype="<i4").tobytes())
    meta = ArrayMeta(shape=(10,), dtype=np.dtype("<i4"), order="C")
    va = VirtualArray.from_meta("x", "x.dat", meta, 0, size=40, mtime_ns=0, chunk_bytes=16)
    assert va.chunks == (2,)  # 10 = 5 x 2: no partial chunk, though 4 items would fit 16 bytes
    write_kerchunk(tmp_path / "v.json", [va], data.parent)
    doc = json.loads((tmp_path / "v.json").read_text())
    doc["refs"]["x/c/4"][2] = 4
    (tmp_path / "short.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="reshape"):
        open_kerchunk(tmp_path / "short.json")["x"][...]


@pytest.mark.parametrize(
    ("dialect", "layout", "big"),
    [(d, lay, big) for d in sorted(LAYOUTS) for lay in LAYOUTS[d] for big in (False, True) if d != "idx" or big],
    ids=lambda v: str(v),
)  # IDX is big-endian by definition
def test_every_dialect_layout_dtype_and_byte_order(tmp_path, dialect, layout, big):
    """Exhaustive companion of the property tests: every dtype each dialect can state, split into many chunks."""
    shape = {"envi": (3, 4, 5), "ehdr": (3, 4, 5), "metaimage": (3, 4, 2) if layout == "channels" else (3, 5),
             "idx": (6, 2, 3), "raw": (4, 3, 5)}[dialect]  # fmt: skip
    for i, dtype in enumerate(DIALECT_DTYPES[dialect]):
        folder = tmp_path / str(i)
        folder.mkdir()
        data = write_legacy(folder, dialect, layout, dtype, big, shape, 0 if dialect in ("idx", "raw") else 16, i)
        va, original = _virtual_for(folder, data, chunk_bytes=2 * np.dtype(dtype).itemsize * shape[-1])
        assert len(list(va.refs())) > 1
        write_kerchunk(tmp_path / f"{i}.json", [va], folder)
        got = open_kerchunk(tmp_path / f"{i}.json")[va.path][...]
        assert got.shape == original.shape, dtype
        np.testing.assert_array_equal(bits(got), bits(original), err_msg=str(dtype))
