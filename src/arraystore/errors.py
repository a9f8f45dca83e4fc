"""Exceptions and warnings raised by arraystore.

Every failure the library foresees raises a subclass of :class:`ArrayStoreError`.
Where a builtin exception already names the situation, the subclass inherits it
too, so ``except FileNotFoundError`` keeps working around arraystore calls.
Errors of the wrapped libraries (h5py, zarr, numpy's ``.npy`` reader) are mapped
into this tree at the backend boundary; none should escape as a bare
``ValueError`` or ``KeyError``.

The tree::

    ArrayStoreError
    ├── MetadataError (ValueError)             metadata missing, unreadable or invalid
    │   ├── SizeMismatchError                  data size != shape x itemsize (+ offset)
    │   ├── IncompleteArrayError               written but never completed (crash?)
    │   └── UnsafeInputError                   refused: pickles, external links, traversal
    ├── UnsupportedDtypeError (TypeError)      dtype not storable (exactly) in a backend
    ├── ModeError (ValueError)                 unknown mode, or mode not offered by a backend
    ├── ReadOnlyError (PermissionError)        write through a read-only store
    ├── ArrayNotFoundError (FileNotFoundError) nothing at the path
    ├── AlreadyExistsError (FileExistsError)   ``w-`` or create without overwrite
    ├── LockedError (TimeoutError)             another writer holds the store
    ├── ClosedStoreError (ValueError)          use after close()
    ├── SelectionError (IndexError)            an index the store cannot take, or out of bounds
    ├── ValueOutOfRangeError (OverflowError)   a written value does not fit the store's dtype
    ├── ArrayChangedError (RuntimeError)       replaced or rewritten by another writer since opened
    ├── BackendError (ValueError)              unknown backend, undetectable format
    │   └── MissingDependencyError (ImportError) backend's library not installed
    ├── NotMemoryMappableError (TypeError)     as_memmap() on chunked/compressed data
    ├── StorageFullError (OSError)             the file system ran out of space
    ├── NetworkFilesystemError (OSError)       memory map on a network FS refused by policy
    ├── ConversionError                        a conversion could not be planned or run
    │   └── MemoryBudgetError (ValueError)     budget cannot hold one destination chunk
    └── VerificationError                      checksums differ

    ArrayStoreWarning (UserWarning)
    ├── NetworkFilesystemWarning               memory-mapping a network file system
    ├── NotPersistedWarning                    flush() in copy-on-write mode
    └── LockFallbackWarning                    file locks unavailable; weaker lock used
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "ArrayChangedError",
    "ArrayNotFoundError",
    "ArrayStoreError",
    "ArrayStoreWarning",
    "BackendError",
    "ClosedStoreError",
    "ConversionError",
    "IncompleteArrayError",
    "LockFallbackWarning",
    "LockedError",
    "MemoryBudgetError",
    "MetadataError",
    "MissingDependencyError",
    "ModeError",
    "NetworkFilesystemError",
    "NetworkFilesystemWarning",
    "NotMemoryMappableError",
    "NotPersistedWarning",
    "ReadOnlyError",
    "SelectionError",
    "SizeMismatchError",
    "StorageFullError",
    "UnsafeInputError",
    "UnsupportedDtypeError",
    "ValueOutOfRangeError",
    "VerificationError",
]


class ArrayStoreError(Exception):
    """Root of every error arraystore raises on purpose."""


class MetadataError(ArrayStoreError, ValueError):
    """Metadata is missing, unreadable or inconsistent."""


class SizeMismatchError(MetadataError):
    """The data's byte count differs from what its metadata promises.

    Parameters
    ----------
    path
        The data file.
    expected, actual
        Byte counts (of the data region, excluding any header).
    itemsize
        The dtype's item size, used to suggest a likely cause.
    """

    def __init__(self, path: str, expected: int, actual: int, itemsize: int | None = None):
        self.path = path
        self.expected = expected
        self.actual = actual
        msg = f"{path}: expected {expected:,} bytes of data from its metadata, found {actual:,} bytes"
        hint = _size_hint(expected, actual, itemsize)
        msg += (
            f"; {hint}"
            if hint
            else (
                "; the file or its metadata is wrong: check the shape and dtype it was "
                "written with, and do not open it with guessed metadata"
            )
        )
        super().__init__(msg)


def _size_hint(expected: int, actual: int, itemsize: int | None) -> str:
    if expected == 0 or actual == 0:
        return "the file is empty" if actual == 0 and expected else ""
    if actual < expected:
        return (
            f"the file is truncated ({actual / expected:.1%} of the expected size): "
            "it was probably not written completely"
        )
    ratio = actual / expected
    if itemsize and ratio in (2.0, 4.0, 8.0, 0.5, 0.25):
        size = int(itemsize * ratio)
        return (
            f"the file holds {ratio:g} times the expected bytes: was it written with "
            f"{size}-byte items (e.g. float{size * 8} or int{size * 8}) instead of "
            f"{itemsize}-byte ones?"
        )
    return "the file holds more bytes than the metadata accounts for"


class IncompleteArrayError(MetadataError):
    """The array was opened for writing and never completed (a crash, a kill)."""


class UnsafeInputError(MetadataError):
    """Input refused because reading it could run code or reach outside its folder."""


class UnsupportedDtypeError(ArrayStoreError, TypeError):
    """The dtype cannot be stored, exactly or losslessly, where it was asked to go."""


class ModeError(ArrayStoreError, ValueError):
    """An unknown mode, or one the backend does not offer."""


class ReadOnlyError(ArrayStoreError, PermissionError):
    """A write through a store opened read-only."""


class ArrayNotFoundError(ArrayStoreError, FileNotFoundError):
    """Nothing exists at the given path."""


class AlreadyExistsError(ArrayStoreError, FileExistsError):
    """Something already exists where a new array was to be created."""


class LockedError(ArrayStoreError, TimeoutError):
    """Another writer holds the store's lock."""


class ClosedStoreError(ArrayStoreError, ValueError):
    """The store was used after ``close()``."""


class SelectionError(ArrayStoreError, IndexError):
    """An index that is not basic indexing, or out of bounds."""


class ValueOutOfRangeError(ArrayStoreError, OverflowError):
    """A written value does not fit the store's dtype (numpy 2's rule for Python scalars, NEP 50)."""


class ArrayChangedError(ArrayStoreError, RuntimeError):
    """The array was replaced or rewritten by another writer after this store opened it.

    A reader keeps reading the generation it opened, or gets this error: never a
    mixture of two generations. Open the array again to read the new one.
    """


class BackendError(ArrayStoreError, ValueError):
    """The backend is unknown or the format could not be detected."""


class MissingDependencyError(BackendError, ImportError):
    """The library a backend needs is not installed."""


class NotMemoryMappableError(ArrayStoreError, TypeError):
    """``as_memmap()`` on data that is not one contiguous uncompressed byte range."""


class StorageFullError(ArrayStoreError, OSError):
    """The file system ran out of space (ENOSPC or EDQUOT)."""


class NetworkFilesystemError(ArrayStoreError, OSError):
    """A memory map on a network file system, refused because the policy says error."""


class ConversionError(ArrayStoreError):
    """A conversion could not be planned or completed."""


class MemoryBudgetError(ConversionError, ValueError):
    """The memory budget cannot hold even one block of the plan."""


class VerificationError(ArrayStoreError):
    """Recomputed checksums differ from the recorded or the other store's."""


class ArrayStoreWarning(UserWarning):
    """Root of arraystore's warnings."""


class NetworkFilesystemWarning(ArrayStoreWarning):
    """A memory map is about to be made on a network file system."""


class NotPersistedWarning(ArrayStoreWarning):
    """``flush()`` on a copy-on-write store: nothing reaches the file."""


class LockFallbackWarning(ArrayStoreWarning):
    """The file system has no working ``flock``; a weaker lock is used."""
