"""New HDF5 datasets: their reserved attributes and conventions, and rebuilding one with another storage dtype."""

from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np

from .._modes import DEFAULT_BLOCK_BYTES
from ..blocks import plan_blocks
from ..errors import BackendError
from ..meta import ArrayMeta, dtype_to_json
from . import _hdf5_attrs as A
from . import _hdf5_netcdf as N
from ._hdf5_dtypes import encode
from ._hdf5_strings import decode_text, encode_text

__all__ = ["FORMAT_VERSION", "check_string_options", "init_dataset", "rebuild_text"]

#: ``_arraystore_version`` of the datasets arraystore writes.
FORMAT_VERSION = 1


def check_string_options(hdf5_strings: str, hdf5_string_bytes: int | None) -> str:
    """``hdf5_strings`` after checking both string options of ``create``.

    Raises
    ------
    BackendError
        ``hdf5_strings`` other than ``"utf-8"``/``"utf-32"``, a byte width that is not a positive integer.
    """
    if hdf5_strings not in ("utf-8", "utf-32"):
        raise BackendError(
            f"expected hdf5_strings 'utf-8' (fixed-length UTF-8 strings, what other readers read as text) or 'utf-32' "
            f"(uint32 code units, for values with embedded NULs), found {hdf5_strings!r}"
        )
    if hdf5_string_bytes is not None and (
        isinstance(hdf5_string_bytes, bool) or not isinstance(hdf5_string_bytes, int) or hdf5_string_bytes < 1
    ):
        raise BackendError(f"expected hdf5_string_bytes as a positive integer (bytes of UTF-8), found {hdf5_string_bytes!r}")
    return hdf5_strings


def init_dataset(
    ds: h5py.Dataset,
    meta: ArrayMeta,
    storage: np.dtype[Any],
    dimension_names: tuple[str | None, ...] | None,
    key: str,
    notes: list[str],
    *,
    flagged: bool,
) -> tuple[list[str], list[str]]:
    """Reserved and user attributes, CF times and dimension scales of a new dataset; (notes, scales made)."""
    ds.attrs[A.VERSION] = FORMAT_VERSION
    if storage != meta.dtype:
        ds.attrs[A.DTYPE] = json.dumps(dtype_to_json(meta.dtype), ensure_ascii=False)
    if meta.order == "F":
        ds.attrs[A.ORDER] = "F"
    A.write_attrs(ds, dict(meta.attrs), {})
    names = dimension_names[::-1] if meta.order == "F" and dimension_names else dimension_names
    out = N.write_conventions(ds, meta.dtype, meta.attrs, names, key, notes)
    ds.attrs[A.INCOMPLETE] = 1
    if not flagged:
        # The flag's room stays reserved in the object header: flagging the dataset
        # later (an r+ write) does not grow the file, which readers take for a replacement.
        del ds.attrs[A.INCOMPLETE]
    return out



def rebuild_text(
    f: h5py.File,
    old: h5py.Dataset,
    meta: ArrayMeta,
    storage: np.dtype[Any],
    names: tuple[str | None, ...] | None,
    final_key: str,
    note: str | None,
    where: str,
) -> tuple[h5py.Dataset, list[str], list[str]]:
    """Replace ``old`` (unicode as UTF-8 strings, being created) by a dataset of ``storage`` with the same layout.

    The values written so far are copied block by block (decoded, encoded again), the
    attributes and dimension scales made again; the new dataset takes the old one's name.
    Returns (the new dataset, its notes, the dimension datasets made).
    """
    name = old.name
    tmp = f"{name}.arraystore-restring"
    if tmp in f:
        del f[tmp]
    new = f.create_dataset(tmp, shape=old.shape, dtype=storage, dcpl=old.id.get_create_plist())
    notes, scales = init_dataset(new, meta, storage, names, final_key, [note] if note else [],
                                 flagged=A.INCOMPLETE in old.attrs)
    for sel in plan_blocks(tuple(old.shape), old.dtype.itemsize, DEFAULT_BLOCK_BYTES, chunks=old.chunks):
        key = sel if sel else ...
        text = decode_text(np.asarray(old[key]), meta.dtype, where)
        new[key] = encode_text(text, storage, where) if storage.kind == "S" else encode(text, storage)
    N.detach_scales(old)
    del f[name]
    f.move(tmp, name)
    f.flush()
    return new, notes, scales
