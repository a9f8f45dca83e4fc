"""A Hypothesis state machine that checks a backend against a plain ndarray model."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import arraystore

from .oracle import keys, numpy_result

__all__ = ["make_state_machine"]


def make_state_machine(backend: str, suffix: str, **create_kwargs: Any) -> type[RuleBasedStateMachine]:
    """Build a state machine class for ``backend``; use its ``TestCase`` in a test module."""

    class StoreMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.dir = Path(tempfile.mkdtemp(prefix="arraystore-sm-"))
            self.path = str(self.dir / f"a{suffix}")
            self.store: Any = None
            self.model: np.ndarray[Any, Any] = np.empty(0)

        @initialize(
            shape=st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple),
            dtype=st.sampled_from(["<f4", ">i2", "<u8", "?", "<c8"]),
            order=st.sampled_from(["C", "F"]),
        )
        def create(self, shape: tuple[int, ...], dtype: str, order: str) -> None:
            self.model = np.zeros(shape, dtype)
            self.store = arraystore.create(self.path, shape, dtype, backend=backend, order=order, **create_kwargs)  # type: ignore[arg-type]
            self.store[...] = self.model

        @rule(data=st.data(), seed=st.integers(0, 2**16))
        def write(self, data: st.DataObject, seed: int) -> None:
            sel = data.draw(keys(self.model.shape))  # basic, integer arrays and masks
            target = np.asarray(self.model[sel])
            rng = np.random.default_rng(seed)
            value = (
                rng.integers(0, 2, target.shape).astype(self.model.dtype)
                if self.model.dtype == bool
                else (rng.integers(0, 100, target.shape).astype(self.model.dtype))
            )
            self.store[sel] = value
            self.model[sel] = value

        @rule(data=st.data())
        def read(self, data: st.DataObject) -> None:
            sel = data.draw(keys(self.model.shape))
            got = self.store[sel]
            expected = numpy_result(self.model, sel)  # an array even for 0-d, in the model dtype
            assert got.shape == expected.shape and got.dtype == expected.dtype
            assert got.tobytes() == np.ascontiguousarray(expected).tobytes()

        @rule(durable=st.booleans())
        def flush(self, durable: bool) -> None:
            self.store.flush(durable=durable)

        @rule()
        def reopen(self) -> None:
            self.store.close()
            self.store = arraystore.open(self.path, "r+", backend=backend)

        @precondition(lambda self: self.store is not None)
        @invariant()
        def same_metadata(self) -> None:
            assert self.store.shape == self.model.shape
            assert self.store.dtype == self.model.dtype

        def teardown(self) -> None:
            if self.store is not None:
                self.store.close()
                with arraystore.open(self.path, backend=backend) as s:
                    assert s[...].tobytes() == np.ascontiguousarray(self.model).tobytes()
            shutil.rmtree(self.dir, ignore_errors=True)

    StoreMachine.__name__ = f"{backend.capitalize()}StoreMachine"
    return StoreMachine
