"""The hostile Zarr corpus (tools/make_bad_inputs.py), served from the S3 test server: typed errors only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

import arraystore
from arraystore.errors import ArrayStoreError

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)


def test_the_hostile_zarr_corpus_from_a_bucket(bucket: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_bad_inputs.py"), str(corpus)], check=True,
                   capture_output=True)
    cases = [c for c in json.loads((corpus / "manifest.json").read_text()) if c["name"].startswith("zarr/")]
    name = bucket.removeprefix("s3://")
    client = boto3.client("s3")
    served: list[dict[str, Any]] = []
    for case in cases:
        folder = corpus / case["path"].split("::", 1)[0]
        if not folder.is_dir() or any(p.is_symlink() for p in folder.rglob("*")):
            continue  # zip stores and symlinks have no object-store form
        for file in folder.rglob("*"):
            if file.is_file():
                client.put_object(Bucket=name, Key=file.relative_to(corpus).as_posix(), Body=file.read_bytes())
        served.append(case)
    assert len(served) >= 40, len(served)
    untyped = []
    for case in served:
        url = f"{bucket}/{case['path']}"
        try:
            with arraystore.open(url, backend="zarr", **case["options"]) as s:
                s[...]
        except ArrayStoreError:
            continue
        except Exception as exc:  # the point: anything untyped is a failure, reported in full
            untyped.append(f"{case['name']}: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        if not case.get("may_open"):
            untyped.append(f"{case['name']}: opened and read, but it is not a valid array ({case['why']})")
    assert untyped == []
