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
    │   ├── DimensionError                     chunks/shards/shape with the wrong number of axes
    │   ├── UnsafeInputError                   refused: pickles, external links, traversal, symlinks out, JSON bombs
    │   ├── MetadataConflictError              migration: two evidence sources disagree
    │   └── DataContradictsEvidenceError       migration: sampled data contradict a name-only reading
    ├── UnsupportedDtypeError (TypeError)      dtype not storable (exactly) in a backend, or outside the dtype grammar
    ├── ModeError (ValueError)                 unknown mode, not offered by the backend, or shape=/dtype= missing to create
    ├── OptionError (TypeError)                a keyword argument the function or the backend does not take
    ├── ReadOnlyError (PermissionError)        write through a read-only store
    ├── ArrayNotFoundError (FileNotFoundError) nothing at the path
    ├── AlreadyExistsError (FileExistsError)   ``w-`` or create without overwrite
    ├── LockedError (TimeoutError)             another writer holds the store
    ├── ClosedStoreError (ValueError)          use after close()
    ├── SelectionError (IndexError)            an index the store cannot take, or out of bounds
    ├── AccessError (ValueError)               a bad argument to an access helper (advice, batch size)
    ├── ValueOutOfRangeError (OverflowError)   a written value does not fit the store's dtype
    ├── BroadcastError (ValueError)            a written value's shape does not fit the selection
    ├── CopyRequiredError (ValueError)         np.asarray(store, copy=False) where no view exists
    ├── ZeroDimensionalError (TypeError)       iter() or len() of a 0-d array
    ├── ArrayChangedError (RuntimeError)       replaced or rewritten by another writer since opened
    ├── BackendError (ValueError)              unknown backend, undetectable format
    │   ├── MissingDependencyError (ImportError) backend's library not installed
    │   └── CompressionError (+ MetadataError)  compression= unknown, malformed, or not the backend's
    ├── NotMemoryMappableError (TypeError)     as_memmap() on chunked/compressed data
    ├── StorageFullError (OSError)             the file system ran out of space
    ├── NetworkFilesystemError (OSError)       memory map on a network FS refused by policy
    ├── ObjectStoreError (OSError)             an object store failed or could not be reached
    │   ├── ObjectStoreAccessError (PermissionError) credentials missing, wrong or not allowed
    │   └── ObjectStoreUnsupportedError        the store ignores conditional writes a guarantee needs
    ├── ConversionError                        a conversion could not be planned or run
    │   └── MemoryBudgetError (ValueError)     budget cannot hold one destination chunk
    ├── BlockError                             map_blocks: the function raised on a block
    ├── FunctionNotPicklableError (TypeError)  map_blocks: the function cannot reach worker processes
    ├── UnguardedMainError (RuntimeError)      a process pool started from a script's unguarded top level
    └── VerificationError                      checksums differ

    ArrayStoreWarning (UserWarning)
    ├── NetworkFilesystemWarning               memory-mapping a network file system
    ├── NotPersistedWarning                    flush() in copy-on-write mode
    └── LockFallbackWarning                    file locks unavailable; weaker lock used
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")

__all__ = [
    "AccessError",
    "AlreadyExistsError",
    "ArrayChangedError",
    "ArrayNotFoundError",
    "ArrayStoreError",
    "ArrayStoreWarning",
    "BackendError",
    "BlockError",
    "BroadcastError",
    "ClosedStoreError",
    "CompressionError",
    "ConversionError",
    "CopyRequiredError",
    "DataContradictsEvidenceError",
    "DimensionError",
    "FunctionNotPicklableError",
    "IncompleteArrayError",
    "LockFallbackWarning",
    "LockedError",
    "MemoryBudgetError",
    "MetadataConflictError",
    "MetadataError",
    "MissingDependencyError",
    "ModeError",
    "NetworkFilesystemError",
    "NetworkFilesystemWarning",
    "NotMemoryMappableError",
    "NotPersistedWarning",
    "ObjectStoreAccessError",
    "ObjectStoreError",
    "ObjectStoreUnsupportedError",
    "OptionError",
    "ReadOnlyError",
    "SelectionError",
    "SizeMismatchError",
    "StorageFullError",
    "UnguardedMainError",
    "UnsafeInputError",
    "UnsupportedDtypeError",
    "ValueOutOfRangeError",
    "VerificationError",
    "ZeroDimensionalError",
]


class ArrayStoreError(Exception):
    """Root of every error arraystore raises on purpose."""


class MetadataError(ArrayStoreError, ValueError):
    """Metadata is missing, unreadable or inconsistent."""


class SizeMismatchError(MetadataError):
    """The data's byte count differs from what its metadata promises.

    The message lists the causes the arithmetic allows, most likely first: another
    item size, another length of one axis, a header before the data, a truncated file
    (see :func:`size_causes`).

    Parameters
    ----------
    path
        The data file.
    expected, actual
        Byte counts (of the data region, excluding any header).
    itemsize
        The dtype's item size, used to suggest a likely cause.
    shape
        The shape the metadata states, used to suggest which axis length would fit.
    """

    def __init__(
        self, path: str, expected: int, actual: int, itemsize: int | None = None, shape: tuple[int, ...] | None = None
    ):
        self.path = path
        self.expected = expected
        self.actual = actual
        self.causes = size_causes(expected, actual, itemsize, shape)
        msg = f"{path}: expected {expected:,} bytes of data from its metadata, found {actual:,} bytes"
        hint = _size_hint(expected, actual, itemsize, shape)
        msg += (
            f"; {hint}"
            if hint
            else (
                "; the file or its metadata is wrong: check the shape and dtype it was "
                "written with, and do not open it with guessed metadata"
            )
        )
        super().__init__(msg)


#: Header sizes common in instrument and image formats: a surplus of these is most likely a header.
_HEADER_SIZES = frozenset({128, 256, 512, 1024, 2048, 2880, 4096, 8192})
_ITEM_NAMES = {1: "uint8/int8", 2: "int16/uint16/float16", 4: "float32/int32", 8: "float64/int64/complex64",
               16: "complex128"}


def size_causes(
    expected: int, actual: int, itemsize: int | None, shape: tuple[int, ...] | None = None
) -> list[tuple[str, Any, str]]:
    """The causes of a size mismatch the arithmetic allows, most likely first.

    Each is ``(kind, value, explanation)``: ``("itemsize", bytes per item, ...)``,
    ``("shape", (axis, length), ...)``, ``("offset", header bytes, ...)``,
    ``("truncated", fraction present, ...)`` or ``("empty", 0, ...)``.
    """
    ranked: list[tuple[float, str, Any, str]] = []
    if actual == 0:
        return [("empty", 0, "the file is empty")] if expected else []
    if expected == 0:
        return [("offset", actual, f"the metadata describes no data, yet the file holds {actual:,} bytes")]
    n = expected // itemsize if itemsize else 0
    if itemsize and n and actual % n == 0 and (size := actual // n) in _ITEM_NAMES and size != itemsize:
        score = 0.95 if size in (itemsize * 2, itemsize // 2) else 0.85
        ranked.append((score, "itemsize", size, (
            f"it was written with {size}-byte items ({_ITEM_NAMES[size]}) instead of {itemsize}-byte ones: "
            f"the same {n:,} elements at {actual // n} bytes each fill exactly {actual:,} bytes")))
    if itemsize and n and shape and actual % itemsize == 0:
        m = actual // itemsize
        for axis, length in enumerate(shape):
            if length == 0:
                continue
            rest = n // length
            if rest and m % rest == 0 and (fit := m // rest) != length:
                trial = tuple(fit if i == axis else d for i, d in enumerate(shape))
                ranked.append((0.8 if axis == 0 else 0.5 - 0.01 * axis, "shape", (axis, fit), (
                    f"its shape is {trial}: axis {axis} of length {fit:,} instead of {length:,} fits exactly")))
    if actual > expected:
        extra = actual - expected
        score = 0.9 if extra in _HEADER_SIZES else (0.6 if extra < min(expected, 65536) else 0.3)
        ranked.append((score, "offset", extra, (
            f"a header of {extra:,} bytes precedes the data (read it with offset={extra}), "
            "or as many bytes trail it")))
    if actual < expected:
        rows = expected // shape[0] if shape and shape[0] else 0
        score = 0.7 if not ranked else (0.75 if rows and actual % rows else 0.4)
        ranked.append((score, "truncated", actual / expected, (
            f"the file is truncated ({actual / expected:.1%} of the expected size): "
            "it was probably not written completely")))
    ranked.sort(key=lambda c: -c[0])
    return [(kind, value, text) for _score, kind, value, text in ranked]


def _size_hint(expected: int, actual: int, itemsize: int | None, shape: tuple[int, ...] | None = None) -> str:
    causes = size_causes(expected, actual, itemsize, shape)
    if not causes:
        return ""
    if len(causes) == 1:
        return causes[0][2]
    listed = "; ".join(f"({i}) {text}" for i, (_kind, _value, text) in enumerate(causes, 1))
    return f"plausible causes, most likely first: {listed}"


class IncompleteArrayError(MetadataError):
    """The array was opened for writing and never completed (a crash, a kill)."""


class UnsafeInputError(MetadataError):
    """Input refused because reading it could run code or reach outside its folder."""


class MetadataConflictError(MetadataError):
    """Two evidence sources disagree about a file's dtype, shape, order, offset or byte order.

    Parameters
    ----------
    path
        The data file.
    fact
        The fact in dispute (``"dtype"``, ``"shape"``, ...).
    first, second
        ``(source, value)`` of the two disagreeing sources, in priority order.
    """

    def __init__(self, path: str, fact: str, first: tuple[str, str], second: tuple[str, str]):
        self.path = path
        self.fact = fact
        self.first = first
        self.second = second
        super().__init__(
            f"{path}: conflicting {fact}: {first[0]} says {first[1]} but {second[0]} says {second[1]}; "
            f"nothing is converted on contradicting evidence: correct the wrong source, or add a rule "
            f"with override = true stating the right {fact}"
        )


class DataContradictsEvidenceError(MetadataError):
    """The sampled data contradicts a reading that only weak evidence (a file name, a default) supports.

    The file is reported *undetermined*, with every reading tested as a candidate, most
    plausible first; a rule stating the dtype and byte order decides it.
    """


class UnsupportedDtypeError(ArrayStoreError, TypeError):
    """The dtype cannot be stored, exactly or losslessly, where it was asked to go."""


class ModeError(ArrayStoreError, ValueError):
    """An unknown mode, or one the backend does not offer."""


class OptionError(ArrayStoreError, TypeError):
    """A keyword argument that the function, or the array's backend, does not take (a misspelt option)."""

    @classmethod
    def check(cls, call: str, backend: str, options: Any, *takers: Any) -> None:
        """Raise when ``options`` (keyword arguments given to ``call``) has a name none of ``takers`` accepts.

        ``takers``: the functions the options are passed on to. Their keyword parameters (not those
        starting with ``_``) are the options; when every one of them takes ``**options``, which
        ones they accept is not known here and nothing is checked.
        """
        names: set[str] = set()
        open_ended = True
        for taker in takers:
            keywords, takes_any = _keywords(taker)
            open_ended &= takes_any
            names |= keywords
        unknown = [k for k in options if k not in names or k.startswith("_")]
        if open_ended or not unknown:
            return
        known = sorted(n for n in names if not n.startswith("_") and n not in ("cls", "self", "location", "meta", "mode"))
        raise cls(
            f"{call}() got {', '.join(map(repr, unknown))}, which the {backend} backend does not take; its options "
            f"are {', '.join(known) or 'none'} (besides {call}()'s own parameters): check the spelling, or name "
            "another backend"
        )


@functools.lru_cache(maxsize=256)
def _keywords(func: Callable[..., Any]) -> tuple[frozenset[str], bool]:
    """The names ``func`` takes by keyword, and whether it takes ``**options`` too (read once per function: ``open``
    checks its options on every call)."""
    params = inspect.signature(func).parameters.values()
    return (frozenset(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)),
            any(p.kind is p.VAR_KEYWORD for p in params))


def known_options(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """``func``, raising :class:`OptionError` (not a bare ``TypeError``) for a keyword argument it does not take."""
    names, takes_any = _keywords(func)

    @functools.wraps(func)
    def checked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        unknown = [] if takes_any else [k for k in kwargs if k not in names]
        if unknown:
            known = ", ".join(sorted(n for n in names if not n.startswith("_")))
            raise OptionError(
                f"{func.__name__}() got {', '.join(map(repr, unknown))}, which it does not take; its options are "
                f"{known}: check the spelling"
            )
        return func(*args, **kwargs)

    return checked


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


class AccessError(ArrayStoreError, ValueError):
    """A bad argument to an access helper (unknown advice, batch size, window)."""


class DimensionError(MetadataError):
    """A per-axis value (chunks, shards, a shape) with a different number of axes than the array."""

    @classmethod
    def check(cls, what: str, value: tuple[int, ...] | None, shape: tuple[int, ...]) -> None:
        """Raise when ``value`` (named ``what``, e.g. ``"chunks"``) does not give one entry per axis of ``shape``."""
        if value is None or len(value) == len(shape):
            return
        axes = ", ".join(f"axis {i} = {n}" for i, n in enumerate(shape)) or "none (0-d)"
        fill = ((1,) * (len(shape) - len(value)) + tuple(value))[-len(shape):] if shape else ()
        example = (
            f"; e.g. {what}={','.join(map(str, fill))} keeps your values for the last axes"
            if len(value) < len(shape)
            else ""
        )
        raise cls(
            f"expected {what} with one value per axis of the {len(shape)}-d array of shape {tuple(shape)} "
            f"({axes}), found {len(value)} value{'' if len(value) == 1 else 's'} {tuple(value)}: give {len(shape)} "
            f"value{'' if len(shape) == 1 else 's'}{example}"
        )


class ValueOutOfRangeError(ArrayStoreError, OverflowError):
    """A written value does not fit the store's dtype (numpy 2's rule for Python scalars, NEP 50)."""


class BroadcastError(ArrayStoreError, ValueError):
    """A written value cannot be broadcast to the selection's shape (numpy raises ValueError)."""


class CopyRequiredError(ArrayStoreError, ValueError):
    """``np.asarray(store, copy=False)`` where the store cannot share its bytes (numpy 2 asks ValueError)."""


class ZeroDimensionalError(ArrayStoreError, TypeError):
    """``iter()`` or ``len()`` of a 0-d array, which has no first axis (numpy raises TypeError)."""


class ArrayChangedError(ArrayStoreError, RuntimeError):
    """The array was replaced or rewritten by another writer after this store opened it.

    A reader keeps reading the generation it opened, or gets this error: never a
    mixture of two generations. Open the array again to read the new one.
    """


class UnguardedMainError(ArrayStoreError, RuntimeError):
    """A process pool was started from a script's top level, outside ``if __name__ == "__main__":``.

    Worker processes re-import the main script; unguarded, each would run the script's
    top level again (and try to start pools of its own), so the pool would break with
    ``BrokenProcessPool``. ``path`` and ``line`` name the call.
    """

    def __init__(self, message: str, path: str, line: int):
        super().__init__(message)
        self.path = path
        self.line = line


class BackendError(ArrayStoreError, ValueError):
    """The backend is unknown or the format could not be detected."""


class MissingDependencyError(BackendError, ImportError):
    """The library a backend needs is not installed."""


class CompressionError(BackendError, MetadataError):
    """A ``compression=`` value that is malformed, unknown, out of range, or not written by the backend.

    One type for every backend (see :mod:`arraystore.compression`); it is both a
    :class:`BackendError` and a :class:`MetadataError`, which the backends raised before.
    """


class NotMemoryMappableError(ArrayStoreError, TypeError):
    """``as_memmap()`` on data that is not one contiguous uncompressed byte range."""


class StorageFullError(ArrayStoreError, OSError):
    """The file system ran out of space (ENOSPC or EDQUOT)."""


class NetworkFilesystemError(ArrayStoreError, OSError):
    """A memory map on a network file system, refused because the policy says error."""


class ObjectStoreError(ArrayStoreError, OSError):
    """An object store (S3, GCS, Azure, HTTP) failed or could not be reached; the message never holds secrets."""


class ObjectStoreAccessError(ObjectStoreError, PermissionError):
    """The object store refused the credentials (missing, wrong, or without the needed permission)."""


class ObjectStoreUnsupportedError(ObjectStoreError):
    """The object store ignores a request condition a guarantee depends on (create-if-absent, ``If-Match``)."""


class ConversionError(ArrayStoreError):
    """A conversion could not be planned or completed."""


class MemoryBudgetError(ConversionError, ValueError):
    """The memory budget cannot hold even one block of the plan."""


class BlockError(ArrayStoreError):
    """A function run by :func:`~arraystore.parallel.map_blocks` raised on a block.

    The worker's exception is the ``__cause__`` (with the worker's traceback attached by
    :mod:`concurrent.futures`); ``selection`` and ``index`` name the block.
    """

    def __init__(self, message: str, index: int, selection: tuple[slice, ...]):
        super().__init__(message)
        self.index = index
        self.selection = selection


class FunctionNotPicklableError(ArrayStoreError, TypeError):
    """The function given to :func:`~arraystore.parallel.map_blocks` cannot be sent to worker processes."""


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
