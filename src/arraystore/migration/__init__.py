"""Migration of legacy raw archives: metadata resolution with recorded evidence, and the migration itself.

:func:`resolve` decides one raw file's dtype, shape, order and offset from every source
of evidence (arraystore's sidecar, header dialects, legacy JSON, folder manifests, user
rules, the file name), or says why it cannot: see ``docs/migration-metadata.md``.
:func:`migrate` converts a whole archive, resumably, with a manifest: see ``docs/migration.md``.

``arraystore.migrate(src, dst, ...)`` is :func:`migrate` of this package.
"""

from __future__ import annotations

from ._manifest import FileRecord
from ._report import MigrationReport
from .candidates import Candidate, candidates
from .evidence import Evidence, MetadataConflictError
from .evidence_data import DataContradictsEvidenceError
from .filenames import FilenameFacts, parse_filename
from .resolve import PROVENANCE_KEY, Resolution, is_metadata_file, resolve
from .rules import Rule, Rules, load_rules, parse_rules, suggest_rules
from .run import MigrationProgress, combine_rules, migrate

__all__ = [
    "PROVENANCE_KEY",
    "Candidate",
    "DataContradictsEvidenceError",
    "Evidence",
    "FileRecord",
    "FilenameFacts",
    "MetadataConflictError",
    "MigrationProgress",
    "MigrationReport",
    "Resolution",
    "Rule",
    "Rules",
    "candidates",
    "combine_rules",
    "is_metadata_file",
    "load_rules",
    "migrate",
    "parse_filename",
    "parse_rules",
    "resolve",
    "suggest_rules",
]
