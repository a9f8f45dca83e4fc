"""Turning numpy-style keys into what backends read: basic selections, plus gathers along one axis.

A backend reads and writes only *basic* selections (:data:`Selection`: one ``int`` or
positive-step ``slice`` per axis). :func:`plan_selection` turns any key the store
accepts into one of two plans:

* :class:`BasicPlan` -- ints, slices with any step, ``...``: one backend call, then the
  axes asked with a negative step are flipped;
* :class:`GatherPlan` -- one integer array (or list) on one axis, a boolean mask on one
  axis, or a boolean mask of the array's full shape: the distinct indices are read in
  sorted runs into a block, and numpy applies a *local key* to that block. Because the
  local key keeps every advanced index where the caller put it, numpy itself decides
  the result's shape and axis order, so it is numpy's by construction.

Everything else (several arrays, ``None``, 0-d booleans, out-of-bounds indices, a mask
of the wrong shape) raises :class:`~arraystore.errors.SelectionError`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import SelectionError

__all__ = ["BasicPlan", "GatherPlan", "Selection", "normalize_selection", "plan_selection", "selection_shape"]

#: One entry per axis: an int picks one index (the axis is dropped), a slice
#: with a positive step keeps it.
Selection = tuple[int | slice, ...]

_HINT = (
    "arraystore takes ints, slices, '...', and one integer array or boolean mask per selection; "
    "read a block first (block = store[a:b]) and index it in numpy for the rest"
)


@dataclass(frozen=True)
class BasicPlan:
    """Basic indexing: read ``sel``, then flip the result axes in ``flip``."""

    sel: Selection
    flip: tuple[int, ...]
    #: True when the key is integers only (numpy's single-element assignment).
    scalar: bool

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the result."""
        return selection_shape(self.sel)


@dataclass(frozen=True)
class GatherPlan:
    """Rows ``rows`` (sorted, distinct) along ``axis`` of the slices in ``sel``, then ``block[local]``.

    ``sel`` has a slice on every axis (ints become length-1 slices, so no axis is
    dropped); its entry on ``axis`` is a placeholder. ``partial`` is True when
    ``local`` does not cover every element of the block (a full-shape mask), so a
    write must read the block first.
    """

    sel: tuple[slice, ...]
    axis: int
    rows: np.ndarray[Any, np.dtype[np.intp]]
    local: tuple[Any, ...]
    shape: tuple[int, ...]
    partial: bool

    def block_shape(self) -> tuple[int, ...]:
        """Shape of the block the rows are gathered into."""
        return tuple(len(self.rows) if i == self.axis else _len(s) for i, s in enumerate(self.sel))

    def runs(self, max_gap: int = 0, max_rows: int | None = None) -> list[tuple[int, int, int]]:
        """``(first row, end row, position in block)`` of spans of rows, in order.

        Consecutive rows always share a span; spans whose gap is at most ``max_gap`` rows
        are joined while the joined span stays within ``max_rows`` rows (bounded memory).
        """
        rows = self.rows
        if not len(rows):
            return []
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        starts = np.concatenate(([0], breaks)).tolist()
        ends = np.concatenate((breaks, [len(rows)])).tolist()
        out: list[tuple[int, int, int]] = []
        for a, b in zip(starts, ends):
            lo, hi = int(rows[a]), int(rows[b - 1]) + 1
            if out and lo - out[-1][1] <= max_gap and (max_rows is None or hi - out[-1][0] <= max_rows):
                out[-1] = (out[-1][0], hi, out[-1][2])
            else:
                out.append((lo, hi, a))
        return out

    def run_selection(self, lo: int, hi: int) -> Selection:
        """The basic selection of rows ``lo:hi``."""
        return tuple(slice(lo, hi, 1) if i == self.axis else s for i, s in enumerate(self.sel))


Plan = BasicPlan | GatherPlan


def _len(s: slice) -> int:
    return len(range(s.start, s.stop, s.step))


def _as_index(entry: Any, axis: int) -> Any:
    """An entry of a key as int, slice, Ellipsis, integer ndarray or boolean ndarray."""
    if entry is Ellipsis or isinstance(entry, slice):
        return entry
    if entry is None:
        raise SelectionError(f"None (np.newaxis) in a selection is not supported; {_HINT}, or np.expand_dims")
    if isinstance(entry, (bool, np.bool_)):
        raise SelectionError(f"a boolean scalar index adds an axis in numpy and is not supported; {_HINT}")
    if isinstance(entry, (int, np.integer)):
        return operator.index(entry)
    if isinstance(entry, (np.ndarray, list, tuple)) or hasattr(entry, "__array__"):
        arr = np.asarray(entry)
        if arr.dtype == bool:
            if arr.ndim == 0:
                raise SelectionError(f"a 0-d boolean index adds an axis in numpy and is not supported; {_HINT}")
            return arr
        if arr.size == 0 and not isinstance(entry, np.ndarray):
            return np.zeros(arr.shape, np.intp)  # an empty list is an empty integer index, as in numpy
        if arr.dtype.kind not in "iu":
            raise SelectionError(
                f"arrays used as indices must be of integer or boolean type, found {arr.dtype} on axis {axis}"
            )
        return int(arr) if arr.ndim == 0 else arr
    if hasattr(entry, "__index__"):
        try:
            return operator.index(entry)
        except TypeError:
            pass
    raise SelectionError(f"expected an integer, slice, '...', integer array or mask, found {type(entry).__name__}; {_HINT}")


def _check_bounds(i: int, n: int, axis: int) -> int:
    if not -n <= i < n:
        raise SelectionError(f"index {i} is out of bounds for axis {axis} with size {n}")
    return i + n if i < 0 else i


def _basic(s: Any, n: int, axis: int) -> tuple[int | slice, bool]:
    """A normalised int or positive-step slice for one axis, and whether its result must be flipped."""
    if isinstance(s, slice):
        try:
            r = range(*s.indices(n))
        except TypeError:
            raise SelectionError(f"slice indices must be integers or None, found {s} on axis {axis}") from None
        except ValueError:  # a step of 0
            raise SelectionError(f"a slice's step must not be zero, found {s} on axis {axis}: give a step of "
                                 "1 or more (-1 or less to reverse), or None") from None
        flip = r.step < 0
        if flip:
            r = r[::-1]
        return (slice(r.start, r.stop, r.step) if len(r) else slice(0, 0, 1)), flip
    return _check_bounds(s, n, axis), False


def plan_selection(key: Any, shape: tuple[int, ...]) -> Plan:
    """Plan reading or writing ``store[key]`` for an array of ``shape``.

    Raises
    ------
    SelectionError
        For keys numpy would refuse (out of bounds, wrong mask shape, too many
        indices) and for those arraystore does not take (several arrays, ``None``).
    """
    raw = key if isinstance(key, tuple) else (key,)
    entries = [_as_index(e, i) for i, e in enumerate(raw)]
    n_ellipsis = sum(1 for e in entries if e is Ellipsis)
    if n_ellipsis > 1:
        raise SelectionError("an index can only have a single ellipsis ('...')")
    consumed = sum(e.ndim if isinstance(e, np.ndarray) and e.dtype == bool else (e is not Ellipsis) for e in entries)
    if consumed > len(shape):
        raise SelectionError(
            f"too many indices: the array is {len(shape)}-dimensional, but {consumed} were indexed"
        )
    ellipsis: tuple[int, int] | None = None  # (first axis, number of axes) it stands for
    if n_ellipsis:
        i = next(k for k, e in enumerate(entries) if e is Ellipsis)
        entries[i : i + 1] = [slice(None)] * (len(shape) - consumed)
        ellipsis = (i, len(shape) - consumed)
    entries += [slice(None)] * (len(shape) - consumed)
    arrays = [i for i, e in enumerate(entries) if isinstance(e, np.ndarray)]
    if not arrays:
        basic: list[int | slice] = []
        flip: list[int] = []
        axis_out = 0
        for axis, (e, n) in enumerate(zip(entries, shape)):
            b, f = _basic(e, n, axis)
            basic.append(b)
            if isinstance(b, slice):
                if f:
                    flip.append(axis_out)
                axis_out += 1
        scalar = not n_ellipsis and all(isinstance(e, int) for e in entries)
        return BasicPlan(tuple(basic), tuple(flip), scalar)
    if len(arrays) > 1:
        raise SelectionError(f"only one integer array or mask per selection is supported, found {len(arrays)}; {_HINT}")
    pos = arrays[0]
    arr: np.ndarray[Any, Any] = entries[pos]
    if arr.dtype == bool and arr.ndim > 1:
        return _mask_plan(arr, shape, len(entries))
    # From here on the array indexes one axis: the mask's axis or the integer array's.
    axis = pos
    n = shape[axis]
    if arr.dtype == bool:
        if arr.shape[0] != n:
            raise SelectionError(
                f"boolean index did not match indexed array along axis {axis}; size of axis is {n} but "
                f"size of corresponding boolean axis is {arr.shape[0]}"
            )
        idx = np.flatnonzero(arr)
        inverse_shape: tuple[int, ...] = idx.shape
    else:
        idx = arr.astype(np.intp, copy=False).ravel()
        inverse_shape = arr.shape
        if idx.size:
            lo, hi = int(idx.min()), int(idx.max())
            for i in (lo, hi):
                _check_bounds(i, n, axis)
            idx = np.where(idx < 0, idx + n, idx)
    rows, inverse = np.unique(idx, return_inverse=True)
    sel: list[slice] = []
    local: list[Any] = []
    for ax, (e, m) in enumerate(zip(entries, shape)):
        if ax == axis:
            sel.append(slice(0, 0, 1))
            local.append(inverse.reshape(inverse_shape).astype(np.intp, copy=False))
            continue
        b, f = _basic(e, m, ax)
        if isinstance(b, int):
            sel.append(slice(b, b + 1, 1))
            local.append(0)
        else:
            assert isinstance(b, slice)
            sel.append(b)
            local.append(slice(None, None, -1) if f else slice(None))
    if ellipsis is not None:
        # numpy counts an Ellipsis (even one standing for no axis) as separating advanced
        # indices, which moves the gathered axes first: keep it where the caller put it.
        local[ellipsis[0] : sum(ellipsis)] = [Ellipsis]
    plan = GatherPlan(tuple(sel), axis, rows.astype(np.intp, copy=False), tuple(local), (), partial=False)
    return _with_shape(plan)


def _mask_plan(mask: np.ndarray[Any, Any], shape: tuple[int, ...], n_entries: int) -> GatherPlan:
    if mask.ndim != len(shape) or n_entries != 1:
        raise SelectionError(
            f"a {mask.ndim}-d boolean mask must cover the whole array (shape {shape}) or one axis; {_HINT}"
        )
    if mask.shape != shape:
        raise SelectionError(
            f"boolean index did not match indexed array: the mask's shape is {mask.shape}, the array's {shape}"
        )
    rows = np.flatnonzero(mask.reshape(shape[0], -1).any(axis=1)) if mask.size else np.zeros(0, np.intp)
    sel = (slice(0, 0, 1),) + tuple(slice(0, n, 1) for n in shape[1:])
    plan = GatherPlan(sel, 0, rows.astype(np.intp, copy=False), (mask[rows],), (), partial=True)
    return _with_shape(plan)


def _with_shape(plan: GatherPlan) -> GatherPlan:
    """Fill in the result's shape, as numpy computes it for ``block[local]``."""
    probe = np.broadcast_to(np.zeros((), np.uint8), plan.block_shape())
    shape = probe[plan.local].shape
    return GatherPlan(plan.sel, plan.axis, plan.rows, plan.local, shape, plan.partial)


def normalize_selection(sel: Any, shape: tuple[int, ...]) -> tuple[Selection, tuple[int, ...]]:
    """Turn a basic-indexing key into one ``int`` or positive-step ``slice`` per axis.

    Returns
    -------
    selection, flip
        ``flip`` lists the axes of the *result* that must be reversed because the
        caller asked for a negative step.

    Raises
    ------
    SelectionError
        For arrays, masks, ``None`` or out-of-range ints.
    """
    plan = plan_selection(sel, shape)
    if not isinstance(plan, BasicPlan):
        raise SelectionError(f"expected basic indexing (integers, slices, '...'), found an array or mask; {_HINT}")
    return plan.sel, plan.flip


def selection_shape(sel: Selection) -> tuple[int, ...]:
    """The shape of the result of a normalised selection."""
    return tuple(_len(s) for s in sel if isinstance(s, slice))
