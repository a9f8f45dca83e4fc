"""Generate docs/fidelity.md from the backends' fidelity declarations.

python tools/make_fidelity_table.py          # rewrite the page
python tools/make_fidelity_table.py --check  # exit 1 if the page is stale (CI)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arraystore.errors import MissingDependencyError
from arraystore.fidelity import FAMILIES, Support
from arraystore.registry import BACKENDS, backend_class

PAGE = Path(__file__).resolve().parent.parent / "docs" / "fidelity.md"
ONE_BYTE = {"bool", "int8", "uint8", "bytes", "void"}
SYMBOL = {Support.EXACT: "exact", Support.ENCODED: "encoded", Support.NO: "—"}


def render() -> str:
    classes = {}
    for name in BACKENDS:
        try:
            classes[name] = backend_class(name)
        except MissingDependencyError:
            sys.exit(f"cannot render the fidelity page: backend {name!r} is not installed")
    notes: dict[str, int] = {}
    lines = [
        "# Dtype fidelity",
        "",
        "What each backend stores **exactly** (byte for byte), through a documented **encoded** lossless",
        "form, or not at all (—). `create` and `convert` refuse a dtype a backend cannot hold before a byte",
        "is written (`UnsupportedDtypeError`, naming the backends that can). Every cell is checked by the",
        "round-trip property tests in `tests/properties/`.",
        "",
        "This page is generated from the backends' declarations by `python tools/make_fidelity_table.py`;",
        "CI fails when it is stale.",
        "",
        "| family | byte order | " + " | ".join(classes) + " |",
        "| --- | --- | " + " | ".join("---" for _ in classes) + " |",
    ]
    for family in FAMILIES:
        orders = ("little", "big", "mixed") if family == "structured" else ("little", "big")
        for order in ("n/a",) if family in ONE_BYTE else orders:
            cells = []
            for cls in classes.values():
                support, note = cls.fidelity.cell(family, order)
                cell = SYMBOL[support]
                if note and support is not Support.EXACT:
                    n = notes.setdefault(f"{cls.backend}: {note}", len(notes) + 1)
                    cell += f" [{n}]"
                cells.append(cell)
            lines.append(f"| {family} | {order} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Structured dtypes are judged field by field: the worst cell among their leaf fields applies.",
        "",
        "## Structured dtypes",
        "",
        "A structured dtype round-trips exactly (names, titles, formats, offsets, item size, nesting,",
        "sub-array fields, byte orders, and the bytes of every field) or `create` refuses it with",
        "`UnsupportedDtypeError` before a byte is written. Every backend refuses fields that overlap",
        "or are not in offset order (numpy has no portable description of them: `dtype.descr` is",
        "undefined), nesting deeper than 32 levels, and empty field names. Beyond that:",
        "",
        "| backend | zero-size fields | NUL in field names | field titles |",
        "| --- | --- | --- | --- |",
    ]
    yes_no = {True: "kept", False: "refused"}
    for name, cls in classes.items():
        lim = cls.fidelity.structured
        lines.append(
            f"| {name} | {yes_no[lim.zero_size_fields]} | {yes_no[lim.nul_in_names]} | {yes_no[lim.titles]} |"
        )
    lines += [
        "",
        "**Padding bytes are not kept.** Bytes of an item that no field covers (alignment padding,",
        "gaps between offsets, a larger `itemsize`) read back with unspecified content, as after",
        "numpy's own structured assignment, which copies fields, not padding (raw and npy write through",
        "it; HDF5 compounds happen to keep them, see below). Offsets and item size are kept, so the",
        "layout is the same.",
        "",
    ]
    if notes:
        lines += ["Notes:", ""]
        lines += [f"{n}. {text}" for text, n in notes.items()]
        lines.append("")
    lines += HDF5_FOREIGN
    return "\n".join(lines)


HDF5_FOREIGN = [
    "## HDF5: compounds, and files written by other tools",
    "",
    "- Compounds keep their offsets, item size and padding bytes. Dtypes no HDF5 compound can hold",
    "  (overlapping fields, a field name containing NUL, a zero-size field) are refused by `create` with",
    "  `UnsupportedDtypeError`, before a byte is written.",
    "- Datasets written by other tools are read through HDF5's own conversion into the numpy dtype h5py",
    "  reads them as: integers of custom precision or bit offset, space-padded or null-terminated strings,",
    "  compounds with such members. `as_memmap()`, the byte-copy conversions and direct chunk writes are",
    "  used only when the file type is byte for byte numpy's (`file_type_is_numpy_bytes`); otherwise",
    "  `as_memmap()` raises `NotMemoryMappableError` and conversions go through HDF5.",
    "- HDF5 array types (`H5T_ARRAY`, e.g. `(\"<f4\", (3,))`) read as h5py reads them: their dimensions",
    "  become the array's last axes (shape `(5,)` + `(3,)` gives a `(5, 3)` float32 array).",
    "- Types numpy cannot hold (IEEE binary128, 3-byte integers, `H5T_TIME`, opaque types with a tag",
    "  HDF5 cannot convert) are refused at `open` with `UnsupportedDtypeError`; variable-length data and",
    "  references likewise.",
    "",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/fidelity.md is not current")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE} is stale: run python tools/make_fidelity_table.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
