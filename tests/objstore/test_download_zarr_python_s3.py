"""Downloads of uncompressed Zarr arrays that zarr-python wrote into a bucket, into a local file (conversion/_remote_file.py).

The oracle is zarr-python reading the very objects uploaded: whatever the dtype (either byte order, bool, complex,
datetime, bytes), the fill value (NaN, non-zero, NaT), the chunks absent from the bucket and the last chunk partly
outside the array, the ``.npy`` or raw file downloaded chunk by chunk (interrupted after any block and resumed, or
not) holds numpy's array, dtype and shape identical.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.checksums import StreamHasher

zarr = pytest.importorskip("zarr", reason="the zarr extra is not installed")

pytestmark = pytest.mark.timeout(300)

DTYPES = ["|b1", "|i1", ">u2", "<i4", ">f4", "<f8", ">f8", "<c8", ">c16", "<M8[s]", ">m8[ms]", "|S3"]


def _fill(dtype: np.dtype[Any], kind: str) -> Any:
    if kind == "zero":
        return None
    if dtype.kind == "f" or dtype.kind == "c":
        return {"nan": np.nan, "other": -2.5}[kind]
    if dtype.kind in "mM":
        return np.array("NaT" if kind == "nan" else 7, dtype)[()]
    if dtype.kind == "b":
        return True
    if dtype.kind == "S":
        return b"ab"
    return 3


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype=st.sampled_from(DTYPES),
    rows=st.integers(1, 120),
    tail=st.lists(st.integers(1, 5), max_size=2).map(tuple),
    unit_rows=st.integers(1, 12),
    fill=st.sampled_from(["zero", "nan", "other"]),
    seed=st.integers(0, 2**32 - 1),
    suffix=st.sampled_from([".npy", ".dat"]),
    stop_at=st.integers(0, 3),
)
def test_download_of_a_zarr_python_array_is_numpys(bucket: str, tmp_path: Path, dtype: str, rows: int,
                                                   tail: tuple[int, ...], unit_rows: int, fill: str, seed: int,
                                                   suffix: str, stop_at: int) -> None:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    shape = (rows, *tail)
    name = uuid.uuid4().hex[:12]
    local = tmp_path / f"{name}.zarr"
    z = zarr.create_array(str(local), shape=shape, dtype=dt, chunks=(unit_rows, *tail), compressors=None,
                          fill_value=_fill(dt, fill), zarr_format=3, config={"write_empty_chunks": False})
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * dt.itemsize, dtype=np.uint8)
    if dt.kind == "b":
        raw %= 2
    values = raw.view(dt).reshape(shape)
    keep = rng.random(-(-rows // unit_rows)) < 0.6  # chunk rows written; the others absent: the fill value
    for c, kept in enumerate(keep):
        if kept:
            z[c * unit_rows:(c + 1) * unit_rows] = values[c * unit_rows:(c + 1) * unit_rows]
    s3 = boto3.client("s3")
    for p in local.rglob("*"):
        if p.is_file():
            s3.put_object(Bucket=bucket.removeprefix("s3://"), Key=f"{name}.zarr/{p.relative_to(local).as_posix()}",
                          Body=p.read_bytes())
    expected = zarr.open_array(str(local), mode="r")[...]
    back = tmp_path / f"{name}-back{suffix}"
    budget = max(256, 8 * unit_rows * int(np.prod(tail)) * dt.itemsize)  # blocks of a few chunks: several blocks
    if stop_at:  # interrupted after that many blocks (when it has them), then resumed
        calls = [0]

        def stop(done: int, total: int) -> None:
            calls[0] += 1
            if calls[0] >= stop_at and done < total:
                raise KeyboardInterrupt

        try:
            arraystore.convert(f"{bucket}/{name}.zarr", back, max_memory=budget, progress=stop)
        except KeyboardInterrupt:
            event("interrupted")
    report = arraystore.convert(f"{bucket}/{name}.zarr", back, max_memory=budget, verify=True,
                                overwrite=back.exists())
    event(f"resumed blocks: {report.blocks_resumed > 0}")
    event(f"chunk by chunk: {'download' in report.plan}")
    with arraystore.open(back) as got:
        out = got[...]
    assert out.shape == expected.shape
    assert out.dtype == dt or out.dtype == expected.dtype, (out.dtype, dt, expected.dtype)
    assert np.ascontiguousarray(out).astype(expected.dtype).tobytes() == np.ascontiguousarray(expected).tobytes()
    assert report.verified and report.checksum == StreamHasher.of(out)
    if suffix == ".npy":
        loaded = np.load(back)
        assert loaded.dtype == out.dtype and loaded.tobytes() == np.ascontiguousarray(out).tobytes()
