"""What a conversion did: the ``ConversionReport``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ConversionReport"]


@dataclass
class ConversionReport:
    """The outcome of :func:`arraystore.convert`.

    Attributes
    ----------
    src, dst
        Paths (``file::key`` for arrays inside a hierarchy).
    src_backend, dst_backend
        Formats.
    nbytes
        Bytes of array data (uncompressed).
    seconds
        Wall time from planning to publish (verification included).
    throughput
        ``nbytes / seconds`` in bytes per second.
    peak_memory
        Peak private memory (``RssAnon``) sampled during the conversion, in bytes.
    baseline_memory
        ``RssAnon`` when the conversion started (interpreter + imports + caller's data).
    peak_file_memory
        Peak file-backed resident memory (``RssFile``, reclaimable page cache of maps).
    memory_estimate
        What the plan expects the conversion to add: block buffers in flight.
    checksum
        Content checksum of the converted array (``{"algorithm", "value"}``).
    checksum_recorded
        True when the destination's metadata now holds the checksum.
    verified
        True when the destination was read back and matched (``verify=True``).
    method
        ``"kernel-copy"`` (copy_file_range / sendfile), ``"buffered-copy"`` or ``"blocks"``.
    copy_call
        For copies: the system call that did the work.
    plan
        The block plan and options (see :class:`~arraystore.conversion._plan.ConversionPlan`).
    blocks_total, blocks_written, blocks_resumed, blocks_rewritten
        Blocks in the plan; written by this run; found done by the journal and read
        back intact; journaled as done but found different, hence written again.
    restarted
        Why a journal found on disk was not used, if one was found and not used.
    """

    src: str
    dst: str
    src_backend: str
    dst_backend: str
    nbytes: int
    seconds: float = 0.0
    throughput: float = 0.0
    peak_memory: int = 0
    baseline_memory: int = 0
    peak_file_memory: int = 0
    memory_estimate: int = 0
    checksum: dict[str, str] | None = None
    checksum_recorded: bool = False
    verified: bool = False
    method: str = "blocks"
    copy_call: str | None = None
    plan: dict[str, Any] = field(default_factory=dict)
    blocks_total: int = 0
    blocks_written: int = 0
    blocks_resumed: int = 0
    blocks_rewritten: int = 0
    restarted: str | None = None

    @property
    def extra_memory(self) -> int:
        """Peak private memory above the baseline: what the conversion itself used."""
        return max(0, self.peak_memory - self.baseline_memory)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (also includes ``extra_memory``)."""
        d = asdict(self)
        d["extra_memory"] = self.extra_memory
        return d

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    def summary(self) -> str:
        """One line for humans."""
        mib = 1024 * 1024
        resumed = f", {self.blocks_resumed} blocks resumed" if self.blocks_resumed else ""
        return (
            f"{self.src} -> {self.dst}: {self.nbytes / mib:,.1f} MiB in {self.seconds:.2f} s "
            f"({self.throughput / 1e9:.2f} GB/s, {self.method}{resumed}), peak private memory "
            f"{self.peak_memory / mib:,.0f} MiB (+{self.extra_memory / mib:,.0f} MiB)"
            f"{', verified' if self.verified else ''}"
        )
