"""One writer per array on object storage: a lease object written by a conditional put.

Object stores have no ``flock``. The writer of ``s3://b/x.zarr`` holds the object
``x.zarr/.arraystore/lease`` (JSON: owner id, host, pid, expiry), created with
create-if-absent (S3 ``If-None-Match: *``). A second writer finds it and gets
:class:`~arraystore.errors.LockedError`. A lease whose expiry has passed, or whose
writer is a process of this host that no longer runs, is taken over with a compare-and-swap put (``If-Match`` on its ETag), so two
processes taking over the same dead lease cannot both win. The holder renews it while
writing (every ``ttl / 3`` seconds, again by compare-and-swap) and deletes it at close.

What a local ``flock`` gives and a lease does not: the expiry is wall-clock time, so a
writer paused for longer than ``ttl`` (suspended laptop, stopped container) can lose
its lease without knowing until its next renewal, which then fails with LockedError.

Some S3-compatible servers accept the conditions and ignore them (s3rver overwrites on
``If-None-Match: *`` and on a wrong ``If-Match``): on those the lease would exclude nobody.
Before its first lease on a bucket, a process checks both conditions on a probe object of
its own (:func:`check_conditional_puts`) and refuses such a store with
:class:`~arraystore.errors.ObjectStoreUnsupportedError`, before touching the lease.
``ARRAYSTORE_ASSUME_CONDITIONAL_REQUESTS=1`` skips the check, for running a test suite against
such a server: the lease then excludes nobody; never set it where two writers could meet.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Mapping
from typing import Any

import psutil

from ..errors import LockedError, ObjectStoreUnsupportedError
from . import store_errors, trusts_conditions

__all__ = ["LEASE_KEY", "Lease", "check_conditional_puts"]

#: The lease object's key under the array's prefix.
LEASE_KEY = ".arraystore/lease"
#: Seconds a lease lives without renewal.
DEFAULT_TTL = 60.0


#: Owner ids of the leases this process holds now.
_live_owners: set[str] = set()


def check_conditional_puts(store: Any, where: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Refuse a store that ignores create-if-absent or ``If-Match`` on a put, which the lease depends on.

    Checked once per bucket and process, on a probe object of its own under the lease's
    folder (created, created again, replaced with a wrong ETag, deleted).

    Raises
    ------
    ObjectStoreUnsupportedError
        The store accepted a put that its condition should have refused, or cannot take conditions.
    """
    if trusts_conditions(where, "put", storage_options):
        return
    import obstore
    import obstore.exceptions as oe

    probe = f"{LEASE_KEY.rsplit('/', 1)[0]}/probe-{uuid.uuid4().hex}"
    ignored = None
    with store_errors(where, storage_options):
        try:
            obstore.put(store, probe, b"1", mode="create")
            try:
                obstore.put(store, probe, b"2", mode="create")
                ignored = "ignores If-None-Match: * (create-if-absent) on a put"
            except (oe.AlreadyExistsError, oe.PreconditionError, FileExistsError):
                pass
            if ignored is None:
                try:
                    obstore.put(store, probe, b"3", mode={"e_tag": '"00000000000000000000000000000000"'})
                    ignored = "ignores If-Match on a put"
                except oe.PreconditionError:
                    pass
        except (oe.NotSupportedError, NotImplementedError):  # obstore's conditional_put="disabled"
            ignored = "cannot take conditional puts (is storage_options conditional_put 'disabled'?)"
        finally:
            with contextlib.suppress(Exception):
                obstore.delete(store, probe)
    if ignored is not None:
        raise ObjectStoreUnsupportedError(
            f"{where}: the object store {ignored}, which arraystore's one-writer lease needs: "
            "there, two writers could write the same array at once and neither would know. Expected a store "
            "that honours conditional puts (as AWS S3, MinIO, Google Cloud Storage and Azure do); write to such "
            "a store, or write locally and upload the finished array"
        )
    trusts_conditions(where, "put", storage_options, honoured=True)


def _started(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def _gone(holder: Mapping[str, Any]) -> bool:
    """True when the lease's writer is known to be gone: expired, or a dead process on this host."""
    try:
        if float(holder.get("expires", 0)) < time.time():
            return True
    except (TypeError, ValueError):
        return True  # a damaged lease protects nothing
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    if holder["pid"] == os.getpid():
        return holder.get("owner") not in _live_owners  # a handle of this process that let go (or could not delete)
    started = _started(int(holder["pid"]))
    return started is None or started != holder.get("started")  # no such process, or the pid was reused


class Lease:
    """A held writer lease on an object-store prefix; :meth:`release` gives it up.

    Raises
    ------
    LockedError
        Another live writer holds the lease (after waiting ``timeout`` seconds).
    ObjectStoreUnsupportedError
        The store ignores conditional puts, so a lease would exclude nobody.
    """

    def __init__(
        self,
        store: Any,
        where: str,
        *,
        timeout: float = 0.0,
        ttl: float = DEFAULT_TTL,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._store = store
        self.path = f"{where}/{LEASE_KEY}"
        self._where = where
        self._ttl = float(ttl)
        self._owner = uuid.uuid4().hex
        self._options = storage_options
        self._etag: str | None = None
        self._renewed = 0.0
        check_conditional_puts(store, where, storage_options)
        self._acquire(timeout)

    def _body(self) -> bytes:
        return json.dumps(
            {
                "owner": self._owner,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": _started(os.getpid()),
                "expires": time.time() + self._ttl,
            }
        ).encode()

    def _acquire(self, timeout: float) -> None:
        import obstore
        import obstore.exceptions as oe

        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            with store_errors(self._where, self._options):
                try:
                    result = obstore.put(self._store, LEASE_KEY, self._body(), mode="create")
                    self._held(result)
                    return
                except (oe.AlreadyExistsError, FileExistsError):
                    pass
                holder, etag = self._current()
                if holder is not None and etag is not None and _gone(holder):
                    try:  # the holder is gone: take over, compare-and-swap on its ETag
                        result = obstore.put(self._store, LEASE_KEY, self._body(), mode={"e_tag": etag})
                        self._held(result)
                        return
                    except (oe.PreconditionError, oe.AlreadyExistsError, oe.NotFoundError, FileNotFoundError, FileExistsError):
                        pass  # someone else took it over (or released it) first: look again
            if time.monotonic() >= deadline:
                who = f" (pid {holder.get('pid')} on {holder.get('host')})" if holder else ""
                raise LockedError(
                    f"{self._where}: another writer holds its lease{who}; object stores allow one writer per array. "
                    "Wait for it to close, pass lock_timeout= to wait, or if that writer died, retry after its lease "
                    f"expires (at most {self._ttl:.0f} s)"
                )
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _held(self, result: Any) -> None:
        _live_owners.add(self._owner)
        self._etag = result.get("e_tag") if isinstance(result, Mapping) else None
        self._renewed = time.monotonic()

    def _current(self) -> tuple[dict[str, Any] | None, str | None]:
        import obstore
        import obstore.exceptions as oe

        try:
            got = obstore.get(self._store, LEASE_KEY)
            data = json.loads(bytes(got.bytes()))
            return (data if isinstance(data, dict) else {}), got.meta.get("e_tag")
        except (oe.NotFoundError, FileNotFoundError):
            return None, None
        except ValueError:
            return {}, None

    def renew_if_due(self) -> None:
        """Extend the lease when a third of its life has passed; LockedError if it was taken over."""
        if self._etag is None or time.monotonic() - self._renewed < self._ttl / 3:
            return
        import obstore
        import obstore.exceptions as oe

        with store_errors(self._where, self._options):
            try:
                self._held(obstore.put(self._store, LEASE_KEY, self._body(), mode={"e_tag": self._etag}))
            except (oe.PreconditionError, oe.NotFoundError, FileNotFoundError):
                self._etag = None
                raise LockedError(
                    f"{self._where}: this writer's lease expired and another writer took it over (was this process "
                    "paused?); nothing it writes now is safe: stop, and rerun the write"
                ) from None

    def release(self) -> None:
        """Delete the lease if this writer still holds it."""
        if self._etag is None:
            return
        import obstore

        self._etag = None
        _live_owners.discard(self._owner)
        # Never raises: release runs while another error is handled (often the store being unreachable),
        # and a lease left behind expires, or is taken over at once on this host once this process is gone.
        with contextlib.suppress(Exception):
            holder, _ = self._current()
            if holder is not None and holder.get("owner") == self._owner:
                obstore.delete(self._store, LEASE_KEY)
