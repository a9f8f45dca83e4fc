"""``locality()`` on object-store URLs: kind "object" and the I/O advice; ``io="auto"`` follows it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from arraystore.filesystems import choose_io, locality


@pytest.mark.parametrize("url", ["s3://bkt/run.zarr", "gs://bkt/a.zarr::/g/a", "az://c/x.zarr", "https://h/x.zarr"])
def test_object_store_locality(url: str) -> None:
    loc = locality(url)
    assert loc.kind == "object" and loc.is_network and loc.locks_work is False
    for words in ("byte ranges", "parallel", "never memory-map", "lease"):
        assert words in loc.advice
    assert choose_io(url, "auto") == "buffered"
    assert not Path("s3:").exists() and not Path("gs:").exists()  # nothing local was made or probed into being


def test_the_endpoint_is_reported_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://user:hunter2secret@127.0.0.1:9000")
    loc = locality("s3://bkt/x.zarr")
    assert "hunter2secret" not in json.dumps(loc.to_dict()) and loc.mount_source == "127.0.0.1:9000"


def test_cli_locality_of_a_url() -> None:
    script = Path(sys.executable).with_name("arraystore")
    done = subprocess.run([str(script), "locality", "s3://bkt/x.zarr", "--json"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)
    assert entry["kind"] == "object" and entry["path"] == "s3://bkt/x.zarr" and entry["fs_type"] == "s3"
