"""The Provider protocol, shaped for asynchronous batch APIs, and the custom_id codec.

A provider takes a batch of requests, works on it in its own time, and hands
back one result per request, in any order, matched by ``custom_id`` only —
the shape of Anthropic Message Batches (``reference/BATCH_APIS.md`` §1), which
the others (OpenAI Batch, Bedrock batch inference) also fit.

Lifecycle of a batch, as the pipeline drives it::

    build_request (per job) -> submit -> poll ... poll (ended) -> results -> delete
                                     \\-> cancel (then poll until ended)

After a crash between "batch written to the ledger" and "provider id
recorded", the pipeline calls :meth:`Provider.find_batch` before submitting
the same requests again: batch creation has no idempotency key upstream.

Errors: a call that may work later raises
:class:`~docproc.errors.ProviderRetryable`; a request or batch the provider
refuses raises :class:`~docproc.errors.ProviderRejected`. Per-request failures
are not exceptions: they are results with ``kind=ERRORED``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from docproc.models import CUSTOM_ID_PATTERN, BatchStatus, JobRequest, ProviderResult, TaskSpec

_CUSTOM_ID_RE = re.compile(CUSTOM_ID_PATTERN)
_JOB_ATTEMPT_RE = re.compile(r"j(0|[1-9][0-9]*)-a(0|[1-9][0-9]*)")
_LEDGER_ID_RE = re.compile(r"[0-9a-f]{1,16}")


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    """A provider's caps per batch and on batches in flight; the planner keeps within them.

    The defaults are Anthropic's: 100,000 requests, and a 256 MB create body
    (counted here in decimal megabytes, which leaves room for the envelope),
    any number in flight, no minimum.

    ``min_requests``: a batch smaller than this cannot be a provider batch
    (Bedrock's minimum records per job). It is then sent through the
    provider's live API (``live_below_minimum``, at the live price) once it is
    due, or it waits for more documents.
    """

    max_requests: int = 100_000
    max_bytes: int = 256_000_000
    max_in_flight: int = 1_000_000
    min_requests: int = 1
    live_below_minimum: bool = False


@dataclass(frozen=True, slots=True)
class Ticket:
    """What the ledger recorded of a batch *before* its create call.

    ``token`` is deterministic and unique to the ledger: a provider with an
    idempotent create (Bedrock's ``clientRequestToken``) sends it, so a create
    repeated after a crash or a lost answer yields the same batch; one without
    (Vertex) writes it as a label and finds the batch by it. ``live``: the batch
    is below the provider's minimum and is answered through its live API.
    ``attempt`` numbers the create calls of this batch (1, 2, ...): the ledger
    records it before each call, and a provider without an idempotent create
    labels its batch with it, so a batch made twice is told apart.
    """

    batch_id: int
    token: str
    live: bool = False
    attempt: int = 1


class Provider(Protocol):
    """Something that answers batches of summarisation requests.

    Implementations hold no state the pipeline depends on between calls
    except what the provider itself keeps (a remote service, a spool
    directory), so a restarted daemon can poll and fetch batches it submitted
    before. Calls may block on I/O; the pipeline makes them off its loop.
    """

    name: str
    limits: ProviderLimits

    def build_request(self, job: JobRequest, task: TaskSpec) -> dict[str, Any]:
        """Return one JSON-able request, ``{"custom_id": ..., "params": {...}}``.

        Pure: the planner measures its serialised size (:func:`request_size`),
        and the same job and task always give the same request.
        """
        ...

    def submit(self, requests: Iterable[dict[str, Any]], ticket: Ticket | None = None) -> str:
        """Create a batch of the given requests and return the provider's batch id.

        ``requests`` may be a generator, so an adapter can stream the body.
        ``ticket`` is the ledger's record of the batch (its idempotency token);
        the dispatcher always passes it, providers without an idempotent create
        may ignore it.
        Raises ``ProviderRejected`` if the envelope is invalid (a bad or
        duplicate custom_id, no requests, over a limit) and
        ``ProviderRetryable`` if the outcome is known to be "not created,
        try later". Any other failure leaves the outcome unknown: reconcile
        with :meth:`find_batch` before submitting again.
        """
        ...

    def poll(self, batch_id: str) -> BatchStatus:
        """Report whether the batch has ended; ``ProviderRejected`` for an unknown id."""
        ...

    def results(self, batch_id: str) -> Iterator[ProviderResult]:
        """Stream one result per request of an ended batch, in any order.

        Memory stays flat in the number of requests. Raises
        ``ProviderRejected`` if the batch is unknown or has not ended.
        """
        ...

    def cancel(self, batch_id: str) -> None:
        """Ask the provider to stop the batch; it still ends, with partial results."""
        ...

    def delete(self, batch_id: str) -> None:
        """Release the provider's copy of an ended batch once its results are applied.

        Idempotent: deleting a batch that is already gone is not an error.
        """
        ...

    def find_batch(
        self,
        custom_ids: Sequence[str],
        created_after: datetime,
        exclude: Set[str] = frozenset(),
        ticket: Ticket | None = None,
    ) -> str | None:
        """Return the id of a batch created after ``created_after`` holding these requests.

        Used after a create whose outcome is unknown. ``created_after`` must be
        timezone-aware; ``exclude`` names batches already accounted for (the
        ledger's); a provider that names its batches after ``ticket.token``
        looks for that name. Returns None when no such batch exists.
        """
        ...


@runtime_checkable
class TokenCounter(Protocol):
    """A provider with a token-counting endpoint (free, used for estimates)."""

    def count_tokens(self, request: dict[str, Any]) -> int:
        """Input tokens of one request built by ``build_request``, as the provider counts.

        Raises ``ProviderRetryable`` (rate limited, ...) or ``ProviderRejected``.
        """
        ...


def make_custom_id(job_id: int, attempt: int, ledger: str = "") -> str:
    """Encode a job and its attempt number as a custom_id, e.g. ``"j123-a2"``, or
    ``"3f9a0c1e-j123-a2"`` with the id of the ledger that numbers the jobs.

    Raises:
        ValueError: if either number is negative, or the ledger id is not hex.
    """
    if job_id < 0 or attempt < 0:
        raise ValueError(f"job id and attempt must be >= 0, got {job_id}, {attempt}")
    if ledger and not _LEDGER_ID_RE.fullmatch(ledger):
        raise ValueError(f"not a ledger id: {ledger!r}")
    custom_id = f"{ledger}-j{job_id}-a{attempt}" if ledger else f"j{job_id}-a{attempt}"
    if not _CUSTOM_ID_RE.fullmatch(custom_id):
        raise ValueError(f"job id {job_id} and attempt {attempt} do not fit a custom_id")
    return custom_id


def parse_custom_id(custom_id: str) -> tuple[int, int]:
    """Decode ``(job_id, attempt)`` from a custom_id made by :func:`make_custom_id`.

    Raises:
        ValueError: if ``custom_id`` is not exactly such an id (no leading zeros,
            no surrounding whitespace, at most 64 characters).
    """
    match = _JOB_ATTEMPT_RE.fullmatch(custom_id) if len(custom_id) <= 64 else None
    if match is None:
        raise ValueError(f"not a docproc custom_id: {custom_id[:80]!r}")
    return int(match.group(1)), int(match.group(2))


def is_valid_custom_id(custom_id: object) -> bool:
    """Whether ``custom_id`` is a string the batch APIs accept (``CUSTOM_ID_PATTERN``)."""
    return isinstance(custom_id, str) and _CUSTOM_ID_RE.fullmatch(custom_id) is not None


def encode_request(request: Mapping[str, Any]) -> bytes:
    """Serialise a request as one compact line of UTF-8 JSON (no newline).

    A lone surrogate in extracted text becomes ``?``, one character for one, so
    character offsets into the text stay valid.
    """
    text = json.dumps(request, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", errors="replace")


def request_size(request: Mapping[str, Any]) -> int:
    """The bytes a request adds to a batch body: its JSON plus one separator."""
    return len(encode_request(request)) + 1
