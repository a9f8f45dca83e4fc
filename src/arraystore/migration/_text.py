"""Escaping file names (which may hold any character but ``/`` and NUL) for TOML, comments and text reports."""

from __future__ import annotations

__all__ = ["one_line", "toml_string"]

_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _is_surrogate(c: str) -> bool:
    return 0xD800 <= ord(c) <= 0xDFFF


def _is_line_break_or_control(c: str) -> bool:
    o = ord(c)
    return o < 0x20 or 0x7F <= o <= 0x9F or c in "\u2028\u2029"


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (quotes included) that ``tomllib`` reads back exactly.

    Quotes, backslashes and every control character are escaped. A lone surrogate (a file
    name that is not valid UTF-8, decoded by Python's ``surrogateescape``) has no TOML
    spelling: it raises ``ValueError``; callers replace it first (see ``suggest_rules``).

    Examples
    --------
    >>> toml_string('a"b\\nc')
    '"a\\\\"b\\\\nc"'
    """
    out = ['"']
    for c in text:
        if c in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[c])
        elif _is_surrogate(c):
            raise ValueError(f"{text!r}: a lone surrogate cannot be written to TOML")
        elif _is_line_break_or_control(c):
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def one_line(text: str) -> str:
    """``text`` on one line, safe in a TOML comment or a line of a text report.

    Control characters, line breaks, backslashes and lone surrogates are shown as
    Python-style escapes (``\\n``, ``\\x7f``, ``\\udcff``, ``\\\\``), so the result never
    ends a line early, is valid UTF-8, and tells different names apart.
    """
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif _is_line_break_or_control(c) or _is_surrogate(c):
            out.append(repr(c)[1:-1])
        else:
            out.append(c)
    return "".join(out)
