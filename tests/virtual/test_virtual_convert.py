"""``arraystore convert STORE::/group/array out.zarr`` materialises a virtual array with the usual guarantees."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore.errors import VerificationError
from arraystore.migration import migrate
from arraystore.virtual import open_virtual, open_virtual_array

from .test_virtual_roundtrip import bits

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("fmt", ["kerchunk", "icechunk"])
def test_every_virtual_array_materialises_equal(tmp_path, fmt):
    archive = tmp_path / "archive"
    shutil.copytree(EXAMPLES / "legacy", archive)
    report = migrate(archive, tmp_path / "v", virtual=True, format=fmt, rules=EXAMPLES / "rules.toml", workers=1)
    store = tmp_path / "v" / ("virtual.json" if fmt == "kerchunk" else "virtual.icechunk")
    group = open_virtual(store)
    done = [r.source for r in report.records if r.status == "converted"]
    assert done
    one_per_folder = {n.split("/")[0]: n for n in done}.values()  # the command line on one file of each kind
    for name in done:
        with open_virtual_array(store, name) as src:
            np.testing.assert_array_equal(bits(src[...]), bits(group[name][...]))
    for i, name in enumerate(one_per_folder):
        out = tmp_path / f"{i}.zarr"
        run = subprocess.run(
            [sys.executable, "-m", "arraystore", "convert", f"{store}::/{name}", str(out), "--compression", "zstd:3",
             "--verify"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        with arraystore.open(out) as dst:
            got = dst[...]
            assert dst.attrs["arraystore.migrated_from"]["file"] == name
        want = group[name][...]
        assert got.dtype.newbyteorder("=") == want.dtype
        np.testing.assert_array_equal(bits(got), bits(want))


def test_a_changed_source_is_not_materialised(tmp_path):
    archive = tmp_path / "archive"
    shutil.copytree(EXAMPLES / "legacy", archive)
    migrate(archive, tmp_path / "v", virtual=True, rules=EXAMPLES / "rules.toml", workers=1)
    st = (archive / "dialects" / "dem.bil").stat()
    os.utime(archive / "dialects" / "dem.bil", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(VerificationError, match=r"dem\.bil: changed since"):
        open_virtual_array(tmp_path / "v" / "virtual.json", "dialects/dem.bil")
    run = subprocess.run(
        [sys.executable, "-m", "arraystore", "convert", f"{tmp_path / 'v'}::/dialects/dem.bil", str(tmp_path / "o.zarr")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 1 and "VerificationError" in run.stderr
    assert not (tmp_path / "o.zarr").exists()
