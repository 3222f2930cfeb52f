"""The one exception tree of docproc.

Every error docproc raises on purpose derives from :class:`DocprocError`, so a
caller can catch "anything from docproc" in one place. Branches are grouped by
what the caller does about them::

    DocprocError
    ├── ConfigError              fix the configuration; the CLI exits 2
    ├── SourceError              a watched root cannot be read right now
    ├── ObjectStoreError         an S3 or SQS call failed; ``code`` says how (denied,
    │                            no_bucket, not_found, precondition, throttled, network...)
    ├── ExtractionError          one document could not become text
    │   ├── PermanentExtractionError   corrupt, encrypted, unsupported, too large:
    │   │                              recorded and quarantined, never retried
    │   ├── TransientExtractionError   busy, vanished, I/O: retried with backoff
    │   └── TextStoreUnwritable        the text store is full or read-only: retried
    │                                  until it can be stored, never given up on
    ├── LedgerError              the ledger cannot be opened, migrated or queried
    │   └── LedgerBusy           another process is the ledger's one writer
    ├── StorageError             the state directory is missing, read-only or full at start
    ├── ProviderError            a provider call failed
    │   ├── ProviderRetryable    rate limit, overload, timeout, 5xx: try later
    │   ├── ProviderOutcomeUnknown  a create may have been made: reconcile before resending
    │   └── ProviderRejected     the request or batch is invalid: retrying cannot help
    │       └── ProviderAccountRefused  the key, billing or permissions: pause, fix, resume
    └── SidecarError             a sidecar may not be written there (outside its root,
        │                        name too long); fix the path or the configuration
        └── SidecarConflict      a file docproc did not write is at the target: kept,
                                 and the ledger records a conflict

Control flow ("stop", "skip", "retry later") is never expressed through this
tree: shutdown is a flag, and a retry is a ledger state. One exception stands
outside it on purpose: :class:`LedgerUnwritable` (a ledger write the disk
refused, nothing lost) derives from ``BaseException`` so that no per-item
``except Exception`` can swallow it. So does :class:`LedgerCommitLanded` (a
commit of unknown outcome did happen: what is held to record again must be
dropped) and :class:`LedgerWriterLost` (another process became the ledger's
writer while this one's connection was away), which nothing but the
process's end should stop.
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


class ObjectStoreError(DocprocError):
    """An S3 or SQS call failed, translated from botocore at the boundary.

    ``code`` is one of :data:`STORE_CODES`; ``retryable`` says whether the same
    call may work later (throttling, 5xx, network) without anyone fixing anything.
    """

    def __init__(self, code: str, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.retryable = retryable


STORE_CODES = (
    "denied",  # 403: credentials lack the permission, or are invalid
    "no_credentials",  # boto3's chain found none
    "no_bucket",  # the bucket does not exist
    "not_found",  # the key (or queue) does not exist
    "precondition",  # a conditional write lost (412, 409)
    "too_large",  # the object is over the configured limit
    "not_implemented",  # the store does not support the call (e.g. conditional PUT)
    "throttled",  # SlowDown, 503, 429: back off
    "unavailable",  # 500-class errors other than throttling
    "network",  # connection refused, reset, timed out
    "config",  # a profile that does not exist, a bad endpoint
    "error",  # anything else
)


class FailureKind(StrEnum):
    """Whether trying again can help.

    ``STORAGE``: the document was read, but its text could not be stored (the
    state directory is full or read-only): not the document's fault, so it is
    retried on a fixed pause and never given up on.
    """

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    STORAGE = "storage"


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


class TextStoreUnwritable(ExtractionError):  # noqa: N818 - named for what the caller meets
    """The text was extracted but the text store refused it (disk full, read-only)."""

    kind = FailureKind.STORAGE


class LedgerError(DocprocError):
    """The ledger cannot be opened, migrated or queried."""


class LedgerBusy(LedgerError):  # noqa: N818 - named for what the caller meets
    """Another process holds the ledger's writer lock (a service and a manual run, say).

    ``holder`` names it in words (command, pid, host, since when), or is empty.
    """

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


class LedgerUnwritable(BaseException):
    """A ledger transaction failed because of the disk, not the data; rolled back whole.

    ``kind`` is a storage fault kind (``no_space``, ``read_only``, ``io_error``...,
    see :mod:`docproc.storage`), or ``unreachable`` (a ledger server that cannot
    be reached: restart, failover, refused login); the message is ``ledger not
    writable: <reason>``, or ``ledger unreachable: <reason>`` for the last.
    Whatever the transaction carried is still in the caller's hands: keep it,
    back off, and record it again.

    Control flow, not an item's error, so it derives from ``BaseException``
    (like :class:`KeyboardInterrupt`): a per-item ``except Exception`` must not
    take a full disk for one bad file, result or row and quarantine it. The
    stages keep what they hold and let it pass; the daemon's loop catches it
    and backs off; the command line prints it as one line.
    """

    def __init__(self, kind: str, reason: str) -> None:
        what = "ledger unreachable" if kind == "unreachable" else "ledger not writable"
        super().__init__(f"{what}: {reason}")
        self.kind = kind
        self.reason = reason


class LedgerRestartNeeded(BaseException):
    """What this process holds no longer matches the ledger: it must end and start again.

    Not a retry and not an item's error: a per-item ``except Exception`` and the
    daemon's back-off both let it pass; the daemon exits non-zero (systemd
    restarts it, and it resumes from what the ledger holds), the command line
    prints one line. The two cases are the subclasses below.
    """


class LedgerCommitLanded(LedgerRestartNeeded):
    """A PostgreSQL commit whose outcome was unknown turned out to have happened.

    Raised by a later write on the same connection (see
    :mod:`docproc.ledger.commit_marks`), and by every write on it after that:
    the caller still holds the work of that commit, to record again, and
    recording it again would do it twice. Not a retry: the process should end
    and start again from what the ledger holds (under systemd the daemon exits
    and is restarted). It derives from ``BaseException`` (through
    :class:`LedgerRestartNeeded`) and not from :class:`LedgerUnwritable`, so
    that neither a per-item handler nor a back-off-and-retry handler takes it.
    """


class LedgerWriterLost(LedgerRestartNeeded):
    """This process stopped being the ledger's one writer while its connection was away.

    On PostgreSQL the writer holds a session lock (:mod:`docproc.ledger.pglock`)
    that the server drops with the connection; on reconnecting the writer takes
    it again, and if another process took it meanwhile, this one must write
    nothing more: two writers would each act on what they hold. Like
    :class:`LedgerCommitLanded` it is not retried: the process ends (the message
    names the new writer), and a restart is refused until that one stops.
    """


class StorageError(DocprocError):
    """The state directory cannot be used at start-up: missing, read-only or full (one line)."""


class ProviderError(DocprocError):
    """A call to a summarising provider failed; the subclass says what to do."""


class ProviderRetryable(ProviderError):  # noqa: N818 - named for what the caller does
    """Rate limit, overload, timeout, network or 5xx: the same call may work later.

    ``retry_after`` is the provider's hint in seconds, when it gave one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderOutcomeUnknown(ProviderError):  # noqa: N818 - named for what the caller does
    """A create call may or may not have reached the provider (a timeout after the body
    was sent, a dropped connection, a 5xx): find the batch before sending it again."""


class ProviderRejected(ProviderError):  # noqa: N818 - named for what the caller does
    """The request or batch is invalid (4xx, validation, unknown id): retrying cannot help."""


class ProviderAccountRefused(ProviderRejected):
    """The provider refuses the account (key, billing, permission): no document is at
    fault, so submission pauses and nothing is quarantined for it."""


class SidecarError(DocprocError):
    """A sidecar cannot be planned or written at a path; ``reason`` is for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SidecarConflict(SidecarError):  # noqa: N818 - a conflict is an outcome, not a fault
    """The target holds something docproc did not write; it is never overwritten.

    ``found_sha256`` is the hash of the file found there, or ``None`` when it is not
    a regular file (a symlink, a directory, a FIFO).
    """

    def __init__(self, path: str, found_sha256: str | None, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason
        self.path = path
        self.found_sha256 = found_sha256


def brief(exc: BaseException, limit: int = 500) -> str:
    """An exception as one line for a ledger row or a status line: its type and message."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:limit]
