"""``ArrayStoreTests``: the conformance suite every backend runs.

A backend's test file sets a few class attributes and implements two oracle
hooks that use the native library (numpy, h5py, zarr) directly, never arraystore::

    class TestNpy(ArrayStoreTests):
        backend = "npy"
        suffix = ".npy"

        def oracle_read(self, path):
            return np.load(path)

        def oracle_write(self, path, data):
            np.save(path, data)
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytest

import arraystore
from arraystore.errors import (
    AlreadyExistsError,
    ArrayNotFoundError,
    ClosedStoreError,
    LockedError,
    ModeError,
    NotMemoryMappableError,
    NotPersistedWarning,
    ReadOnlyError,
    SelectionError,
    UnsupportedDtypeError,
    ValueOutOfRangeError,
)
from arraystore.fidelity import Support
from arraystore.registry import backend_class
from arraystore.testing.dtypes import CONFORMANCE_DTYPES, sample_data

__all__ = ["ArrayStoreTests", "bit_equal"]


def bit_equal(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    """Same dtype, shape and bytes (so NaN payloads and -0.0 count)."""
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and a.tobytes() == b.tobytes()  # tobytes() is C order whatever the layout
    )


def _dtype_id(d: np.dtype[Any]) -> str:
    return str(d) if d.names is None else "struct" + d.str + ("-be" if ">" in str(d.descr) else "")


_SHAPES = [(), (0,), (5,), (3, 0, 2), (4, 5), (2, 3, 4)]


class ArrayStoreTests:
    """The contract of :class:`arraystore.ArrayStore`, checked against one backend."""

    backend: ClassVar[str]
    suffix: ClassVar[str]
    #: Extra arguments to ``create`` (e.g. ``{"chunks": (2, 2)}``).
    create_kwargs: ClassVar[dict[str, Any]] = {}
    #: Extra arguments to ``open`` and ``create`` (e.g. ``{"io": "buffered"}``).
    open_kwargs: ClassVar[dict[str, Any]] = {}
    #: False for formats without a place for attributes (npy).
    supports_attrs: ClassVar[bool] = True

    # -- hooks -------------------------------------------------------------

    def oracle_read(self, path: str) -> np.ndarray[Any, Any]:
        """Read the array at ``path`` with the native library (not arraystore)."""
        raise NotImplementedError

    def oracle_write(self, path: str, data: np.ndarray[Any, Any]) -> None:
        """Write ``data`` at ``path`` with the native library, as other tools would."""
        raise NotImplementedError

    def open(self, path: str, mode: str = "r", **kwargs: Any) -> Any:
        """``arraystore.open`` with the suite's ``open_kwargs``."""
        return arraystore.open(path, mode, **{**self.open_kwargs, **kwargs})

    # -- fixtures ----------------------------------------------------------

    @pytest.fixture
    def path(self, tmp_path: Path) -> str:
        return str(tmp_path / f"array{self.suffix}")

    @property
    def store_cls(self) -> Any:
        """The backend's store class."""
        return backend_class(self.backend)

    def supported(self, dtype: np.dtype[Any]) -> bool:
        """True when the backend's fidelity table stores ``dtype`` (exactly or encoded)."""
        return bool(self.store_cls.fidelity.support(dtype)[0] is not Support.NO)

    def make(self, path: str, data: np.ndarray[Any, Any], order: Literal["C", "F"] = "C", **kwargs: Any) -> None:
        """Create an array at ``path`` holding ``data`` through arraystore, and close it."""
        with arraystore.create(
            path, data.shape, data.dtype, backend=self.backend, order=order, **{**self.open_kwargs, **self.create_kwargs, **kwargs}
        ) as s:
            s[...] = data

    # -- dtypes and shapes -------------------------------------------------

    @pytest.mark.parametrize("dtype", CONFORMANCE_DTYPES, ids=_dtype_id)
    def test_dtype_round_trip(self, path: str, dtype: np.dtype[Any]) -> None:
        data = sample_data(dtype, (3, 4), seed=7)
        if not self.supported(dtype):
            with pytest.raises(UnsupportedDtypeError):
                arraystore.create(path, data.shape, dtype, backend=self.backend, **self.create_kwargs)
            assert os.listdir(os.path.dirname(path)) == []
            return
        self.make(path, data)
        with self.open(path) as s:
            assert s.dtype == dtype
            assert bit_equal(s[...], data)
        assert bit_equal(self.oracle_read(path), data)

    @pytest.mark.parametrize("shape", _SHAPES, ids=str)
    @pytest.mark.parametrize("order", ["C", "F"])
    def test_shape_and_order(self, path: str, shape: tuple[int, ...], order: Literal["C", "F"]) -> None:
        data = sample_data(np.dtype("<f4"), shape, seed=1)
        self.make(path, data, order=order)
        with self.open(path) as s:
            assert s.shape == shape
            # the order the backend stores it in (HDF5: C unless the transposed layout is asked for)
            assert s.order == type(s).storage_order(order, **self.create_kwargs)
            assert s.nbytes == data.nbytes
            assert bit_equal(s[...], data)
            assert bit_equal(np.asarray(s), data)
        assert bit_equal(self.oracle_read(path), data)

    def test_oracle_written_file_opens(self, path: str) -> None:
        data = sample_data(np.dtype(">i4"), (6, 5), seed=3)
        self.oracle_write(path, data)
        with self.open(path) as s:
            assert s.backend == self.backend
            assert s.dtype == data.dtype
            assert bit_equal(s[...], data)

    # -- selections --------------------------------------------------------

    @pytest.mark.parametrize(
        "sel",
        [
            (0,),
            (-1,),
            (slice(1, 4),),
            (slice(None, None, 2), slice(1, None)),
            (slice(None, None, -1),),
            (Ellipsis, 2),
            (1, slice(4, 0, -2), Ellipsis),
            (slice(5, 2),),
        ],
        ids=str,
    )
    def test_slice_read_write(self, path: str, sel: tuple[Any, ...]) -> None:
        model = sample_data(np.dtype("<i8"), (6, 5, 4), seed=5)
        self.make(path, model)
        with self.open(path, "r+") as s:
            assert bit_equal(s[sel], model[sel])
            new = sample_data(np.dtype("<i8"), model[sel].shape, seed=11)
            s[sel] = new
            model[sel] = new
        with self.open(path) as s:
            assert bit_equal(s[...], model)

    def test_scalar_and_broadcast_writes(self, path: str) -> None:
        self.make(path, np.zeros((3, 4), "<f8"))
        with self.open(path, "r+") as s:
            s[1] = 2.5
            s[:, 0] = [1, 2, 3]
        expected = np.zeros((3, 4))
        expected[1] = 2.5
        expected[:, 0] = [1, 2, 3]
        assert bit_equal(self.oracle_read(path), expected)

    @pytest.mark.parametrize(
        "sel",
        [
            [4, 0, 4, -1],
            (slice(None), [3, 1]),
            (2, [1, 1, 0]),
            (2, slice(None, None, -2), [[0, 3], [1, 1]]),
            (slice(1, None), 1, np.array([2, 0])),
            (Ellipsis, []),
            np.array([True, False, True, True, False, False]),
            (slice(None), [True, False, False, True, True]),
            "full-mask",
        ],
        ids=str,
    )
    def test_array_and_mask_read_write(self, path: str, sel: Any) -> None:
        model = sample_data(np.dtype(">i8"), (6, 5, 4), seed=5)
        if isinstance(sel, str):
            sel = model % 3 == 0
        self.make(path, model)
        with self.open(path, "r+") as s:
            got = s[sel]
            assert bit_equal(got, model[sel]) and got.dtype == model.dtype
            new = sample_data(np.dtype("<i8"), model[sel].shape, seed=11)
            s[sel] = new
            model[sel] = new  # repeated indices: the last value wins in both
        with self.open(path) as s:
            assert bit_equal(s[...], model)

    def test_unsupported_indexing_is_refused(self, path: str) -> None:
        self.make(path, np.zeros((3, 4), "<f8"))
        with self.open(path, "r+") as s:
            for bad in ([0, 3], ([0, 1], [1, 2]), (None, 0), 3, (0, 0, 0), np.array([True, False]), [0.5]):
                with pytest.raises(SelectionError):
                    s[bad]
                with pytest.raises(SelectionError):
                    s[bad] = 0
            with pytest.raises(IndexError):  # SelectionError is an IndexError too
                s[0, 0, 0]

    def test_zero_d_results_keep_the_dtype(self, path: str) -> None:
        self.make(path, np.arange(12, dtype=">i2").reshape(3, 4))
        for io in ("auto", "mmap", "buffered"):
            with self.open(path, io=io) as s:
                got = s[1, 2]
                assert isinstance(got, np.ndarray) and got.shape == () and got.dtype == np.dtype(">i2")
                assert got == 6

    def test_python_ints_must_fit(self, path: str) -> None:
        self.make(path, np.zeros(3, "i1"))
        with self.open(path, "r+") as s:
            for bad in (300, -129, [1, 128]):
                with pytest.raises(ValueOutOfRangeError):
                    s[0:2] = bad
            with pytest.raises(OverflowError):
                s[0] = 2**64
            s[0] = -128
            s[1] = True
        assert self.oracle_read(path).tolist() == [-128, 1, 0]

    def test_iteration_is_numpys(self, path: str) -> None:
        data = np.arange(12, dtype="<u2").reshape(3, 4)
        self.make(path, data)
        with self.open(path) as s:
            rows = list(s)
            assert len(rows) == 3 and all(bit_equal(r, d) for r, d in zip(rows, data))

    def test_lossy_write_is_refused(self, path: str) -> None:
        self.make(path, np.zeros(3, "<i4"))
        with self.open(path, "r+") as s:
            with pytest.raises(UnsupportedDtypeError):
                s[...] = np.array([0.5, 1.5, 2.5])
            s[...] = np.array([1, 2, 3], dtype=np.int64)  # same kind: numpy's rule
        assert self.oracle_read(path).tolist() == [1, 2, 3]

    # -- blocks ------------------------------------------------------------

    @pytest.mark.parametrize("max_bytes", [8, 100, 1 << 20])
    def test_iter_blocks_cover_once(self, path: str, max_bytes: int) -> None:
        data = sample_data(np.dtype("<u2"), (7, 6, 5), seed=2)
        self.make(path, data)
        seen = np.zeros(data.shape, int)
        with self.open(path) as s:
            chunk_bytes = int(np.prod(s.chunks)) * 2 if s.chunks else 2
            for sel, block in s.iter_blocks(max(max_bytes, chunk_bytes)):
                assert bit_equal(block, data[sel])
                seen[sel] += 1
        assert (seen == 1).all()

    # -- persistence -------------------------------------------------------

    def test_flush_close_reopen(self, path: str) -> None:
        self.make(path, np.zeros((4, 4), "<f4"))
        s = self.open(path, "r+")
        s[2] = 7
        s.flush()
        s.flush(durable=True)
        assert self.oracle_read(path)[2].tolist() == [7, 7, 7, 7]
        s[3] = 8
        s.close()
        s.close()  # idempotent
        with self.open(path) as r:
            assert r[3].tolist() == [8, 8, 8, 8]

    def test_attrs_persist(self, path: str) -> None:
        attrs = {"units": "m/s", "scale": 0.5, "nested": {"a": [1, 2, None]}, "ünï": "cödé", "empty": {}}
        if not self.supports_attrs:
            with pytest.raises(arraystore.ArrayStoreError):
                arraystore.create(path, (2,), "f4", backend=self.backend, attrs=attrs, **self.create_kwargs)
            return
        with arraystore.create(path, (2,), "f4", backend=self.backend, attrs=attrs, **self.create_kwargs) as s:
            s[...] = 1
        with self.open(path, "r+") as s:
            assert dict(s.attrs) == attrs
            s.attrs["added"] = True
            del s.attrs["scale"]
        with self.open(path) as s:
            assert dict(s.attrs) == {**{k: v for k, v in attrs.items() if k != "scale"}, "added": True}
            with pytest.raises(ReadOnlyError):
                s.attrs["x"] = 1

    # -- modes -------------------------------------------------------------

    def test_read_only_mode(self, path: str) -> None:
        self.make(path, np.zeros(3, "<f4"))
        with self.open(path, "r") as s:
            with pytest.raises(ReadOnlyError):
                s[0] = 1
            with pytest.raises(PermissionError):  # ReadOnlyError is a PermissionError
                s[...] = 0

    def test_missing_and_existing(self, path: str) -> None:
        with pytest.raises(ArrayNotFoundError):
            self.open(path, backend=self.backend)
        with pytest.raises(FileNotFoundError):
            self.open(path, "r+", backend=self.backend)
        self.make(path, np.ones(3, "<f4"))
        with pytest.raises(AlreadyExistsError):
            arraystore.create(path, (3,), "f4", backend=self.backend, **self.create_kwargs)
        with pytest.raises(AlreadyExistsError):
            self.open(path, "w-", backend=self.backend, shape=(3,), dtype="f4", **self.create_kwargs)
        with self.open(path, "w+", backend=self.backend, shape=(2, 2), dtype="<i2", **self.create_kwargs) as s:
            s[...] = 5
        assert self.oracle_read(path).tolist() == [[5, 5], [5, 5]]

    @pytest.mark.parametrize("mode", ["rw", "w+b", "", "R", None])
    def test_invalid_mode(self, path: str, mode: Any) -> None:
        self.make(path, np.ones(3, "<f4"))
        with pytest.raises(ModeError, match="expected a mode"):
            self.open(path, mode)

    def test_h5py_and_zarr_modes(self, path: str) -> None:
        kw = {"backend": self.backend, **self.create_kwargs}
        # 'a' on a missing array creates it, and says what it needs when shape/dtype are missing
        with pytest.raises(ModeError, match="shape= and dtype="):
            self.open(path, "a", backend=self.backend)
        assert not os.path.exists(path)
        with self.open(path, "a", shape=(2, 3), dtype="<i2", **kw) as s:
            assert s.mode == "w+"
            s[...] = 4
        assert self.oracle_read(path).tolist() == [[4, 4, 4]] * 2
        # 'a' on an existing array opens it read-write (mode r+, as h5py reports it)
        with self.open(path, "a", backend=self.backend) as s:
            assert s.mode == "r+" and s.shape == (2, 3)
            s[0] = 7
        with self.open(path, "a", shape=(2, 3), dtype="<i2", **kw) as s:
            assert s[0].tolist() == [7, 7, 7]
        with pytest.raises(AlreadyExistsError, match="shape"):
            self.open(path, "a", shape=(3, 3), dtype="<i2", **kw)
        with pytest.raises(AlreadyExistsError, match="dtype"):
            self.open(path, "a", shape=(2, 3), dtype="<i4", **kw)
        with pytest.raises(UnsupportedDtypeError):
            self.open(path, "a", shape=(2, 3), dtype="float", **kw)
        with self.open(path, "r+") as s:  # the refusals released the writer lock
            assert s[1].tolist() == [4, 4, 4]
        # 'w' creates or truncates, like 'w+'
        with self.open(path, "w", shape=(4,), dtype="<f4", **kw) as s:
            s[...] = 1.5
        assert self.oracle_read(path).tolist() == [1.5] * 4
        with pytest.raises(ModeError, match="shape="):
            self.open(path, "w", backend=self.backend)
        # 'x' is h5py's 'w-': create, fail if it exists
        with pytest.raises(AlreadyExistsError):
            self.open(path, "x", shape=(4,), dtype="<f4", **kw)
        # shape/dtype with a mode that only opens would be silently ignored: refused
        with pytest.raises(ModeError, match="existing array"):
            self.open(path, "r", shape=(4,), dtype="<f4")

    def test_copy_on_write(self, path: str) -> None:
        self.make(path, np.arange(4, dtype="<f8"))
        if not self.store_cls.supports_copy_on_write:
            with pytest.raises(ModeError):
                self.open(path, "c")
            return
        with self.open(path, "c") as s:
            s[0] = 100
            assert s[0] == 100
            with pytest.warns(NotPersistedWarning):
                s.flush()
        assert self.oracle_read(path).tolist() == [0, 1, 2, 3]

    def test_new_array_is_published_at_close(self, path: str) -> None:
        s = arraystore.create(path, (3,), "<f4", backend=self.backend, **self.create_kwargs)
        s[...] = 1
        with pytest.raises(ArrayNotFoundError):
            self.open(path, backend=self.backend)
        s.close()
        assert self.oracle_read(path).tolist() == [1, 1, 1]

    def test_exception_discards_new_array(self, path: str) -> None:
        def fail_while_writing() -> None:
            with arraystore.create(path, (3,), "<f4", backend=self.backend, **self.create_kwargs) as s:
                s[...] = 1
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            fail_while_writing()
        assert os.listdir(os.path.dirname(path)) == []

    def test_overwrite_keeps_old_until_close(self, path: str) -> None:
        self.make(path, np.full(3, 1, "<f4"))
        s = arraystore.create(path, (3,), "<f4", backend=self.backend, overwrite=True, **self.create_kwargs)
        s[...] = 2
        assert self.oracle_read(path).tolist() == [1, 1, 1]
        s.close()
        assert self.oracle_read(path).tolist() == [2, 2, 2]

    # -- sharing -----------------------------------------------------------

    def test_pickle_is_a_reference(self, path: str, tmp_path: Path) -> None:
        small, big = str(tmp_path / f"small{self.suffix}"), path
        self.make(small, np.zeros(4, "<f8"))
        self.make(big, sample_data(np.dtype("<f8"), (256, 256), seed=4))
        with self.open(small) as s1, self.open(big) as s2:
            p1, p2 = pickle.dumps(s1), pickle.dumps(s2)
        assert len(p2) < 2048
        assert abs(len(p1) - len(p2)) < 64  # the size does not depend on the data
        clone = pickle.loads(p2)
        assert clone.mode == "r"
        assert bit_equal(clone[...], self.oracle_read(big))
        clone.close()

    def test_single_writer(self, path: str) -> None:
        self.make(path, np.zeros(3, "<f4"))
        with self.open(path, "r+") as w:
            with pytest.raises(LockedError):
                self.open(path, "r+")
            with self.open(path, "r") as r:  # readers are not blocked
                assert r.shape == (3,)
            w[0] = 1
        with self.open(path, "r+") as w2:  # released at close
            assert w2[0] == 1

    def test_closed_store(self, path: str) -> None:
        self.make(path, np.zeros(3, "<f4"))
        s = self.open(path, "r+")
        s.close()
        with pytest.raises(ClosedStoreError):
            s[0]
        with pytest.raises(ClosedStoreError):
            s[0] = 1
        with pytest.raises(ClosedStoreError):
            s.flush()
        assert "closed" in repr(s)

    # -- memory maps -------------------------------------------------------

    def test_as_memmap(self, path: str) -> None:
        data = np.arange(12, dtype="<i4").reshape(3, 4)
        self.make(path, data)
        with self.open(path, "r+") as s:
            if not self.store_cls.supports_memmap or s.chunks is not None:
                with pytest.raises(NotMemoryMappableError):
                    s.as_memmap()
                return
            m = s.as_memmap()
            assert isinstance(m, np.memmap)
            assert bit_equal(np.asarray(m), data)
            m[0, 0] = 99
            m.flush()
            del m
        assert self.oracle_read(path)[0, 0] == 99

    def test_repr_and_len(self, path: str) -> None:
        self.make(path, np.zeros((3, 2), "<f4"))
        with self.open(path) as s, warnings.catch_warnings():
            warnings.simplefilter("error")
            assert len(s) == 3
            assert self.backend in type(s).__name__.lower() or s.backend == self.backend
            assert "(3, 2)" in repr(s)
