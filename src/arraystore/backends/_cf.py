"""CF time conventions shared by the HDF5 and Zarr encodings of datetime64/timedelta64."""

from __future__ import annotations

__all__ = ["CF_UNITS"]

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
