"""The raw backend joins the conformance suite; its oracle is numpy on the bare bytes."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np
from numpy.lib.format import dtype_to_descr

from arraystore.testing import ArrayStoreTests, make_state_machine


class TestRaw(ArrayStoreTests):
    backend = "raw"
    suffix = ".dat"

    def oracle_read(self, path: str) -> np.ndarray[Any, Any]:
        with open(path + ".json") as f:
            side = json.load(f)
        dtype = np.lib.format.descr_to_dtype(_tuples(side["dtype"]))
        return np.fromfile(path, dtype=dtype, offset=side["offset"]).reshape(side["shape"], order=side["order"])

    def oracle_write(self, path: str, data: np.ndarray[Any, Any]) -> None:
        data.tofile(path)
        side = {
            "format": "arraystore.raw", "version": 1, "shape": list(data.shape), "dtype": dtype_to_descr(data.dtype),
            "order": "C", "offset": 0, "nbytes": data.nbytes, "complete": True, "attrs": {},
        }  # fmt: skip
        with open(path + ".json", "w") as f:
            json.dump(side, f)


def _tuples(d: Any) -> Any:
    """JSON lists back into numpy's descr: fields are (name, descr[, shape]) tuples."""
    if isinstance(d, str):
        return d
    fields = []
    for f in d:
        field = (f[0], _tuples(f[1]))
        fields.append(field + (tuple(f[2]),) if len(f) == 3 else field)
    return fields


TestRawStateMachine = make_state_machine("raw", ".dat").TestCase


class TestRawBuffered(TestRaw):
    """The same contract with pread/pwrite instead of memory maps (what network mounts get)."""

    open_kwargs: ClassVar[dict[str, Any]] = {"io": "buffered"}
