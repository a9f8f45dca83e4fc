"""Optional dependencies: a missing one is a :class:`MissingDependencyError` naming the extra to install."""

from __future__ import annotations

from .errors import MissingDependencyError

__all__ = ["EXTRAS", "missing"]

#: Top-level module -> the arraystore extra that installs it.
EXTRAS = {"dask": "dask", "distributed": "dask", "xarray": "xarray", "h5py": "hdf5", "zarr": "zarr"}


def missing(exc: ImportError, feature: str) -> ImportError:
    """The error to raise for ``exc`` while importing what ``feature`` needs.

    A missing optional library becomes a :class:`MissingDependencyError` saying which
    extra installs it; any other import failure (a broken installation) is returned as is.
    """
    name = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(name)
    if extra is None:
        return exc
    return MissingDependencyError(
        f"{feature} needs {name}, which is not installed; install it with: pip install 'arraystore[{extra}]'"
    )
