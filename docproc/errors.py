"""The one exception tree of docproc.

Every error docproc raises on purpose derives from :class:`DocprocError`, so a
caller can catch "anything from docproc" in one place. Branches are grouped by
what the caller does about them::

    DocprocError
    ├── ConfigError              fix the configuration; the CLI exits 2
    ├── SourceError              a watched root cannot be read right now
    ├── ExtractionError          one document could not become text
    │   ├── PermanentExtractionError   corrupt, encrypted, unsupported, too large:
    │   │                              recorded and quarantined, never retried
    │   └── TransientExtractionError   busy, vanished, I/O: retried with backoff
    └── LedgerError              the ledger cannot be opened, migrated or queried

Control flow ("stop", "skip", "retry later") is never expressed through this
tree: shutdown is a flag, and a retry is a ledger state.
"""

from __future__ import annotations

from enum import StrEnum


class DocprocError(Exception):
    """Root of every error docproc raises on purpose."""


class ConfigError(DocprocError):
    """The configuration is invalid; ``key`` names the offending setting."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key
        self.reason = reason


class SourceError(DocprocError):
    """A watched root cannot be read (missing, unreadable, watch limit reached)."""


class FailureKind(StrEnum):
    """Whether trying again can help."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"


class ExtractionError(DocprocError):
    """A document could not be turned into text; ``reason`` is for people."""

    kind: FailureKind = FailureKind.PERMANENT

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PermanentExtractionError(ExtractionError):
    """Retrying cannot help: corrupt, encrypted, unsupported or over a limit."""

    kind = FailureKind.PERMANENT


class TransientExtractionError(ExtractionError):
    """The file was busy, vanished or could not be read; a later try may work."""

    kind = FailureKind.TRANSIENT


class LedgerError(DocprocError):
    """The ledger cannot be opened, migrated or queried."""
