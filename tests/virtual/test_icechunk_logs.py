"""Using the icechunk output leaves the user's icechunk logging and warnings filters as they were.

Icechunk logs (from Rust, to the process's output) that a local repository is not safe for
concurrent commits. arraystore quiets that only during its own calls; afterwards the user's
icechunk work logs it again. Run in a subprocess: the log filter is process-wide.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = r'''
import sys, warnings
from pathlib import Path
import icechunk
from arraystore.meta import ArrayMeta
from arraystore.virtual import VirtualArray
from arraystore.virtual.icechunk import open_icechunk, write_icechunk

tmp, data = Path(sys.argv[1]), Path(sys.argv[2])
warnings.simplefilter("error", DeprecationWarning)  # the user's own filters
warnings.filterwarnings("ignore", message="mine")
filters = list(warnings.filters)
st = data.stat()
va = VirtualArray.from_meta(data.name, data.name, ArrayMeta((4, 3), "<f4"), 0, size=st.st_size,
                            mtime_ns=st.st_mtime_ns, chunk_bytes=16)
write_icechunk(tmp / "v.icechunk", [va], data.parent)
assert open_icechunk(tmp / "v.icechunk")[va.path][...].tolist() == [[float(3 * r + c) for c in range(3)] for r in range(4)]
assert warnings.filters == filters, "arraystore changed the user's warnings filters"
print("ARRAYSTORE-DONE", flush=True)
icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp / "mine.icechunk")))  # the user's own work
'''


def test_icechunk_logging_and_warning_filters_are_restored(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    np.arange(12, dtype="<f4").tofile(archive / "a.dat")
    env = {k: v for k, v in os.environ.items() if k != "ICECHUNK_LOG"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(archive / "a.dat")], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    ours, _, theirs = text.partition("ARRAYSTORE-DONE")
    assert "not safe for concurrent commits" not in ours  # quiet during arraystore's own calls
    assert "not safe for concurrent commits" in theirs  # the user's icechunk logs as before
