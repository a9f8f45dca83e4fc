"""Bounds on attributes taken from other files' headers (ENVI, EHdr, MetaImage, legacy JSON).

A header just under its own size cap could otherwise produce attrs that no longer fit
in a sidecar or ``zarr.json`` (JSON escaping and the copies kept for provenance multiply
its size), so that the array written cannot be opened again. The rule (documented in
``docs/dialects.md``):

* a string longer than :data:`MAX_TEXT_CHARS` characters is cut to that length and ends
  with a visible marker, ``" …[truncated by arraystore: N characters]"``;
* a list or mapping whose JSON form exceeds :data:`MAX_VALUE_BYTES` is dropped;
* when all values together still exceed :data:`MAX_TOTAL_BYTES` (JSON, ASCII-escaped),
  the largest are dropped until they fit;
* every cut or dropped key is listed under :data:`LIMITS_KEY`
  (``{"truncated": [...], "dropped": [...]}``), so nothing disappears silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["LIMITS_KEY", "MAX_TEXT_CHARS", "MAX_TOTAL_BYTES", "MAX_VALUE_BYTES", "bound_attrs"]

#: Longest string kept whole.
MAX_TEXT_CHARS = 64 * 1024
#: Largest list or mapping kept (its JSON, ASCII-escaped).
MAX_VALUE_BYTES = 256 * 1024
#: Largest set of header-derived attrs kept (their JSON, ASCII-escaped).
MAX_TOTAL_BYTES = 512 * 1024
#: The attrs key listing what was cut or dropped.
LIMITS_KEY = "arraystore.header_limits"


def _json_size(value: Any) -> int:
    return len(json.dumps(value, default=str))


def bound_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """``attrs`` within the documented bounds (see the module docstring); small attrs come back equal."""
    out: dict[str, Any] = {}
    truncated: list[str] = []
    dropped: list[str] = []
    sizes: dict[str, int] = {}
    for key, value in attrs.items():
        if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
            value = value[:MAX_TEXT_CHARS] + f" …[truncated by arraystore: {len(value):,} characters]"
            truncated.append(key)
        size = _json_size(value) + _json_size(key)
        if isinstance(value, (list, tuple, dict)) and size > MAX_VALUE_BYTES:
            dropped.append(key)
            continue
        out[key] = value
        sizes[key] = size
    total = sum(sizes.values())
    for key in sorted(sizes, key=lambda k: -sizes[k]):
        if total <= MAX_TOTAL_BYTES:
            break
        del out[key]
        total -= sizes[key]
        dropped.append(key)
        if key in truncated:
            truncated.remove(key)
    if truncated or dropped:
        out[LIMITS_KEY] = {
            "truncated": truncated,
            "dropped": dropped,
            "max_text_chars": MAX_TEXT_CHARS,
            "max_value_bytes": MAX_VALUE_BYTES,
            "max_total_bytes": MAX_TOTAL_BYTES,
        }
    return out
