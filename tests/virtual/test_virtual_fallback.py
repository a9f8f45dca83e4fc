"""The copying fallback of a virtual migration: what no reference can express is copied into the hierarchy.

Files written by the real tools (SimpleITK's compressed MetaImage, spectral's ENVI); the stores
are read back by zarr-python/fsspec/icechunk in a process that cannot import arraystore.
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arraystore
from arraystore.errors import UnsafeInputError
from arraystore.migration import migrate
from arraystore.virtual import open_virtual
from arraystore.virtual.kerchunk import read_references

from .test_virtual_migrate import read_elsewhere

sitk = pytest.importorskip("SimpleITK", reason="SimpleITK writes the compressed MetaImage files under test")
spectral = pytest.importorskip("spectral", reason="spectral writes the ENVI file under test")


def build(folder: Path) -> dict[str, np.ndarray]:
    """An archive mixing referenceable and non-referenceable files; the values each should read as."""
    folder.mkdir()
    rng = np.random.default_rng(7)
    want: dict[str, np.ndarray] = {}
    vol = rng.integers(-3000, 3000, size=(5, 6, 7), dtype=np.int16)
    sitk.WriteImage(sitk.GetImageFromArray(vol), str(folder / "ct.mhd"), useCompression=True)  # ct.mhd + ct.zraw
    want["ct.zraw"] = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "ct.mhd")))
    rgb = rng.random((4, 9, 3), dtype=np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(folder / "rgb.mha"), useCompression=True)
    want["rgb.mha"] = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "rgb.mha")))
    cube = rng.integers(0, 1000, size=(6, 5, 3)).astype(">u2")  # rows, cols, bands
    spectral.envi.save_image(str(folder / "scene.hdr"), cube, dtype=np.uint16, interleave="bil", byteorder=1)
    # arraystore keeps the file's interleave: BIL is (line, band, sample)
    want["scene.img"] = np.array(spectral.open_image(str(folder / "scene.hdr")).open_memmap()).transpose(0, 2, 1)
    text = np.array(["ab", "cde", "", "f"], dtype="<U3")
    rec = np.array([(1, 2.5), (-3, np.nan)], dtype=[("a", "<i4"), ("b", ">f8")])
    for name, arr in (("labels.dat", text), ("table.dat", rec)):
        with arraystore.create(folder / name, shape=arr.shape, dtype=arr.dtype, backend="raw") as st:
            st[...] = arr
        want[name] = arr
    return want


@pytest.mark.parametrize("fmt", ["kerchunk", "icechunk"])
def test_what_cannot_be_referenced_is_copied_into_the_hierarchy(tmp_path, fmt):
    want = build(tmp_path / "archive")
    report = migrate(tmp_path / "archive", tmp_path / "v", virtual=True, format=fmt, workers=1)
    notes = {r.source: (r.status, r.note or "") for r in report.records}
    assert set(notes) == set(want), notes
    for name in ("ct.zraw", "rgb.mha", "labels.dat", "table.dat"):
        assert notes[name][0] == "converted" and notes[name][1].startswith("copied: "), notes[name]
    assert "CompressedData" in notes["ct.zraw"][1] and "<U3" in notes["labels.dat"][1]
    assert notes["scene.img"] == ("converted", "referenced in place (virtual)")
    lines = [json.loads(line) for line in (tmp_path / "v" / "migration.jsonl").read_text().splitlines()]
    assert {ln["source"]: ln["note"] for ln in lines}["table.dat"].startswith("copied: dtype |V12")
    assert "copied into the virtual hierarchy" in (tmp_path / "v" / "migration-summary.txt").read_text()
    store = tmp_path / "v" / ("virtual.json" if fmt == "kerchunk" else "virtual.icechunk")
    # icechunk holds the copies as real chunks of the repository: nothing else is left beside it
    assert (tmp_path / "v" / "virtual.copies").is_dir() == (fmt == "kerchunk")
    assert read_elsewhere(fmt, store, want, tmp_path) == f"ok {len(want)}"


def test_kerchunk_copies_resolve_after_the_store_moves(tmp_path):
    want = build(tmp_path / "archive")
    migrate(tmp_path / "archive", tmp_path / "v", virtual=True, workers=1)
    moved = tmp_path / "elsewhere"
    (tmp_path / "v").rename(moved)
    doc = read_references(moved / "virtual.json")
    assert doc["templates"]["copies"] == (moved / "virtual.copies").resolve().as_uri()
    assert np.array_equal(open_virtual(moved / "virtual.json")["ct.zraw"][...], want["ct.zraw"])
    for name in ("ct.zraw", "labels.dat", "table.dat"):  # through the registry: arraystore's encodings decoded
        with arraystore.open(f"{moved / 'virtual.json'}::/{name}") as a:
            assert a.dtype == want[name].dtype
            assert a[...].tobytes() == want[name].tobytes()  # bit for bit (a NaN inside a record)
            assert a.encoding_notes[0].startswith("copied by the migration")


def test_no_fallback_refuses_with_the_reason(tmp_path):
    build(tmp_path / "archive")
    report = migrate(tmp_path / "archive", tmp_path / "v", virtual=True, workers=1, fallback=False)
    status = {r.source: r for r in report.records}
    assert status["scene.img"].status == "converted"
    assert "CompressedData = True" in status["ct.mhd"].error_message
    for name in ("labels.dat", "table.dat"):
        assert status[name].status == "failed"
        assert "no Zarr v3 core data type" in status[name].error_message
        assert "--no-fallback" in status[name].error_message
    assert not (tmp_path / "v" / "virtual.copies").exists()


def test_truncated_compressed_data_fails_and_copies_nothing(tmp_path):
    want = build(tmp_path / "archive")
    zraw = tmp_path / "archive" / "ct.zraw"
    zraw.write_bytes(zraw.read_bytes()[: zraw.stat().st_size // 2])
    report = migrate(tmp_path / "archive", tmp_path / "v", virtual=True, workers=1)
    rec = {r.source: r for r in report.records}["ct.zraw"]
    assert rec.status == "failed" and "decodes to" in rec.error_message, rec
    assert not (tmp_path / "v" / "virtual.copies" / "ct.zraw").exists()
    assert "ct.zraw" not in json.loads((tmp_path / "v" / "virtual.json").read_text())["refs"].get("zarr.json", "")
    assert len(want) == 5


def test_a_copies_reference_leading_out_is_refused(tmp_path):
    build(tmp_path / "archive")
    migrate(tmp_path / "archive", tmp_path / "v", virtual=True, workers=1)
    path = tmp_path / "v" / "virtual.json"
    doc = json.loads(path.read_text())
    key = next(k for k, v in doc["refs"].items() if isinstance(v, list) and v[0].startswith("{{copies}}"))
    doc["refs"][key] = ["{{copies}}/../../archive/labels.dat"]
    path.write_text(json.dumps(doc))
    with pytest.raises(UnsafeInputError, match="leaves the archive root"):
        read_references(path)


def _padded_ehdr(folder: Path, layout: str, big: bool, pads: tuple[int, int, int]) -> np.ndarray:
    """An ESRI raster with padding as its header declares it (no tool at hand writes one; ESRI's keys).

    ``pads``: bytes after each band-row (BIL), after each row, between bands (BSQ). Returns the
    array in arraystore's file-order axes: BIL (row, band, column), BSQ (band, row, column), BIP
    (row, column, band).
    """
    rows, bands, cols = 3, 2, 5
    dt = np.dtype(">i2" if big else "<i2")
    data = np.arange(rows * bands * cols, dtype=dt)
    brb, pad_row, gap = cols * 2 + pads[0], pads[1], pads[2]
    out = bytearray()
    if layout == "BIL":
        arr = data.reshape(rows, bands, cols)
        trb = bands * brb + pad_row
        for r in range(rows):
            line = b"".join(arr[r, b].tobytes() + b"\xee" * pads[0] for b in range(bands))
            out += line + b"\xee" * pad_row
        keys = f"BANDROWBYTES {brb}\nTOTALROWBYTES {trb}\n"
    elif layout == "BSQ":
        arr = data.reshape(bands, rows, cols)
        trb = cols * 2 + pad_row
        for b in range(bands):
            out += b"".join(arr[b, r].tobytes() + b"\xee" * pad_row for r in range(rows)) + b"\xee" * gap
        keys = f"TOTALROWBYTES {trb}\nBANDGAPBYTES {gap}\n"
    else:
        arr = data.reshape(rows, cols, bands)
        trb = cols * bands * 2 + pad_row
        out = bytearray(b"".join(arr[r].tobytes() + b"\xee" * pad_row for r in range(rows)))
        keys = f"TOTALROWBYTES {trb}\n"
    (folder / f"p.{layout.lower()}").write_bytes(b"\xee" * 7 + bytes(out))
    (folder / "p.hdr").write_text(
        f"BYTEORDER {'M' if big else 'I'}\nLAYOUT {layout}\nNROWS {rows}\nNCOLS {cols}\nNBANDS {bands}\nNBITS 16\n"
        f"PIXELTYPE SIGNEDINT\nSKIPBYTES 7\n{keys}"
    )
    return arr


@pytest.mark.parametrize(
    ("layout", "pads"), [("BIL", (2, 0, 0)), ("BIL", (0, 6, 0)), ("BIL", (4, 2, 0)), ("BSQ", (0, 4, 0)),
                         ("BSQ", (0, 0, 10)), ("BIP", (0, 8, 0))],
)  # fmt: skip
@pytest.mark.parametrize("fmt", ["kerchunk", "icechunk"])
def test_padded_ehdr_rows_are_copied_item_by_item(tmp_path, layout, pads, fmt):
    src = tmp_path / "archive"
    src.mkdir()
    want = _padded_ehdr(src, layout, big=layout != "BIL", pads=pads)
    name = f"p.{layout.lower()}"
    report = migrate(src, tmp_path / "v", virtual=True, format=fmt, workers=1, include=["*.bil", "*.bsq", "*.bip"])
    rec = {r.source: r for r in report.records}[name]
    assert rec.status == "converted" and rec.note.startswith("copied: EHdr rows or bands padded"), rec
    store = tmp_path / "v" / ("virtual.json" if fmt == "kerchunk" else "virtual.icechunk")
    assert read_elsewhere(fmt, store, {name: want}, tmp_path) == "ok 1"
    refused = migrate(src, tmp_path / "v2", virtual=True, workers=1, fallback=False, include=["*.bil", "*.bsq", "*.bip"])
    assert {r.source: r.status for r in refused.records}[name] == "failed"


def test_padding_that_overlaps_items_is_refused(tmp_path):
    src = tmp_path / "archive"
    src.mkdir()
    _padded_ehdr(src, "BIL", big=False, pads=(2, 0, 0))
    hdr = src / "p.hdr"
    hdr.write_text(hdr.read_text().replace("BANDROWBYTES 12", "BANDROWBYTES 6"))
    report = migrate(src, tmp_path / "v", virtual=True, workers=1, include=["*.bil"])
    rec = {r.source: r for r in report.records}["p.bil"]
    assert rec.status == "failed" and "padding" in rec.error_message


@pytest.mark.parametrize("fmt", ["kerchunk", "icechunk"])
def test_verify_reads_the_copies_back(tmp_path, fmt):
    from arraystore.errors import VerificationError
    from arraystore.virtual.verify import verify_virtual

    build(tmp_path / "archive")
    migrate(tmp_path / "archive", tmp_path / "v", virtual=True, format=fmt, workers=1)
    done = verify_virtual(tmp_path / "v")
    assert done["arrays"] == 5 and done["checksummed"] == 5
    zraw = tmp_path / "archive" / "ct.zraw"
    os.utime(zraw, ns=(zraw.stat().st_atime_ns, zraw.stat().st_mtime_ns + 10**9))
    with pytest.raises(VerificationError, match="changed since it was copied"):
        verify_virtual(tmp_path / "v")
    if fmt == "kerchunk":  # a damaged copy: one chunk file rewritten
        os.utime(zraw, ns=(zraw.stat().st_atime_ns, zraw.stat().st_mtime_ns - 10**9))
        chunk = next(p for p in (tmp_path / "v" / "virtual.copies" / "labels.dat").rglob("*") if p.is_file()
                     and p.name != "zarr.json")
        chunk.write_bytes(b"\0" * chunk.stat().st_size)
        with pytest.raises(VerificationError, match="the copy"):
            verify_virtual(tmp_path / "v")


@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    shape=st.lists(st.integers(0, 40), min_size=1, max_size=3).map(tuple),
    dtype=st.sampled_from(["<i2", ">f4", "u1", ">c16"]),
    piece=st.sampled_from([7, 64, 1000, 1 << 22]),
    level=st.integers(0, 9),
)
def test_the_zlib_decoder_equals_zlib_at_every_piece_boundary(monkeypatch, shape, dtype, piece, level):
    from arraystore.conversion import ConvertOptions
    from arraystore.meta import ArrayMeta
    from arraystore.virtual import fallback

    monkeypatch.setattr(fallback, "_INFLATE_READ", piece)
    a = np.random.default_rng(len(shape)).integers(0, 4, size=shape).astype(dtype)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "x.zraw"
        src.write_bytes(b"HDR" + zlib.compress(a.tobytes(), level))
        out = Path(tmp) / "copy"
        done = fallback.copy_file(str(src), ArrayMeta(shape, np.dtype(dtype), "C"), 3, out,
                                  options=ConvertOptions(verify=True), decode="zlib")
        assert done["verified"]
        with arraystore.open(out, backend="zarr") as got:
            assert got.dtype == a.dtype and got[...].tobytes() == a.tobytes()
