"""A third-party backend, registered through a real entry point, is a first-class citizen.

The plugin (format "tiny": a fixed 4 KiB JSON header after a magic, then the array's
bytes) is the example module shown in docs/adding-a-backend.md, so the doc's code is
what runs here. It lives in a temporary folder with its own ``.dist-info`` on ``sys.path``;
``importlib.metadata`` finds it like an installed distribution. Nothing in arraystore
names it: it is found by its entry point, its suffix and its magic bytes, and converts
to and from every built-in backend through the capabilities it declares.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import arraystore
from arraystore import registry
from arraystore.errors import BackendError, MissingDependencyError
from arraystore.meta import ArrayMeta
from arraystore.testing import ArrayStoreTests

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding-a-backend.md"


def _plugin_source() -> str:
    """The ``tinyplug.py`` module shown in docs/adding-a-backend.md: the doc's example is what runs here."""
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (module,) = [b for b in blocks if "class TinyStore(ArrayStore)" in b]
    return module



ENTRY_POINTS = """\
[arraystore.backends]
tiny = tinyplug:TinyStore
"""


@pytest.fixture
def plugin(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    site = tmp_path_factory.mktemp("site")
    (site / "tinyplug.py").write_text(_plugin_source())
    info = site / "tinyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    registry._entry_point_classes.cache_clear()
    yield
    registry._entry_point_classes.cache_clear()
    sys.modules.pop("tinyplug", None)


def _available() -> list[str]:
    out = []
    for name in registry.BACKENDS:
        try:
            registry.backend_class(name)
        except MissingDependencyError as exc:  # pragma: no cover - CI installs every extra
            pytest.fail(f"{name}: {exc}")
        out.append(name)
    return out


def _data() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.standard_normal((37, 5)).astype(">f4")


@pytest.mark.usefixtures("plugin")
def test_the_plugin_is_found_by_name_suffix_and_magic(tmp_path: Path) -> None:
    assert "tiny" in registry.backend_names()
    assert registry.default_suffix("tiny") == ".tiny"
    path = tmp_path / "a.tiny"
    with arraystore.create(path, (3, 4), "i2", attrs={"k": 1}) as s:  # backend from the plugin's suffix
        s[...] = np.arange(12).reshape(3, 4)
    assert type(s).__name__ == "TinyStore"
    bare = tmp_path / "no-suffix"
    bare.write_bytes(path.read_bytes())
    assert registry.detect_backend(registry.parse_location(bare)) == "tiny"  # by its magic bytes
    with arraystore.open(bare) as s:
        np.testing.assert_array_equal(s[...], np.arange(12).reshape(3, 4))
        assert dict(s.attrs) == {"k": 1}


def test_without_the_entry_point_the_suffix_is_unknown(tmp_path: Path) -> None:
    registry._entry_point_classes.cache_clear()
    assert "tiny" not in registry.backend_names()
    with pytest.raises(BackendError):
        arraystore.create(tmp_path / "a.tiny", (3,), "f4")


@pytest.mark.usefixtures("plugin")
@pytest.mark.parametrize("builtin", ["raw", "npy", "hdf5", "zarr"])
def test_converts_to_and_from_every_builtin(tmp_path: Path, builtin: str) -> None:
    assert builtin in _available()
    data = _data()
    cls = registry.backend_class(builtin)
    attrs = {"units": "K"} if cls.holds_attrs else {}
    src = tmp_path / f"src{registry.default_suffix(builtin)}"
    key = "::/data" if builtin == "hdf5" else ""
    with arraystore.create(f"{src}{key}", data.shape, data.dtype, attrs=attrs) as s:
        s[...] = data
    to_tiny = arraystore.convert(f"{src}{key}", tmp_path / "mid.tiny", verify=True)
    assert to_tiny.verified and to_tiny.dst_backend == "tiny"
    with arraystore.open(tmp_path / "mid.tiny") as t:
        np.testing.assert_array_equal(t[...], data)
        assert t.dtype == data.dtype and dict(t.attrs) == attrs
    dst = tmp_path / f"back{registry.default_suffix(builtin)}"
    back = arraystore.convert(tmp_path / "mid.tiny", f"{dst}{key}", verify=True)
    assert back.verified and back.src_backend == "tiny"
    with arraystore.open(f"{dst}{key}") as b:
        np.testing.assert_array_equal(b[...], data)
        assert b.dtype == data.dtype and dict(b.attrs) == attrs


@pytest.mark.usefixtures("plugin")
def test_the_plugin_refuses_what_its_layout_cannot_hold(tmp_path: Path) -> None:
    src = tmp_path / "a.npy"
    np.save(src, _data())
    with pytest.raises(arraystore.errors.ConversionError, match="contiguous"):
        arraystore.convert(src, tmp_path / "b.tiny", chunks=(8, 5))
    assert not (tmp_path / "b.tiny").exists()


@pytest.fixture(scope="class")
def plugin_for_class(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        site = tmp_path_factory.mktemp("site")
        (site / "tinyplug.py").write_text(_plugin_source())
        info = site / "tinyplug-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyplug\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(ENTRY_POINTS)
        mp.syspath_prepend(str(site))
        importlib.invalidate_caches()
        registry._entry_point_classes.cache_clear()
        yield
        registry._entry_point_classes.cache_clear()
        sys.modules.pop("tinyplug", None)


@pytest.mark.usefixtures("plugin_for_class")
class TestTinyConformance(ArrayStoreTests):
    """The plugin runs the same conformance suite as the built-ins."""

    backend = "tiny"
    suffix = ".tiny"

    def oracle_read(self, path: str) -> np.ndarray:
        raw = Path(path).read_bytes()
        header = json.loads(raw[8:4096].rstrip(b" ").decode())
        meta = ArrayMeta.from_dict(header)
        flat = np.frombuffer(raw[4096:], dtype=meta.dtype, count=meta.size)
        return flat.reshape(meta.shape, order=meta.order)

    def oracle_write(self, path: str, data: np.ndarray) -> None:
        order = "F" if data.flags.f_contiguous and not data.flags.c_contiguous else "C"
        meta = ArrayMeta(data.shape, data.dtype, order)
        head = b"TINYARR1" + json.dumps(meta.to_dict()).encode()
        Path(path).write_bytes(head.ljust(4096, b" ") + data.tobytes(order=order))
