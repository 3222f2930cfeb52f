"""What one chunk of the publishing stage carries, and the pure steps around it.

A :class:`FileItem` (sidecar files next to a source, or in the output
mirror) or an :class:`ObjectItem` (sidecar objects of an S3 source) holds one
answered job on its way through a chunk: the ledger row, the rendered bytes,
where they go (``place``, the unit a storage fault blocks). Also here: the
content a ledger row renders to, the writing of one source's sidecar objects
(on a writer thread, no ledger access), and the retry a failed item becomes.
The stage itself, with its ledger bookkeeping, is :mod:`docproc.publish`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docproc.errors import SidecarConflict
from docproc.ledger.publishing import Retry, stored_highlights
from docproc.ledger.uris import file_uri
from docproc.models import Usage
from docproc.sidecar_objects import CONTENT_TYPES, ObjectSidecars
from docproc.sidecars import SidecarContent, Staged
from docproc.storage import Fault


@dataclass
class Pending:
    """One file's answered job, on its way to sidecars through a chunk."""

    row: dict[str, Any]
    reused: bool

    @property
    def file_id(self) -> int:
        return int(self.row["file_id"])

    @property
    def job_id(self) -> int:
        return int(self.row["job_id"])


@dataclass
class FileItem(Pending):
    """One file's sidecars next to it (or in the output mirror)."""

    writes: list[tuple[Path, bytes]]
    root: Path
    staged: list[Staged] = field(default_factory=list)
    targets: list[tuple[str, str]] = field(init=False)  # (uri, sha256) of each write

    def __post_init__(self) -> None:
        self.targets = [(file_uri(p), hashlib.sha256(data).hexdigest()) for p, data in self.writes]

    @property
    def place(self) -> str:
        """The folder both sidecars go to."""
        return str(self.writes[0][0].parent)


@dataclass
class ObjectItem(Pending):
    """One S3 source's sidecar objects."""

    sink: ObjectSidecars
    writes: list[tuple[str, bytes, str]]  # (key, data, kind)
    expected: list[set[str]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def targets(self) -> list[tuple[str, str]]:
        return [(self.sink.uri(k), hashlib.sha256(d).hexdigest()) for k, d, _ in self.writes]

    @property
    def place(self) -> str:
        """The bucket prefix the sidecar objects go under."""
        return self.sink.place


def write_objects(item: ObjectItem) -> tuple[str, Exception] | None:
    """Write one source's sidecar objects; ``None``, or (uri, error) of the first failure.

    Runs on a writer thread: no ledger access here.
    """
    for (key, data, kind), expected in zip(item.writes, item.expected, strict=True):
        try:
            item.sink.write(key, data, expected=expected, metadata=item.metadata,
                            content_type=CONTENT_TYPES[kind])  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - this object alone; the loop decides what it is
            return item.sink.uri(key), exc
    return None


def retry_of(row: dict[str, Any], fault: Fault) -> Retry:
    """The retry a file becomes when its sidecars could not be written for ``fault``."""
    return Retry(int(row["file_id"]), int(row["job_id"]), fault.place, fault.kind, fault.reason)


def failed_uri(failure: BaseException, item: FileItem) -> str:
    """The sidecar a commit failure is about (a conflict names its path)."""
    if isinstance(failure, SidecarConflict):
        return file_uri(Path(failure.path))
    return item.targets[0][0]


def sidecar_content(row: dict[str, Any], *, reused: bool) -> SidecarContent:
    usage = Usage(
        input_tokens=row["input_tokens"] or 0,
        output_tokens=row["output_tokens"] or 0,
        cache_creation_input_tokens=row["cache_creation_input_tokens"] or 0,
        cache_read_input_tokens=row["cache_read_input_tokens"] or 0,
    )
    return SidecarContent(
        source=row["path"],
        sha256=row["sha256"],
        summary=row["summary"] or "",
        highlights=stored_highlights(row["highlights"]),
        provider=row["provider"],
        model=row["model"] or "",
        batch_id=row["provider_batch_id"] or "",
        custom_id=row["custom_id"],
        usage=usage,
        cost_usd=row["cost_usd"],
        file_id=row["file_id"],
        version_id=row["version_id"],
        job_id=row["job_id"],
        # The result's time, not the clock: re-rendering after a crash gives the same bytes.
        written_at=row["completed_at"],
        reused=reused,
        dropped_highlights=row["dropped_highlights"] or 0,
        task=row["task"],
    )
