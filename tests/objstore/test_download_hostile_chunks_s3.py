"""Compressed chunk objects of a zarr-python array re-encoded the ways other writers (or hostile ones) may: zstd in
several frames, blosc with another typesize, shuffle or inner codec than the array's metadata says. Downloaded chunk
by chunk (conversion/_remote_file.py, decoded into place): zarr-python's read of the same objects, or a typed error;
never other values."""

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
from arraystore.errors import ArrayStoreError

zarr = pytest.importorskip("zarr", reason="the zarr extra is not installed")
numcodecs = pytest.importorskip("numcodecs", reason="numcodecs is not installed")

pytestmark = pytest.mark.timeout(300)


def _reencode(codec: str, raw: bytes, variant: int, rng: np.random.Generator) -> bytes:
    """``raw`` (a chunk's decoded bytes) encoded again in a way the array's metadata does not describe."""
    if codec == "zstd":
        z = numcodecs.Zstd(level=1)
        cuts = sorted(rng.integers(0, len(raw) + 1, size=variant % 3 + 1).tolist())
        parts = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        return b"".join(bytes(z.encode(p)) for p in parts)  # several frames, some maybe empty
    from numcodecs import Blosc

    shuffle = [Blosc.NOSHUFFLE, Blosc.SHUFFLE, Blosc.BITSHUFFLE][variant % 3]
    cname = ["lz4", "zstd", "blosclz"][variant // 3 % 3]
    typesize = [1, 2, 8, 3][variant // 9 % 4]
    return bytes(Blosc(cname=cname, clevel=5, shuffle=shuffle, blocksize=0, typesize=typesize).encode(raw))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(codec=st.sampled_from(["zstd", "blosc"]), dtype=st.sampled_from(["<f4", ">i8", "<u2", ">c8"]),
       rows=st.integers(1, 60), cols=st.integers(1, 9), unit=st.integers(1, 9), variant=st.integers(0, 35),
       seed=st.integers(0, 2**32 - 1), suffix=st.sampled_from([".npy", ".dat"]),
       pad=st.sampled_from([0, 0, 0, 5, -1, 1 << 20]))
def test_reencoded_chunks_download_as_zarr_python_reads_them(bucket: str, tmp_path: Path, codec: str, dtype: str,
                                                             rows: int, cols: int, unit: int, variant: int, seed: int,
                                                             suffix: str, pad: int) -> None:
    """Also chunks decoding to more or fewer bytes than a chunk's (``pad``; a MiB more: larger than allowed)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    name = uuid.uuid4().hex[:12]
    local = tmp_path / f"{name}.zarr"
    compressors: Any = (zarr.codecs.ZstdCodec(level=3) if codec == "zstd"
                        else zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", typesize=dt.itemsize))
    z = zarr.create_array(str(local), shape=(rows, cols), dtype=dt, chunks=(unit, cols), compressors=compressors,
                          zarr_format=3)
    values = rng.integers(0, 256, size=rows * cols * dt.itemsize, dtype=np.uint8).view(dt).reshape(rows, cols)
    z[...] = values
    s3 = boto3.client("s3")
    decoder = numcodecs.Zstd() if codec == "zstd" else numcodecs.Blosc()
    for p in sorted(local.rglob("*")):
        if not p.is_file():
            continue
        body = p.read_bytes()
        if p.name != "zarr.json":
            raw = bytes(decoder.decode(body))
            if p.relative_to(local).as_posix() == "c/0/0":  # one chunk decodes to another size
                raw = raw[:pad] if pad < 0 else raw + bytes(pad)
            body = _reencode(codec, raw, variant, rng)
            p.write_bytes(body)
        s3.put_object(Bucket=bucket.removeprefix("s3://"), Key=f"{name}.zarr/{p.relative_to(local).as_posix()}",
                      Body=body)
    try:
        expected = zarr.open_array(str(local), mode="r")[...]
    except Exception:  # zarr-python refuses these bytes: arraystore must refuse them too, typed
        with pytest.raises(ArrayStoreError):
            arraystore.convert(f"{bucket}/{name}.zarr", tmp_path / f"{name}-back{suffix}")
        return
    np.testing.assert_array_equal(expected, values)
    back = tmp_path / f"{name}-back{suffix}"
    report = arraystore.convert(f"{bucket}/{name}.zarr", back, verify=True,
                                max_memory=max(4096, 8 * unit * cols * dt.itemsize))
    with arraystore.open(back) as got:
        out = got[...]
    assert out.shape == expected.shape and (out.dtype == dt or out.dtype == expected.dtype)
    assert np.ascontiguousarray(out).astype(expected.dtype).tobytes() == np.ascontiguousarray(expected).tobytes()
    assert report.verified
    event(f"chunk by chunk: {'download' in report.plan}")


@pytest.mark.parametrize("shuffle", ["noshuffle", "shuffle"])
@pytest.mark.parametrize("cut", [1, 2])
def test_a_blosc_chunk_object_cut_short_is_refused(bucket: str, tmp_path: Path, shuffle: str, cut: int) -> None:
    """A chunk object shorter than its blosc header declares (c-blosc decodes it to other values without an
    error, in zarr-python too) fails the download chunk by chunk with a typed error; nothing is published."""
    name = uuid.uuid4().hex[:12]
    local = tmp_path / f"{name}.zarr"
    data = np.random.default_rng(cut).normal(size=(16, 500))
    z = zarr.create_array(str(local), shape=data.shape, dtype="<f8", chunks=(4, 500), zarr_format=3,
                          compressors=zarr.codecs.BloscCodec(cname="lz4", shuffle=shuffle, typesize=8))
    z[...] = data
    s3 = boto3.client("s3")
    for p in sorted(local.rglob("*")):
        if p.is_file():
            body = p.read_bytes()
            if p.relative_to(local).as_posix() == "c/1/0":
                body = body[: len(body) // cut - 1]
            s3.put_object(Bucket=bucket.removeprefix("s3://"), Key=f"{name}.zarr/{p.relative_to(local).as_posix()}",
                          Body=body)
    back = tmp_path / "back.npy"
    with pytest.raises(ArrayStoreError, match="c/1/0"):
        arraystore.convert(f"{bucket}/{name}.zarr", back, max_memory=1 << 20)
    assert not back.exists()
    with arraystore.open(f"{bucket}/{name}.zarr") as s, pytest.raises(ArrayStoreError, match="c/1/0"):
        s[...]
