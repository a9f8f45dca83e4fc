"""Legacy files of every dialect, written as their tools lay them out, for the virtual tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import arraystore

PERM = {"bsq": (0, 1, 2), "bil": (1, 0, 2), "bip": (1, 2, 0)}
ENVI_CODE = {"u1": 1, "i2": 2, "i4": 3, "f4": 4, "f8": 5, "c8": 6, "c16": 9, "u2": 12, "u4": 13, "i8": 14, "u8": 15}
EHDR_TYPE = {"u1": ("UNSIGNEDINT", 8), "i1": ("SIGNEDINT", 8), "u2": ("UNSIGNEDINT", 16), "i2": ("SIGNEDINT", 16),
             "u4": ("UNSIGNEDINT", 32), "i4": ("SIGNEDINT", 32), "f4": ("FLOAT", 32)}  # fmt: skip
MET_TYPE = {"u1": "MET_UCHAR", "i1": "MET_CHAR", "u2": "MET_USHORT", "i2": "MET_SHORT", "u4": "MET_UINT",
            "i4": "MET_INT", "u8": "MET_ULONG_LONG", "i8": "MET_LONG_LONG", "f4": "MET_FLOAT", "f8": "MET_DOUBLE"}  # fmt: skip
IDX_TYPE = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
DIALECT_DTYPES: dict[str, list[str]] = {
    "envi": sorted(ENVI_CODE),
    "ehdr": sorted(EHDR_TYPE),
    "metaimage": sorted(MET_TYPE),
    "idx": sorted(IDX_TYPE),
    "raw": ["?", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8", "c8", "c16", "M8[s]", "m8[ms]"],
}


def sample(shape: tuple[int, ...], dtype: Any, seed: int) -> np.ndarray:
    """Values covering the dtype's bit patterns (NaNs and infinities included for floats)."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * dt.itemsize, dtype=np.uint8)
    if dt.kind == "b":
        raw = raw % 2
    return raw.view(dt).reshape(shape)


def write_legacy(
    folder: Path, dialect: str, layout: str, dtype: str, big: bool, shape: tuple[int, ...], offset: int, seed: int
) -> Path:
    """Write one legacy file (and its header) into ``folder``; return the data file."""
    dt = np.dtype(dtype).newbyteorder(">" if big else "<")
    if dialect == "envi":
        cube = sample(shape, dt, seed)  # (bands, lines, samples)
        data = folder / "s.img"
        data.write_bytes(b"\0" * offset + np.ascontiguousarray(cube.transpose(PERM[layout])).tobytes())
        (folder / "s.hdr").write_text(
            f"ENVI\nsamples = {shape[2]}\nlines = {shape[1]}\nbands = {shape[0]}\nheader offset = {offset}\n"
            f"file type = ENVI Standard\ndata type = {ENVI_CODE[dtype]}\ninterleave = {layout}\n"
            f"byte order = {int(big)}\n"
        )
        return data
    if dialect == "ehdr":
        cube = sample(shape, dt, seed)
        data = folder / f"d.{layout}"
        data.write_bytes(b"\0" * offset + np.ascontiguousarray(cube.transpose(PERM[layout])).tobytes())
        ptype, nbits = EHDR_TYPE[dtype]
        (folder / "d.hdr").write_text(
            f"BYTEORDER {'M' if big else 'I'}\nLAYOUT {layout.upper()}\nNROWS {shape[1]}\nNCOLS {shape[2]}\n"
            f"NBANDS {shape[0]}\nNBITS {nbits}\nPIXELTYPE {ptype}\nSKIPBYTES {offset}\n"
        )
        return data
    if dialect == "metaimage":
        channels = shape[-1] if layout == "channels" else 1
        spatial = shape[:-1] if layout == "channels" else shape
        arr = sample(shape, dt, seed)
        data = folder / "v.raw"
        data.write_bytes(b"\0" * offset + arr.tobytes())
        (folder / "v.mhd").write_text(
            f"ObjectType = Image\nNDims = {len(spatial)}\nBinaryData = True\nBinaryDataByteOrderMSB = {big}\n"
            f"DimSize = {' '.join(str(s) for s in reversed(spatial))}\nElementNumberOfChannels = {channels}\n"
            f"HeaderSize = {offset}\nElementType = {MET_TYPE[dtype]}\nElementDataFile = v.raw\n"
        )
        return data
    if dialect == "idx":
        arr = sample(shape, np.dtype(dtype).newbyteorder(">"), seed)
        data = folder / "train-images-idx3-ubyte"
        head = bytes([0, 0, IDX_TYPE[dtype], len(shape)]) + np.asarray(shape, ">u4").tobytes()
        data.write_bytes(head + arr.tobytes())
        return data
    assert dialect == "raw"
    data = folder / "x.dat"
    with arraystore.create(data, shape=shape, dtype=dt, order=layout, backend="raw") as st:
        st[...] = sample(shape, dt, seed)
    return data
