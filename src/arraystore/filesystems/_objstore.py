"""The :class:`Locality` of an object-store URL (``s3://``, ``gs://``, ``az://``, ``memory://``, ``http(s)://``)."""

from __future__ import annotations

import os

from ._types import Locality

__all__ = ["OBJECT", "object_locality"]

#: The ``kind`` of an object-store location.
OBJECT = "object"

_TYPES = {
    "s3": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure-blob", "azure": "azure-blob", "abfs": "azure-adls",
    "abfss": "azure-adls", "memory": "memory-objects", "http": "http", "https": "http",
}  # fmt: skip
_ENDPOINT_ENV = {"s3": "AWS_ENDPOINT_URL"}

ADVICE = (
    "object storage: read with byte ranges and many requests in parallel (Zarr chunks of a few MiB or more, "
    "several writer threads), never memory-map (there is no file to map); one writer per array, enforced by a "
    "lease object; a new array is published when its metadata is written last"
)


def object_locality(path: str | os.PathLike[str]) -> Locality | None:
    """The locality of an object-store URL, or None when ``path`` is not one."""
    text = os.fspath(path)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme not in _TYPES:  # the schemes of arraystore.location.REMOTE_SCHEMES (a lower layer may not import it)
        return None
    rest = text.split("://", 1)[1]
    bucket = rest.split("/", 1)[0].split("::", 1)[0]
    endpoint = os.environ.get(_ENDPOINT_ENV.get(scheme, ""), "") or None
    return Locality(
        path=text,
        mount_point=f"{scheme}://{bucket}",
        fs_type=_TYPES[scheme],
        mount_source=endpoint.split("@")[-1] if endpoint else None,  # never credentials in a URL
        is_network=scheme != "memory",
        is_memory=scheme == "memory",
        is_rotational=None,
        locks_work=False,
        advice=ADVICE,
        is_object_store=True,
    )
