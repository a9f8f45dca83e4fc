"""Fuzzing the parsers that read untrusted bytes: a typed error or a valid result, nothing else.

Covered here: arraystore's sidecar (bytes and JSON), the ``.npy`` header path (bytes and
header dicts), the header dialects (ENVI, EHdr, MetaImage, IDX) with arbitrary text, the
writer's checkpoint file, and the legacy metadata resolver fed through dialect headers
(``tests/migrate/test_migrate_fuzz.py`` fuzzes its JSON sidecars).
"""

from __future__ import annotations

import json
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from arraystore.backends.npy import read_npy_header
from arraystore.errors import ArrayStoreError
from arraystore.meta import ArrayMeta
from arraystore.sidecar import Sidecar, read_sidecar

SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=10)
           | st.sampled_from(["<f4", ">i8", "|O", "O", "<U0", "|S0", "<M8[s]", "arraystore.raw", "C", "F"]))
KEYS = st.sampled_from(["format", "version", "shape", "dtype", "order", "offset", "nbytes", "complete", "attrs",
                        "checksum", "algorithm", "value", "x"])
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=8),
                    max_leaves=16)
SIDECARISH = st.fixed_dictionaries(
    {"format": st.just("arraystore.raw"), "version": st.sampled_from([1, 2, 0, "1", True])},
    optional={"shape": JSON, "dtype": JSON, "order": JSON, "offset": JSON, "nbytes": JSON, "complete": JSON,
              "attrs": JSON, "checksum": JSON},
)


@contextmanager
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def typed_or_valid(fn: Callable[[], Any]) -> Any:
    """Call ``fn``; an ArrayStoreError is fine, any other exception fails the test."""
    try:
        return fn()
    except ArrayStoreError as exc:
        error = exc
    assert str(error), "a typed error needs a message"
    return None


def check_meta(meta: ArrayMeta) -> None:
    assert all(isinstance(n, int) and n >= 0 for n in meta.shape)
    assert not meta.dtype.hasobject and meta.dtype.itemsize > 0
    assert meta.order in ("C", "F")


@given(st.binary(max_size=300))
def test_sidecar_from_arbitrary_bytes(body: bytes) -> None:
    with folder() as d:
        (d / "a.dat.json").write_bytes(body)
        sc = typed_or_valid(lambda: read_sidecar(d / "a.dat"))
        if sc is not None:
            check_meta(sc.meta)


@given(st.one_of(JSON, SIDECARISH))
def test_sidecar_from_arbitrary_json(obj: Any) -> None:
    sc = typed_or_valid(lambda: Sidecar.from_dict(obj))
    if sc is not None:
        check_meta(sc.meta)
        assert isinstance(sc.offset, int) and sc.offset >= 0
        assert Sidecar.from_dict(json.loads(json.dumps(sc.to_dict()))) == sc


def _npy_file(d: Path, version: tuple[int, int], header: bytes, data: bytes) -> Path:
    length = struct.pack("<H", len(header)) if version[0] == 1 else struct.pack("<I", len(header))
    p = d / "a.npy"
    p.write_bytes(b"\x93NUMPY" + bytes(version) + length + header + data)
    return p


@given(st.sampled_from([(1, 0), (2, 0), (3, 0), (4, 0)]), st.binary(max_size=200), st.binary(max_size=64))
def test_npy_header_from_arbitrary_bytes(version: tuple[int, int], header: bytes, data: bytes) -> None:
    with folder() as d:
        p = _npy_file(d, version, header, data)
        got = typed_or_valid(lambda: read_npy_header(str(p)))
        if got is not None:
            check_meta(got[0])


DESCRS = st.sampled_from(["'<f8'", "'|O'", "'<U0'", "'|V0'", "'<q9'", "5", "[('a', '<f4'), ('a', '<i4')]",
                          "[('a', '|O')]", "[('a', '<f8', (2**40,))]", "b'<f8'", "'|S99999999999'", "None"])
SHAPES = st.sampled_from(["()", "(4,)", "(-1,)", "(2**62, 4)", "(1.5,)", "'4'", "None", "(4,", "[4]",
                          "(" + "1," * 70 + ")"])


@given(DESCRS, st.sampled_from(["True", "False", "'no'", "1"]), SHAPES, st.sampled_from(["", "'x': 1, "]),
       st.integers(0, 64))
def test_npy_header_from_hostile_dicts(descr: str, fortran: str, shape: str, extra: str, ndata: int) -> None:
    header = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, {extra}}}\n".encode()
    with folder() as d:
        p = _npy_file(d, (1, 0), header, b"\0" * ndata)
        got = typed_or_valid(lambda: read_npy_header(str(p)))
        if got is not None:
            check_meta(got[0])


HEADER_KEYS = {
    "envi": ["samples", "lines", "bands", "header offset", "data type", "interleave", "byte order", "description"],
    "ehdr": ["NROWS", "NCOLS", "NBANDS", "NBITS", "PIXELTYPE", "BYTEORDER", "SKIPBYTES", "LAYOUT", "BANDROWBYTES"],
    "mhd": ["ObjectType", "NDims", "DimSize", "ElementType", "ElementByteOrderMSB", "HeaderSize",
            "ElementNumberOfChannels", "CompressedData", "ElementDataFile"],
}
VALUES = st.one_of(st.integers(-(2**66), 2**66).map(str), st.text(max_size=12),
                   st.sampled_from(["4", "4 4", "bsq", "bil", "MET_FLOAT", "MET_UCHAR", "True", "FLOAT", "I", "M",
                                    "{a, b", "}", "LOCAL", "../x.raw", "/etc/passwd", "0", "99"]))


@given(st.sampled_from(sorted(HEADER_KEYS)), st.data())
def test_dialect_headers_from_arbitrary_text(dialect: str, data: st.DataObject) -> None:
    from arraystore import dialects

    keys = HEADER_KEYS[dialect]
    fields = data.draw(st.dictionaries(st.sampled_from(keys), VALUES, max_size=len(keys)))
    junk = data.draw(st.text(max_size=30))
    with folder() as d:
        if dialect == "envi":
            text, header, datafile = "ENVI\n" + "".join(f"{k} = {v}\n" for k, v in fields.items()) + junk, "s.hdr", "s.img"
        elif dialect == "ehdr":
            text, header, datafile = "".join(f"{k} {v}\n" for k, v in fields.items()) + junk, "s.hdr", "s.bil"
        else:
            text, header, datafile = "".join(f"{k} = {v}\n" for k, v in fields.items()) + junk, "s.mhd", "s.raw"
        (d / header).write_bytes(text.encode("utf-8", "surrogatepass"))
        (d / datafile).write_bytes(b"\0" * 64)
        got = typed_or_valid(lambda: dialects.detect(d / datafile))
        if got is not None:
            check_meta(got.meta)
            assert got.offset >= 0 and got.offset + got.meta.nbytes == (d / datafile).stat().st_size


@given(st.binary(min_size=0, max_size=40), st.integers(0, 64))
def test_idx_from_arbitrary_bytes(body: bytes, ndata: int) -> None:
    from arraystore import dialects

    with folder() as d:
        p = d / "train-images-idx3-ubyte"
        p.write_bytes(body + b"\0" * ndata)
        got = typed_or_valid(lambda: dialects.detect(p))
        if got is not None:
            check_meta(got.meta)


@given(st.one_of(JSON, st.fixed_dictionaries({"format": st.just("arraystore.checkpoint"), "version": st.just(1)},
                                              optional={"rows": JSON, "writes": JSON, "user": JSON, "shape": JSON,
                                                        "complete": JSON, "time": JSON, "sequence": JSON})))
def test_checkpoint_from_arbitrary_json(obj: Any) -> None:
    from arraystore.writer import ArrayWriter

    with folder() as d:
        (d / "a.dat.checkpoint.json").write_text(json.dumps(obj))
        cp = typed_or_valid(lambda: ArrayWriter.resume(d / "a.dat"))
        if cp is not None:
            assert cp.rows >= 0 and cp.writes >= 0 and isinstance(cp.user, dict)


@given(st.sampled_from(sorted(HEADER_KEYS)), st.data())
def test_resolver_with_hostile_dialect_headers(dialect: str, data: st.DataObject) -> None:
    from arraystore.migration import Resolution, resolve

    keys = HEADER_KEYS[dialect]
    fields = data.draw(st.dictionaries(st.sampled_from(keys), VALUES, max_size=len(keys)))
    with folder() as d:
        name = {"envi": "a.img", "ehdr": "a.bil", "mhd": "a.raw"}[dialect]
        header = "a.mhd" if dialect == "mhd" else "a.hdr"
        prefix = "ENVI\n" if dialect == "envi" else ""
        sep = " " if dialect == "ehdr" else " = "
        (d / header).write_text(prefix + "".join(f"{k}{sep}{v}\n" for k, v in fields.items()))
        (d / name).write_bytes(np.zeros(16, "<f4").tobytes())
        r = typed_or_valid(lambda: resolve(d / name, root=d))
        if r is not None:
            assert isinstance(r, Resolution)
            assert r.status in ("resolved", "undetermined", "conflict", "invalid")
            json.dumps(r.to_dict())
