"""The shared vocabulary: small frozen values passed from stage to stage.

Data moves one way: a source yields :class:`Candidate` files that passed the
stability gate; the pipeline fingerprints them into ledger versions and hands
:class:`ExtractTask` to the extractor pool, which answers with an
:class:`Extraction` or an :class:`ExtractFailure`. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote, unquote

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
class S3WatchSpec:
    """What to watch under one S3 prefix and how; built once from the config.

    Credentials are never part of it: boto3's default chain finds them
    (environment, shared files, ``profile``, instance or task role).
    """

    bucket: str
    prefix: str = ""  # "" (the whole bucket) or ending in "/"
    endpoint_url: str | None = None  # MinIO, Ceph, R2, moto...; None: AWS
    region: str | None = None
    profile: str | None = None
    interval: float = 60.0  # seconds between reconcile listings
    sqs_queue_url: str | None = None  # S3 event notifications: a latency hint
    sqs_wait_seconds: int = 5  # SQS long-poll wait; also bounds how long a stop waits for it
    output_prefix: str | None = None  # "s3://bucket/prefix/" for sidecars; None: next to the key
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    hidden: bool = False
    ignore_suffixes: tuple[str, ...] = SIDECAR_SUFFIXES

    @property
    def uri(self) -> str:
        """``s3://bucket/prefix/``: the root's identity in the ledger."""
        return object_uri(self.bucket, self.prefix)


def object_uri(bucket: str, key: str) -> str:
    """``s3://`` URI of an object; any character of the key survives (percent-encoded)."""
    return f"s3://{bucket}/{quote(key, safe='/')}"


def object_key(uri: str) -> tuple[str, str]:
    """The (bucket, key) an ``s3://`` URI made by :func:`object_uri` names."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, unquote(key)


@dataclass(frozen=True, slots=True)
class ObjectState:
    """What the ledger knows of one object: listing hints, not identity.

    ``settled``: the bytes it last held are extracted (or failed for good), so
    an unchanged listing entry needs no download.
    """

    etag: str
    size: int
    last_modified_ns: int
    settled: bool = True


@dataclass(frozen=True, slots=True)
class SidecarSettings:
    """Where summaries are written: next to each source, or mirrored under ``output_dir``."""

    summary_suffix: str = ".summary.md"
    json_suffix: str = ".docproc.json"
    output_dir: Path | None = None
    delete_with_source: bool = False

    @property
    def suffixes(self) -> tuple[str, str]:
        return (self.summary_suffix, self.json_suffix)


# Where a file lives: a local path, or the URI of a remote object (``s3://``).
Location = Path | str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A regular file whose size and mtime stood still for the settle time.

    For a remote object, ``uri`` is its identity (``s3://bucket/key``), ``path``
    a private local copy of its bytes that the intake removes when done, and
    ``mtime_ns`` its last-modified time; ``etag`` is the store's hint.
    """

    path: Path
    size: int
    mtime_ns: int
    uri: str = ""
    etag: str = ""

    @property
    def location(self) -> Location:
        return self.uri or self.path


@dataclass(frozen=True, slots=True)
class IntakeBatch:
    """What one poll of a source found: files ready to fingerprint, paths gone."""

    ready: tuple[Candidate, ...] = ()
    gone: tuple[Location, ...] = ()
    # Entries that can never be taken, with a reason for people: a symlink
    # loop, a broken link, a FIFO or device, a file that cannot be stat'ed.
    problems: tuple[tuple[Location, str], ...] = ()
    scanned: bool = False  # a full reconcile walk ran during this poll


@dataclass(frozen=True, slots=True)
class OcrOptions:
    """How images and pages without a text layer are read (Tesseract)."""

    mode: str = "auto"  # "auto": OCR when Tesseract is installed; "off": never
    languages: tuple[str, ...] = ("eng",)
    timeout_seconds: float = 60.0  # one page's OCR; the document's timeout still applies
    max_pages: int = 100  # pages (or pictures) OCR'd per document; the rest are skipped


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    """Per-document limits enforced by the extractors."""

    max_file_bytes: int = 100 * 1024 * 1024
    max_chars: int = 2_000_000
    max_expansion_ratio: float = 100.0
    max_archive_bytes: int = 512 * 1024 * 1024
    timeout_seconds: float = 120.0
    max_image_pixels: int = 100_000_000  # a bigger image is refused as a decompression bomb
    max_pages: int = 5_000  # pages (PDF) or slides read per document
    max_archive_members: int = 10_000  # members of a .zip or .tar read; the rest are skipped
    max_nesting: int = 3  # archives inside archives, counting the outer one
    ocr: OcrOptions = OcrOptions()


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
    json_bytes: int | None = None  # UTF-8 bytes of the text as a JSON string (no quotes)
    ocr_pages: int = 0  # pages or pictures whose text came from OCR


@dataclass(frozen=True, slots=True)
class ExtractFailure:
    """No text: ``reason`` says why in words a person understands."""

    sha256: str
    kind: FailureKind
    reason: str
    extractor: str | None = None
    seconds: float = 0.0


ExtractOutcome = Extraction | ExtractFailure


# -- jobs, batches and results (the second half of the pipeline) ---------------

CUSTOM_ID_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
_ATTEMPT_RE = re.compile(r"-a(0|[1-9][0-9]*)$")


def custom_id_attempt(custom_id: str) -> int:
    """The attempt number at the end of a docproc custom_id (1 when there is none)."""
    match = _ATTEMPT_RE.search(custom_id)
    return int(match.group(1)) if match else 1


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What a job asks of the provider. Its fingerprint is half of a job's identity:
    the same bytes with the same task are never sent twice; a changed prompt or
    model is a new job, on purpose."""

    provider: str = "local"
    model: str = "local-extractive-1"
    prompt: str = ""
    max_tokens: int = 1024
    summary_sentences: int = 3
    max_highlights: int = 10
    schema: str = "summary+highlights/1"
    extractor: str = ""  # the extraction settings that shape the text (e.g. max_chars)
    max_input_chars: int = 400_000  # the context budget: longer text is cut, with a marker

    @property
    def fingerprint(self) -> str:
        """A short, stable hash of every field.

        A field added after the first release counts only when it differs from
        its default, so upgrading docproc never re-keys (and re-bills) the
        documents already summarised.
        """
        fields = [
            getattr(self, name)
            for name in self.__slots__
            if name not in _ADDED_FIELDS or getattr(self, name) != _ADDED_FIELDS[name]
        ]
        payload = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


# TaskSpec fields added after release 0.1, with the default a missing one had.
_ADDED_FIELDS: dict[str, object] = {"max_input_chars": 400_000}


@dataclass(frozen=True, slots=True)
class ReadyJob:
    """A queued job as the batch planner sees it: an id, a size, an age."""

    job_id: int
    request_bytes: int
    ready_at: float  # monotonic-comparable seconds when it became ready


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """When to flush ready jobs into a batch, and the provider's hard caps."""

    max_requests: int = 10_000
    max_bytes: int = 200_000_000
    max_wait: float = 900.0
    max_in_flight: int = 4
    hard_max_requests: int = 100_000
    hard_max_bytes: int = 256_000_000


@dataclass(frozen=True, slots=True)
class JobRequest:
    """One document to summarise: what a provider needs to build its request."""

    custom_id: str  # matches CUSTOM_ID_PATTERN; encodes job and attempt
    job_id: int
    text: str
    title: str  # the source's file name, for the prompt
    max_tokens: int | None = None  # this job's override of the task's max_tokens


class ResultKind(StrEnum):
    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    CANCELED = "canceled"
    EXPIRED = "expired"


class OutputProblem(StrEnum):
    """Why a billed (succeeded) response gave no usable summary: the ``error_type``
    of an ``ERRORED`` result whose usage still counts."""

    MAX_TOKENS = "max_tokens"  # the answer was cut off: retried once with more room
    INVALID = "invalid_output"  # the tool input broke the schema: retried once
    REFUSAL = "refusal"  # the model declined: retrying cannot help
    CONTEXT = "context_window"  # the document does not fit: lower max_input_chars


@dataclass(frozen=True, slots=True)
class Highlight:
    """A quote from the source; ``start``/``end`` are character offsets once located."""

    quote: str
    why: str = ""
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ProviderResult:
    """One request's outcome, matched to its job by ``custom_id`` only."""

    custom_id: str
    kind: ResultKind
    summary: str = ""
    highlights: tuple[Highlight, ...] = ()
    usage: Usage = Usage()
    model: str = ""
    stop_reason: str = ""
    error_type: str = ""  # e.g. "invalid_request_error"
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """What a poll of a submitted batch says."""

    ended: bool
    state: str = "in_progress"  # provider wording: in_progress, canceling, ended


@dataclass(frozen=True, slots=True)
class ImportedResult:
    """A provider's answer read back from docproc's own, untouched JSON sidecar.

    What a new or rebuilt ledger needs to record the work as done (and its cost)
    without asking the provider again.
    """

    source: str  # the source as the sidecar names it
    sha256: str  # the source bytes that were summarised
    task: str  # the task fingerprint the result answers
    provider: str
    model: str
    batch_id: str  # the provider's batch id ("" if none)
    custom_id: str
    summary: str
    highlights: tuple[Highlight, ...]
    dropped_highlights: int
    usage: Usage
    cost_usd: float | None
    completed_at: str
