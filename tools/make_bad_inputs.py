"""Generate the hostile-input corpus: malformed and malicious files for every format arraystore reads.

Usage::

    python tools/make_bad_inputs.py OUT_DIR

writes the files into ``OUT_DIR`` (created) and ``OUT_DIR/manifest.json``: one entry per
case, ``{"name", "path", "backend", "options", "why"}``, where ``path`` is relative to
``OUT_DIR`` (``file::key`` for arrays inside HDF5 files and Zarr hierarchies). Every case
must be answered by a typed ``ArrayStoreError`` when opened and read; see
``tests/reliability/test_corpus.py``. Nothing large is written: the "enormous" cases are
enormous only in what their metadata claims (the largest file is a 17 MB sidecar).
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Case = dict[str, Any]


class Corpus:
    """Collects cases while their files are written."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cases: list[Case] = []
        root.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, path: str, why: str, backend: str | None = None, *, may_open: bool = False,
            **options: Any) -> None:
        """Record a case; ``may_open`` marks odd-but-valid input that may also open and read fine."""
        if any(c["name"] == name for c in self.cases):
            raise ValueError(f"duplicate case name {name}")
        self.cases.append({"name": name, "path": path, "backend": backend, "options": options, "why": why,
                           "may_open": may_open})

    def write(self, rel: str, data: bytes | str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p

    def folder(self, name: str) -> Path:
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p


# -- raw + sidecar -------------------------------------------------------------------------

GOOD_SIDECAR: dict[str, Any] = {
    "format": "arraystore.raw", "version": 1, "shape": [4, 8], "dtype": "<f4", "order": "C",
    "offset": 0, "nbytes": 128, "complete": True, "attrs": {},
}


def raw_cases(c: Corpus) -> None:
    def raw(name: str, why: str, sidecar: Any, data: bytes = b"\0" * 128, *, text: str | bytes | None = None) -> None:
        d = c.folder("raw")
        (d / f"{name}.dat").write_bytes(data)
        body = text if text is not None else json.dumps(sidecar)
        (d / f"{name}.dat.json").write_bytes(body.encode() if isinstance(body, str) else body)
        c.add(f"raw/{name}", f"raw/{name}.dat", why, backend="raw")

    def changed(**kw: Any) -> dict[str, Any]:
        d = dict(GOOD_SIDECAR)
        for k, v in kw.items():
            if v is _DROP:
                d.pop(k, None)
            else:
                d[k] = v
        return d

    for n, size in [("empty", 0), ("half", 64), ("minus1", 127)]:
        raw(f"truncated-{n}", f"data file of {size} bytes where 128 are promised", GOOD_SIDECAR, b"\0" * size)
    for n, size in [("plus1", 129), ("double", 256), ("plus4k", 128 + 4096)]:
        raw(f"oversized-{n}", f"data file of {size} bytes where 128 are promised", GOOD_SIDECAR, b"\0" * size)
    not_json: dict[str, bytes] = {
        "garbage": b"\x89PNG\r\n\x1a\n\0\0garbage", "empty": b"", "truncated": b'{"format": "arraystore.raw", "ver',
        "utf16": '{"format": 1}'.encode("utf-16"), "trailing": json.dumps(GOOD_SIDECAR).encode() + b"}}",
        "nan-shape": b'{"format": "arraystore.raw", "version": 1, "shape": [NaN], "dtype": "<f4"}',
        "latin1": b'{"format": "arraystore.raw", "dtype": "\xff\xfe"}', "nul": b"\0" * 64,
        "deep-array": b"[" * 100000 + b"]" * 100000,
        "deep-attrs": (b'{"format": "arraystore.raw", "version": 1, "shape": [4, 8], "dtype": "<f4", "attrs": {"a": '
                       + b"[" * 50000 + b"]" * 50000 + b"}}"),
    }
    for n, body in not_json.items():
        raw(f"notjson-{n}", f"sidecar is not (usable) JSON: {n}", None, text=body)
    for n, v in {"list": [], "string": "arraystore.raw", "number": 1, "null": None, "bool": True}.items():
        raw(f"toplevel-{n}", f"sidecar JSON is a {n}, not an object", v)
    for key in ("format", "version", "shape", "dtype"):
        raw(f"missing-{key}", f"sidecar without its {key!r} key", changed(**{key: _DROP}))
    wrong: dict[str, dict[str, Any]] = {
        "shape-string": {"shape": "4,8"}, "shape-dict": {"shape": {"a": 4}}, "shape-floats": {"shape": [4.0, 8.0]},
        "shape-bools": {"shape": [True, 8]}, "shape-nested": {"shape": [[4], [8]]}, "shape-null": {"shape": None},
        "dtype-number": {"dtype": 4}, "dtype-list-garbage": {"dtype": [[1, 2, 3]]}, "dtype-null": {"dtype": None},
        "order-x": {"order": "X"}, "order-number": {"order": 5}, "offset-string": {"offset": "0"},
        "offset-float": {"offset": 0.5}, "offset-negative": {"offset": -8}, "nbytes-wrong": {"nbytes": 64},
        "nbytes-string": {"nbytes": "128"}, "complete-string": {"complete": "yes"}, "attrs-list": {"attrs": [1, 2]},
        "checksum-string": {"checksum": "abc"}, "checksum-partial": {"checksum": {"algorithm": "xxh3_128"}},
        "version-string": {"version": "1"}, "version-zero": {"version": 0}, "version-future": {"version": 99},
        "version-bool": {"version": True}, "format-other": {"format": "zarr"}, "incomplete": {"complete": False},
    }
    for n, kw in wrong.items():
        raw(f"wrongtype-{n}", f"sidecar with a wrong value: {kw}", changed(**kw))
    dims: dict[str, list[Any]] = {
        "negative": [-1], "negative-2d": [4, -8], "enormous": [2**40, 2**40], "huge-1d": [10**30],
        "int64max": [2**63 - 1], "overflow-3d": [2**32, 2**32, 2], "overflow-exact": [2**62, 4],
        "overflow-many": [65536] * 5, "too-many-dims": [1] * 100, "zero-and-huge": [0, 2**70],
    }
    for n, shape in dims.items():
        raw(f"dims-{n}", f"shape {shape if len(str(shape)) < 60 else str(shape)[:60] + '...'}",
            changed(shape=shape, nbytes=_DROP))
    dtypes: dict[str, Any] = {
        "unknown-q9": "<q9", "word": "xyz", "object-O": "|O", "object-bare": "O",
        "object-field": [["a", "|O"]], "datetime-bad-unit": "<M8[zz]", "bytes-negative": "|S-1",
        "void-zero": "|V0", "huge-itemsize": "|S99999999999", "unicode-zero": "<U0",
        "field-bad-type": [["a", 5]], "field-dup": [["a", "<f4"], ["a", "<f4"]],
        "subarray-huge": [["a", "<f8", [2**31, 2**31]]], "deep-struct": _deep_struct(60),
        "empty-string": "", "pyobj-str": "object",
    }
    for n, dt in dtypes.items():
        raw(f"dtype-{n}", f"dtype {str(dt)[:60]}", changed(dtype=dt, nbytes=_DROP))
    for n, off in {"past-end": 10**6, "int64max": 2**63 - 1, "huge": 2**80, "at-end": 128}.items():
        raw(f"offset-{n}", f"offset {off} past the data", changed(offset=off))
    d = c.folder("raw")
    (d / "huge-sidecar.dat").write_bytes(b"\0" * 128)
    with open(d / "huge-sidecar.dat.json", "wb") as f:
        f.write(b'{"format": "arraystore.raw", "pad": "')
        f.write(b" " * (17 * 1024 * 1024))
        f.write(b'"}')
    c.add("raw/huge-sidecar", "raw/huge-sidecar.dat", "a 17 MB sidecar", backend="raw")
    (d / "sidecar-folder.dat").write_bytes(b"\0" * 128)
    (d / "sidecar-folder.dat.json").mkdir(exist_ok=True)
    c.add("raw/sidecar-folder", "raw/sidecar-folder.dat", "the sidecar is a folder", backend="raw")
    (d / "data-folder.dat").mkdir(exist_ok=True)
    (d / "data-folder.dat.json").write_text(json.dumps(GOOD_SIDECAR))
    c.add("raw/data-folder", "raw/data-folder.dat", "the data file is a folder", backend="raw")
    (d / "data-missing.dat.json").write_text(json.dumps(GOOD_SIDECAR))
    c.add("raw/data-missing", "raw/data-missing.dat", "a sidecar without its data file", backend="raw")
    (d / "no-sidecar.dat").write_bytes(b"\0" * 128)
    c.add("raw/no-sidecar", "raw/no-sidecar.dat", "raw bytes with no metadata at all", backend="raw")
    os.symlink("/dev/zero", d / "devzero.dat")
    (d / "devzero.dat.json").write_text(json.dumps(changed(shape=[2**20, 2**20], nbytes=_DROP)))
    c.add("raw/devzero", "raw/devzero.dat", "data file is a symlink to /dev/zero (endless, size 0)", backend="raw")


class _Drop:
    pass


_DROP = _Drop()


def _deep_struct(depth: int) -> Any:
    dt: Any = "<f4"
    for _ in range(depth):
        dt = [["a", dt]]
    return dt


# -- npy -----------------------------------------------------------------------------------


def _npy(version: tuple[int, int], header: bytes, data: bytes = b"", *, pad: bool = True) -> bytes:
    magic = b"\x93NUMPY" + bytes(version)
    if pad:
        header = header + b" " * ((-(len(magic) + (2 if version[0] == 1 else 4) + len(header) + 1)) % 64) + b"\n"
    length = struct.pack("<H", len(header)) if version[0] == 1 else struct.pack("<I", len(header))
    return magic + length + header + data


def npy_cases(c: Corpus) -> None:
    def npy(name: str, why: str, body: bytes) -> None:
        c.write(f"npy/{name}.npy", body)
        c.add(f"npy/{name}", f"npy/{name}.npy", why, backend="npy")

    def hdr(descr: str = "'<f8'", fortran: str = "False", shape: str = "(4,)") -> bytes:
        return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}".encode()

    shapes = {"terabytes": "(2**40,)", "tb-literal": "(1099511627776,)", "2d-huge": "(2147483648, 2147483648)",
              "overflow": "(100000000000000000000,)", "negative": "(-1,)", "negative-2d": "(4, -2)",
              "float": "(1.5,)", "string": "'5'", "list": "[4]", "none": "None", "nested": "((4,),)",
              "too-many-dims": "(" + "1, " * 100 + ")", "int64max": "(9223372036854775807,)"}
    for n, shape in shapes.items():
        npy(f"shape-{n}", f"header shape {shape[:40]}", _npy((1, 0), hdr(shape=shape), b"\0" * 32))
    # Real pickled object arrays, the way np.save writes them.
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}, [1, 2]], dtype=object), allow_pickle=True)
    npy("pickle-object", "an object array (its data is a pickle)", buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, np.zeros(2, dtype=[("a", "<f4"), ("b", "O")]), allow_pickle=True)
    npy("pickle-struct-object", "a structured array with an object field", buf.getvalue())
    npy("object-header-only", "header says dtype object, data is raw bytes", _npy((1, 0), hdr("'|O'"), b"\0" * 32))
    evil = b"cos\nsystem\n(S'echo pwned'\ntR."
    npy("object-evil-pickle", "object dtype whose data is a pickle that runs a command",
        _npy((1, 0), hdr("'|O'", shape="(1,)"), evil))
    for v in [(0, 0), (4, 0), (1, 5), (255, 255), (2, 1)]:
        npy(f"version-{v[0]}-{v[1]}", f"unknown .npy version {v}", _npy(v, hdr(), b"\0" * 32))
    big = hdr() + b" " * 20000
    npy("header-over-cap-v2", "a 20 kB version-2 header (numpy's cap is 10 kB)", _npy((2, 0), big, b"\0" * 32))
    npy("header-over-cap-v1", "a 65 kB version-1 header", _npy((1, 0), hdr() + b" " * 65000, b"\0" * 32))
    npy("header-len-4gb-v2", "version-2 header length field says 4 GB",
        b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**32 - 1) + hdr())
    whole = _npy((1, 0), hdr(), b"\0" * 32)
    for n, cut in {"magic-only": 6, "magic-version": 8, "half-length": 9, "half-header": 40, "no-newline": 70}.items():
        npy(f"truncated-{n}", f"file cut after {cut} bytes", whole[:cut])
    npy("header-len-past-end", "header length field past the end of the file",
        b"\x93NUMPY\x01\x00" + struct.pack("<H", 60000) + hdr())
    headers = {
        "not-dict": b"[1, 2, 3]", "missing-keys": b"{'descr': '<f8'}", "extra-keys": hdr()[:-2] + b"'x': 1, }",
        "descr-invalid": hdr("'<q9'"), "descr-number": hdr("5"), "fortran-string": hdr(fortran="'yes'"),
        "expression": b"__import__('os').system('echo pwned')", "call": b"dict(descr='<f8', shape=(4,))",
        "syntax": b"{'descr': '<f8', 'shape': (4,", "nested-literal": b"{'descr': " + b"[" * 5000 + b"]" * 5000 + b"}",
        "bytes-descr": hdr("b'<f8'"), "set": b"{1, 2}", "lambda": b"lambda: 0",
        "descr-struct-dup": hdr("[('a', '<f4'), ('a', '<f4')]"), "descr-subarray-huge": hdr("[('a', '<f8', (2**31, 2**31))]"),
        "descr-void0": hdr("'|V0'"), "descr-huge-bytes": hdr("'|S99999999999'"),
    }
    for n, h in headers.items():
        npy(f"header-{n}", f"header {h[:50]!r}", _npy((1, 0), h, b"\0" * 32))
    npy("data-truncated", "data shorter than the header says", _npy((1, 0), hdr(shape="(1000,)"), b"\0" * 100))
    npy("data-oversized", "data longer than the header says", _npy((1, 0), hdr(), b"\0" * 4096))
    npy("data-empty", "no data where 32 bytes are promised", _npy((1, 0), hdr()))
    npy("empty-file", "an empty .npy file", b"")
    npy("wrong-magic", "a .npy name on a PNG", b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    npy("v3-bad-utf8", "a version-3 header that is not UTF-8", _npy((3, 0), b"{'descr': '\xff\xfe', }", b""))
    npy("v1-latin1-field", "field names in latin-1 bytes", _npy((1, 0), hdr("[('\xe9', '<f8')]".encode("latin1").decode("latin1"))))


# -- HDF5 ----------------------------------------------------------------------------------


def hdf5_cases(c: Corpus) -> None:
    import h5py

    d = c.folder("hdf5")
    outside = c.folder("outside")
    with h5py.File(outside / "secret.h5", "w") as f:
        f["data"] = np.arange(16.0)
    (outside / "secret.bin").write_bytes(np.arange(16.0).tobytes())

    def h5(name: str, why: str, build: Callable[[Any], object], key: str = "x", **options: Any) -> None:
        with h5py.File(d / f"{name}.h5", "w") as f:
            build(f)
        c.add(f"hdf5/{name}", f"hdf5/{name}.h5::{key}" if key else f"hdf5/{name}.h5", why, backend="hdf5", **options)

    h5("external-link", "an external link to a file outside the folder",
       lambda f: f.__setitem__("x", h5py.ExternalLink("../outside/secret.h5", "/data")))
    h5("external-link-abs", "an external link with an absolute path",
       lambda f: f.__setitem__("x", h5py.ExternalLink(str(outside / "secret.h5"), "/data")))
    h5("external-link-etc", "an external link to /etc/passwd",
       lambda f: f.__setitem__("x", h5py.ExternalLink("/etc/passwd", "/x")))
    h5("external-storage", "external raw storage outside the folder",
       lambda f: f.create_dataset("x", (16,), "<f8", external=[("../outside/secret.bin", 0, 128)]))
    h5("external-storage-abs", "external raw storage at an absolute path",
       lambda f: f.create_dataset("x", (16,), "<f8", external=[(str(outside / "secret.bin"), 0, 128)]))
    h5("external-storage-passwd", "external raw storage on /etc/passwd",
       lambda f: f.create_dataset("x", (8,), "|u1", external=[("/etc/passwd", 0, 8)]))

    def vds(f: Any, target: str) -> None:
        layout = h5py.VirtualLayout(shape=(16,), dtype="<f8")
        layout[:] = h5py.VirtualSource(target, "data", shape=(16,))
        f.create_virtual_dataset("x", layout)

    h5("virtual-outside", "a virtual dataset whose source is outside the folder",
       lambda f: vds(f, "../outside/secret.h5"))
    h5("virtual-abs", "a virtual dataset with an absolute source path", lambda f: vds(f, str(outside / "secret.h5")))
    h5("chunk-2gb", "a 2 GB chunk shape (decompression-bomb size)",
       lambda f: f.create_dataset("x", (2**28,), "<f8", chunks=(2**28,)))
    h5("chunk-2gb-gzip", "a 2 GB chunk shape with gzip",
       lambda f: f.create_dataset("x", (2**28,), "<f8", chunks=(2**28,), compression="gzip"))
    h5("chunk-3d-huge", "chunk shape 1024^3 of uint8",
       lambda f: f.create_dataset("x", (1024, 1024, 1024), "|u1", chunks=(1024, 1024, 1024)))
    h5("vlen-str", "variable-length strings", lambda f: f.create_dataset("x", data=np.array(["a", "bc"], dtype=object),
                                                                        dtype=h5py.string_dtype()))
    h5("vlen-int", "variable-length integer sequences",
       lambda f: f.create_dataset("x", (2,), dtype=h5py.vlen_dtype(np.int32)))
    h5("object-ref", "object references", lambda f: f.create_dataset("x", (2,), dtype=h5py.ref_dtype))
    h5("region-ref", "region references", lambda f: f.create_dataset("x", (2,), dtype=h5py.regionref_dtype))
    h5("compound-vlen", "a compound with a variable-length string field",
       lambda f: f.create_dataset("x", (2,), dtype=np.dtype([("a", "<f4"), ("s", h5py.string_dtype())])))
    h5("enum", "an enum dtype (read as its integer base type)",
       lambda f: f.create_dataset("x", (2,), dtype=h5py.enum_dtype({"a": 0, "b": 1})))
    c.cases[-1]["may_open"] = True
    h5("group-not-dataset", "the key names a group", lambda f: f.create_group("x"))
    h5("no-such-key", "the key names nothing", lambda f: f.create_group("y"))
    h5("soft-link-cycle", "a cycle of soft links",
       lambda f: (f.__setitem__("x", h5py.SoftLink("/y")), f.__setitem__("y", h5py.SoftLink("/x"))))
    h5("soft-link-dangling", "a dangling soft link", lambda f: f.__setitem__("x", h5py.SoftLink("/nothing")))
    h5("key-traversal", "a key with ../ segments", lambda f: f.create_dataset("x", data=np.arange(4)),
       key="../../outside/secret.h5")
    h5("no-key-many", "no key and two datasets", lambda f: (f.create_dataset("a", data=np.arange(4)),
                                                           f.create_dataset("b", data=np.arange(4))), key="")
    h5("no-key-none", "no key and no dataset at all", lambda f: None, key="")
    h5("scalar-empty", "an empty (null dataspace) dataset", lambda f: f.create_dataset("x", data=h5py.Empty("f")))
    _hdf5_types_and_bounds(c, h5, vds)
    good = d / "good-source.h5"
    with h5py.File(good, "w") as f:
        f.create_dataset("x", data=np.arange(4096.0), chunks=(512,), compression="gzip")
    whole = good.read_bytes()
    good.unlink()
    for n, cut in {"half": len(whole) // 2, "100b": 100, "8b": 8, "superblock-only": 48}.items():
        c.write(f"hdf5/truncated-{n}.h5", whole[:cut])
        c.add(f"hdf5/truncated-{n}", f"hdf5/truncated-{n}.h5::x", f"an HDF5 file cut to {cut} bytes", backend="hdf5")
    sig = b"\x89HDF\r\n\x1a\n"
    c.write("hdf5/signature-garbage.h5", sig + os.urandom(0) + bytes(range(256)) * 4)
    c.add("hdf5/signature-garbage", "hdf5/signature-garbage.h5::x", "HDF5 signature then garbage", backend="hdf5")
    c.write("hdf5/signature-only.h5", sig)
    c.add("hdf5/signature-only", "hdf5/signature-only.h5::x", "the HDF5 signature alone", backend="hdf5")
    flipped = bytearray(whole)
    for i in range(len(flipped) // 3, len(flipped), 97):
        flipped[i] ^= 0xFF
    c.write("hdf5/bitflips.h5", bytes(flipped))
    c.add("hdf5/bitflips", "hdf5/bitflips.h5::x", "chunk and index bytes flipped", backend="hdf5")


def _hdf5_types_and_bounds(c: Corpus, h5: Callable[..., None], vds: Callable[[Any, str], None]) -> None:
    """File types numpy cannot hold or whose bytes are not numpy's, virtual-dataset escapes, huge attributes."""
    import h5py

    def raw_type(tid: Any, n: int = 4) -> Callable[[Any], object]:
        return lambda f: h5py.h5d.create(f.id, b"x", tid, h5py.h5s.create_simple((n,)))

    quad = h5py.h5t.IEEE_F64LE.copy()
    quad.set_size(16)
    quad.set_precision(128)
    quad.set_fields(127, 112, 15, 0, 112)
    quad.set_ebias(16383)
    h5("float128", "an IEEE binary128 dataset (no numpy type)", raw_type(quad))
    int24 = h5py.h5t.STD_I32LE.copy()
    int24.set_size(3)
    h5("int24", "a 3-byte integer dataset", raw_type(int24))
    h5("time", "an H5T_TIME dataset", raw_type(h5py.h5t.UNIX_D32LE.copy()))
    opaque = h5py.h5t.create(h5py.h5t.OPAQUE, 4)
    opaque.set_tag(b"vendor blob")
    h5("opaque-tagged", "an opaque type with a tag HDF5 cannot convert", raw_type(opaque))
    spad = h5py.h5t.C_S1.copy()
    spad.set_size(8)
    spad.set_strpad(h5py.h5t.STR_SPACEPAD)
    h5("string-spacepad", "space-padded strings (Fortran): bytes in the file are not numpy's", raw_type(spad))
    c.cases[-1]["may_open"] = True
    prec = h5py.h5t.STD_I16LE.copy()
    prec.set_precision(12)
    prec.set_offset(4)
    h5("int-precision-offset", "12-bit integers at bit offset 4: bytes in the file are not numpy's", raw_type(prec))
    c.cases[-1]["may_open"] = True
    h5("array-type", "an HDF5 array type (read as trailing axes)",
       raw_type(h5py.h5t.array_create(h5py.h5t.IEEE_F32LE, (3,))))
    c.cases[-1]["may_open"] = True

    def dot_through_link(f: Any) -> None:
        f["ext"] = h5py.ExternalLink("../outside/secret.h5", "/data")
        layout = h5py.VirtualLayout(shape=(16,), dtype="<f8")
        layout[:] = h5py.VirtualSource(".", "/ext", shape=(16,))
        f.create_virtual_dataset("x", layout)

    h5("virtual-dot-external-link", "a virtual dataset whose source '.' resolves to an external link",
       dot_through_link)
    h5("virtual-missing", "a virtual dataset whose source is missing beside it (HDF5 would try the cwd)",
       lambda f: vds(f, "nowhere-beside-it.h5"))
    h5("virtual-self", "a virtual dataset whose source is itself",
       lambda f: (f.create_dataset("data", data=np.arange(16.0)), vds(f, ".")))
    h5("attrs-17mib", "a 17 MiB _arraystore_attrs (variable-length string)",
       lambda f: f.create_dataset("x", data=np.arange(4)).attrs.__setitem__(
           "_arraystore_attrs", '{"k": "' + "x" * (17 << 20) + '"}'))


# -- Zarr ----------------------------------------------------------------------------------

ZARR_ARRAY: dict[str, Any] = {
    "zarr_format": 3, "node_type": "array", "shape": [16], "data_type": "float64",
    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [8]}},
    "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
    "fill_value": 0.0, "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
    "attributes": {}, "dimension_names": None,
}


def zstd_rle_bomb(nbytes: int) -> bytes:
    """A zstd frame of RLE blocks that declares and decodes to ``nbytes`` zero bytes (a few bytes per 128 KiB)."""
    out = bytearray(struct.pack("<I", 0xFD2FB528))
    out.append(0xE0)  # frame content size in 8 bytes, single segment
    out += struct.pack("<Q", nbytes)
    block = 128 * 1024
    left = nbytes
    while left:
        n = min(block, left)
        left -= n
        hdr = (1 if left == 0 else 0) | (1 << 1) | (n << 3)  # last flag, RLE type, size
        out += struct.pack("<I", hdr)[:3] + b"\0"
    return bytes(out)


def gzip_bomb(nbytes: int) -> bytes:
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    parts = [co.compress(chunk) for _ in range(nbytes >> 20)]
    parts.append(co.flush())
    return b"".join(parts)


def zarr_cases(c: Corpus) -> None:
    def arr(name: str, why: str, meta: Any, chunks: dict[str, bytes] | None = None, key: str = "",
            raw_meta: bytes | None = None) -> None:
        root = c.folder(f"zarr/{name}.zarr")
        (root / "zarr.json").write_bytes(raw_meta if raw_meta is not None else json.dumps(meta).encode())
        for k, v in (chunks or {}).items():
            p = root / k
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(v)
        c.add(f"zarr/{name}", f"zarr/{name}.zarr" + (f"::{key}" if key else ""), why, backend="zarr")

    def changed(**kw: Any) -> dict[str, Any]:
        d: dict[str, Any] = json.loads(json.dumps(ZARR_ARRAY))
        for k, v in kw.items():
            if v is _DROP:
                d.pop(k, None)
            else:
                d[k] = v
        return d

    group = {"zarr_format": 3, "node_type": "group", "attributes": {}}
    for n, key in {"dotdot": "../outside", "deep-dotdot": "a/../../b", "abs-double": "//etc/passwd",
                   "backslash": "..\\..\\x", "nul": "a\0b", "dot": "./a", "empty-seg": "a//b"}.items():
        arr(f"key-{n}", f"a key {key!r} that leaves the store", group, key=key)
    for n, body in {"garbage": b"\x00\xff garbage", "empty": b"", "list": b"[]", "string": b'"zarr"',
                    "truncated": json.dumps(ZARR_ARRAY).encode()[:50],
                    "deep": b"[" * 100000 + b"]" * 100000}.items():
        arr(f"meta-{n}", f"zarr.json is {n}", None, raw_meta=body)
    kws: dict[str, dict[str, Any]] = {
        "node-type-file": {"node_type": "file"}, "format-2": {"zarr_format": 2}, "format-99": {"zarr_format": 99},
        "no-shape": {"shape": _DROP}, "no-dtype": {"data_type": _DROP}, "no-codecs": {"codecs": _DROP},
        "shape-negative": {"shape": [-16]}, "shape-string": {"shape": "16"}, "shape-huge": {"shape": [2**70]},
        "shape-overflow": {"shape": [2**40, 2**40], "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [8, 8]}}},
        "chunks-rank": {"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [8, 8]}}},
        "chunks-zero": {"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [0]}}},
        "chunks-negative": {"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [-8]}}},
        "chunks-huge": {"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2**40]}}},
        "chunk-grid-unknown": {"chunk_grid": {"name": "rectilinear", "configuration": {}}},
        "codec-unknown": {"codecs": [{"name": "bytes"}, {"name": "totally-unknown"}]},
        "codec-no-bytes": {"codecs": [{"name": "gzip", "configuration": {"level": 1}}]},
        "codec-endian-bad": {"codecs": [{"name": "bytes", "configuration": {"endian": "middle"}}]},
        "codec-transpose-bad": {"codecs": [{"name": "transpose", "configuration": {"order": [3, 1]}},
                                           {"name": "bytes"}]},
        "codec-pickle": {"codecs": [{"name": "bytes"}, {"name": "numcodecs.pickle"}]},
        "dtype-unknown": {"data_type": "complex512"}, "dtype-object": {"data_type": "object"},
        "dtype-number": {"data_type": 5}, "fill-wrong": {"fill_value": "not a number"},
        "key-encoding-bad": {"chunk_key_encoding": {"name": "default", "configuration": {"separator": "../"}}},
    }
    for n, kw in kws.items():
        arr(f"inconsistent-{n}", f"zarr.json with {str(kw)[:60]}", changed(**kw))
    gz = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "gzip", "configuration": {"level": 1}}]
    zs = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 1}}]
    big_grid = {"name": "regular", "configuration": {"chunk_shape": [2**29]}}
    arr("bomb-zstd-4gb-chunk", "a 4 GB chunk shape whose tiny zstd chunk decodes to 4 GB",
        changed(shape=[2**29], chunk_grid=big_grid, codecs=zs), {"c/0": zstd_rle_bomb(2**32)})
    arr("bomb-zstd-small-chunk", "a 128-byte chunk whose zstd frame decodes to 4 GB",
        changed(codecs=zs), {"c/0": zstd_rle_bomb(2**32), "c/1": zstd_rle_bomb(2**32)})
    arr("bomb-gzip-small-chunk", "a 64-byte chunk whose gzip stream decodes to 256 MB",
        changed(codecs=gz), {"c/0": gzip_bomb(256 << 20)})
    arr("bomb-gzip-4gb-chunk", "a 4 GB chunk shape, gzip",
        changed(shape=[2**29], chunk_grid=big_grid, codecs=gz), {"c/0": gzip.compress(b"\0" * 1024)})
    arr("chunk-corrupt-gzip", "a chunk that is not gzip", changed(codecs=gz), {"c/0": b"not gzip at all"})
    arr("chunk-wrong-size", "an uncompressed chunk of the wrong size", changed(), {"c/0": b"\0" * 10})
    arr("chunk-folder", "a chunk that is a folder (Zarr reads it as a missing chunk)", changed(), {"c/0/x": b"\0" * 64})
    c.cases[-1]["may_open"] = True
    root = c.folder("zarr/chunk-symlink.zarr")
    (root / "zarr.json").write_text(json.dumps(changed(shape=[8], data_type="uint8")))
    (root / "c").mkdir(exist_ok=True)
    os.symlink("/etc/hostname", root / "c" / "0")
    c.add("zarr/chunk-symlink", "zarr/chunk-symlink.zarr", "a chunk that is a symlink outside the store",
          backend="zarr")
    root = c.folder("zarr/huge-meta.zarr")
    with open(root / "zarr.json", "wb") as f:
        f.write(b'{"zarr_format": 3, "node_type": "array", "pad": "' + b" " * (17 << 20) + b'"}')
    c.add("zarr/huge-meta", "zarr/huge-meta.zarr", "a 17 MB zarr.json", backend="zarr")
    root = c.folder("zarr/v2-pickle.zarr")
    (root / ".zarray").write_text(json.dumps({
        "zarr_format": 2, "shape": [2], "chunks": [2], "dtype": "|O", "compressor": None, "fill_value": None,
        "order": "C", "filters": [{"id": "pickle"}]}))
    (root / "0").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    c.add("zarr/v2-pickle", "zarr/v2-pickle.zarr", "a v2 object array with the pickle codec", backend="zarr")
    root = c.folder("zarr/v2-dtype-bad.zarr")
    (root / ".zarray").write_text(json.dumps({"zarr_format": 2, "shape": [2], "chunks": [2], "dtype": "<q9",
                                              "compressor": None, "fill_value": 0, "order": "C", "filters": None}))
    c.add("zarr/v2-dtype-bad", "zarr/v2-dtype-bad.zarr", "a v2 array with an unknown dtype", backend="zarr")
    import zipfile

    with zipfile.ZipFile(c.root / "zarr/zip-traversal.zip", "w") as zf:
        zf.writestr("zarr.json", json.dumps(changed()))
        zf.writestr("../../evil", b"x")
        zf.writestr("c/0", b"\0" * 64)
    c.add("zarr/zip-traversal", "zarr/zip-traversal.zip", "a zip store with a ../ member (never extracted: harmless)",
          backend="zarr", may_open=True)
    with zipfile.ZipFile(c.root / "zarr/zip-bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zarr.json", json.dumps(changed(codecs=gz)))
        zf.writestr("c/0", gzip_bomb(64 << 20))
    c.add("zarr/zip-bomb", "zarr/zip-bomb.zip", "a zip store whose chunk member is a gzip bomb", backend="zarr")
    c.write("zarr/zip-garbage.zip", b"PK\x03\x04" + b"\0" * 100)
    c.add("zarr/zip-garbage", "zarr/zip-garbage.zip", "a zip that is not one", backend="zarr")
    c.folder("zarr/empty-folder.zarr")
    c.add("zarr/empty-folder", "zarr/empty-folder.zarr", "an empty .zarr folder", backend="zarr")


# -- header dialects -----------------------------------------------------------------------


def dialect_cases(c: Corpus) -> None:
    def pair(name: str, why: str, header_name: str, header: bytes | str, data_name: str, data: bytes,
             open_name: str | None = None) -> None:
        d = c.folder(f"dialects/{name}")
        (d / header_name).write_bytes(header.encode() if isinstance(header, str) else header)
        if data_name:
            (d / data_name).write_bytes(data)
        c.add(f"dialects/{name}", f"dialects/{name}/{open_name or data_name}", why, backend="raw")

    envi_ok = {"samples": "4", "lines": "4", "bands": "1", "header offset": "0", "data type": "4",
               "interleave": "bsq", "byte order": "0"}

    def envi(**kw: str | None) -> str:
        d = dict(envi_ok)
        for k, v in kw.items():
            k = k.replace("_", " ")
            if v is None:
                d.pop(k, None)
            else:
                d[k] = v
        return "ENVI\n" + "".join(f"{k} = {v}\n" for k, v in d.items())

    envis: dict[str, str | bytes] = {
        "no-samples": envi(samples=None), "no-lines": envi(lines=None), "no-dtype": envi(data_type=None),
        "negative": envi(samples="-4"), "zero": envi(bands="0"), "enormous": envi(samples="99999999999", lines="99999999999"),
        "overflow": envi(samples=str(2**40), lines=str(2**40), bands=str(2**40)), "dtype-99": envi(data_type="99"),
        "dtype-text": envi(data_type="float"), "byteorder-7": envi(byte_order="7"), "offset-past-end": envi(header_offset="999999"),
        "offset-negative": envi(header_offset="-10"), "interleave-xyz": envi(interleave="xyz"),
        "samples-float": envi(samples="4.5"), "unclosed-brace": envi() + "description = { never closed\n",
        "binary": b"ENVI\n\x00\xff\xfe" * 100, "huge": "ENVI\n" + "description = {" + "x" * (2 << 20) + "}\n",
        "file-type-other": envi() + "file type = ENVI Spectral Library\n",
    }
    for n, h in envis.items():
        pair(f"envi-{n}", f"ENVI header: {n}", "scene.hdr", h, "scene.img", b"\0" * 64)
    c.cases[-1]["may_open"] = True  # a spectral library is still a valid raster of numbers
    pair("envi-data-missing", "ENVI header whose data file is missing", "scene.hdr", envi(), "", b"",
         open_name="scene.hdr")
    pair("envi-truncated-data", "ENVI data shorter than the header says", "scene.hdr", envi(), "scene.img", b"\0" * 10)

    ehdr_ok = {"NROWS": "4", "NCOLS": "4", "NBANDS": "1", "NBITS": "32", "PIXELTYPE": "FLOAT", "BYTEORDER": "I"}

    def ehdr(**kw: str | None) -> str:
        d = dict(ehdr_ok)
        for k, v in kw.items():
            if v is None:
                d.pop(k, None)
            else:
                d[k] = v
        return "".join(f"{k} {v}\n" for k, v in d.items())

    ehdrs = {"no-nrows": ehdr(NROWS=None), "nbits-7": ehdr(NBITS="7"), "pixeltype-bad": ehdr(PIXELTYPE="COMPLEXQ"),
             "byteorder-q": ehdr(BYTEORDER="Q"), "nbands-0": ehdr(NBANDS="0"), "huge": ehdr(NROWS=str(2**40), NCOLS=str(2**40)),
             "skipbytes-past": ehdr(SKIPBYTES="999999"), "negative": ehdr(NCOLS="-4"), "text-dims": ehdr(NROWS="four"),
             "bandrowbytes-bad": ehdr(BANDROWBYTES="3")}
    for n, h in ehdrs.items():
        pair(f"ehdr-{n}", f"EHdr header: {n}", "dem.hdr", h, "dem.bil", b"\0" * 64)

    mhd_ok = {"ObjectType": "Image", "NDims": "2", "DimSize": "4 4", "ElementType": "MET_FLOAT",
              "ElementByteOrderMSB": "False", "ElementDataFile": "ct.raw"}

    def mhd(**kw: str | None) -> str:
        d = dict(mhd_ok)
        for k, v in kw.items():
            if v is None:
                d.pop(k, None)
            else:
                d[k] = v
        edf = d.pop("ElementDataFile", None)
        body = "".join(f"{k} = {v}\n" for k, v in d.items())
        return body + (f"ElementDataFile = {edf}\n" if edf is not None else "")

    mhds = {"ndims-mismatch": mhd(NDims="3"), "dimsize-negative": mhd(DimSize="-4 4"), "elementtype-bad": mhd(ElementType="MET_QUAD"),
            "datafile-outside": mhd(ElementDataFile="../../outside/secret.bin"), "datafile-abs": mhd(ElementDataFile="/etc/passwd"),
            "datafile-list": mhd(ElementDataFile="LIST"), "headersize-past": mhd(HeaderSize="999999"),
            "compressed": mhd(CompressedData="True"), "huge": mhd(DimSize=f"{2**40} {2**40}"), "ndims-huge": mhd(NDims="100000"),
            "no-datafile": mhd(ElementDataFile=None), "channels-huge": mhd(ElementNumberOfChannels=str(2**40)),
            "pattern": mhd(ElementDataFile="slice%03d.raw 1 10 1"), "binary-false": mhd(BinaryData="False")}
    for n, h in mhds.items():
        pair(f"mhd-{n}", f"MetaImage header: {n}", "ct.mhd", h, "ct.raw", b"\0" * 64, open_name="ct.mhd")
    inline = mhd(ElementDataFile="LOCAL").encode()
    pair("mha-truncated", "a .mha whose inline data is cut short", "ct.mha", inline + b"\0" * 10, "", b"", "ct.mha")
    pair("mha-garbage", "a .mha that is garbage", "ct.mha", b"\xff\x00" * 100, "", b"", "ct.mha")

    def idx(name: str, why: str, body: bytes) -> None:
        c.write(f"dialects/idx-{name}/train-images-idx3-ubyte", body)
        c.add(f"dialects/idx-{name}", f"dialects/idx-{name}/train-images-idx3-ubyte", why, backend="raw")

    idx("wrong-magic", "IDX with a bad magic", b"\x01\x02\x08\x03" + struct.pack(">III", 2, 2, 2) + b"\0" * 8)
    idx("dtype-bad", "IDX with type code 0x42", b"\0\0\x42\x03" + struct.pack(">III", 2, 2, 2) + b"\0" * 8)
    idx("ndim-0", "IDX with 0 dimensions", b"\0\0\x08\x00" + b"\0" * 8)
    idx("ndim-255", "IDX with 255 dimensions", b"\0\0\x08\xff" + struct.pack(">I", 1) * 10)
    idx("dims-huge", "IDX with 4-billion-long axes", b"\0\0\x08\x03" + struct.pack(">III", 2**32 - 1, 2**32 - 1, 2**32 - 1))
    idx("truncated-dims", "IDX cut inside its dimensions", b"\0\0\x08\x03" + b"\0\0\0\x02")
    idx("truncated-data", "IDX with too little data", b"\0\0\x08\x03" + struct.pack(">III", 10, 28, 28) + b"\0" * 100)
    idx("empty", "an empty IDX file", b"")


def make(out: Path) -> list[Case]:
    """Write the whole corpus into ``out``; returns the cases (also in ``out/manifest.json``)."""
    c = Corpus(out)
    raw_cases(c)
    npy_cases(c)
    dialect_cases(c)
    hdf5_cases(c)
    zarr_cases(c)
    (out / "manifest.json").write_text(json.dumps(c.cases, indent=1))
    return c.cases


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    cases = make(Path(args[0]))
    print(f"{len(cases)} cases written to {args[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
