"""The npy backend joins the conformance suite; its oracle is ``np.load`` / ``np.save``."""

from __future__ import annotations

from typing import Any

import numpy as np

from arraystore.testing import ArrayStoreTests, make_state_machine


class TestNpy(ArrayStoreTests):
    backend = "npy"
    suffix = ".npy"
    supports_attrs = False

    def oracle_read(self, path: str) -> np.ndarray[Any, Any]:
        return np.load(path)

    def oracle_write(self, path: str, data: np.ndarray[Any, Any]) -> None:
        np.save(path, data)


TestNpyStateMachine = make_state_machine("npy", ".npy").TestCase
