"""Migration of legacy raw archives: per-file metadata resolution with recorded evidence.

:func:`resolve` decides one raw file's dtype, shape, order and offset from every source
of evidence (arraystore's sidecar, header dialects, legacy JSON, folder manifests, user
rules, the file name), or says why it cannot: see ``docs/migration-metadata.md``.
"""

from __future__ import annotations

from .candidates import Candidate, candidates
from .evidence import Evidence, MetadataConflictError
from .filenames import FilenameFacts, parse_filename
from .resolve import PROVENANCE_KEY, Resolution, is_metadata_file, resolve
from .rules import Rule, Rules, load_rules, parse_rules, suggest_rules

__all__ = [
    "PROVENANCE_KEY",
    "Candidate",
    "Evidence",
    "FilenameFacts",
    "MetadataConflictError",
    "Resolution",
    "Rule",
    "Rules",
    "candidates",
    "is_metadata_file",
    "load_rules",
    "parse_filename",
    "parse_rules",
    "resolve",
    "suggest_rules",
]
