"""CF time conventions shared by the HDF5 and Zarr encodings of datetime64/timedelta64."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["CF_UNITS", "counts_of"]

#: numpy time units that CF (and xarray) name.
CF_UNITS: dict[str, str] = {
    "ns": "nanoseconds",
    "us": "microseconds",
    "ms": "milliseconds",
    "s": "seconds",
    "m": "minutes",
    "h": "hours",
    "D": "days",
}


def _epoch_is_unix(text: str) -> bool:
    text = text.strip().removesuffix("Z").removesuffix("+00:00").removesuffix(" UTC").replace(" ", "T")
    try:
        return bool(np.datetime64(text) == np.datetime64("1970-01-01"))
    except ValueError:
        return False


def counts_of(dtype: np.dtype[Any], units: Any, calendar: Any) -> bool:
    """Whether CF ``units`` (and ``calendar``) say that int64 counts are ``dtype``'s values as numpy stores them:
    its unit since 1970-01-01 in the proleptic Gregorian calendar (datetime64), or its unit (timedelta64).

    arraystore's record of a time dtype is believed only then: another tool that rewrote the counts in other
    units (xarray choosing "days since 2000-01-01") may have kept the record.
    """
    name = CF_UNITS.get(np.datetime_data(dtype)[0])
    if name is None or not isinstance(units, str):
        return False
    if dtype.kind == "m":
        return units.strip() == name
    head, since, epoch = units.partition(" since ")
    return (head.strip() == name and bool(since) and _epoch_is_unix(epoch)
            and isinstance(calendar, str) and calendar.strip().lower() == "proleptic_gregorian")
