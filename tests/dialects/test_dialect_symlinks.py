"""A file a header names (or a header found beside data) that is, or passes through, a symbolic
link pointing outside the header's folder is refused, not read; the same in migration discovery."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.dialects import detect
from arraystore.errors import ArrayStoreError, UnsafeInputError
from arraystore.migration import migrate


def _spectral_envi(folder: Path, arr: np.ndarray) -> tuple[Path, Path]:
    envi = pytest.importorskip("spectral.io.envi", reason="spectral writes the reference ENVI files")
    folder.mkdir(parents=True, exist_ok=True)
    envi.save_image(str(folder / "scene.hdr"), arr, dtype=arr.dtype, interleave="bsq", ext=".img", force=True)
    return folder / "scene.hdr", folder / "scene.img"


def _sitk_mhd(folder: Path, arr: np.ndarray) -> tuple[Path, Path]:
    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK writes the reference MetaImage files")
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(folder / "ct.mhd"), useCompression=False)
    return folder / "ct.mhd", folder / "ct.raw"


def _gdal_ehdr(folder: Path, arr: np.ndarray) -> tuple[Path, Path]:
    rasterio = pytest.importorskip("rasterio", reason="rasterio (GDAL) writes the reference EHdr files")
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(
            folder / "dem.bil", "w", driver="EHdr", width=arr.shape[1], height=arr.shape[0], count=1, dtype=arr.dtype
        ) as ds:
            ds.write(arr, 1)
    return folder / "dem.hdr", folder / "dem.bil"


WRITERS = {"envi": _spectral_envi, "metaimage": _sitk_mhd, "ehdr": _gdal_ehdr}


def _arr(kind: str) -> np.ndarray:
    a = np.arange(24, dtype="<i2" if kind != "ehdr" else "int16").reshape(4, 6)
    return a[None] if kind == "envi" else a


def _move_out(data: Path, outside: Path) -> Path:
    outside.mkdir(parents=True, exist_ok=True)
    target = outside / data.name
    shutil.move(data, target)
    return target


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_data_file_symlinked_outside_is_refused(tmp_path: Path, kind: str) -> None:
    header, data = WRITERS[kind](tmp_path / "here", _arr(kind))
    assert detect(header) is not None  # the tool's own file parses before the link is made
    target = _move_out(data, tmp_path / "elsewhere")
    data.symlink_to(target)
    with pytest.raises(UnsafeInputError, match="symbolic link"):
        detect(header)


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_data_file_symlinked_inside_the_folder_is_read(tmp_path: Path, kind: str) -> None:
    header, data = WRITERS[kind](tmp_path / "here", _arr(kind))
    real = data.with_name("real_" + data.name.replace(".", "_") + ".bytes")
    data.rename(real)
    data.symlink_to(real.name)
    parsed = detect(header)
    assert parsed is not None and parsed.meta.nbytes == _arr(kind).nbytes


def test_metaimage_element_data_file_through_a_linked_folder_is_refused(tmp_path: Path) -> None:
    header, data = _sitk_mhd(tmp_path / "here", _arr("metaimage"))
    outside = tmp_path / "elsewhere"
    _move_out(data, outside)
    (tmp_path / "here" / "sub").symlink_to(outside, target_is_directory=True)
    header.write_text(header.read_text().replace("ElementDataFile = ct.raw", "ElementDataFile = sub/ct.raw"))
    with pytest.raises(UnsafeInputError, match="outside"):
        detect(header)
    with pytest.raises(ArrayStoreError):
        arraystore.open(header.with_suffix(".raw"))


def test_header_symlinked_outside_beside_data_is_refused(tmp_path: Path) -> None:
    header, data = _spectral_envi(tmp_path / "here", _arr("envi"))
    target = _move_out(header, tmp_path / "elsewhere")
    header.symlink_to(target)
    with pytest.raises(UnsafeInputError):
        detect(data)


def test_migration_refuses_links_out_of_the_archive(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "ok").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    np.arange(8, dtype="<f4").tofile(outside / "leak_f4.dat")
    np.arange(8, dtype="<f4").tofile(src / "ok" / "fine_f4.dat")
    (src / "linked_f4.dat").symlink_to(outside / "leak_f4.dat")
    (src / "dirlink").symlink_to(outside, target_is_directory=True)
    # a legacy JSON sidecar that is a link out of the archive is not read
    (outside / "meta.json").write_text('{"dtype": "float32", "shape": [8]}')
    np.arange(8, dtype="<f4").tofile(src / "plain.dat")
    (src / "plain.json").symlink_to(outside / "meta.json")
    # an ENVI pair whose data file links out of the archive
    _spectral_envi(src / "scene", _arr("envi"))
    img = src / "scene" / "scene.img"
    img.rename(outside / "scene.img")
    img.symlink_to(outside / "scene.img")
    dst = tmp_path / "dst"
    report = migrate(src, dst, workers=1)
    by = {r.source: r for r in report.records}
    assert by["ok/fine_f4.dat"].status == "converted"
    for name in ("linked_f4.dat", "plain.dat", "scene/scene.img"):
        rec = next(r for n, r in by.items() if n.startswith(name.rsplit(".", 1)[0]))
        assert rec.status == "failed", name
        assert rec.error is not None and rec.error["type"] == "UnsafeInputError", (name, rec.error)
    assert not any("dirlink" in n for n in by)
    written = {p.relative_to(dst).as_posix() for p in dst.rglob("*.zarr")}
    assert written == {"ok/fine_f4.zarr"}
    assert os.path.exists(outside / "leak_f4.dat")
