"""What a migration did: :class:`MigrationReport`, its exit code and its human summary."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ._manifest import FileRecord, record_json
from ._text import one_line

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNDETERMINED",
    "REPORT_NAME",
    "SUGGESTED_RULES_NAME",
    "SUMMARY_NAME",
    "MigrationReport",
]

#: The report, its human summary and the rules template, written to the destination.
REPORT_NAME = "migration-report.json"
SUMMARY_NAME = "migration-summary.txt"
SUGGESTED_RULES_NAME = "rules-suggested.toml"

#: Every file converted or skipped.
EXIT_OK = 0
#: Some files stayed undetermined (none failed).
EXIT_UNDETERMINED = 3
#: Some files failed.
EXIT_FAILED = 4

_STATUSES = ("converted", "skipped", "planned", "undetermined", "failed")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,} B" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


@dataclass
class MigrationReport:
    """The outcome of :func:`arraystore.migration.migrate`.

    Attributes
    ----------
    src, dst
        The archive and the destination folder.
    to
        The destination format (``zarr``, ``npy``, ``hdf5``, ``raw``).
    records
        One :class:`FileRecord` per source file, sorted by source path: this run's
        outcome (``skipped`` for files an earlier run converted).
    dry_run
        True when nothing was written (``planned`` records say what would be).
    seconds
        Wall time of the run.
    rules
        The rules file used, if any; ``rules_unused`` lists its rules that matched no file.
    suggested_rules
        The rules template written for undetermined files (``DST/rules-suggested.toml``).
    workers, scheduler
        How the files were spread: worker processes, or the Dask scheduler's address.
    """

    src: str
    dst: str
    to: str
    records: list[FileRecord] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0
    rules: str | None = None
    rules_unused: list[str] = field(default_factory=list)
    suggested_rules: str | None = None
    workers: int = 1
    scheduler: str | None = None

    def by_status(self, status: str) -> list[FileRecord]:
        """The records of one status."""
        return [r for r in self.records if r.status == status]

    @property
    def counts(self) -> dict[str, int]:
        """Number of files per status (every status present, zero included; ``planned`` only in dry runs)."""
        out = dict.fromkeys(_STATUSES, 0)
        for r in self.records:  # one pass: the report asks for the counts several times over thousands of records
            if r.status in out:
                out[r.status] += 1
        out.pop("converted" if self.dry_run else "planned")
        return out

    @property
    def bytes_converted(self) -> int:
        """Source bytes converted by this run (planned bytes in a dry run)."""
        return sum(r.size for r in self.records if r.status in ("converted", "planned"))

    @property
    def exit_code(self) -> int:
        """``4`` when any file failed, else ``3`` when any stayed undetermined, else ``0``."""
        statuses = {r.status for r in self.records}
        if "failed" in statuses:
            return EXIT_FAILED
        if "undetermined" in statuses:
            return EXIT_UNDETERMINED
        return EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the fields, ``counts``, ``bytes_converted``, ``exit_code`` and every record."""
        return {**self._fields(), "records": [r.to_dict() for r in self.records]}

    def _fields(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "dst": self.dst,
            "to": self.to,
            "dry_run": self.dry_run,
            "seconds": round(self.seconds, 3),
            "workers": self.workers,
            "scheduler": self.scheduler,
            "counts": self.counts,
            "bytes_converted": self.bytes_converted,
            "exit_code": self.exit_code,
            "rules": self.rules,
            "rules_unused": self.rules_unused,
            "suggested_rules": self.suggested_rules,
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON."""
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def to_file_json(self) -> str:
        """The report as written to ``migration-report.json``: :meth:`to_json`'s content, its fields
        indented, each record on a line of its own (written by the C encoder: an indented dump of
        thousands of records goes through Python's, at several times the cost)."""
        records = self.records
        d = self._fields()
        head = json.dumps(d, indent=2, default=str)
        if not records:
            return head[:-2] + ',\n  "records": []\n}'
        lines = ",\n    ".join(record_json(r) for r in records)  # the manifest's encoding, made once
        return head[:-2] + ',\n  "records": [\n    ' + lines + "\n  ]\n}"

    def summary(self) -> str:
        """A human summary: counts, then each undetermined and failed file with its reason."""
        lines = [f"{'plan (dry run)' if self.dry_run else 'migration'}: {self.src} -> {self.dst} ({self.to})"]
        for status, n in self.counts.items():
            label = "would convert" if status == "planned" else status
            extra = ""
            if status in ("converted", "planned") and n:
                extra = f"  {_size(self.bytes_converted)}"
                if status == "converted" and self.seconds > 0:
                    extra += f" in {self.seconds:.1f} s"
            lines.append(f"  {label:<14}{n:>6}{extra}")
        if self.dry_run and self.by_status("planned"):
            lines.append("")
            lines.append("would write:")
            lines.extend(
                f"  {one_line(r.source)}  ->  {one_line(r.destination or '')}  ({_size(r.size)})" for r in self.by_status("planned")
            )
        copied = [r for r in self.records if r.status == "converted" and (r.note or "").startswith("copied:")]
        if copied:
            lines.append("")
            lines.append("copied into the virtual hierarchy (no reference can express them):")
            lines.extend(f"  {one_line(r.source)}  {one_line((r.note or '')[len('copied:'):].strip())}" for r in copied)
        und = self.by_status("undetermined")
        if und:
            lines.append("")
            if any("error" in r.resolution for r in und):
                lines.append("undetermined (no source states the dtype, or the data contradict weak evidence; "
                             "nothing was guessed):")
            else:
                lines.append("undetermined (no source states the dtype; nothing was guessed):")
            for r in und:
                cands = r.resolution.get("candidates", [])
                shown = ", ".join(f"{c['dtype']} {tuple(c['shape'])}" for c in cands[:4])
                more = f" (+{len(cands) - 4} more)" if len(cands) > 4 else ""
                lines.append(f"  {one_line(r.source)}  {_size(r.size)}; candidates: {shown or 'none'}{more}")
                if "error" in r.resolution:
                    lines.append(f"    {one_line(str(r.resolution['error'].get('message', '')))}")
            if self.suggested_rules:
                lines.append(f"  -> fill in {self.suggested_rules} and rerun with --rules")
        failed = self.by_status("failed")
        if failed:
            lines.append("")
            lines.append("failed:")
            lines.extend(f"  {one_line(r.source)}  {one_line(r.error_message)}" for r in failed)
        if self.rules_unused:
            lines.append("")
            lines.append(f"rules that matched no file ({self.rules}): {one_line(', '.join(self.rules_unused))}")
        return "\n".join(lines)
