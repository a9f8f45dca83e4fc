"""The resume journal of a conversion whose destination is in an object store.

Objects cannot be appended to, so the journal is a set of small objects under the
destination's prefix: ``.arraystore/journal/header.json`` and one
``.arraystore/journal/<block>.json`` per finished block. A kill loses at most the
records of blocks in flight, which a resume rewrites.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..conversion._journal import MAGIC, VERSION, Journal, _canon
from ..location import Location
from . import object_store, store_errors

__all__ = ["RemoteJournal"]

_DIR = ".arraystore/journal/"


class RemoteJournal(Journal):
    """:class:`~arraystore.conversion._journal.Journal` kept as objects under the destination's prefix."""

    _ostore: Any = None
    _where: str = ""

    @classmethod
    def open_remote(
        cls, dst: Location, source: dict[str, Any], options: dict[str, Any], *, resume: bool, enabled: bool = True,
        storage_options: Mapping[str, Any] | None = None,
    ) -> tuple[Journal, str | None]:
        """Load a matching journal (resume) or start a new one, as :meth:`Journal.open`."""
        import obstore

        ostore = object_store(dst, storage_options)
        header = {"journal": MAGIC, "version": VERSION, "source": source, "options": options}
        where = str(dst)
        with store_errors(where, storage_options):
            names: list[str] = [str(m["path"]) for batch in obstore.list(ostore, prefix=_DIR) for m in batch]
            old: dict[str, Any] | None = None
            done: dict[int, str] = {}
            if f"{_DIR}header.json" in names:
                try:
                    got = json.loads(bytes(obstore.get(ostore, f"{_DIR}header.json").bytes()))
                    old = got if isinstance(got, dict) and got.get("journal") == MAGIC else None
                except ValueError:
                    old = None
                for name in names:
                    stem = name[len(_DIR) :].removesuffix(".json")
                    if stem.isdigit():
                        try:
                            rec = json.loads(bytes(obstore.get(ostore, name).bytes()))
                            done[int(stem)] = str(rec["digest"])
                        except (ValueError, KeyError, TypeError):
                            continue
        message = None
        if names and enabled:
            if not resume:
                message = "resume disabled: starting from scratch"
            elif old is None:
                message = "unreadable journal; starting from scratch"
            elif _canon(old.get("source")) != _canon(source):
                message = "the source changed since the interrupted conversion; starting from scratch"
            elif _canon(old.get("options")) != _canon(options):
                message = "the conversion options changed since the interrupted conversion; starting from scratch"
            if message is not None:
                done = {}
        journal = cls(dst.file, header, done, durable=False, enabled=enabled)
        journal._ostore = ostore
        journal._where = where
        journal._on_disk = bool(names)
        if message is not None or not done or not enabled:
            journal._start()
        return journal, message

    def _delete_all(self) -> None:
        import obstore

        with store_errors(self._where):
            for batch in obstore.list(self._ostore, prefix=_DIR):
                for m in batch:
                    obstore.delete(self._ostore, str(m["path"]))

    def _start(self) -> None:
        import obstore

        self.done = {}
        if self._on_disk:
            self._delete_all()
        self._on_disk = False
        if not self.enabled:
            return
        with store_errors(self._where):
            obstore.put(self._ostore, f"{_DIR}header.json", json.dumps(self.header, sort_keys=True).encode())
        self._on_disk = True

    def record(self, block: int, digest: str) -> None:
        """Store one finished block's record."""
        import obstore

        if self.enabled:
            with store_errors(self._where):
                obstore.put(self._ostore, f"{_DIR}{block}.json", json.dumps({"digest": digest}).encode())
        self.done[block] = digest

    def close(self) -> None:
        """Nothing to close: every record is its own object."""

    def remove(self) -> None:
        """Delete the journal's objects."""
        if self._on_disk:
            self._delete_all()
            self._on_disk = False
