"""Write the example legacy archive that ``arraystore migrate`` is demonstrated on.

Usage::

    python tools/make_legacy_archive.py [OUT_DIR]      (default: examples/legacy)

The output is deterministic (fixed seeds, no timestamps) and well under 1 MB. Each
file exercises one metadata convention; ``EXPECTED`` below is the outcome
``arraystore.migration.resolve`` must reach for it (with ``examples/rules.toml``), and
``tests/migrate/test_example_archive.py`` checks every entry.
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from arraystore.meta import ArrayMeta  # noqa: E402
from arraystore.sidecar import Sidecar, write_sidecar  # noqa: E402

#: The rules file that resolves ``instrument_b/sweep.bin`` (globs are relative to the archive).
RULES_TOML = """\
# Rules for the example archive examples/legacy (see docs/migration-metadata.md).
# instrument_b wrote big-endian int16 sweeps of 128 samples and no metadata at all.
[[rule]]
glob = "instrument_b/*.bin"
dtype = "int16"
byteorder = "big"
shape = [-1, 128]
note = "instrument B logbook, p. 12: 128 samples per sweep, Motorola byte order"
"""

#: name -> (status, dtype, shape, order, offset, source); None where not applicable.
EXPECTED: dict[str, tuple[str, str | None, tuple[int, ...] | None, str | None, int | None, str | None]] = {
    "own/frames.dat": ("resolved", "<f4", (50, 64), "C", 0, "sidecar"),
    "legacy_json/scan_a.dat": ("resolved", "<i2", (64, 32), "C", 0, "legacy-json:scan_a_meta.json"),
    "legacy_json/scan_b.bin": ("resolved", "<f8", (20, 30), "F", 0, "legacy-json:scan_b.json"),
    "legacy_json/scan_c.raw": ("resolved", ">u2", (48, 48), "C", 0, "legacy-json:scan_c.raw.json"),
    "legacy_json/scan_d.dat": ("resolved", "<f4", (32, 32), "C", 256, "legacy-json:scan_d_meta.json"),
    "manifests/b.dat": ("resolved", "<i4", (40, 25), "C", 0, "folder-json:manifests/meta.json"),
    "manifests/run1/a.dat": ("resolved", "|u1", (64, 64), "C", 0, "folder-json:manifests/meta.json"),
    "manifests/listing/c.dat": ("resolved", "<c8", (16, 16), "C", 0, "folder-json:manifests/listing/manifest.json"),
    "instrument_b/sweep.bin": ("resolved", ">i2", (40, 128), "C", 0, "rules:instrument_b/*.bin"),
    "patterns/frames_float32.dat": ("resolved", "<f4", (1000,), "C", 0, "filename"),
    "patterns/frames_f4.dat": ("resolved", "<f4", (800,), "C", 0, "filename"),
    "patterns/frames_<f4.dat": ("resolved", "<f4", (600,), "C", 0, "filename"),
    "patterns/frames_100x64_float32.dat": ("resolved", "<f4", (100, 64), "C", 0, "filename"),
    "patterns/frames_float32_64x100.dat": ("resolved", "<f4", (64, 100), "C", 0, "filename"),
    "patterns/frames_uint16_be_64x64.raw": ("resolved", ">u2", (64, 64), "C", 0, "filename"),
    "patterns/deep/nested/volume_8x16x16_int16_fortran.dat": ("resolved", "<i2", (8, 16, 16), "F", 0, "filename"),
    "dialects/scene.img": ("resolved", ">f4", (3, 20, 24), "C", 0, "dialect:envi"),
    "dialects/dem.bil": ("resolved", ">i2", (30, 2, 40), "C", 0, "dialect:ehdr"),
    "dialects/ct.raw": ("resolved", "<i2", (4, 12, 16), "C", 0, "dialect:metaimage"),
    "dialects/digits-idx3-ubyte": ("resolved", "|u1", (10, 28, 28), "C", 16, "dialect:idx"),
    "mystery/unknown.bin": ("undetermined", None, None, None, None, None),
    "broken/truncated.dat": ("invalid", None, None, None, None, None),
}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _floats(seed: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return (_rng(seed).standard_normal(shape) * 100).astype(dtype)


def _ints(seed: int, shape: tuple[int, ...], dtype: str, high: int = 30000) -> np.ndarray:
    return _rng(seed).integers(0, high, size=shape).astype(dtype)


def write_archive(out: Path) -> None:
    """Write every file of the example archive under ``out`` (replacing it)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    # arraystore's own sidecar.
    frames = _floats(1, (50, 64), "<f4")
    _write(out / "own/frames.dat", frames.tobytes())
    write_sidecar(out / "own/frames.dat", Sidecar(ArrayMeta(frames.shape, frames.dtype, attrs={"units": "mV"})),
                  durable=False)

    # Legacy per-file JSON sidecars, one per convention.
    _write(out / "legacy_json/scan_a.dat", _ints(2, (64, 32), "<i2").tobytes())
    _json(out / "legacy_json/scan_a_meta.json", {"dtype": "int16", "shape": [64, 32], "operator": "kh"})
    fortran = _floats(3, (20, 30), "<f8")
    _write(out / "legacy_json/scan_b.bin", fortran.tobytes(order="F"))
    _json(out / "legacy_json/scan_b.json", {"dtype": "<f8", "shape": [20, 30], "fortran_order": True})
    _write(out / "legacy_json/scan_c.raw", _ints(4, (48, 48), ">u2", 65535).tobytes())
    _json(out / "legacy_json/scan_c.raw.json", {"dtype": "uint16", "shape": [48, 48], "endian": "big"})
    header = b"SCAN-D v1".ljust(256, b"\x00")
    _write(out / "legacy_json/scan_d.dat", header + _floats(5, (32, 32), "<f4").tobytes())
    _json(out / "legacy_json/scan_d_meta.json", {"dtype": "float32", "shape": [32, -1], "header_bytes": 256,
                                                 "byteorder": "little"})

    # Folder-level manifests: a name -> metadata mapping above a nested folder, and a list.
    _write(out / "manifests/b.dat", _ints(6, (40, 25), "<i4").tobytes())
    _write(out / "manifests/run1/a.dat", _ints(7, (64, 64), "u1", 255).tobytes())
    _json(out / "manifests/meta.json", {
        "b.dat": {"dtype": "int32", "shape": [40, 25], "order": "C"},
        "run1/a.dat": {"dtype": "uint8", "shape": [64, 64]},
    })
    c = (_floats(8, (16, 16), "<f4") + 1j * _floats(9, (16, 16), "<f4")).astype("<c8")
    _write(out / "manifests/listing/c.dat", c.tobytes())
    _json(out / "manifests/listing/manifest.json", {"files": [
        {"file": "c.dat", "dtype": "complex64", "shape": [16, 16], "instrument": "probe 3"},
    ]})

    # Needs the user's rules file (examples/rules.toml).
    _write(out / "instrument_b/sweep.bin", _ints(10, (40, 128), ">i2").tobytes())

    # File-name patterns.
    p = out / "patterns"
    _write(p / "frames_float32.dat", _floats(11, (1000,), "<f4").tobytes())
    _write(p / "frames_f4.dat", _floats(12, (800,), "<f4").tobytes())
    _write(p / "frames_<f4.dat", _floats(13, (600,), "<f4").tobytes())
    _write(p / "frames_100x64_float32.dat", _floats(14, (100, 64), "<f4").tobytes())
    _write(p / "frames_float32_64x100.dat", _floats(15, (64, 100), "<f4").tobytes())
    _write(p / "frames_uint16_be_64x64.raw", _ints(16, (64, 64), ">u2", 65535).tobytes())
    _write(p / "deep/nested/volume_8x16x16_int16_fortran.dat", _ints(17, (8, 16, 16), "<i2").tobytes(order="F"))

    _write_dialects(out / "dialects")

    # No metadata at all: undetermined, with candidates.
    _write(out / "mystery/unknown.bin", _ints(18, (3072,), "u1", 255).tobytes())
    # Metadata promises 100 x 100 float32 (40,000 bytes); the file stops at 30,000.
    _write(out / "broken/truncated.dat", _floats(19, (7500,), "<f4").tobytes())
    _json(out / "broken/truncated_meta.json", {"dtype": "float32", "shape": [100, 100]})


def _write_dialects(d: Path) -> None:
    """One file per header dialect (ENVI, EHdr, MetaImage, IDX)."""
    cube = _floats(20, (3, 20, 24), ">f4")  # bands, lines, samples; BSQ
    _write(d / "scene.img", cube.tobytes())
    (d / "scene.hdr").write_text(
        "ENVI\ndescription = {example scene, band-sequential}\nsamples = 24\nlines = 20\nbands = 3\n"
        "header offset = 0\nfile type = ENVI Standard\ndata type = 4\ninterleave = bsq\nbyte order = 1\n"
        "wavelength units = nm\n"
    )
    dem = _ints(21, (30, 2, 40), ">i2", 3000)  # rows, bands, cols: BIL
    _write(d / "dem.bil", dem.tobytes())
    (d / "dem.hdr").write_text(
        "BYTEORDER M\nLAYOUT BIL\nNROWS 30\nNCOLS 40\nNBANDS 2\nNBITS 16\nPIXELTYPE SIGNEDINT\n"
        "ULXMAP 500000.5\nULYMAP 4200000.5\nXDIM 1\nYDIM 1\n"
    )
    ct = _ints(22, (4, 12, 16), "<i2", 4000)
    _write(d / "ct.raw", ct.tobytes())
    (d / "ct.mhd").write_text(
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        "CompressedData = False\nElementSpacing = 0.8 0.8 2.5\nDimSize = 16 12 4\n"
        "ElementType = MET_SHORT\nElementDataFile = ct.raw\n"
    )
    digits = _ints(23, (10, 28, 28), "u1", 255)
    _write(d / "digits-idx3-ubyte", bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 10, 28, 28) + digits.tobytes())


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else ROOT / "examples" / "legacy"
    write_archive(out)
    rules = out.parent / "rules.toml"
    rules.write_text(RULES_TOML)
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({total:,} bytes) and {rules}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
