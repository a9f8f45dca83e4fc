"""Map a resolved legacy file (an ``ArrayMeta`` plus a data offset) to Zarr v3 chunk references.

A legacy file holds one contiguous run of fixed-size items in one byte order, in C or
Fortran order. Chunked along its slowest axis, each Zarr chunk is one contiguous byte range
of the file: the reference ``(file, offset, length)``. The byte order becomes the ``bytes``
codec's ``endian``; Fortran order becomes a ``transpose`` codec reversing the axes.

Zarr expects every chunk to be full-size (zarr-python's ``bytes`` codec reshapes the chunk's
bytes to the chunk shape and fails on a short one), so the chunk length along the axis that is
split always *divides* that axis: no edge chunk is ever partial. When the slowest axis has no
divisor near the target (a prime length), the split moves to the next faster axis, and
chunks may be smaller than ``chunk_bytes`` (see :func:`chunk_shape`).
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._attrs import encode_attrs
from ..errors import UnsupportedDtypeError
from ..meta import ArrayMeta, dtype_from_json, dtype_to_json

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "ChunkRef",
    "VirtualArray",
    "check_expressible",
    "chunk_shape",
    "layout_of",
]

#: Default target size of one chunk reference (bytes). Measured with ``tools/bench_virtual.py``
#: (64 MiB array, 1-64 MiB chunks): zarr-python reads 2-4 MiB chunks as fast or faster than
#: 16 MiB ones, warm and cold (it reads several at once, in threads), and holds 4x less memory in
#: flight (about ten chunks at a time); 32-64 MiB chunks read 2-3x slower.
DEFAULT_CHUNK_BYTES = 4 << 20

#: Attribute under which each virtual array records where its bytes are.
VIRTUAL_KEY = "arraystore.virtual"


@dataclass(frozen=True)
class ChunkRef:
    """One chunk: its index in the chunk grid and the byte range of the source file holding it."""

    index: tuple[int, ...]
    offset: int
    length: int

    @property
    def key(self) -> str:
        """The chunk's key relative to its array (Zarr v3 default encoding, ``/`` separator)."""
        return "c/" + "/".join(str(i) for i in self.index) if self.index else "c"


def check_expressible(dtype: np.dtype[Any]) -> None:
    """Refuse a dtype that virtual Zarr cannot express with a standard data type.

    Booleans, integers, floats (16, 32, 64 bits), complex (64, 128 bits) are Zarr v3 core
    types; datetime64/timedelta64 are zarr-python's ``numpy.datetime64``/``numpy.timedelta64``
    types. Byte strings, unicode, structured and extended-precision types are refused: they
    have no core Zarr v3 type that other readers share (zarr-python marks its own as unstable).

    Raises
    ------
    UnsupportedDtypeError
        Naming the dtype and what to do (a copying migration).
    """
    ok = dtype.fields is None and (
        dtype.kind in "biu"
        or (dtype.kind == "f" and dtype.itemsize in (2, 4, 8))
        or (dtype.kind == "c" and dtype.itemsize in (8, 16))
        or dtype.kind in "mM"
    )
    if not ok:
        raise UnsupportedDtypeError(
            f"expected a dtype with a Zarr v3 core equivalent (bool, int, uint, float16/32/64, complex64/128, "
            f"datetime64, timedelta64), found {dtype.str} ({dtype}); migrate this file with a copying migration"
        )


@functools.lru_cache(maxsize=256)
def _layout(shape: tuple[int, ...], dtype: str, order: str) -> ArrayMeta:
    return ArrayMeta(shape, dtype_from_json(dtype), order)  # type: ignore[arg-type]  # ArrayMeta checks it


def layout_of(d: Mapping[str, Any]) -> ArrayMeta:
    """Shape, dtype and order of an ``ArrayMeta.to_dict()`` dict, without its attrs.

    The layouts of an archive's files are a handful shared by thousands: each is checked and
    built once, and the same ``ArrayMeta`` serves every file of that layout (read-only: do not
    change its ``attrs``).
    """
    shape, dtype, order = d.get("shape"), d.get("dtype"), d.get("order", "C")
    if isinstance(shape, list) and all(type(n) is int for n in shape) and isinstance(dtype, str) and isinstance(order, str):
        return _layout(tuple(shape), dtype, order)
    return ArrayMeta.from_dict({**d, "attrs": {}})


def chunk_shape(shape: Sequence[int], itemsize: int, order: str, chunk_bytes: int) -> tuple[int, ...]:
    """The largest chunk of at most ``chunk_bytes`` that is one contiguous byte range and divides the array.

    A chunk is 1 along the axes slower than the split axis, ``k`` along it (``k`` divides its
    length) and whole along the faster ones. Among all split axes the largest chunk wins (the
    slowest axis on a tie). A whole array under ``chunk_bytes`` is one chunk; a chunk never
    goes below one item.
    """
    shape = tuple(int(s) for s in shape)
    if not shape:
        return ()
    if any(s == 0 for s in shape):
        return tuple(max(1, s) for s in shape)
    slow_first = list(range(len(shape))) if order == "C" else list(range(len(shape) - 1, -1, -1))
    if math.prod(shape) * itemsize <= chunk_bytes:
        return shape
    best: tuple[int, int, int] = (itemsize, slow_first[-1], 1)  # (bytes, axis, k)
    for pos, ax in enumerate(slow_first):
        inner = itemsize * math.prod(shape[a] for a in slow_first[pos + 1 :])
        kmax = chunk_bytes // inner
        if kmax < 1:
            continue
        k = _largest_divisor(shape[ax], kmax)
        if k * inner > best[0]:
            best = (k * inner, ax, k)
    _, ax, k = best
    pos = slow_first.index(ax)
    out = [1] * len(shape)
    out[ax] = k
    for a in slow_first[pos + 1 :]:
        out[a] = shape[a]
    return tuple(out)


@functools.lru_cache(maxsize=256)
def _chunks(shape: tuple[int, ...], itemsize: int, order: str, chunk_bytes: int) -> tuple[int, ...]:
    return chunk_shape(shape, itemsize, order, chunk_bytes)


def _largest_divisor(n: int, at_most: int) -> int:
    if n <= at_most:
        return n
    best = 1
    i = 1
    while i * i <= n:
        if n % i == 0:
            for d in (i, n // i):
                if best < d <= at_most:
                    best = d
        i += 1
    return best


@dataclass(frozen=True)
class VirtualArray:
    """A legacy file exposed as a Zarr v3 array whose chunks are byte ranges of the file.

    Attributes
    ----------
    path
        The array's path in the virtual hierarchy (``/``-separated, no leading ``/``).
    source
        The file's path relative to the archive root (``/``-separated).
    meta
        Shape, dtype (with its byte order), order and attrs.
    offset
        Byte offset of the data in the file.
    chunks
        The chunk shape (see :func:`chunk_shape`).
    size, mtime_ns
        The file's size and modification time when it was referenced.
    checksum
        ``{"algorithm": "xxh3_128", "value": ...}`` of the file's whole content, or None
        (``--no-checksum``).
    json_attrs
        The attrs in their JSON form (``ArrayMeta.to_dict()["attrs"]``) when the caller has
        them: written as they are, and ``meta.attrs`` is not read (it may be empty).
    """

    path: str
    source: str
    meta: ArrayMeta
    offset: int
    chunks: tuple[int, ...]
    size: int
    mtime_ns: int
    checksum: dict[str, str] | None = None
    extra_attrs: dict[str, Any] = field(default_factory=dict)
    json_attrs: Mapping[str, Any] | None = None

    @classmethod
    def from_meta(
        cls,
        path: str,
        source: str,
        meta: ArrayMeta,
        offset: int,
        *,
        size: int,
        mtime_ns: int,
        checksum: dict[str, str] | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        json_attrs: Mapping[str, Any] | None = None,
    ) -> VirtualArray:
        """Plan the references of one file; refuse a dtype Zarr cannot express (:func:`check_expressible`)."""
        check_expressible(meta.dtype)
        if chunk_bytes < 1:
            raise ValueError(f"expected chunk_bytes of at least 1, found {chunk_bytes}")
        chunks = _chunks(meta.shape, meta.dtype.itemsize, meta.order, chunk_bytes)
        return cls(path, source, meta, offset, chunks, size, mtime_ns, checksum, json_attrs=json_attrs)

    def record(self) -> dict[str, Any]:
        """What the array's attrs record under ``arraystore.virtual`` (read by ``arraystore verify``)."""
        return {
            "source": self.source,
            "dtype": dtype_to_json(self.meta.dtype),
            "shape": list(self.meta.shape),
            "order": self.meta.order,
            "offset": self.offset,
            "nbytes": self.meta.nbytes,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "checksum": self.checksum,
        }

    def refs(self) -> Iterator[ChunkRef]:
        """Every chunk's byte range, in file order."""
        shape, chunks, itemsize = self.meta.shape, self.chunks, self.meta.dtype.itemsize
        if self.meta.nbytes == 0:
            return
        if shape == chunks:  # one chunk: the whole file's data
            yield ChunkRef((0,) * len(shape), self.offset, self.meta.nbytes)
            return
        grid = [s // c for s, c in zip(shape, chunks, strict=True)]
        strides = _strides(shape, itemsize, self.meta.order)
        length = math.prod(chunks) * itemsize
        for index in np.ndindex(*grid) if self.meta.order == "C" else _f_ndindex(grid):
            off = self.offset + sum(i * c * st for i, c, st in zip(index, chunks, strides, strict=True))
            yield ChunkRef(tuple(int(i) for i in index), off, length)

    def attrs(self) -> dict[str, Any]:
        """The array's attrs in their JSON form: the resolution's (provenance, evidence, header keys) and :meth:`record`."""
        return {**self._plain_attrs(), VIRTUAL_KEY: self.record()}

    def _plain_attrs(self) -> Mapping[str, Any]:
        return self.json_attrs if self.json_attrs is not None else encode_attrs(self.meta.attrs)

    def dimension_names(self) -> tuple[str, ...]:
        """``<array name>_<axis>`` per axis (the dialect's axis names, else ``dim_<i>``).

        Prefixed with the array's name so that xarray can open a whole group whose arrays
        have different sizes along axes of the same kind.
        """
        axes = (self.json_attrs if self.json_attrs is not None else self.meta.attrs).get("axes")
        if not (isinstance(axes, list) and len(axes) == self.meta.ndim and all(isinstance(a, str) for a in axes)):
            axes = [f"dim_{i}" for i in range(self.meta.ndim)]
        stem = self.path.rsplit("/", 1)[-1]
        return tuple(f"{stem}_{a}" for a in axes)


def _strides(shape: tuple[int, ...], itemsize: int, order: str) -> list[int]:
    strides = [0] * len(shape)
    step = itemsize
    axes = range(len(shape) - 1, -1, -1) if order == "C" else range(len(shape))
    for ax in axes:
        strides[ax] = step
        step *= shape[ax]
    return strides


def _f_ndindex(grid: Sequence[int]) -> Iterator[tuple[int, ...]]:
    for rev in np.ndindex(*reversed(grid)):
        yield tuple(reversed(rev))


def _endian(dtype: np.dtype[Any]) -> str | None:
    if dtype.itemsize == 1 or dtype.byteorder == "|":
        return None
    if dtype.byteorder == "=":
        return sys.byteorder
    return "big" if dtype.byteorder == ">" else "little"


def create_metadata(
    store: Any, name: str, meta: ArrayMeta, chunks: tuple[int, ...], attrs: dict[str, Any],
    dimension_names: Sequence[str] | None = None,
) -> None:
    """Write the ``zarr.json`` of an uncompressed array laid out as ``meta`` says (endian, transpose) into ``store``.

    zarr-python builds the document: the ``bytes`` codec's ``endian`` is passed explicitly
    (zarr-python would otherwise take the machine's), the data type in native order.
    """
    import warnings

    import zarr
    from zarr.codecs import BytesCodec, TransposeCodec

    dtype = meta.dtype
    filters = [TransposeCodec(order=tuple(range(meta.ndim - 1, -1, -1)))] if meta.order == "F" and meta.ndim > 1 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr-python's notes on datetime types being extensions
        zarr.create_array(
            store,
            name=name,
            shape=meta.shape,
            chunks=chunks or (),
            dtype=dtype.newbyteorder("=") if dtype.byteorder in "<>" else dtype,
            filters=filters,
            serializer=BytesCodec(endian=_endian(dtype)),  # type: ignore[arg-type]
            compressors=None,
            fill_value=None,
            attributes=attrs,
            dimension_names=dimension_names,
            zarr_format=3,
        )


def _group(attrs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"attributes": attrs or {}, "zarr_format": 3, "node_type": "group"}


def hierarchy_metadata(
    arrays: Sequence[VirtualArray],
    attrs: dict[str, Any] | None = None,
    *,
    consolidated: bool = False,
    extra: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every ``zarr.json`` of the hierarchy holding ``arrays`` (groups as the paths say), by key.

    zarr-python writes the document of each distinct layout (shape, dtype, order, chunks)
    once; arrays of the same layout reuse it with their own attributes and dimension names
    (thousands of small files are mostly a handful of layouts).

    ``consolidated=True`` adds zarr-python's consolidated metadata (the form
    ``zarr.consolidate_metadata`` writes) to the root group, so a reader that cannot list the
    store (fsspec's reference file system under zarr-python 3.1 lists subgroups wrongly)
    still finds every array.

    ``extra`` adds arrays written otherwise (the copies of the fallback): ``{path: zarr.json}``.
    """
    root, nodes, groups = _nodes(arrays, attrs, extra)
    if consolidated:
        ordered = sorted(nodes, key=lambda k: (k.count("/"), k))
        root["consolidated_metadata"] = {
            **_INLINE,
            "metadata": {
                k: ({**nodes[k], "consolidated_metadata": {**_INLINE, "metadata": {}}} if k in groups else nodes[k])
                for k in ordered
            },
        }
    out = {"zarr.json": root}
    out.update({f"{k}/zarr.json": v for k, v in nodes.items()})
    return out


_INLINE = {"kind": "inline", "must_understand": False}


def _nodes(
    arrays: Sequence[VirtualArray], attrs: dict[str, Any] | None, extra: dict[str, dict[str, Any]] | None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], set[str]]:
    """The root group's document, every other node's by path (groups first), and the group paths.

    The documents of arrays of one layout share the template's nested values (read-only).
    """
    import zarr

    templates: dict[tuple[Any, ...], dict[str, Any]] = {}
    docs: dict[str, dict[str, Any]] = {}
    groups: set[str] = set()
    for arr in arrays:
        parent = arr.path.rpartition("/")[0]
        while parent and parent not in groups:
            groups.add(parent)
            parent = parent.rpartition("/")[0]
        key = (arr.meta.shape, arr.meta.dtype.str, arr.meta.order, arr.chunks)  # structured dtypes are refused
        if key not in templates:
            store = zarr.storage.MemoryStore()
            create_metadata(store, "a", arr.meta, arr.chunks, {}, arr.dimension_names())
            templates[key] = json.loads(store._store_dict["a/zarr.json"].to_bytes())
        docs[arr.path] = {
            **templates[key], "attributes": arr.attrs(), "dimension_names": list(arr.dimension_names())
        }
    for path, doc in (extra or {}).items():
        parts = path.split("/")
        groups.update("/".join(parts[:i]) for i in range(1, len(parts)))
        docs[path] = doc
    nodes: dict[str, dict[str, Any]] = {g: _group() for g in sorted(groups)}
    nodes.update(docs)
    return _group(attrs), nodes, groups


def hierarchy_json(
    arrays: Sequence[VirtualArray],
    attrs: dict[str, Any] | None = None,
    *,
    extra: dict[str, dict[str, Any]] | None = None,
) -> dict[str, str]:
    """:func:`hierarchy_metadata` with ``consolidated=True``, as compact JSON text by key.

    Each node's document is encoded once: the root's consolidated metadata is put together
    from the same text (thousands of arrays' attrs and evidence are not encoded twice).
    """
    root, nodes, groups = _nodes(arrays, attrs, extra)
    text = {k: json.dumps(v, separators=(",", ":")) for k, v in nodes.items()}
    empty = json.dumps({**_INLINE, "metadata": {}}, separators=(",", ":"))
    inner = ",".join(
        json.dumps(k) + ":" + (text[k][:-1] + ',"consolidated_metadata":' + empty + "}" if k in groups else text[k])
        for k in sorted(nodes, key=lambda k: (k.count("/"), k))
    )
    head = json.dumps(root, separators=(",", ":"))[:-1]
    out = {"zarr.json": f'{head},"consolidated_metadata":{empty[:-3]}{{{inner}}}}}}}'}
    out.update({f"{k}/zarr.json": v for k, v in text.items()})
    return out
