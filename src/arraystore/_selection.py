"""Normalising basic-indexing selections (ints, slices, Ellipsis)."""

from __future__ import annotations

from typing import Any

from .errors import SelectionError

__all__ = ["Selection", "normalize_selection"]

#: One entry per axis: an int picks one index (the axis is dropped), a slice
#: with a positive step keeps it.
Selection = tuple[int | slice, ...]


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
        For advanced indexing (arrays, lists, masks, ``None``) or out-of-range ints.
    """
    if not isinstance(sel, tuple):
        sel = (sel,)
    n_ellipsis = sum(1 for s in sel if s is Ellipsis)
    if n_ellipsis > 1:
        raise SelectionError("an index can only have a single ellipsis ('...')")
    if n_ellipsis:
        i = next(i for i, s in enumerate(sel) if s is Ellipsis)
        fill = len(shape) - (len(sel) - 1)
        sel = sel[:i] + (slice(None),) * max(fill, 0) + sel[i + 1 :]
    if len(sel) > len(shape):
        raise SelectionError(f"too many indices: the array is {len(shape)}-dimensional, found {len(sel)} indices")
    sel = sel + (slice(None),) * (len(shape) - len(sel))
    out: list[int | slice] = []
    flip: list[int] = []
    result_axis = 0
    for axis, (s, n) in enumerate(zip(sel, shape)):
        if isinstance(s, slice):
            r = range(*s.indices(n))
            if r.step < 0:
                flip.append(result_axis)
                r = r[::-1]
            out.append(slice(r.start, r.stop, r.step) if len(r) else slice(0, 0, 1))
            result_axis += 1
        elif hasattr(s, "__index__") and not isinstance(s, bool):
            i = s.__index__()
            if not -n <= i < n:
                raise SelectionError(f"index {i} is out of bounds for axis {axis} with size {n}")
            out.append(i + n if i < 0 else i)
        else:
            raise SelectionError(
                f"expected basic indexing (integers, slices, '...'), found {type(s).__name__} on axis {axis}; "
                "for lists of rows use store.take(indices), for masks read a block and index it in numpy"
            )
    return tuple(out), tuple(flip)


def selection_shape(sel: Selection) -> tuple[int, ...]:
    """The shape of the result of a normalised selection."""
    return tuple(len(range(s.start, s.stop, s.step)) for s in sel if isinstance(s, slice))
