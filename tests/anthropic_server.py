"""A Message Batches server for tests: the Anthropic protocol over real HTTP on loopback.

``FakeBatches`` runs a threaded HTTP server on 127.0.0.1 that answers the six
batch endpoints the way the real API does (``reference/BATCH_APIS.md`` §1),
checks everything a client sends, and records each protocol violation in
``violations`` while answering with the real error status. Faults (429, 529,
500, 503, dropped connections, a batch created behind a lost response, a cut
results stream, transient 404s after create) are injected on request.

Sizes follow the real service (100,000 requests, 256 MB bodies), so the create
body is parsed as a stream, request by request, and only a small digest of each
request is kept; results lines are generated lazily while they are streamed.

The simulated model answers the docproc summarisation tool: a ``summary`` of
the document's first two sentences and ``highlights`` quoting sentences
verbatim, plus one invented quote for the client to drop. What each request
ends as is decided by an ``outcome`` function (see :func:`outcome_mix`).

Run standalone (the benchmark does)::

    python -m tests.anthropic_server --port 0 --end-after 1 --seed 1

prints ``URL http://127.0.0.1:PORT`` on its first stdout line and serves until
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import hashlib
import json
import os
import random
import re
import signal
import socket
import socketserver
import string
import sys
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from typing import Any, Protocol, cast
from urllib.parse import parse_qs, urlsplit

API_VERSION = "2023-06-01"
MAX_REQUESTS = 100_000
MAX_BODY_BYTES = 256_000_000
BATCHES_PATH = "/v1/messages/batches"
CUSTOM_ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
OPERATIONS = ("create", "retrieve", "list", "results", "cancel", "delete")
FAULT_KINDS = ("429", "529", "500", "503", "drop", "drop_after_create", "cut")

_ONLY_FOR = {"drop_after_create": "create", "cut": "results"}
_STATUS_FAULTS = {
    "429": (429, "rate_limit_error", "Number of request tokens has exceeded your rate limit."),
    "529": (529, "overloaded_error", "Overloaded"),
    "500": (500, "api_error", "Internal server error"),
    "503": (503, "api_error", "Service unavailable"),
}
_B62 = string.digits + string.ascii_letters
_B62_TABLE = bytes(ord(_B62[i % 62]) for i in range(256))
_READ_BLOCK = 1 << 20
_WRITE_BLOCK = 1 << 16
_VIOLATIONS_PER_BATCH = 20
_SENTENCE_END = re.compile(r"([.!?])\s+")
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DOCUMENT_HEAD = 6_000  # sentences are taken from the head only: it is fast
_EPHEMERAL_1H = {"type": "ephemeral", "ttl": "1h"}


class Outcome(StrEnum):
    """What one request ends as. The last three are ``succeeded`` at API level."""

    SUCCEEDED = "succeeded"
    ERRORED = "errored"  # api_error or overloaded_error: retry as is
    INVALID = "invalid"  # errored with invalid_request_error: fix before resending
    EXPIRED = "expired"
    CANCELED = "canceled"
    MAX_TOKENS = "max_tokens"  # stop_reason max_tokens, tool input truncated
    REFUSAL = "refusal"  # stop_reason refusal, a text block and no tool_use
    BAD_TOOL_INPUT = "bad_tool_input"  # stop_reason tool_use, input breaks the schema


RESULT_TYPE = {
    Outcome.SUCCEEDED: "succeeded",
    Outcome.MAX_TOKENS: "succeeded",
    Outcome.REFUSAL: "succeeded",
    Outcome.BAD_TOOL_INPUT: "succeeded",
    Outcome.ERRORED: "errored",
    Outcome.INVALID: "errored",
    Outcome.EXPIRED: "expired",
    Outcome.CANCELED: "canceled",
}

OutcomeFn = Callable[[str, dict[str, Any]], Outcome]


def outcome_mix(
    errored: float = 0.05,
    expired: float = 0.05,
    *,
    seed: int = 0,
    invalid: float = 0.0,
    max_tokens: float = 0.0,
    refusal: float = 0.0,
    bad_tool_input: float = 0.0,
) -> OutcomeFn:
    """An outcome function deciding from a hash of the whole custom_id.

    Deterministic for a given seed; a retry under a new attempt number
    (``j<job>-a<attempt>``) draws again, so it may succeed.
    """
    bands = [
        (Outcome.ERRORED, errored),
        (Outcome.EXPIRED, expired),
        (Outcome.INVALID, invalid),
        (Outcome.MAX_TOKENS, max_tokens),
        (Outcome.REFUSAL, refusal),
        (Outcome.BAD_TOOL_INPUT, bad_tool_input),
    ]
    if any(share < 0 for _, share in bands) or sum(share for _, share in bands) > 1:
        raise ValueError("outcome shares must be >= 0 and sum to at most 1")

    def decide(custom_id: str, params: dict[str, Any]) -> Outcome:
        draw = _unit(f"{seed}:{custom_id}")
        for outcome, share in bands:
            if draw < share:
                return outcome
            draw -= share
        return Outcome.SUCCEEDED

    return decide


def _unit(text: str) -> float:
    """A deterministic number in [0, 1) from ``text``."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


# --- faults ----------------------------------------------------------------------


@dataclass
class Faults:
    """Faults to inject, per operation, deterministic with the server's seed.

    Args:
        script: per operation (see ``OPERATIONS``), faults consumed one per
            call of that operation, in order, before normal handling.
        rate: probability of a random fault (one of ``kinds``) on any call.
        kinds: what random faults may be; ``drop_after_create`` and ``cut``
            only apply to create and results.
        not_found_for: retrieve and results answer 404 for this many seconds
            after a batch's creation (GH-1432).
        retry_after: the ``retry-after`` header value sent with a 429.
    """

    script: dict[str, list[str]] = field(default_factory=dict)
    rate: float = 0.0
    kinds: tuple[str, ...] = ("429", "529", "500", "drop")
    not_found_for: float = 0.0
    retry_after: float = 1.0
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _rng: random.Random = field(init=False, repr=False, default_factory=random.Random)
    _queues: dict[str, deque[str]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        for op, kinds in self.script.items():
            if op not in OPERATIONS:
                raise ValueError(f"unknown operation {op!r} in fault script")
            for kind in kinds:
                _check_fault(kind, op)
        for kind in self.kinds:
            _check_fault(kind, None)
        self._queues = {op: deque(kinds) for op, kinds in self.script.items()}

    def seed(self, seed: int) -> None:
        """Seed the random faults (the server does this with its own seed)."""
        with self._lock:
            self._rng.seed(seed)

    def take(self, op: str) -> str | None:
        """The fault for this call of ``op``, if any: scripted first, then random."""
        with self._lock:
            queue = self._queues.get(op)
            if queue:
                return queue.popleft()
            if self.rate <= 0 or self._rng.random() >= self.rate:
                return None
            usable = [kind for kind in self.kinds if _ONLY_FOR.get(kind, op) == op]
            return self._rng.choice(usable) if usable else None

    def pending(self, op: str) -> list[str]:
        """Scripted faults not yet consumed for ``op``."""
        with self._lock:
            return list(self._queues.get(op, ()))


def _check_fault(kind: str, op: str | None) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r}; known: {FAULT_KINDS}")
    if op is not None and _ONLY_FOR.get(kind, op) != op:
        raise ValueError(f"fault {kind!r} only applies to {_ONLY_FOR[kind]!r}, not {op!r}")


# --- errors ----------------------------------------------------------------------


class ApiError(Exception):
    """An error answer: HTTP status, error type and message, as the real API words them."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        violation: bool = False,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.violation = violation  # the client broke the protocol
        self.headers = headers


def _invalid(message: str, *, violation: bool = True) -> ApiError:
    return ApiError(400, "invalid_request_error", message, violation=violation)


def _not_found(batch_id: str, *, violation: bool = False) -> ApiError:
    return ApiError(
        404, "not_found_error", f"message_batch {batch_id} not found", violation=violation
    )


class _Dropped(Exception):  # noqa: N818 - a signal to close the connection, not an error
    """Close the connection without answering."""


# --- what is kept of each request -----------------------------------------------


@dataclass(slots=True)
class PlannedRequest:
    """The digest of one request kept until its result is served (never the params)."""

    custom_id: str
    model: str
    tool_name: str
    summary: str
    quotes: tuple[str, ...]
    invented_quote: bool
    input_tokens: int
    system_tokens: int
    max_tokens: int
    outcome: Outcome
    error: str | None = None  # why params are invalid (outcome INVALID)


def plan_request(
    custom_id: str, params: dict[str, Any], outcome: OutcomeFn | None
) -> tuple[PlannedRequest, list[str]]:
    """Digest one request; return it and the problems found in its params.

    Params problems the real API rejects end the request as ``errored``
    (invalid_request_error), asynchronously; docproc shape problems are only
    reported. The outcome function is called here, at create, with the params.
    """
    api = _api_problems(params)
    problems = api + _shape_problems(params)
    text = _user_text(params)
    summary, quotes, invented = _digest_document(_document_of(text))
    decided = Outcome.INVALID if api else _decide(outcome, custom_id, params)
    max_tokens = params.get("max_tokens")
    planned = PlannedRequest(
        custom_id=custom_id,
        model=sys.intern(str(params.get("model", ""))),
        tool_name=sys.intern(_tool_name(params)),
        summary=summary,
        quotes=quotes,
        invented_quote=invented,
        input_tokens=len(text) // 4 + 1,
        system_tokens=_system_length(params.get("system")) // 4,
        max_tokens=max_tokens if isinstance(max_tokens, int) else 0,
        outcome=decided,
        error="; ".join(api) or None,
    )
    return planned, problems


def _decide(outcome: OutcomeFn | None, custom_id: str, params: dict[str, Any]) -> Outcome:
    return Outcome.SUCCEEDED if outcome is None else Outcome(outcome(custom_id, params))


def _api_problems(params: dict[str, Any]) -> list[str]:
    """What the real API refuses in a batched request's params."""
    problems = []
    model = params.get("model")
    if not isinstance(model, str) or not model:
        problems.append("model: Field required (a non-empty string)")
    max_tokens = params.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        problems.append("max_tokens: Input should be an integer >= 1")
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append("messages: Input should be a non-empty list")
    if params.get("stream") is True:
        problems.append("stream: streaming is not supported in Message Batches")
    return problems


def _shape_problems(params: dict[str, Any]) -> list[str]:
    """Breaks of the request shape docproc promises (system cache, one forced tool)."""
    problems = _system_problems(params.get("system")) + _tool_problems(params.get("tools"))
    choice = params.get("tool_choice")
    allowed = {"type", "name", "disable_parallel_tool_use"}
    if not (
        isinstance(choice, dict)
        and choice.get("type") == "tool"
        and choice.get("name") == _tool_name(params)
        and set(choice) <= allowed
    ):
        problems.append(f"tool_choice: expected the forced tool, got {choice!r}")
    messages = params.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    if not isinstance(first, dict) or first.get("role") != "user":
        problems.append("messages.0.role: expected 'user'")
    return problems


def _system_problems(system: Any) -> list[str]:
    if not isinstance(system, list) or not system:
        return ["system: expected a non-empty list of text blocks"]
    if not all(_is_text_block(block) for block in system):
        return ["system: every block must be {'type': 'text', 'text': str}"]
    if system[-1].get("cache_control") != _EPHEMERAL_1H:
        return [f"system: last block must carry cache_control {_EPHEMERAL_1H}"]
    return []


def _tool_problems(tools: Any) -> list[str]:
    if not isinstance(tools, list) or len(tools) != 1 or not isinstance(tools[0], dict):
        return ["tools: expected exactly one tool"]
    tool = tools[0]
    schema = tool.get("input_schema")
    if not isinstance(tool.get("name"), str) or not tool["name"]:
        return ["tools.0.name: expected a non-empty string"]
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return ["tools.0.input_schema: expected a JSON schema of type object"]
    return []


def _is_text_block(block: Any) -> bool:
    return (
        isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    )


def _tool_name(params: dict[str, Any]) -> str:
    tools = params.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        name = tools[0].get("name")
        if isinstance(name, str):
            return name
    return "tool"


def _system_length(system: Any) -> int:
    if isinstance(system, str):
        return len(system)
    if isinstance(system, list):
        return sum(len(block["text"]) for block in system if _is_text_block(block))
    return 0


def _user_text(params: dict[str, Any]) -> str:
    """The text of the first message: a plain string or its text blocks joined."""
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
        return ""
    content = messages[0].get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(block["text"] for block in content if _is_text_block(block))
    return ""


def _document_of(text: str) -> str:
    """The lines between ``<document ...>`` and the last ``</document>``, else all of it."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if _opens_document(line)), None)
    end = next(
        (i for i in range(len(lines) - 1, -1, -1) if lines[i].strip() == "</document>"), None
    )
    if start is None or end is None or end <= start:
        return text
    return "\n".join(lines[start + 1 : end])


def _opens_document(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith("<document") and stripped.endswith(">")


def _digest_document(document: str) -> tuple[str, tuple[str, ...], bool]:
    """Summary (first two sentences), up to three verbatim quotes, and whether to invent one."""
    head = document[:_DOCUMENT_HEAD].strip()
    pieces = _sentences(head)
    if len(document) > _DOCUMENT_HEAD and len(pieces) > 1:
        pieces.pop()  # cut by the head limit
    sentences = [piece for piece in pieces if piece[-1] in ".!?"]
    if not sentences:
        summary = " ".join(head[:200].split()) or "The document is empty."
        return summary, (), False
    summary = " ".join(" ".join(sentences[:2]).split())[:600]
    candidates = [s for s in sentences if 20 <= len(s) <= 300 and "\n" not in s]
    return summary, _spread(candidates, 3), len(sentences) >= 3


def _sentences(text: str) -> list[str]:
    """``text`` split after sentence ends; each piece is a verbatim slice of ``text``."""
    parts = _SENTENCE_END.split(text)  # piece, end mark, piece, end mark, ..., piece
    pieces = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
    if parts[-1]:
        pieces.append(parts[-1])
    return [piece for piece in pieces if piece]


def _spread(items: list[str], count: int) -> tuple[str, ...]:
    """Up to ``count`` items, evenly spaced from first to last."""
    if len(items) <= count:
        return tuple(items)
    step = (len(items) - 1) / (count - 1)
    return tuple(items[round(i * step)] for i in range(count))


# --- results lines ---------------------------------------------------------------


def invented_quote(custom_id: str) -> str:
    """The highlight quote that is in no document (the client must drop it)."""
    return f"The emulator invented this sentence for {custom_id}; it is not in the document."


def result_line(
    batch_id: str, planned: PlannedRequest, outcome: Outcome, writes_cache: bool
) -> bytes:
    """One compact JSONL line, newline-terminated, for one request's result."""
    line = {
        "custom_id": planned.custom_id,
        "result": _result(batch_id, planned, outcome, writes_cache),
    }
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


def _result(
    batch_id: str, planned: PlannedRequest, outcome: Outcome, writes_cache: bool
) -> dict[str, Any]:
    if outcome in (Outcome.EXPIRED, Outcome.CANCELED):
        return {"type": outcome.value}
    ids = hashlib.blake2b(f"{batch_id}/{planned.custom_id}".encode(), digest_size=48).digest()
    if outcome is Outcome.ERRORED:
        kind, message = (
            ("api_error", "Internal server error")
            if ids[0] & 1
            else ("overloaded_error", "Overloaded")
        )
        return {"type": "errored", "error": error_body(kind, message, _b62(ids[24:]))}
    if outcome is Outcome.INVALID:
        message = planned.error or "messages: the request was refused (emulated)"
        return {
            "type": "errored",
            "error": error_body("invalid_request_error", message, _b62(ids[24:])),
        }
    content, stop_reason, output_tokens = _content(planned, outcome, ids)
    reply = {
        "id": "msg_" + _b62(ids[:24]),
        "type": "message",
        "role": "assistant",
        "model": planned.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _usage(planned, output_tokens, writes_cache),
    }
    return {"type": "succeeded", "message": reply}


def _content(
    planned: PlannedRequest, outcome: Outcome, ids: bytes
) -> tuple[list[dict[str, Any]], str, int]:
    """Content blocks, stop_reason and output tokens of a succeeded result."""
    if outcome is Outcome.REFUSAL:
        return [{"type": "text", "text": "I can't help with this document."}], "refusal", 9
    tool_input = _tool_input(planned)
    stop_reason = "tool_use"
    output_tokens = len(json.dumps(tool_input)) // 4 + 1
    if outcome is Outcome.MAX_TOKENS:
        tool_input = {"summary": planned.summary} if ids[1] & 1 else {}
        stop_reason, output_tokens = "max_tokens", planned.max_tokens
    elif outcome is Outcome.BAD_TOOL_INPUT:
        tool_input = _bad_tool_input(tool_input, ids[1] & 1 == 1)
    block = {
        "type": "tool_use",
        "id": "toolu_" + _b62(ids[24:]),
        "name": planned.tool_name,
        "input": tool_input,
    }
    return [block], stop_reason, output_tokens


def _tool_input(planned: PlannedRequest) -> dict[str, Any]:
    why = "It states one of the document's main points."
    highlights = [{"quote": quote, "why": why} for quote in planned.quotes]
    if planned.invented_quote:
        highlights.append({"quote": invented_quote(planned.custom_id), "why": why})
    return {"summary": planned.summary, "highlights": highlights}


def _bad_tool_input(tool_input: dict[str, Any], string_highlights: bool) -> dict[str, Any]:
    """Input that breaks the tool schema: highlights as a string, or no summary."""
    if string_highlights:
        return {"summary": tool_input["summary"], "highlights": "see the summary"}
    return {"highlights": tool_input["highlights"]}


def _usage(planned: PlannedRequest, output_tokens: int, writes_cache: bool) -> dict[str, Any]:
    cached = planned.system_tokens
    return {
        "input_tokens": planned.input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cached if writes_cache else 0,
        "cache_read_input_tokens": 0 if writes_cache else cached,
        "cache_creation": {
            "ephemeral_5m_input_tokens": 0,
            "ephemeral_1h_input_tokens": cached if writes_cache else 0,
        },
        "service_tier": "batch",
    }


def error_body(kind: str, message: str, request_id: str) -> dict[str, Any]:
    """The error envelope of HTTP errors and of errored results."""
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_" + request_id,
    }


def _b62(data: bytes) -> str:
    return data.translate(_B62_TABLE).decode("ascii")


def new_request_id() -> str:
    """A fresh ``req_...`` id body (without the prefix)."""
    return _b62(os.urandom(24))


def rfc3339(epoch: float) -> str:
    """``2024-09-24T18:37:24.100435Z``: microseconds and Z, as the API writes times."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- batches ---------------------------------------------------------------------


@dataclass(eq=False)
class BatchRecord:
    """One batch as the server keeps it. ``outcomes`` is filled when it ends."""

    id: str
    custom_ids: list[str]
    created_at: float  # epoch seconds
    requests: list[PlannedRequest] = field(repr=False)
    state: str = "in_progress"  # in_progress | canceling | ended
    canceled: bool = False
    cancel_initiated_at: float | None = None
    ended_at: float | None = None
    deleted: bool = False
    outcomes: dict[str, Outcome] = field(default_factory=dict, repr=False)
    created_mono: float = field(default_factory=time.monotonic, repr=False)
    end_at: float | None = field(default=None, repr=False)  # monotonic; None: only end() or cancel
    cancel_end_at: float | None = field(default=None, repr=False)
    final: list[Outcome] = field(default_factory=list, repr=False)
    order: list[int] = field(default_factory=list, repr=False)  # shuffled serving order
    counts: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def params_count(self) -> int:
        """How many requests (each with its params) the batch holds."""
        return len(self.requests)

    def request_counts(self) -> dict[str, int]:
        """All ``processing`` until the batch ends, then split by result type."""
        if self.state == "ended":
            return dict(self.counts)
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        counts["processing"] = len(self.requests)
        return counts

    def as_json(self, results_base: str) -> dict[str, Any]:
        """The MessageBatch object; ``results_base`` prefixes the results path."""
        ended = self.state == "ended"
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.state,
            "request_counts": self.request_counts(),
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.created_at + 24 * 3600),
            "ended_at": rfc3339(self.ended_at) if self.ended_at is not None else None,
            "cancel_initiated_at": _maybe_time(self.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"{results_base}{BATCHES_PATH}/{self.id}/results" if ended else None,
        }


def _maybe_time(epoch: float | None) -> str | None:
    return rfc3339(epoch) if epoch is not None else None


@dataclass(frozen=True)
class ResultsPlan:
    """What a results download streams: the ended batch's lines, in shuffled order."""

    batch_id: str
    requests: list[PlannedRequest]
    outcomes: list[Outcome]
    order: list[int]
    cache_writer: int | None  # the first succeeded request writes the prompt cache

    def __len__(self) -> int:
        return len(self.order)

    def lines(self) -> Iterator[bytes]:
        """The JSONL lines, made one at a time."""
        for index in self.order:
            writes = index == self.cache_writer
            yield result_line(self.batch_id, self.requests[index], self.outcomes[index], writes)


@dataclass
class StoreSettings:
    """How the server behaves (see :class:`FakeBatches` for each)."""

    api_key: str
    end_after: float | None
    outcome: OutcomeFn | None
    faults: Faults
    seed: int
    absolute_results_url: bool
    max_requests: int
    max_body_bytes: int
    cancel_delay: float


class BatchStore:
    """The protocol state: batches, calls, violations. Thread-safe; no HTTP here."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self.base_url = ""
        self.batches: dict[str, BatchRecord] = {}
        self.violations: list[str] = []
        self.calls: list[tuple[str, str, int]] = []
        self.errors: list[str] = []
        self.faults_injected: Counter[str] = Counter()
        self.results_served: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._rng = random.Random(settings.seed)
        settings.faults.seed(settings.seed)

    # bookkeeping

    def record_call(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.calls.append((method, path, status))

    def violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

    def fault(self, op: str) -> str | None:
        """Take the next fault for ``op`` and count it."""
        kind = self.settings.faults.take(op)
        if kind is not None:
            with self._lock:
                self.faults_injected[kind] += 1
        return kind

    def served(self, batch_id: str) -> None:
        with self._lock:
            self.results_served[batch_id] += 1

    def submitted_ids(self) -> Counter[str]:
        """custom_id -> how many created batches it appeared in."""
        with self._lock:
            records = list(self.batches.values())
        counter: Counter[str] = Counter()
        for record in records:
            counter.update(record.custom_ids)
        return counter

    def snapshot(self) -> dict[str, BatchRecord]:
        """The live batches dict, with every batch whose time has come ended first."""
        with self._lock:
            for record in self.batches.values():
                self._advance(record)
        return self.batches

    # operations

    def create(self, planned: list[PlannedRequest]) -> dict[str, Any]:
        with self._lock:
            batch_id = "msgbatch_" + _b62(self._rng.randbytes(24))
            record = BatchRecord(batch_id, [p.custom_id for p in planned], time.time(), planned)
            if self.settings.end_after is not None:
                record.end_at = record.created_mono + self.settings.end_after
            self.batches[batch_id] = record
            return record.as_json(self._results_base())

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            return self._get(batch_id, "retrieve").as_json(self._results_base())

    def list_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        with self._lock:
            page, has_more = self._page(query)
            for record in page:
                self._advance(record)
            base = self._results_base()
            return {
                "data": [record.as_json(base) for record in page],
                "has_more": has_more,
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            }

    def cancel(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._get(batch_id, "cancel")
            if record.state == "ended":
                # Not a violation: the batch may have ended just before the client asked.
                raise _invalid(f"message_batch {batch_id} has already ended", violation=False)
            if record.state == "in_progress":
                record.state, record.canceled = "canceling", True
                record.cancel_initiated_at = time.time()
                record.cancel_end_at = time.monotonic() + self.settings.cancel_delay
            return record.as_json(self._results_base())

    def delete(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._get(batch_id, "delete")
            if record.state != "ended":
                raise _invalid(f"message_batch {batch_id} is still processing; cancel it first")
            record.deleted = True
            return {"id": batch_id, "type": "message_batch_deleted"}

    def results(self, batch_id: str) -> ResultsPlan:
        with self._lock:
            record = self._get(batch_id, "results")
            if record.state != "ended":
                raise _invalid(f"message_batch {batch_id} is still processing")
            writer = next(
                (i for i, o in enumerate(record.final) if RESULT_TYPE[o] == "succeeded"), None
            )
            return ResultsPlan(batch_id, record.requests, record.final, record.order, writer)

    def end(self, batch_id: str) -> None:
        """End a batch now (canceled requests if it is canceling)."""
        with self._lock:
            record = self.batches[batch_id]
            if record.state != "ended":
                self._finish(record, canceled=record.state == "canceling")

    # internals (called with the lock held)

    def _results_base(self) -> str:
        return self.base_url if self.settings.absolute_results_url else ""

    def _get(self, batch_id: str, op: str) -> BatchRecord:
        record = self.batches.get(batch_id)
        if record is None:
            raise _not_found(batch_id, violation=True)  # the client invented an id
        if record.deleted:
            raise _not_found(batch_id)
        window = self.settings.faults.not_found_for
        if op in ("retrieve", "results") and time.monotonic() - record.created_mono < window:
            self.faults_injected["404"] += 1
            raise _not_found(batch_id)
        self._advance(record)
        return record

    def _advance(self, record: BatchRecord) -> None:
        now = time.monotonic()
        if record.state == "in_progress" and record.end_at is not None and now >= record.end_at:
            self._finish(record, canceled=False)
        elif (
            record.state == "canceling"
            and record.cancel_end_at is not None
            and now >= record.cancel_end_at
        ):
            self._finish(record, canceled=True)

    def _finish(self, record: BatchRecord, *, canceled: bool) -> None:
        count = len(record.requests)
        record.final = (
            [Outcome.CANCELED] * count if canceled else [r.outcome for r in record.requests]
        )
        record.outcomes = dict(zip(record.custom_ids, record.final, strict=True))
        record.counts = dict.fromkeys(
            ("processing", "succeeded", "errored", "canceled", "expired"), 0
        )
        for outcome in record.final:
            record.counts[RESULT_TYPE[outcome]] += 1
        record.order = list(range(count))
        random.Random(f"{self.settings.seed}:{record.id}").shuffle(record.order)
        record.state, record.ended_at = "ended", time.time()

    def _page(self, query: dict[str, list[str]]) -> tuple[list[BatchRecord], bool]:
        """One page of the list, newest first; deleted batches skipped."""
        limit = _limit(query)
        after, before = _one(query, "after_id"), _one(query, "before_id")
        if after and before:
            raise _invalid("after_id and before_id are mutually exclusive")
        newest = list(reversed(self.batches.values()))
        if after or before:
            anchor = self._position(newest, after or before or "")
            newest = newest[anchor + 1 :] if after else newest[:anchor]
        visible = [record for record in newest if not record.deleted]
        page = visible[-limit:] if before else visible[:limit]
        return page, len(visible) > limit

    def _position(self, newest: list[BatchRecord], batch_id: str) -> int:
        for index, record in enumerate(newest):
            if record.id == batch_id:
                return index
        raise _invalid(f"no message_batch {batch_id} to page from")


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _limit(query: dict[str, list[str]]) -> int:
    raw = _one(query, "limit")
    if raw is None:
        return 20
    try:
        limit = int(raw)
    except ValueError:
        raise _invalid(f"limit: Input should be a valid integer, got {raw!r}") from None
    if not 1 <= limit <= 1000:
        raise _invalid(f"limit: Input should be between 1 and 1000, got {limit}")
    return limit


# --- request bodies --------------------------------------------------------------


class _Reader(Protocol):
    """The buffered socket file a handler reads requests from."""

    def read(self, size: int, /) -> bytes: ...

    def readline(self, size: int, /) -> bytes: ...


class BodyStream:
    """One request's body bytes, unframed from Content-Length or chunked encoding.

    ``read`` stops with a 413 once more than ``max_bytes`` arrived; ``drain``
    reads what is left (so the connection stays usable) without that cap.
    """

    def __init__(self, rfile: _Reader, headers: Message, max_bytes: int) -> None:
        self._rfile = rfile
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.declared = 0 if self.chunked else _content_length(headers)
        self._remaining = self.declared
        self._chunk_left = 0
        self._done = not self.chunked and self.declared == 0
        self.received = 0
        self.max_bytes = max_bytes
        self.broken = False

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes (fewer only at the end); ``b""`` at the end."""
        parts: list[bytes] = []
        wanted = size
        while wanted > 0 and not self._done:
            piece = self._read_some(wanted)
            parts.append(piece)
            wanted -= len(piece)
        data = b"".join(parts)
        self.received += len(data)
        if self.received > self.max_bytes:
            raise _too_large(self.max_bytes)
        return data

    def drain(self) -> None:
        """Read and discard the rest of the body."""
        while not self._done and not self.broken:
            self._read_some(_READ_BLOCK)

    def _read_some(self, size: int) -> bytes:
        if not self.chunked:
            data = self._exact(min(size, self._remaining))
            self._remaining -= len(data)
            self._done = self._remaining == 0
            return data
        if self._chunk_left == 0:
            self._next_chunk()
            if self._done:
                return b""
        data = self._exact(min(size, self._chunk_left))
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._expect(b"\r\n")
        return data

    def _next_chunk(self) -> None:
        line = self._rfile.readline(1024)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise self._framing(f"bad chunk size line {line[:40]!r}") from None
        if size > 0:
            self._chunk_left = size
            return
        while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        self._done = True

    def _exact(self, size: int) -> bytes:
        data = self._rfile.read(size)
        if len(data) < size:
            raise ConnectionError("client closed the connection mid-body")
        return data

    def _expect(self, marker: bytes) -> None:
        if self._rfile.read(len(marker)) != marker:
            raise self._framing("chunk not followed by CRLF")

    def _framing(self, message: str) -> ApiError:
        self.broken = True
        return _invalid(f"malformed chunked body: {message}")


def _content_length(headers: Message) -> int:
    raw = headers.get("content-length")
    try:
        return int(raw) if raw else 0
    except ValueError:
        raise _invalid(f"bad content-length {raw!r}") from None


def _too_large(limit: int) -> ApiError:
    message = f"Request exceeds the maximum size of {limit} bytes"
    return ApiError(413, "request_too_large", message, violation=True)


class JsonScanner:
    """Reads JSON values off a body stream a piece at a time (never the whole body).

    The buffer grows by at least its own size when a value is incomplete, so
    a value larger than a block costs a bounded number of retries.
    """

    def __init__(self, body: BodyStream) -> None:
        self._body = body
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._json = json.JSONDecoder()
        self._buf = ""
        self._pos = 0
        self._eof = False

    def peek(self) -> str:
        """The next non-whitespace character, ``""`` at the end."""
        while True:
            match = _WHITESPACE.match(self._buf, self._pos)
            self._pos = match.end() if match else self._pos
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def expect(self, choices: str, what: str) -> str:
        """Consume one of the characters in ``choices``, else a 400 naming ``what``."""
        char = self.peek()
        if not char or char not in choices:
            raise _invalid(f"{what}: expected one of {choices!r}, found {char or 'end of body'!r}")
        self._pos += 1
        return char

    def value(self, what: str) -> Any:
        """The next complete JSON value."""
        self.peek()
        while True:
            try:
                value, end = self._json.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._fill():
                    continue
                raise _invalid(f"{what}: body is not valid JSON ({exc.msg})") from None
            if end == len(self._buf) and isinstance(value, int | float) and self._fill():
                continue  # a number may go on in the next block
            self._pos = end
            return value

    def at_end(self) -> bool:
        return self.peek() == ""

    def _fill(self) -> bool:
        if self._eof:
            return False
        rest = self._buf[self._pos :]
        data = self._body.read(max(_READ_BLOCK, len(rest)))
        self._eof = not data
        try:
            text = self._utf8.decode(data, final=self._eof)
        except UnicodeDecodeError:
            raise _invalid("body is not valid UTF-8") from None
        self._buf, self._pos = rest + text, 0
        return True


def read_create_body(
    scanner: JsonScanner, settings: StoreSettings
) -> tuple[list[PlannedRequest], list[str]]:
    """Parse and check a create body; return the planned requests and params problems.

    Envelope errors (bad or duplicate custom_id, too few or too many requests)
    raise a 400 at once, as the real API does synchronously.
    """
    planned: list[PlannedRequest] = []
    problems: list[str] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(_envelope_items(scanner)):
        if index >= settings.max_requests:
            raise _invalid(f"requests: List should have at most {settings.max_requests} items")
        custom_id, params = _check_item(index, item, first_index)
        request, found = plan_request(custom_id, params, settings.outcome)
        planned.append(request)
        problems.extend(f"requests.{index} ({custom_id}): {problem}" for problem in found)
    if not planned:
        raise _invalid("requests: List should have at least 1 item after validation, not 0")
    return planned, problems


def _envelope_items(scanner: JsonScanner) -> Iterator[Any]:
    """The items of ``{"requests": [...]}``, one at a time."""
    scanner.expect("{", "body")
    seen = False
    if scanner.peek() == "}":
        scanner.expect("}", "body")
    else:
        while True:
            key = scanner.value("body")
            scanner.expect(":", "body")
            if key != "requests" or seen:
                raise _invalid(f"{key}: Extra inputs are not permitted")
            seen = True
            yield from _array_items(scanner)
            if scanner.expect(",}", "body") == "}":
                break
    if not scanner.at_end():
        raise _invalid("body: unexpected data after the JSON object")
    if not seen:
        raise _invalid("requests: Field required")


def _array_items(scanner: JsonScanner) -> Iterator[Any]:
    if scanner.peek() != "[":
        raise _invalid("requests: Input should be a valid list")
    scanner.expect("[", "requests")
    if scanner.peek() == "]":
        scanner.expect("]", "requests")
        return
    index = 0
    while True:
        yield scanner.value(f"requests.{index}")
        index += 1
        if scanner.expect(",]", "requests") == "]":
            return


def _check_item(index: int, item: Any, first_index: dict[str, int]) -> tuple[str, dict[str, Any]]:
    """The custom_id and params of one envelope item, or a 400 naming what is wrong."""
    where = f"requests.{index}"
    if not isinstance(item, dict):
        raise _invalid(f"{where}: Input should be a valid dictionary")
    extra = sorted(set(item) - {"custom_id", "params"})
    if extra:
        raise _invalid(f"{where}.{extra[0]}: Extra inputs are not permitted")
    custom_id, params = _check_custom_id(where, item.get("custom_id")), item.get("params")
    if custom_id in first_index:
        raise _invalid(
            f"{where}.custom_id: duplicate of {custom_id!r} at requests.{first_index[custom_id]}"
        )
    first_index[custom_id] = index
    if not isinstance(params, dict):
        raise _invalid(f"{where}.params: Input should be a valid dictionary")
    return custom_id, params


def _check_custom_id(where: str, custom_id: Any) -> str:
    if custom_id is None:
        raise _invalid(f"{where}.custom_id: Field required")
    if not isinstance(custom_id, str):
        raise _invalid(f"{where}.custom_id: Input should be a valid string")
    if len(custom_id) > 64:
        raise _invalid(f"{where}.custom_id: String should have at most 64 characters")
    if not CUSTOM_ID_RE.fullmatch(custom_id):
        raise _invalid(f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
    return custom_id


# --- HTTP ------------------------------------------------------------------------


def route_of(method: str, path: str) -> tuple[str, str | None] | None:
    """(operation, batch id) for a request line, or None if there is no such endpoint."""
    if path == BATCHES_PATH:
        return {"POST": ("create", None), "GET": ("list", None)}.get(method)
    if not path.startswith(BATCHES_PATH + "/"):
        return None
    parts = path[len(BATCHES_PATH) + 1 :].split("/")
    if not parts[0]:
        return None
    ops = {
        (1, "GET", ""): "retrieve",
        (1, "DELETE", ""): "delete",
        (2, "POST", "cancel"): "cancel",
        (2, "GET", "results"): "results",
    }
    op = ops.get((len(parts), method, parts[1] if len(parts) == 2 else ""))
    return (op, parts[0]) if op else None


class _Handler(BaseHTTPRequestHandler):
    """One connection: parses requests, checks them, and answers from the store."""

    protocol_version = "HTTP/1.1"
    timeout = 120

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle and the
        # client's delayed ACK add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._http.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._http.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: ``calls`` records every request."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    @property
    def _http(self) -> _HttpServer:
        return cast(_HttpServer, self.server)

    @property
    def _store(self) -> BatchStore:
        return self._http.store

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self._method, self._path = method, url.path
        self._request_id = new_request_id()
        self._body: BodyStream | None = None
        try:
            self._body = BodyStream(self.rfile, self.headers, self._store.settings.max_body_bytes)
            self._serve(route_of(method, url.path), parse_qs(url.query))
        except ApiError as err:
            self._fail(err)
        except _Dropped:
            self.close_connection = True

    def _serve(self, route: tuple[str, str | None] | None, query: dict[str, list[str]]) -> None:
        if route is None:
            raise ApiError(
                404, "not_found_error", f"no endpoint {self._method} {self._path}", violation=True
            )
        op, batch_id = route
        self._check_headers(op)
        if op == "create":
            self._create()
            return
        fault = self._fault(op)
        store = self._store
        if op == "results":
            self._stream_results(store.results(batch_id or ""), cut=fault == "cut")
        elif op == "list":
            self._send_json(200, store.list_page(query))
        else:
            self._send_json(200, self._batch_call(op, batch_id or ""))

    def _batch_call(self, op: str, batch_id: str) -> dict[str, Any]:
        """Retrieve, cancel or delete one batch."""
        store = self._store
        calls = {"retrieve": store.retrieve, "cancel": store.cancel, "delete": store.delete}
        return calls[op](batch_id)

    def _check_headers(self, op: str) -> None:
        key = self._store.settings.api_key
        headers = self.headers
        if headers.get("x-api-key") != key and headers.get("authorization") != f"Bearer {key}":
            raise ApiError(401, "authentication_error", "invalid x-api-key", violation=True)
        version = headers.get("anthropic-version")
        if version != API_VERSION:
            raise _invalid(f"anthropic-version: expected {API_VERSION!r}, got {version!r}")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if op == "create" and content_type != "application/json":
            raise _invalid(f"content-type: expected 'application/json', got {content_type!r}")

    def _fault(self, op: str) -> str | None:
        """Inject this call's fault; return the kinds handled later (cut, drop_after_create)."""
        kind = self._store.fault(op)
        if kind in _STATUS_FAULTS:
            status, error_type, message = _STATUS_FAULTS[kind]
            retry = self._store.settings.faults.retry_after
            headers = (("retry-after", f"{retry:g}"),) if kind == "429" else ()
            raise ApiError(status, error_type, message, headers=headers)
        if kind == "drop":
            self._drop()
        return kind

    def _drop(self) -> None:
        self._finish_body()
        self._store.record_call(self._method, self._path, 0)
        raise _Dropped

    def _create(self) -> None:
        body = self._body
        assert body is not None
        if body.declared > body.max_bytes:
            raise _too_large(body.max_bytes)
        fault = self._fault("create")
        planned, problems = read_create_body(JsonScanner(body), self._store.settings)
        answer = self._store.create(planned)
        for problem in problems[:_VIOLATIONS_PER_BATCH]:
            self._store.violation(f"create {answer['id']}: {problem}")
        if len(problems) > _VIOLATIONS_PER_BATCH:
            more = len(problems) - _VIOLATIONS_PER_BATCH
            self._store.violation(f"create {answer['id']}: ... and {more} more params problems")
        if fault == "drop_after_create":
            self._drop()
        self._send_json(200, answer)

    def _fail(self, err: ApiError) -> None:
        if err.violation:
            self._store.violation(
                f"{self._method} {self._path}: {err.status} {err.kind}: {err.message}"
            )
        self._send_json(
            err.status, error_body(err.kind, err.message, self._request_id), err.headers
        )

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self._finish_body()
        self._store.record_call(self._method, self._path, status)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_" + self._request_id)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _finish_body(self) -> None:
        """Read the rest of the body before answering, or close if its framing is broken."""
        body = self._body
        if body is None:
            self.close_connection = True
            return
        with contextlib.suppress(ApiError):
            body.drain()
        if body.broken:
            self.close_connection = True

    def _stream_results(self, plan: ResultsPlan, *, cut: bool) -> None:
        """Stream JSONL with chunked encoding; ``cut`` stops halfway and closes abruptly."""
        self._finish_body()
        self._store.record_call(self._method, self._path, 200)
        self.send_response(200)
        self.send_header("content-type", "application/x-jsonl")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", "req_" + self._request_id)
        self.end_headers()
        if cut:
            self._write_cut(plan)
            return
        for block in _blocks(plan.lines()):
            self._write_chunk(block)
        self.wfile.write(b"0\r\n\r\n")
        self._store.served(plan.batch_id)

    def _write_cut(self, plan: ResultsPlan) -> None:
        kept = len(plan) // 2
        lines = plan.lines()
        for block in _blocks(islice(lines, kept)):
            self._write_chunk(block)
        partial = next(lines, b"")
        if partial:
            self._write_chunk(partial[: len(partial) // 2])
        self.close_connection = True  # no terminating chunk: the client sees a cut stream

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


def _blocks(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Lines joined into blocks of about ``_WRITE_BLOCK`` bytes."""
    pending: list[bytes] = []
    size = 0
    for line in lines:
        pending.append(line)
        size += len(line)
        if size >= _WRITE_BLOCK:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


class _HttpServer(ThreadingHTTPServer):
    """Threaded server that tracks its connections so ``stop`` can close them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: BatchStore) -> None:
        self.store = store
        self._open: dict[socket.socket, threading.Thread] = {}
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup (getfqdn), which can stall."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def track(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open[sock] = threading.current_thread()

    def untrack(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open.pop(sock, None)

    def close_connections(self, timeout: float) -> None:
        """Shut every open connection down and wait (bounded) for its thread."""
        with self._open_lock:
            open_now = dict(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in open_now.values():
            thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection errors are the client's business; anything else is a server bug."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        text = traceback.format_exc()
        self.store.error(text)
        print(text, file=sys.stderr)


# --- the public face -------------------------------------------------------------


class FakeBatches:
    """A Message Batches server on 127.0.0.1 for tests and benchmarks.

    Args:
        api_key: the key clients must send (``x-api-key`` or ``Authorization: Bearer``).
        end_after: seconds after create when a batch ends; None: only via
            :meth:`end` or cancel.
        outcome: ``(custom_id, params) -> Outcome``, called at create for each
            request; None: all SUCCEEDED.
        faults: what to inject (:class:`Faults`).
        seed: makes ids, shuffles and random faults repeatable.
        absolute_results_url: ``results_url`` is ``url + path`` (else the path).
        max_requests, max_body_bytes: the create limits (100,000; 256 MB).
        cancel_delay: seconds a canceling batch takes to end.
        port: 0 picks a free port.
    """

    def __init__(
        self,
        api_key: str = "sk-test-123",
        end_after: float | None = 0.5,
        outcome: OutcomeFn | None = None,
        faults: Faults | None = None,
        seed: int = 1,
        absolute_results_url: bool = True,
        *,
        max_requests: int = MAX_REQUESTS,
        max_body_bytes: int = MAX_BODY_BYTES,
        cancel_delay: float = 0.2,
        port: int = 0,
    ) -> None:
        settings = StoreSettings(
            api_key=api_key,
            end_after=end_after,
            outcome=outcome,
            faults=faults if faults is not None else Faults(),
            seed=seed,
            absolute_results_url=absolute_results_url,
            max_requests=max_requests,
            max_body_bytes=max_body_bytes,
            cancel_delay=cancel_delay,
        )
        self.store = BatchStore(settings)
        self._port = port
        self._http: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, the client's base_url."""
        return self.store.base_url

    @property
    def batches(self) -> dict[str, BatchRecord]:
        """Every batch created (deleted ones flagged), ended first if their time has come."""
        return self.store.snapshot()

    @property
    def violations(self) -> list[str]:
        return self.store.violations

    @property
    def calls(self) -> list[tuple[str, str, int]]:
        """(method, path without query, status) per request; status 0: no answer sent."""
        return self.store.calls

    @property
    def faults_injected(self) -> Counter[str]:
        return self.store.faults_injected

    @property
    def results_served(self) -> Counter[str]:
        return self.store.results_served

    @property
    def errors(self) -> list[str]:
        """Tracebacks of server bugs (should stay empty)."""
        return self.store.errors

    def submitted_ids(self) -> Counter[str]:
        return self.store.submitted_ids()

    def end(self, batch_id: str) -> None:
        self.store.end(batch_id)

    def start(self) -> FakeBatches:
        """Bind and serve on a background thread."""
        self._http = _HttpServer(("127.0.0.1", self._port), self.store)
        host, port = self._http.server_address[:2]
        self.store.base_url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-batches",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close open connections and the socket; bounded by ``timeout``."""
        if self._http is None or self._thread is None:
            return
        self._http.shutdown()
        self._http.close_connections(timeout)
        self._http.server_close()
        self._thread.join(timeout)
        self._http = self._thread = None

    def __enter__(self) -> FakeBatches:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- standalone ------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.anthropic_server", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--end-after", type=float, default=1.0, help="seconds; negative: never")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--api-key", default="sk-test-123")
    parser.add_argument("--relative-results-url", action="store_true")
    parser.add_argument("--errored", type=float, default=0.0, help="share of errored requests")
    parser.add_argument("--expired", type=float, default=0.0, help="share of expired requests")
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="share of calls given a random fault"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; the first stdout line is ``URL <base url>``."""
    args = _parse_args(argv)
    mixed = args.errored > 0 or args.expired > 0
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server = FakeBatches(
        api_key=args.api_key,
        end_after=args.end_after if args.end_after >= 0 else None,
        outcome=outcome_mix(args.errored, args.expired, seed=args.seed) if mixed else None,
        faults=Faults(rate=args.fault_rate),
        seed=args.seed,
        absolute_results_url=not args.relative_results_url,
    )
    with server:
        print(f"URL {server.url}", flush=True)
        while not stopping.wait(0.2):
            pass
    print(json.dumps(_summary(server)), file=sys.stderr, flush=True)
    return 0


def _summary(server: FakeBatches) -> dict[str, Any]:
    """What the standalone server saw, printed on exit."""
    records = list(server.store.batches.values())
    return {
        "batches": len(records),
        "requests": sum(len(record.custom_ids) for record in records),
        "calls": len(server.calls),
        "violations": len(server.violations),
        "first_violations": server.violations[:5],
        "faults_injected": dict(server.faults_injected),
        "errors": len(server.errors),
    }


if __name__ == "__main__":
    sys.exit(main())
