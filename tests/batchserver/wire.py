"""Protocol constants, error shapes, ids and timestamps of the Message Batches test server."""

from __future__ import annotations

import os
import re
import string
from datetime import UTC, datetime
from typing import Any

API_VERSION = "2023-06-01"
MAX_REQUESTS = 100_000
MAX_BODY_BYTES = 256_000_000
BATCHES_PATH = "/v1/messages/batches"
CUSTOM_ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
OPERATIONS = ("create", "retrieve", "list", "results", "cancel", "delete", "count_tokens")
FAULT_KINDS = ("429", "529", "500", "503", "drop", "drop_after_create", "cut", "cut_quiet")

ONLY_FOR = {"drop_after_create": "create", "cut": "results", "cut_quiet": "results"}
STATUS_FAULTS = {
    "429": (429, "rate_limit_error", "Number of request tokens has exceeded your rate limit."),
    "529": (529, "overloaded_error", "Overloaded"),
    "500": (500, "api_error", "Internal server error"),
    "503": (503, "api_error", "Service unavailable"),
}
_B62 = string.digits + string.ascii_letters
_B62_TABLE = bytes(ord(_B62[i % 62]) for i in range(256))
READ_BLOCK = 1 << 20
WRITE_BLOCK = 1 << 16
VIOLATIONS_PER_BATCH = 20
SENTENCE_END = re.compile(r"([.!?])\s+")
WHITESPACE = re.compile(r"[ \t\n\r]*")
DOCUMENT_HEAD = 6_000  # sentences are taken from the head only: it is fast
EPHEMERAL_1H = {"type": "ephemeral", "ttl": "1h"}


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


def invalid(message: str, *, violation: bool = True) -> ApiError:
    return ApiError(400, "invalid_request_error", message, violation=violation)


def not_found(batch_id: str, *, violation: bool = False) -> ApiError:
    return ApiError(
        404, "not_found_error", f"message_batch {batch_id} not found", violation=violation
    )


class Dropped(Exception):  # noqa: N818 - a signal to close the connection, not an error
    """Close the connection without answering."""


def error_body(kind: str, message: str, request_id: str) -> dict[str, Any]:
    """The error envelope of HTTP errors and of errored results."""
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_" + request_id,
    }


def b62(data: bytes) -> str:
    return data.translate(_B62_TABLE).decode("ascii")


def new_request_id() -> str:
    """A fresh ``req_...`` id body (without the prefix)."""
    return b62(os.urandom(24))


def rfc3339(epoch: float) -> str:
    """``2024-09-24T18:37:24.100435Z``: microseconds and Z, as the API writes times."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
