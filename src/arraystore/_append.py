"""Mode ``a`` on an existing array: it must be the array asked for (local files and object stores alike)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._attrs import attrs_equal
from .errors import AlreadyExistsError, ArrayStoreError
from .meta import ArrayMeta

if TYPE_CHECKING:
    from .store import ArrayStore

__all__ = ["check_same"]


def check_same(store: ArrayStore, wanted: dict[str, Any]) -> None:
    """Mode ``a`` found an array: refuse one that is not the array asked for (shape, dtype, order, attrs)."""
    order = wanted["order"] or store.order
    if order in ("C", "F") and type(store).storage_order(order) == store.order:
        order = store.order  # stored in another order than asked (HDF5: C), as create would store it
    try:
        asked = ArrayMeta(
            store.shape if wanted["shape"] is None else wanted["shape"],
            store.dtype if wanted["dtype"] is None else wanted["dtype"],
            order,
            store.meta.attrs if wanted["attrs"] is None else wanted["attrs"],
        )
    except ArrayStoreError:
        store.close()  # release the writer lock: the caller gets the error, not an open store
        raise
    differ = [
        f"{name} {getattr(store.meta, name)!r} (asked for {getattr(asked, name)!r})"
        for name in ("shape", "dtype", "order")
        if getattr(asked, name) != getattr(store.meta, name)
    ]
    if not attrs_equal(asked.attrs, store.meta.attrs):
        differ.append(f"attrs {dict(store.meta.attrs)!r} (asked for {dict(asked.attrs)!r})")
    if differ:
        store.close()
        raise AlreadyExistsError(
            f"{store.path}: mode 'a' found an existing array with {', '.join(differ)}; open it without "
            "those arguments to use it as it is, or replace it with mode='w'"
        )
