"""The reader-side oracle every corpus test uses: open a foreign file with arraystore and check it all.

A case passes :func:`check_read` when arraystore gives the writer's array exactly:

* shape, and dtype equal to the expected one (the caller says which byte order arraystore
  promises: the stored one, or native where the docs say so);
* values bit for bit (``tobytes`` after both sides are put in the same byte order: NaN payloads,
  ``-0.0`` and padding-free structured items compare as bytes);
* ``iter_blocks`` reassembles to the same bytes, covering every element once;
* ``as_memmap`` gives the same bytes or raises :class:`~arraystore.errors.NotMemoryMappableError`;
* ``arraystore.convert`` to each backend either reopens with the same dtype and bytes or refuses
  with :class:`~arraystore.errors.UnsupportedDtypeError` before writing anything.

A case arraystore does not support is checked with :func:`check_refused`: the exact
:class:`~arraystore.errors.ArrayStoreError` subclass, never a wrong value or a bare exception.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arraystore
from arraystore.errors import ArrayStoreError, ConversionError, NotMemoryMappableError, UnsupportedDtypeError

__all__ = ["BACKENDS", "OUTCOMES", "check_read", "check_refused", "same_bytes", "to_dtype"]

#: Destination backends of the conversion check, by suffix.
BACKENDS = {"raw": ".dat", "npy": ".npy", "hdf5": ".h5", "zarr": ".zarr"}

#: What each passing check found, by test id: ``"same"`` / ``"refused"`` reads, and conversions
#: ``"convert-same"`` / ``"convert-refused"``; conftest.py prints the counts after the run.
OUTCOMES: dict[str, list[str]] = {}


def _record(*outcomes: str) -> None:
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0]
    OUTCOMES.setdefault(test, []).extend(outcomes)


def to_dtype(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``a`` in ``dtype`` when the two differ only in byte order: a byte swap, never a value cast."""
    a = np.asarray(a)
    dtype = np.dtype(dtype)
    if a.dtype == dtype:
        return a
    if a.dtype.names is None and a.dtype.newbyteorder("S") == dtype:
        return np.ascontiguousarray(a).byteswap().view(dtype)
    if a.dtype.names is not None and a.dtype.names == dtype.names and a.dtype.itemsize == dtype.itemsize:
        out = np.empty(a.shape, dtype)
        for name in dtype.names:
            out[name] = to_dtype(a[name], dtype.fields[name][0])
        return out
    if a.dtype.newbyteorder("=") == dtype.newbyteorder("="):  # single-byte or order-free kinds
        return a.view(dtype)
    raise AssertionError(f"dtype {a.dtype} is not {dtype} up to byte order")


def same_bytes(got: np.ndarray, want: np.ndarray, what: str = "values") -> None:
    """Assert same shape and the same bytes once ``want`` is in ``got``'s byte order."""
    got = np.asarray(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if got.dtype.names is not None:
        for name in got.dtype.names:  # compare fields: padding bytes between them are not values
            same_bytes(got[name], to_dtype(want[name], got.dtype.fields[name][0]), f"{what}[{name!r}]")
        return
    want = to_dtype(want, got.dtype)
    a, b = np.ascontiguousarray(got).tobytes(), np.ascontiguousarray(want).tobytes()
    if a != b:
        bad = np.flatnonzero(np.ascontiguousarray(got).view(np.uint8) != np.ascontiguousarray(want).view(np.uint8))
        raise AssertionError(
            f"{what} differ bitwise at byte(s) {bad[:8].tolist()} of {len(a)}: got {got.ravel()[:6]!r}, "
            f"want {want.ravel()[:6]!r}"
        )


def _check_blocks(store: Any, want: np.ndarray) -> None:
    out = np.zeros(want.shape, store.dtype)
    seen = np.zeros(want.shape, np.uint8)
    chunk = int(np.prod(store.chunks)) if store.chunks else 1
    for sel, block in store.iter_blocks(max_bytes=max(64, store.dtype.itemsize * chunk)):
        assert block.dtype == store.dtype, f"iter_blocks dtype {block.dtype} != {store.dtype}"
        out[sel] = block
        seen[sel] += 1
    assert (seen == 1).all(), "iter_blocks does not cover every element exactly once"
    same_bytes(out, want, "iter_blocks")


def _check_memmap(store: Any, want: np.ndarray) -> None:
    try:
        m = store.as_memmap()
    except NotMemoryMappableError:
        return
    assert m.dtype == store.dtype, f"as_memmap dtype {m.dtype} != {store.dtype}"
    same_bytes(np.array(m), want, "as_memmap")


def _check_convert(
    src: str, want: np.ndarray, dtype: np.dtype, tmp: Path, backends: Any, has_attrs: bool
) -> dict[str, str]:
    outcome = {}
    tmp = Path(tempfile.mkdtemp(dir=tmp))
    for backend in backends:
        dst = tmp / f"converted-{backend}{BACKENDS[backend]}"
        try:
            arraystore.convert(src, dst, verify=True)
        except ArrayStoreError as exc:
            # only a refusal before anything is written: a dtype the destination cannot hold, or attrs
            # into .npy (which has nowhere to keep them)
            attrs_to_npy = type(exc) is ConversionError and backend == "npy" and has_attrs
            if type(exc) is not UnsupportedDtypeError and not attrs_to_npy:
                raise
            assert not dst.exists(), f"convert to {backend} refused but left {dst}"
            outcome[backend] = "refused"
            continue
        with arraystore.open(dst) as out:
            assert out.dtype == dtype, f"convert to {backend}: dtype {out.dtype} != {dtype}"
            same_bytes(out[...], want, f"convert to {backend}")
        outcome[backend] = "same"
    return outcome


def check_read(
    path: str | Path,
    want: np.ndarray,
    tmp: Path,
    *,
    dtype: Any = None,
    attrs: dict[str, Any] | None = None,
    convert: Any = tuple(BACKENDS),
) -> dict[str, str]:
    """Open ``path`` with arraystore and check it against ``want`` (see the module docstring).

    Parameters
    ----------
    dtype
        The dtype arraystore must report; default ``want.dtype`` (the stored byte order).
    attrs
        Attributes arraystore promises (a subset of ``store.attrs``, compared with ``==``).
    convert
        Backends to convert to and reread.

    Returns
    -------
    dict
        ``backend -> "same" | "refused"`` for the conversions.
    """
    want = np.asarray(want)
    dtype = want.dtype if dtype is None else np.dtype(dtype)
    with arraystore.open(path) as store:
        assert store.shape == want.shape, f"shape {store.shape} != {want.shape}"
        assert store.dtype == dtype, f"dtype {store.dtype!r} != {dtype!r}"
        got = store[...]
        assert got.dtype == dtype, f"read dtype {got.dtype!r} != {dtype!r}"
        same_bytes(got, want)
        if want.ndim:
            same_bytes(store[-1:], want[-1:], "last row")
        if attrs:
            for k, v in attrs.items():
                assert k in store.attrs, f"attr {k!r} missing from {dict(store.attrs)}"
                assert store.attrs[k] == v, f"attr {k!r}: {store.attrs[k]!r} != {v!r}"
        _check_blocks(store, want)
        _check_memmap(store, want)
        has_attrs = bool(store.attrs)
    outcome = _check_convert(str(path), want, dtype, tmp, convert, has_attrs)
    _record("same", *(f"convert-{v}" for v in outcome.values()))
    return outcome


def check_refused(path: str | Path, error: type[ArrayStoreError], match: str | None = None) -> None:
    """Opening and reading ``path`` raises exactly ``error`` (not a parent class or a sibling)."""
    with pytest.raises(ArrayStoreError, match=match) as info, arraystore.open(path) as store:
        store[...]
    assert type(info.value) is error, f"expected {error.__name__}, got {type(info.value).__name__}: {info.value}"
    _record("refused")
