"""The shared vocabulary: small frozen values passed from stage to stage.

Data moves one way: a source yields :class:`Candidate` files that passed the
stability gate; the pipeline fingerprints them into ledger versions and hands
:class:`ExtractTask` to the extractor pool, which answers with an
:class:`Extraction` or an :class:`ExtractFailure`. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from docproc.errors import FailureKind

# Suffixes of the files docproc itself writes next to sources; never taken as input.
SIDECAR_SUFFIXES: tuple[str, ...] = (".summary.md", ".docproc.json")


class Mode(StrEnum):
    """How a local root notices changes."""

    EVENTS = "events"  # inotify (or the platform's native API) through watchdog
    POLL = "poll"  # watchdog's polling observer: works on NFS, SMB and FUSE
    AUTO = "auto"  # poll on network and FUSE filesystems, events elsewhere


@dataclass(frozen=True, slots=True)
class WatchSpec:
    """What to watch in one local root and how; built once from the config."""

    path: Path
    mode: Mode = Mode.AUTO
    poll_interval: float = 5.0
    settle_seconds: float = 5.0
    recursive: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    hidden: bool = False
    ignore_suffixes: tuple[str, ...] = SIDECAR_SUFFIXES


@dataclass(frozen=True, slots=True)
class Candidate:
    """A regular file whose size and mtime stood still for the settle time."""

    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class IntakeBatch:
    """What one poll of a source found: files ready to fingerprint, paths gone."""

    ready: tuple[Candidate, ...] = ()
    gone: tuple[Path, ...] = ()
    # Entries that can never be taken, with a reason for people: a symlink
    # loop, a broken link, a FIFO or device, a file that cannot be stat'ed.
    problems: tuple[tuple[Path, str], ...] = ()
    scanned: bool = False  # a full reconcile walk ran during this poll


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    """Per-document limits enforced by the extractors."""

    max_file_bytes: int = 100 * 1024 * 1024
    max_chars: int = 2_000_000
    max_expansion_ratio: float = 100.0
    max_archive_bytes: int = 512 * 1024 * 1024
    timeout_seconds: float = 120.0


@dataclass(frozen=True, slots=True)
class ExtractTask:
    """Extract the text of ``path``, whose bytes must hash to ``sha256``."""

    sha256: str
    path: Path


@dataclass(frozen=True, slots=True)
class Extraction:
    """Text was recovered and stored in the text store under ``text_sha256``."""

    sha256: str
    extractor: str
    text_sha256: str
    chars: int
    truncated_from: int | None = None  # original character count when cut to max_chars
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ExtractFailure:
    """No text: ``reason`` says why in words a person understands."""

    sha256: str
    kind: FailureKind
    reason: str
    extractor: str | None = None
    seconds: float = 0.0


ExtractOutcome = Extraction | ExtractFailure
