"""A missing optional library is a MissingDependencyError naming the extra, in Python and on the CLI.

Each case runs in a fresh interpreter where the library is blocked (``sys.modules[name] = None``
makes ``import name`` fail as if it were not installed) before arraystore is imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_cli

CASES = [
    ("dask", "dask", "arraystore.to_dask(str(src))"),
    ("dask", "dask", "arraystore.store_dask(None, str(tmp / 'o.zarr'))"),
    ("xarray", "xarray", "import arraystore.integrations.xarray"),
    ("distributed", "dask", "arraystore.convert(str(src), str(tmp / 'o.zarr'), scheduler='local')"),
    ("h5py", "hdf5", "arraystore.create(str(tmp / 'o.h5'), (2,), 'f4')"),
    ("zarr", "zarr", "arraystore.open(str(tmp / 'z.zarr'))"),
]


@pytest.mark.parametrize(("blocked", "extra", "call"), CASES, ids=[f"{b}-{c.split('(')[0]}" for b, _, c in CASES])
def test_python_api_names_the_extra(tmp_path: Path, blocked: str, extra: str, call: str) -> None:
    np.save(tmp_path / "src.npy", np.arange(6.0))
    (tmp_path / "z.zarr").mkdir()
    (tmp_path / "z.zarr" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "array"}')
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from pathlib import Path\nimport arraystore\nfrom arraystore.errors import MissingDependencyError\n"
        f"tmp = Path({str(tmp_path)!r}); src = tmp / 'src.npy'\n"
        f"try:\n    {call}\nexcept MissingDependencyError as exc:\n    print('MISSING', exc)\n"
        "else:\n    print('NO ERROR')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("MISSING"), proc.stdout + proc.stderr
    assert f"pip install 'arraystore[{extra}]'" in proc.stdout and blocked in proc.stdout


def test_cli_names_the_extra(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['distributed'] = None\n")
    np.save(tmp_path / "src.npy", np.arange(6.0))
    import os

    env = {"PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = run_cli("convert", str(tmp_path / "src.npy"), str(tmp_path / "o.zarr"), "--scheduler", "local", env=env)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "MissingDependencyError" in proc.stderr and "arraystore[dask]" in proc.stderr
    assert "--scheduler" in proc.stderr and "scheduler=" not in proc.stderr
