"""A migration whose destination is an object-store prefix (``s3://bucket/archive``).

The outputs are Zarr arrays under the prefix, each published by its own metadata-last
commit (see :mod:`arraystore.backends._zarr_remote`); what a local migration keeps in
files of the destination folder lives in objects under the prefix:

* ``PREFIX/migration.jsonl``: the manifest, one line per source, written when a run ends;
* ``PREFIX/.arraystore/migration/<sha1 of the source>.json``: one object per file finished
  by the current (or a killed) run. An object cannot be appended to, so each record is its
  own object, put as soon as its file is done: a kill loses at most the files in flight.
  A record object is newer than the manifest's line for the same source; the end of a run
  folds them into ``migration.jsonl`` and deletes them;
* ``migration-report.json``, ``migration-summary.txt`` and ``rules-suggested.toml``.

Formats that cannot be written to object storage (raw, npy, HDF5: an object cannot be
written in place, block by block) are refused before anything is read or written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, MetadataError
from ..location import Location, parse_location
from ..objstore import object_store, store_errors
from ..objstore._dispatch import url_class
from ._manifest import FileRecord, parse_manifest
from ._report import REPORT_NAME, SUGGESTED_RULES_NAME, SUMMARY_NAME, MigrationReport

if TYPE_CHECKING:
    from .resolve import Resolution

__all__ = [
    "RECORDS_PREFIX",
    "RemoteManifest",
    "check_remote_target",
    "put_object",
    "remote_root",
    "write_remote_outputs",
]

#: Where the records of finished files live under the destination prefix.
RECORDS_PREFIX = ".arraystore/migration/"


def remote_root(dst: str) -> Location | None:
    """The destination prefix as a location when ``dst`` is an object-store URL, else None."""
    try:
        location = parse_location(dst)
    except ValueError:
        return None
    if not location.remote:
        return None
    if location.key:
        raise MetadataError(
            f"{dst}: expected a destination prefix (s3://bucket/folder), found a '::' key; a migration writes one "
            "array per file under the prefix"
        )
    return location


def check_remote_target(root: Location, to: str, *, virtual: bool, into: str | None = None) -> None:
    """Refuse, before any work, a target format that cannot live on object storage.

    Raises
    ------
    BackendError
        ``to`` is not written to object storage by its backend (raw, npy, HDF5), ``virtual=True``, or
        ``into=`` (one consolidated group, written in place on a local disk).
    """
    if into is not None:
        raise BackendError(
            f"{root}: into={into!r} builds one consolidated Zarr group in place, on a local disk; expected a local "
            "destination folder, found an object-store URL: drop into (one array per file under the prefix), or "
            "migrate into a local folder and upload the group"
        )
    if virtual:
        raise BackendError(
            f"{root}: a virtual migration writes a reference store beside the archive, on a local disk; expected a "
            "local destination folder, found an object-store URL: migrate virtually to a local folder (and upload "
            "it), or drop virtual= to copy the arrays into the bucket as Zarr"
        )
    cls = url_class(root, to)
    if cls.object_storage != "read-write":
        raise BackendError(
            f"{root}: expected a target format that object storage can hold, found to={to!r}: {cls.backend} files "
            "cannot be written there (an object cannot be written in place, block by block). Migrate with "
            "to='zarr', or migrate to a local folder and upload the files"
        )


def put_object(root: Location, name: str, data: bytes, storage_options: Mapping[str, Any] | None = None) -> str:
    """Put ``data`` at ``name`` under the prefix; returns the object's URL."""
    import obstore

    store = object_store(root, storage_options)
    with store_errors(f"{root}/{name}", storage_options):
        obstore.put(store, name, data)
    return f"{root.url}/{name}"


def delete_object(root: Location, name: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Delete ``name`` under the prefix if it is there."""
    import obstore
    import obstore.exceptions as oe

    store = object_store(root, storage_options)
    with store_errors(f"{root}/{name}", storage_options):
        try:
            obstore.delete(store, name)
        except (oe.NotFoundError, FileNotFoundError):
            pass


class RemoteManifest:
    """:class:`~arraystore.migration._manifest.Manifest`'s interface, kept as objects under the prefix."""

    def __init__(self, root: Location, name: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.root = root
        self.name = name
        self.path = f"{root.url}/{name}"
        self._options = storage_options
        self._store = object_store(root, storage_options)

    def _record_key(self, source: str) -> str:
        return RECORDS_PREFIX + hashlib.sha1(source.encode()).hexdigest() + ".json"

    def _record_keys(self) -> list[str]:
        import obstore

        return [str(m["path"]) for batch in obstore.list(self._store, prefix=RECORDS_PREFIX) for m in batch]

    def read(self) -> dict[str, FileRecord]:
        """The newest record of each source: the manifest's lines, then the record objects.

        Raises
        ------
        MetadataError
            The manifest or a record object is not a migration record (edited by hand, or hostile).
        """
        import obstore
        import obstore.exceptions as oe

        with store_errors(self.path, self._options):
            try:
                body = bytes(obstore.get(self._store, self.name).bytes())
            except (oe.NotFoundError, FileNotFoundError):
                body = b""
            records = parse_manifest(body, self.path, torn_last_line=False)
            for key in self._record_keys():
                where = f"{self.root.url}/{key}"
                try:
                    obj = json.loads(bytes(obstore.get(self._store, key).bytes()))
                    rec = FileRecord.from_dict(obj)
                except (oe.NotFoundError, FileNotFoundError):
                    continue  # deleted by a run ending meanwhile: its record is in the manifest now
                except (ValueError, TypeError, RecursionError) as exc:
                    raise MetadataError(
                        f"{where}: expected a migration record (JSON object with 'source' and 'status'), found "
                        f"something else ({exc}); delete the object to convert its file again"
                    ) from None
                records[rec.source] = rec
        return records

    def append(self, record: FileRecord) -> None:
        """Put one file's record; it survives a kill of this process once this returns."""
        from ._manifest import _now

        if not record.finished:
            record.finished = _now()
        put_object(self.root, self._record_key(record.source), json.dumps(record.to_dict(), default=str).encode(),
                   self._options)

    def append_many(self, records: Sequence[FileRecord]) -> None:
        """Put each record (one object per file: a kill keeps every record whose PUT returned)."""
        for record in records:
            self.append(record)

    def sync(self) -> None:
        """Nothing to sync: an object is durable when its PUT returns."""

    def close(self) -> None:
        """Nothing to close: every record is its own object."""

    def rewrite(self, records: dict[str, FileRecord]) -> None:
        """Put the manifest with one line per source, then delete the record objects it now holds."""
        import obstore

        body = b"".join(json.dumps(r.to_dict(), default=str).encode() + b"\n" for _, r in sorted(records.items()))
        put_object(self.root, self.name, body, self._options)
        with store_errors(self.path, self._options):
            for key in self._record_keys():
                obstore.delete(self._store, key)


def write_remote_outputs(
    report: MigrationReport, root: Location, undetermined: Sequence[Resolution],
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Put the report, the summary and (for undetermined files) the rules template under the prefix."""
    from .rules import suggest_rules

    if undetermined:
        report.suggested_rules = put_object(root, SUGGESTED_RULES_NAME, suggest_rules(undetermined).encode(),
                                            storage_options)
    else:  # from an earlier run whose undetermined files are now resolved
        delete_object(root, SUGGESTED_RULES_NAME, storage_options)
    put_object(root, REPORT_NAME, report.to_file_json().encode() + b"\n", storage_options)
    put_object(root, SUMMARY_NAME, report.summary().encode() + b"\n", storage_options)
