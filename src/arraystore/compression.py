"""One grammar for ``compression=``, the same for every backend.

:func:`parse_compression` turns what a caller passes into a frozen
:class:`Compression` (or None for uncompressed)::

    None, "none"                  uncompressed
    "zstd", "zstd:3"              a codec, at its default level or at LEVEL
    "gzip", "gzip:6"
    "blosc", "blosc:5", "blosc:zstd", "blosc:zstd:5"   blosc with a compressor (CNAME) and/or level
    "lzf"                         a codec without levels
    {"codec": "blosc", "level": 5, "cname": "zstd"}    the same as a dict
    Compression("zstd", 3)        passed through (checked)

Defaults are the codecs' own: gzip level 6 (zlib's), zstd level 3 (zstd's), blosc
with lz4 at level 5. Levels: gzip and blosc 0-9, zstd 1-22; lzf has none. A bare
integer is refused (h5py reads ``4`` as gzip, other libraries as a zstd level): name
the codec. Each backend declares the codecs it writes
(:attr:`~arraystore.ArrayStore.codecs`); :func:`check_codec` refuses the others
naming the supported ones. Every error is a :class:`~arraystore.errors.CompressionError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import CompressionError

if TYPE_CHECKING:
    from .store import ArrayStore

__all__ = ["CODECS", "Codec", "Compression", "check_codec", "parse_compression"]


@dataclass(frozen=True)
class Codec:
    """What a codec accepts: its level range and default, and its named options with their choices."""

    levels: tuple[int, int] | None
    default_level: int | None
    options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default_options: Mapping[str, str] = field(default_factory=dict)


#: The codecs arraystore knows, by name.
CODECS: Mapping[str, Codec] = {
    "gzip": Codec((0, 9), 6),
    "zstd": Codec((1, 22), 3),
    "blosc": Codec((0, 9), 5, {"cname": ("blosclz", "lz4", "lz4hc", "zlib", "zstd")}, {"cname": "lz4"}),
    "lzf": Codec(None, None),
}

_GRAMMAR = "'zstd[:LEVEL]', 'gzip[:LEVEL]', 'blosc[:CNAME][:LEVEL]', 'lzf', 'none', a dict or None"


@dataclass(frozen=True)
class Compression:
    """A codec with its level and options, all filled in (defaults included)."""

    codec: str
    level: int | None = None
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str) -> str | None:
        """The value of option ``name`` (e.g. blosc's ``"cname"``), or None."""
        return dict(self.options).get(name)

    def __str__(self) -> str:
        parts = [self.codec, *(value for _, value in self.options)]
        if self.level is not None:
            parts.append(str(self.level))
        return ":".join(parts)


def _level(codec: str, spec: Codec, value: Any, given: Any) -> int | None:
    if value is None:
        return spec.default_level
    if spec.levels is None:
        raise CompressionError(f"{codec} compression has no levels; found {given!r}: write {codec!r}")
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise CompressionError(
                f"expected an integer {codec} level after '{codec}:', found {value!r} in {given!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CompressionError(f"expected an integer {codec} level, found {value!r} in {given!r}")
    lo, hi = spec.levels
    if not lo <= value <= hi:
        raise CompressionError(f"expected a {codec} level from {lo} to {hi}, found {value} in {given!r}")
    return value


def _build(codec: str, level: Any, options: Mapping[str, Any], given: Any) -> Compression:
    spec = CODECS.get(codec)
    if spec is None:
        raise CompressionError(f"unknown codec {codec!r} in compression={given!r}; expected {_GRAMMAR}")
    unknown = set(options) - set(spec.options)
    if unknown:
        allowed = ", ".join(spec.options) or "none"
        raise CompressionError(f"{codec} compression takes no option {sorted(unknown)} (options: {allowed})")
    filled: list[tuple[str, str]] = []
    for name, choices in spec.options.items():
        value = options.get(name, spec.default_options.get(name))
        if value not in choices:
            raise CompressionError(
                f"expected a {codec} {name} among {', '.join(choices)}, found {value!r} in {given!r}"
            )
        filled.append((name, str(value)))
    return Compression(codec, _level(codec, spec, level, given), tuple(filled))


def parse_compression(value: Any) -> Compression | None:
    """Parse a ``compression=`` argument; None (uncompressed) for None and ``"none"``.

    Raises
    ------
    CompressionError
        An unknown codec or option, a level out of range, a level for a codec without
        levels, or a value of another type (an ``int`` among them).
    """
    if value is None:
        return None
    if isinstance(value, Compression):
        return _build(value.codec, value.level, dict(value.options), value)
    if isinstance(value, Mapping):
        d = dict(value)
        codec = d.pop("codec", None)
        if not isinstance(codec, str):
            raise CompressionError(f"expected a dict with a 'codec' name, found {value!r}")
        level = d.pop("level", None)
        return _build(codec.lower(), level, d, value)
    if not isinstance(value, str):
        raise CompressionError(
            f"expected compression as a codec name such as 'zstd:3' (or {_GRAMMAR}), found {value!r} of type "
            f"{type(value).__name__}"
            + ("; name the codec, e.g. 'gzip:N'" if isinstance(value, int) and not isinstance(value, bool) else "")
        )
    text = value.strip().lower()
    if text in ("", "none"):
        return None
    codec, *rest = text.split(":")
    spec = CODECS.get(codec)
    if spec is None:
        raise CompressionError(f"unknown codec {codec!r} in compression={value!r}; expected {_GRAMMAR}")
    options: dict[str, str] = {}
    level_text: str | None = None
    for part in rest:
        if part.lstrip("-").isdigit() and level_text is None:
            level_text = part
            continue
        free = [name for name in spec.options if name not in options]
        if not spec.options and spec.levels is not None:
            raise CompressionError(f"expected an integer {codec} level after '{codec}:', found {part!r} in {value!r}")
        if not free or level_text is not None:
            raise CompressionError(f"unexpected {part!r} in compression={value!r}; expected {_GRAMMAR}")
        options[free[0]] = part
    return _build(codec, level_text, options, value)


def check_codec(cls: type[ArrayStore], compression: Compression | None) -> None:
    """Refuse a codec that backend ``cls`` does not write.

    Raises
    ------
    CompressionError
        Naming the codecs the backend supports (or saying it compresses nothing).
    """
    if compression is None or compression.codec in cls.codecs:
        return
    if not cls.codecs:
        raise CompressionError(
            f"the {cls.backend} backend stores data uncompressed; compression={str(compression)!r} needs a backend "
            "with codecs (hdf5, zarr)"
        )
    raise CompressionError(
        f"the {cls.backend} backend does not write {compression.codec} compression; it supports "
        f"{', '.join(sorted(cls.codecs))}: choose one of those (e.g. compression='{sorted(cls.codecs)[-1]}'), "
        f"or a destination format that writes {compression.codec}"
    )
