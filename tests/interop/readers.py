"""Run another tool's reader in a process that cannot import arraystore.

The child gets ``sys.modules['arraystore'] = None`` first and a PYTHONPATH without
``src``: what it reads is what anyone without arraystore reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

PRELUDE = "import sys\nsys.modules['arraystore'] = None\nimport json\n"


def run_reader(code: str, **values: Any) -> Any:
    """Run ``code`` with ``values`` as globals (JSON); it sets ``result``, returned decoded from JSON."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = PRELUDE + f"globals().update(json.loads({json.dumps(json.dumps(values))}))\n" + textwrap.dedent(code)
    script += "\nprint('@@' + json.dumps(result))\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"reader failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("@@"))
    return json.loads(line[2:])
