"""Unicode arrays in HDF5 as fixed-length UTF-8 strings, which h5py, netCDF and xarray read as text.

A numpy ``U<n>`` array (UTF-32, ``n`` characters) is stored as an HDF5 fixed-length,
NUL-padded, UTF-8 string of ``width`` bytes (h5py's ``string_dtype("utf-8", width)``)
with the numpy dtype in the reserved attribute ``_arraystore_dtype`` (so ``U7`` comes
back as ``U7``, byte order included, whatever the byte width). No ``_Encoding``
attribute: xarray's netCDF4 engine gets text from netCDF-C already and fails on it
(with it, the h5netcdf engine, which returns fixed-length strings as bytes, would decode). ``width`` is the
longest encoded value, at least 1: ``convert`` measures it on the source
(:func:`scan_text`); ``create`` takes ``4 * n`` (any ``n`` characters fit) unless
given ``hdf5_string_bytes``.

Fixed-length UTF-8 cannot hold every numpy ``U`` value: other readers end a string
at its first NUL (so ``"a\\x00b"``, an *embedded* NUL, would read as ``"a"``), and
lone surrogates or numbers above U+10FFFF have no UTF-8 encoding. An array with
such a value keeps the UTF-32 encoding (``uint32`` code units, an HDF5 array type):
``convert`` decides before writing; a new dataset being written switches encoding
at the first such value (the values written so far are copied over block by
block); a published dataset opened ``r+`` refuses the write. Trailing NULs are
numpy's own padding (``U`` arrays cannot hold them), so nothing is lost.

Everything here works on one block at a time: memory stays bounded by the block.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

import h5py
import numpy as np

from ..errors import MetadataError, ValueOutOfRangeError

__all__ = [
    "UTF32_NOTE",
    "decode_text",
    "encode_text",
    "scan_text",
    "text_problem",
    "text_storage",
    "utf8_width",
]

UTF32_NOTE = (
    "{dtype} values are stored as uint32 UTF-32 code units (an HDF5 array type), not as strings: h5py shows "
    "uint32 arrays and netCDF readers skip the variable; {why}"
)


def text_storage(dtype: np.dtype[Any], width: int | None = None) -> np.dtype[Any]:
    """The h5py dtype of fixed-length UTF-8 strings for ``dtype`` (``U<n>``): ``width`` bytes, default ``4 * n``."""
    nbytes = 4 * (dtype.itemsize // 4) if width is None else int(width)
    return h5py.string_dtype("utf-8", max(1, nbytes))  # type: ignore[no-any-return]


def utf8_width(ds: h5py.Dataset, dtype: np.dtype[Any], where: str) -> int | None:
    """The byte width when ``ds`` holds the ``U`` array ``dtype`` as UTF-8 strings; None for the UTF-32 encoding.

    Raises
    ------
    MetadataError
        A string type that is not UTF-8 under a recorded ``U`` dtype.
    """
    if dtype.kind != "U":
        return None
    tid = ds.id.get_type()
    if tid.get_class() != h5py.h5t.STRING:
        return None
    if tid.is_variable_str() or tid.get_cset() != h5py.h5t.CSET_UTF8:
        raise MetadataError(
            f"{where}: _arraystore_dtype says {dtype}, but the dataset holds strings that are not fixed-length UTF-8; "
            "the attribute or the data is wrong"
        )
    return int(tid.get_size())


def _units(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The code units of a ``U`` array, native ``uint32``, with a trailing axis of ``n``."""
    n = a.dtype.itemsize // 4
    units = np.ascontiguousarray(a).view(np.dtype("u4").newbyteorder(a.dtype.byteorder))
    out: np.ndarray[Any, Any] = units.reshape(a.shape + (n,)).astype(np.uint32, copy=False)
    return out


def text_problem(a: np.ndarray[Any, Any]) -> tuple[int, str | None]:
    """(longest UTF-8 encoding in bytes, why fixed-length UTF-8 cannot hold ``a`` or None)."""
    if a.size == 0 or a.dtype.itemsize == 0:
        return 0, None
    u = _units(a)
    bad = ((u >= 0xD800) & (u < 0xE000)) | (u > 0x10FFFF)
    if bad.any():
        unit = int(u[bad].reshape(-1)[0])
        return 0, f"a value holds U+{unit:04X}, which UTF-8 cannot encode (a lone surrogate or above U+10FFFF)"
    nul = (u[..., :-1] == 0) & (u[..., 1:] != 0)
    if nul.any():
        value = str(a.reshape(-1)[int(np.argmax(nul.any(axis=-1).reshape(-1)))])
        return 0, f"a value ({value[:40]!r}) holds an embedded NUL, where other readers end the string"
    nbytes = (u > 0).astype(np.uint8)  # UTF-8 bytes per code unit: one byte each, not 8 (bounded memory)
    for limit in (0x80, 0x800, 0x10000):
        nbytes += u >= limit
    return int(nbytes.sum(axis=-1, dtype=np.int64).max()), None


def scan_text(blocks: Iterable[np.ndarray[Any, Any]]) -> tuple[int, str | None]:
    """(byte width UTF-8 needs, at least 1, or why it cannot hold the values) over blocks of one array."""
    width = 1
    for block in blocks:
        n, why = text_problem(block)
        if why is not None:
            return 0, why
        width = max(width, n)
    return width, None


def encode_text(value: np.ndarray[Any, Any], storage: np.dtype[Any], where: str) -> np.ndarray[Any, Any]:
    """``value`` (``U``) as UTF-8 strings of the storage dtype; refused before anything is written.

    Raises
    ------
    ValueOutOfRangeError
        A value longer than the byte width, or one UTF-8 strings cannot hold (see :func:`text_problem`).
    """
    nbytes, why = text_problem(value)
    if why is not None:
        raise ValueOutOfRangeError(
            f"{where}: the dataset stores {value.dtype.str} values as fixed-length UTF-8, which cannot hold this write: "
            f"{why}; nothing was written. Write the array to a new dataset (create(..., hdf5_strings='utf-32') keeps "
            "every value as UTF-32 code units), or remove the character"
        )
    if nbytes > storage.itemsize:
        raise ValueOutOfRangeError(
            f"{where}: a value needs {nbytes} bytes of UTF-8, but the dataset's strings hold {storage.itemsize} bytes "
            f"(it was sized for the values it was converted from); nothing was written. Write shorter values, or "
            "convert the array again into a new dataset"
        )
    width = storage.itemsize
    flat = np.ascontiguousarray(value).reshape(-1)
    out = np.zeros((flat.size, width), np.uint8)
    for lo in range(0, flat.size, _rows(value.dtype.itemsize)):
        units = _units(flat[lo : lo + _rows(value.dtype.itemsize)])
        # one pass of Python's codecs over the whole piece (UTF-32 in, UTF-8 out), then each item's
        # bytes (its NUL padding included: one byte per NUL) placed in its row, cut at the width
        utf8 = units.astype("<u4", copy=False).tobytes().decode("utf-32-le").encode("utf-8")
        per_unit = np.ones(units.shape, np.uint8)
        for limit in (0x80, 0x800, 0x10000):
            per_unit += units >= limit
        _place(np.frombuffer(utf8, np.uint8), per_unit.sum(axis=-1, dtype=np.int64), out[lo : lo + len(units)])
    encoded: np.ndarray[Any, Any] = out.reshape(-1).view(storage).reshape(value.shape)
    return encoded


def _rows(itemsize: int) -> int:
    """Items per piece of encoding or decoding work (about 1 MiB of ``U`` data: bounded temporaries)."""
    return max(1, (1 << 20) // max(itemsize, 1))


def _place(flat: np.ndarray[Any, Any], counts: np.ndarray[Any, Any], out: np.ndarray[Any, Any]) -> bool:
    """Lay ``flat`` (item after item, ``counts[i]`` values each) into the rows of ``out``, left-aligned.

    Values past ``out``'s width are dropped; returns True when one of them was not zero.
    """
    widest = int(counts.max()) if counts.size else 0
    full = np.zeros((len(counts), max(widest, out.shape[1])), flat.dtype)
    full[np.arange(full.shape[1]) < counts[:, None]] = flat
    out[...] = full[:, : out.shape[1]]
    return bool(full[:, out.shape[1] :].any())


def decode_text(raw: np.ndarray[Any, Any], dtype: np.dtype[Any], where: str) -> np.ndarray[Any, Any]:
    """UTF-8 strings read from the dataset as the array's ``U`` dtype.

    Raises
    ------
    MetadataError
        Bytes that are not UTF-8, or a value longer than ``dtype`` holds (written by another tool).
    """
    raw = np.asarray(raw)
    if raw.size == 0:
        return np.empty(raw.shape, dtype)
    width, n = raw.dtype.itemsize, dtype.itemsize // 4
    data = np.ascontiguousarray(raw).view(np.uint8).reshape(-1, width)
    out = np.zeros((len(data), n), np.uint32)
    for lo in range(0, len(data), _rows(width * 4)):
        piece = data[lo : lo + _rows(width * 4)]
        if ((piece[:, 0] & 0xC0) == 0x80).any():  # a value starting inside a character: not its own UTF-8
            _not_utf8(where, "a value starts with a continuation byte")
        try:  # NUL padding is valid UTF-8: the whole piece decodes iff every value does
            text = piece.tobytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            _not_utf8(where, str(exc))
        points = np.frombuffer(text.encode("utf-32-le"), "<u4")
        chars = ((piece & 0xC0) != 0x80).sum(axis=-1, dtype=np.int64)  # one lead byte per character (NULs too)
        if _place(points, chars, out[lo : lo + len(piece)]):
            longest = max(len(v.rstrip(b"\0").decode()) for v in piece.view(f"S{width}").reshape(-1))
            raise MetadataError(
                f"{where}: a value of {longest} characters is stored, longer than {dtype} (from _arraystore_dtype) "
                "holds; the dataset was changed by another tool"
            )
    return out.astype(np.dtype("u4").newbyteorder(dtype.byteorder)).view(dtype).reshape(raw.shape)


def _not_utf8(where: str, why: str) -> NoReturn:
    raise MetadataError(f"{where}: the dataset holds bytes that are not UTF-8 ({why}); it was changed by another tool")
