"""How the built-in formats are recognised by content, without importing h5py or zarr.

The backends' :meth:`~arraystore.ArrayStore.guess_can_open` call these, and the
registry calls them directly for built-in backends whose module is not imported
yet, so that telling an HDF5 file from a Zarr folder imports neither library.
"""

from __future__ import annotations

import os

from ..location import Location

__all__ = ["hdf5_signature", "npy_signature", "raw_side_evidence", "zarr_folder"]

NPY_MAGIC = b"\x93NUMPY"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _head(location: Location, n: int) -> bytes:
    try:
        with open(location.file, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def npy_signature(location: Location) -> bool:
    """The file starts with ``\\x93NUMPY``."""
    return not location.remote and location.file.is_file() and _head(location, 6) == NPY_MAGIC


def hdf5_signature(location: Location) -> bool:
    """HDF5's signature at offset 0, 512, 1024, 2048, ... (a user block may precede it), up to 1 MiB."""
    if location.remote or not location.file.is_file():  # a URL's path names nothing local
        return False
    try:
        with open(location.file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            offset = 0
            while offset + 8 <= size and offset <= 1 << 20:
                f.seek(offset)
                if f.read(8) == HDF5_MAGIC:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def zarr_folder(location: Location) -> bool:
    """A folder with ``zarr.json`` (v3) or ``.zarray``/``.zgroup`` (v2)."""
    file = location.file
    return not location.remote and file.is_dir() and any((file / name).exists() for name in ("zarr.json", ".zarray", ".zgroup"))


def raw_side_evidence(location: Location) -> bool:
    """A raw file told by what is beside it: arraystore's JSON sidecar, or a header dialect
    (ENVI/EHdr ``.hdr``, MetaImage ``.mhd``/``.mha``, IDX) for it, or the header file itself."""
    from .. import dialects
    from ..dialects.idx import is_idx_name
    from ..errors import ArrayStoreError

    file = location.file
    if location.remote:  # nothing local to look at: the name says it (the raw backend reads the header)
        from ..objstore._dialects import names_a_dialect

        return names_a_dialect(file.name)
    if not file.exists() or file.is_dir():
        return False
    if file.with_name(file.name + ".json").exists():
        return True
    if file.name.lower().endswith((".hdr", ".mhd", ".mha", ".idx")) or is_idx_name(file):
        return True
    for dialect in dialects.DIALECTS.values():
        try:
            header = dialect.find_header(file)
            if header is not None and dialect.sniff(header):
                return True
        except (ArrayStoreError, OSError):
            return True  # a header is there, but broken: let the raw backend say what is wrong
    return False
