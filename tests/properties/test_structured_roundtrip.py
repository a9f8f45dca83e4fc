"""Property: every structured dtype round-trips exactly on every backend, or is refused at ``create``.

Exactly means: the same dtype (names, titles, formats, offsets, itemsize, nesting,
sub-array shapes, byte orders) and the same bytes in every field. Padding bytes are
not compared: docs/fidelity.md says they are not kept. Refused means
``UnsupportedDtypeError`` before a byte is written, nothing left in the folder.
numpy is the oracle for what has a portable description (``dtype.descr`` is
undefined for overlapping or out-of-order fields).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import arraystore
from arraystore.errors import UnsupportedDtypeError
from arraystore.fidelity import Support
from arraystore.registry import backend_class
from arraystore.testing import sample_data

BACKENDS = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}
_LEAVES = [
    "?", "u1", "<i2", ">i2", "<u4", ">i8", "<f2", ">f4", "<f8", ">f8", "<c8", ">c16",
    "S1", "S5", "<U2", ">U1", "<M8[s]", ">m8[ms]", "V3", "V0",
]  # fmt: skip
_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=6)


@st.composite
def structured(draw: st.DrawFn, depth: int = 0) -> np.dtype[Any]:
    n = draw(st.integers(1, 4))
    names = draw(st.lists(_NAMES, min_size=n, max_size=n, unique=True))
    formats: list[Any] = []
    for _ in range(n):
        if depth < 2 and draw(st.integers(0, 5)) == 0:
            sub: Any = draw(structured(depth + 1))
        else:
            sub = np.dtype(draw(st.sampled_from(_LEAVES)))
        shape = draw(st.sampled_from([(), (), (), (2,), (1, 3), (0,)]))
        try:
            formats.append(np.dtype((sub, shape)) if shape else sub)
        except ValueError:  # numpy has no sub-array of zero-size items
            formats.append(sub)
    offsets, pos = [], 0
    for f in formats:
        pos += draw(st.integers(0, 3))  # padding before the field
        offsets.append(pos)
        pos += f.itemsize
    layout = draw(st.sampled_from(["packed", "packed", "packed", "shuffled", "overlap"]))
    if layout == "shuffled" and n > 1:
        perm = draw(st.permutations(range(n)))
        names, formats = [names[i] for i in perm], [formats[i] for i in perm]
        offsets = [offsets[i] for i in perm]
    elif layout == "overlap" and n > 1:
        offsets[-1] = max(0, offsets[-1] - draw(st.integers(1, 4)))
    spec: dict[str, Any] = {
        "names": names,
        "formats": formats,
        "offsets": offsets,
        "itemsize": max([o + f.itemsize for o, f in zip(offsets, formats)] + [1]) + draw(st.integers(0, 3)),
    }
    if draw(st.integers(0, 7)) == 0:
        spec["titles"] = [f"T{i}:{name}" for i, name in enumerate(names)]
    try:
        return np.dtype(spec)
    except (ValueError, TypeError):
        assume(False)
        raise  # unreachable


def _walk(dtype: np.dtype[Any]) -> list[tuple[np.dtype[Any], str]]:
    """Every (field dtype, name) at every level, sub-arrays unwrapped."""
    out: list[tuple[np.dtype[Any], str]] = []
    if dtype.subdtype is not None:
        out += [(dtype, "")] + _walk(dtype.subdtype[0])
    elif dtype.names is not None:
        for name in dtype.names:
            sub = dtype.fields[name][0]  # type: ignore[index]
            out += [(sub, name)] + _walk(sub)
    return out


def _portable(dtype: np.dtype[Any]) -> bool:
    try:
        dtype.descr  # noqa: B018 - numpy refuses overlapping or out-of-order fields here
    except ValueError:
        return False
    return True


def _expect_refusal(backend: str, dtype: np.dtype[Any]) -> bool:
    if not _portable(dtype):
        return True
    cls = backend_class(backend)
    if cls.fidelity.support(dtype)[0] is Support.NO:
        return True
    if backend == "hdf5":  # C-string member names, members of at least one byte
        return any("\x00" in name or sub.itemsize == 0 for sub, name in _walk(dtype))
    return False


def _fields_bytes(arr: np.ndarray[Any, Any]) -> list[bytes]:
    """The bytes of every leaf field, padding excluded."""
    dtype = arr.dtype
    if dtype.names is None:
        return [np.ascontiguousarray(arr).tobytes()]
    out: list[bytes] = []
    for name in dtype.names:
        out += _fields_bytes(arr[name])
    return out


def _same_dtype(a: np.dtype[Any], b: np.dtype[Any]) -> bool:
    if a != b or a.itemsize != b.itemsize or a.shape != b.shape:
        return False
    if a.subdtype is not None:
        return b.subdtype is not None and _same_dtype(a.subdtype[0], b.subdtype[0])
    if a.names is None:
        return a.str == b.str
    if a.names != b.names or a.fields is None or b.fields is None:
        return False
    return all(
        a.fields[n][1:] == b.fields[n][1:] and _same_dtype(a.fields[n][0], b.fields[n][0]) for n in a.names
    )


LAYOUTS = [(b, {}) for b in BACKENDS] + [
    ("hdf5", {"chunks": (2,), "compression": "zstd:1"}),
    ("zarr", {"chunks": (2,), "compression": "zstd:1"}),
]


@pytest.mark.parametrize(("backend", "layout"), LAYOUTS, ids=[f"{b}{'-chunked' if k else ''}" for b, k in LAYOUTS])
@given(dtype=structured())
def test_structured_round_trips_or_is_refused(backend: str, layout: dict[str, Any], dtype: np.dtype[Any]) -> None:
    data = sample_data(dtype, (3,), seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / f"a{BACKENDS[backend]}")
        if _expect_refusal(backend, dtype):
            with pytest.raises(UnsupportedDtypeError, match="cannot store"):
                arraystore.create(path, (3,), dtype, backend=backend, **layout)
            assert list(Path(tmp).iterdir()) == []
            return
        with arraystore.create(path, (3,), dtype, backend=backend, **layout) as s:
            s[...] = data
        with arraystore.open(path) as s:
            assert _same_dtype(s.dtype, dtype), (s.dtype, dtype)
            out = s[...]
        assert _same_dtype(out.dtype, dtype)
        assert _fields_bytes(out) == _fields_bytes(data)


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize(
    "spec",
    [
        {"names": ["a", "b"], "formats": ["<i4", "<i4"], "offsets": [4, 0]},  # out of order
        {"names": ["a", "b"], "formats": ["<i4", "<i2"], "offsets": [0, 2], "itemsize": 4},  # overlapping
        {"names": ["n", "in"], "formats": ["u1", [("x", "<i2"), ("y", "<i2")]], "offsets": [0, 1], "itemsize": 5},
    ],
)
def test_unportable_layouts_refused_before_writing(tmp_path: Path, backend: str, spec: dict[str, Any]) -> None:
    dtype = np.dtype(spec)
    if _portable(dtype):  # the nested case: put the inner fields out of order
        dtype = np.dtype(
            {"names": ["n", "in"], "formats": ["u1", np.dtype({"names": ["x", "y"], "formats": ["<i2", "<i2"],
                                                              "offsets": [2, 0]})], "offsets": [0, 1]}
        )  # fmt: skip
    with pytest.raises(UnsupportedDtypeError, match="offset"):
        arraystore.create(tmp_path / f"a{BACKENDS[backend]}", (2,), dtype, backend=backend)
    assert list(tmp_path.iterdir()) == []


def test_hdf5_refuses_what_compound_types_cannot_hold(tmp_path: Path) -> None:
    for dtype in (
        np.dtype([("a\x00b", "<i4")]),
        np.dtype([("a", "<i4"), ("b", "<i4", (0,))]),
        np.dtype([("a", "<i4"), ("b", "V0")]),
    ):
        with pytest.raises(UnsupportedDtypeError, match="hdf5 backend cannot store field"):
            arraystore.create(tmp_path / "a.h5", (2,), dtype)
        assert list(tmp_path.iterdir()) == []
        with arraystore.create(tmp_path / "a.dat", (2,), dtype) as s:  # the raw backend keeps them
            s[...] = sample_data(dtype, (2,))
        with arraystore.open(tmp_path / "a.dat") as s:
            assert s.dtype == dtype and s.dtype.names == dtype.names
        for p in tmp_path.iterdir():
            p.unlink()


@pytest.mark.parametrize("to", ["a.dat", "a.npy", "a.zarr", "b.h5"])
def test_convert_of_an_h5py_compound_with_out_of_order_fields_is_refused_cleanly(tmp_path: Path, to: str) -> None:
    import h5py

    dtype = np.dtype({"names": ["a", "b"], "formats": ["<i4", "<f4"], "offsets": [4, 0]})
    with h5py.File(tmp_path / "src.h5", "w") as f:  # h5py writes such compound types
        f.create_dataset("x", data=np.zeros(3, dtype))
    with pytest.raises(UnsupportedDtypeError, match="offset order"):
        arraystore.convert(f"{tmp_path / 'src.h5'}::/x", tmp_path / to)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.h5"]
