"""The dialect registry and ``detect``: lookup, claiming files, ambiguity, non-headers."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from arraystore.dialects import DIALECTS, HeaderDialect, ParsedHeader, detect, get_dialect
from arraystore.errors import BackendError, MetadataError

ENVI = "ENVI\nsamples = 2\nlines = 2\nbands = 1\ndata type = 1\n"
MHD = "NDims = 2\nDimSize = 2 2\nElementType = MET_UCHAR\nElementDataFile = scene.img\n"


def test_registry_is_read_only_and_complete():
    assert sorted(DIALECTS) == ["ehdr", "envi", "idx", "metaimage"]
    for name, d in DIALECTS.items():
        assert isinstance(d, HeaderDialect)
        assert d.name == name
        assert get_dialect(name.upper()) is d
    with pytest.raises(TypeError):
        DIALECTS["x"] = DIALECTS["envi"]  # type: ignore[index]


def test_unknown_dialect_lists_the_known_ones(tmp_path):
    with pytest.raises(BackendError, match="ehdr, envi, idx, metaimage"):
        get_dialect("analyze")
    with pytest.raises(BackendError, match="unknown header dialect"):
        detect(tmp_path / "x.img", dialect="nifti")


def test_no_header_gives_none(tmp_path):
    (tmp_path / "plain.dat").write_bytes(b"\0" * 8)
    assert detect(tmp_path / "plain.dat") is None
    assert detect(tmp_path / "absent.dat") is None
    (tmp_path / "plain.dat.json").write_text("{}")
    assert detect(tmp_path / "plain.dat.json") is None
    # an Analyze 7.5 .hdr (binary, 348 bytes) is no dialect of ours: the .img is not claimed
    (tmp_path / "brain.img").write_bytes(b"\0" * 8)
    (tmp_path / "brain.hdr").write_bytes(np.int32(348).tobytes() + b"\0" * 344)
    assert detect(tmp_path / "brain.img") is None
    with pytest.raises(MetadataError, match="not a header of"):
        detect(tmp_path / "brain.hdr")


def test_explicit_dialect_without_a_header_is_an_error(tmp_path):
    (tmp_path / "scene.img").write_bytes(b"\0" * 4)
    with pytest.raises(MetadataError, match="no envi header"):
        detect(tmp_path / "scene.img", dialect="envi")


def test_explicit_dialect_picks_one_of_two_headers(tmp_path):
    (tmp_path / "scene.img").write_bytes(bytes(range(4)))
    (tmp_path / "scene.hdr").write_text(ENVI)
    (tmp_path / "scene.mhd").write_text(MHD)
    with pytest.raises(MetadataError, match=r"envi \(scene.hdr\), metaimage \(scene.mhd\)"):
        detect(tmp_path / "scene.img")
    envi = detect(tmp_path / "scene.img", dialect="envi")
    mhd = detect(tmp_path / "scene.img", dialect="metaimage")
    assert envi is not None
    assert mhd is not None
    assert (envi.dialect, mhd.dialect) == ("envi", "metaimage")
    assert envi.meta.shape == (1, 2, 2)
    assert mhd.meta.shape == (2, 2)


def test_parsed_header_pickles_and_attrs_are_json(tmp_path):
    (tmp_path / "scene.img").write_bytes(bytes(range(4)))
    (tmp_path / "scene.hdr").write_text(ENVI + "wavelength = {1.5, 2.5}\n")
    p = detect(os.fspath(tmp_path / "scene.img"))
    assert isinstance(p, ParsedHeader)
    q = pickle.loads(pickle.dumps(p))
    assert q == p
    assert p.meta.to_dict()["attrs"]["wavelength"] == [1.5, 2.5]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo (POSIX)")
def test_special_files_are_not_opened(tmp_path):
    os.mkfifo(tmp_path / "scene.hdr")  # opening a FIFO for reading would block forever
    (tmp_path / "scene.img").write_bytes(b"\0" * 4)
    assert detect(tmp_path / "scene.img") is None
    with pytest.raises(MetadataError, match="special file"):
        get_dialect("envi").parse(tmp_path / "scene.hdr", tmp_path / "scene.img")
    with pytest.raises(MetadataError, match="directory"):
        get_dialect("idx").parse(tmp_path)
