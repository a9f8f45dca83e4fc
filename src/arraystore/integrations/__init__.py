"""Optional integrations with Dask and xarray, imported only when used.

``arraystore.integrations.dask`` needs ``dask[array]``; ``arraystore.integrations.xarray``
needs ``xarray``. Importing this package imports neither.
"""

from __future__ import annotations

__all__: list[str] = []
