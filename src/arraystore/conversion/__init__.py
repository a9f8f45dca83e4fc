"""Conversion between any two backends: bounded memory, near-disk speed, atomic, verified, resumable.

See ``docs/conversion.md``. The public entry point is :func:`convert` (also
``arraystore.convert``); it returns a :class:`ConversionReport`.
"""

from __future__ import annotations

from ._convert import convert
from ._options import ConvertOptions
from ._plan import ConversionPlan, choose_chunks, parse_size
from ._report import ConversionReport

__all__ = ["ConversionPlan", "ConversionReport", "ConvertOptions", "choose_chunks", "convert", "parse_size"]
