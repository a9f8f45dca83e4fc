"""Every Python example of README.md and docs/*.md runs, and shows what Python prints.

See ``doc_examples.py`` for the conventions (``# -> value``, ``python skip-run``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .doc_examples import CHECKER, ROOT, checked_script, doc_files, examples

DOCS = [p for p in doc_files() if examples(p)]


@pytest.mark.parametrize("doc", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_examples_run(doc: Path, tmp_path: Path, s3_for_page: Callable[[str], dict[str, str]]) -> None:
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(CHECKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    # Blocks that name s3:// buckets run against a loopback S3 server holding them (see conftest.py).
    env.update(s3_for_page("\n".join(ex.code for ex in examples(doc) if ex.skip_reason is None)))
    ran = 0
    for i, ex in enumerate(examples(doc)):
        if ex.skip_reason is not None:
            assert ex.skip_reason, f'{ex.name}: a skipped block gives its reason: title="skip-run: <reason>"'
            continue
        script = work / f"doc_example_{i}.py"
        script.write_text(checked_script(ex))
        proc = subprocess.run([sys.executable, script.name], cwd=work, env=env, capture_output=True, text=True,
                              timeout=240, check=False)
        assert proc.returncode == 0, f"{ex.name} failed:\n{proc.stdout}\n{proc.stderr}"
        ran += 1
    assert ran, f"{doc}: every example is skipped"


def test_shown_output_convention_is_checked(tmp_path: Path) -> None:
    """The checker itself: a wrong ``# -> value`` fails, a right one passes."""
    from .doc_examples import Example

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(CHECKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    for code, ok in (("import numpy as np\nnp.dtype('f4')   # -> dtype('float32')\n", True),
                     ("import numpy as np\nnp.dtype('f4')   # -> dtype('<f4')\n", False),
                     ("x = (1,\n     2)\nx  # -> (1, 2)\n", True)):
        script = tmp_path / "s.py"
        script.write_text(checked_script(Example("t.md", 1, code, None)))
        proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, check=False)
        assert (proc.returncode == 0) == ok, proc.stderr
