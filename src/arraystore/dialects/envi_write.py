"""Writing ENVI headers: a ``.hdr`` that GDAL, QGIS, spectral and ENVI read beside a raw output.

A raw output converted with ``header="envi"`` is stored in C order, so its bytes are the
array's rows one after the other. ENVI names three axes (bands, lines, samples) and
lets the file order them three ways; the header says which axis of the array is which:

============  ================================  ===========
interleave    a C-order 3-D array of shape       ENVI axes
============  ================================  ===========
``bsq``       ``(d0, d1, d2)``                   (bands, lines, samples)
``bil``       ``(d0, d1, d2)``                   (lines, bands, samples)
``bip``       ``(d0, d1, d2)``                   (lines, samples, bands)
============  ================================  ===========

A 2-D array ``(d0, d1)`` is one band of ``d0`` lines and ``d1`` samples (``bsq``). The
bytes are the same in every case; arraystore's own ENVI dialect reads each one back with
the array's shape, while GDAL always shows ``(bands, lines, samples)`` and spectral
``(lines, samples, bands)``. What ENVI has no code for (bool, int8, float16, strings,
times, structured dtypes) and arrays of other than 2 or 3 axes are refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import DimensionError, MetadataError, UnsupportedDtypeError
from .envi import ENVI_DTYPES

__all__ = [
    "BAND_NAMES",
    "HEADER_CHOICES",
    "WRITTEN_BY",
    "check_envi",
    "check_header_choice",
    "envi_fill_value",
    "envi_header_text",
    "envi_interleave",
]

#: What ``header=`` accepts: ``"envi"`` (interleave from the dimension names, else bsq) or a fixed interleave.
HEADER_CHOICES: tuple[str, ...] = ("envi", "envi:bsq", "envi:bil", "envi:bip")

#: Dimension names (lower-cased) that mark the band axis, for ``header="envi"``.
BAND_NAMES: frozenset[str] = frozenset({"band", "bands", "channel", "channels", "wavelength", "spectral"})

#: The ``description`` arraystore writes: how it knows a header beside a raw output is its own.
WRITTEN_BY = "written by arraystore"

_CODES: dict[str, int] = {np.dtype(text).str[1:]: code for code, text in ENVI_DTYPES.items()}
_INTERLEAVE_OF_BAND_AXIS = {0: "bsq", 1: "bil", 2: "bip"}


def check_header_choice(header: Any) -> str | None:
    """``header`` checked against :data:`HEADER_CHOICES` (None: no header).

    Raises
    ------
    MetadataError
        Anything else.
    """
    if header is None or header in HEADER_CHOICES:
        return header  # type: ignore[no-any-return]
    raise MetadataError(
        f"expected header= one of {', '.join(repr(c) for c in HEADER_CHOICES)} (or None), found {header!r}"
    )


def check_envi(shape: Sequence[int], dtype: np.dtype[Any], where: object) -> None:
    """Refuse an array an ENVI header cannot describe, naming what to do instead.

    Raises
    ------
    UnsupportedDtypeError
        A dtype without an ENVI ``data type`` code.
    DimensionError
        Other than 2 or 3 axes, or an axis of length 0.
    """
    dtype = np.dtype(dtype)
    if dtype.names is not None or dtype.subdtype is not None or dtype.str[1:] not in _CODES:
        what = {
            "b": "bool has no ENVI data type: convert with .astype('u1') first (readers then see 0/1 bytes)",
            "i": "int8 has no ENVI data type (code 1 is unsigned): store it as int16, or uint8 with an offset",
            "f": "float16 has no ENVI data type: store it as float32",
        }.get(dtype.kind, "ENVI headers describe numbers only")
        known = ", ".join(f"{code} {np.dtype(t).name}" for code, t in ENVI_DTYPES.items())
        raise UnsupportedDtypeError(
            f"{where}: an ENVI header cannot describe dtype {dtype.str} ({what}); ENVI data types: {known}. "
            "Convert without header='envi' (command line: without --header) to keep the dtype in the JSON sidecar only"
        )
    if len(shape) not in (2, 3):
        raise DimensionError(
            f"{where}: an ENVI header describes 2-D (lines, samples) and 3-D arrays, found a {len(shape)}-d array "
            f"of shape {tuple(shape)}; reshape it to 2 or 3 axes first, or convert without header='envi'"
        )
    if 0 in tuple(shape):
        raise DimensionError(
            f"{where}: an ENVI header cannot describe an axis of length 0 (shape {tuple(shape)}); GDAL and ENVI "
            "refuse empty rasters. Convert without header='envi'"
        )


def envi_interleave(header: str, ndim: int, names: Sequence[str | None] | None = None) -> str:
    """The interleave a header choice gives an array of ``ndim`` axes with these dimension names.

    ``"envi:bsq"`` and the like fix it; ``"envi"`` takes it from the position of the axis
    named like a band (:data:`BAND_NAMES`: axis 0 bsq, 1 bil, 2 bip), else bsq. 2-D: bsq.
    """
    if ndim != 3:
        return "bsq"
    if ":" in header:
        return header.split(":", 1)[1]
    for axis, name in enumerate(names or ()):
        if isinstance(name, str) and name.lower() in BAND_NAMES:
            return _INTERLEAVE_OF_BAND_AXIS[axis]
    return "bsq"


def envi_fill_value(attrs: Mapping[str, Any], dtype: np.dtype[Any]) -> int | float | None:
    """The ``data ignore value`` (GDAL's nodata) for an array with these attrs: its ``_FillValue``
    (else ``missing_value``), a number or a one-element list as netCDF-4 hands it over, when the
    dtype holds it exactly; None otherwise (NaN too: a float array's NaN is no value anyway)."""
    for key in ("_FillValue", "missing_value"):
        value = attrs.get(key)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            continue
        with np.errstate(all="ignore"):
            stored = np.array(value).astype(dtype)
        if stored.item() == value and np.isfinite(stored):
            return int(value) if dtype.kind in "iu" else float(value)
    return None


def envi_header_text(shape: Sequence[int], dtype: np.dtype[Any], interleave: str, offset: int = 0,
                     fill: int | float | None = None) -> str:
    """The text of an ENVI header for C-order data of ``shape`` and ``dtype`` at byte ``offset``.

    ``fill``: the ``data ignore value`` (:func:`envi_fill_value`), if any. The caller has
    checked the array with :func:`check_envi`.
    """
    dtype = np.dtype(dtype)
    if len(shape) == 2:
        bands, (lines, samples) = 1, shape
    elif interleave == "bsq":
        bands, lines, samples = shape
    elif interleave == "bil":
        lines, bands, samples = shape
    else:
        lines, samples, bands = shape
    big = dtype.byteorder == ">" or (dtype.byteorder == "=" and np.little_endian is False)
    return "\n".join([
        "ENVI",
        f"description = {{{WRITTEN_BY}: {tuple(shape)} {dtype.str}, C order}}",
        f"samples = {samples}",
        f"lines = {lines}",
        f"bands = {bands}",
        f"header offset = {offset}",
        "file type = ENVI Standard",
        f"data type = {_CODES[dtype.str[1:]]}",
        f"interleave = {interleave}",
        f"byte order = {1 if big else 0}",
        *([] if fill is None else [f"data ignore value = {fill!r}"]),
        "",
    ])
