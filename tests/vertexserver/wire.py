"""The Vertex AI test server's wire: errors, create validation, list filters, line statuses."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.vertexserver.jobs import Job

_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_MODEL = re.compile(r"publishers/anthropic/models/[a-z0-9][a-z0-9.@_-]*")
_TERM = re.compile(
    r'\s*(labels\.[a-z][a-z0-9_-]*|display_name|state)\s*=\s*("[^"]*"|[A-Za-z0-9_-]+)\s*'
)
_TOP_LEVEL = {"displayName", "model", "inputConfig", "outputConfig", "labels"}


class ApiError(Exception):
    """An error answer: HTTP status, google.rpc status word, message."""

    def __init__(self, status: int, word: str, message: str, *, violation: bool = False) -> None:
        super().__init__(message)
        self.status, self.word, self.message = status, word, message
        self.violation = violation  # the client sent what the real API refuses


STATUS = {
    "error400": "Bad Request: " + json.dumps({"type": "error", "error": {
        "type": "invalid_request_error", "message": "messages.0.content: text too long"}}),
    "error429": "Too Many Requests: " + json.dumps({"type": "error", "error": {
        "type": "rate_limit_error", "message": "Number of requests has exceeded your rate"}}),
    "error500": "Internal Server Error: " + json.dumps({"type": "error", "error": {
        "type": "api_error", "message": "Internal server error"}}),
}  # fmt: skip


def invalid(message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


def encoded(line: dict[str, Any]) -> bytes:
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def validate(body: dict[str, Any]) -> None:
    """What Vertex refuses at create (every refusal is a violation: docproc must not send it)."""
    problems = []
    unknown = set(body) - _TOP_LEVEL
    if unknown:
        problems.append(f"unknown fields {sorted(unknown)}")
    if not isinstance(body.get("displayName"), str) or not 0 < len(body["displayName"]) <= 128:
        problems.append("displayName is required (at most 128 characters)")
    if not isinstance(body.get("model"), str) or not _MODEL.fullmatch(body["model"]):
        problems.append(f"model {body.get('model')!r} is not publishers/anthropic/models/...")
    source = body.get("inputConfig") or {}
    uris = (source.get("gcsSource") or {}).get("uris")
    if (
        source.get("instancesFormat") != "jsonl"
        or not isinstance(uris, list)
        or not uris
        or not all(isinstance(u, str) and u.startswith("gs://") and u.count("/") >= 3 for u in uris)
    ):
        problems.append("inputConfig needs instancesFormat jsonl and gcsSource.uris")
    destination = body.get("outputConfig") or {}
    prefix = (destination.get("gcsDestination") or {}).get("outputUriPrefix")
    if destination.get("predictionsFormat") != "jsonl" or not isinstance(prefix, str) or not \
            prefix.startswith("gs://"):  # fmt: skip
        problems.append("outputConfig needs predictionsFormat jsonl and gcsDestination")
    labels = body.get("labels") or {}
    if not isinstance(labels, dict) or len(labels) > 64 or not all(
        isinstance(k, str) and _LABEL_KEY.fullmatch(k) and isinstance(v, str)
        and _LABEL_VALUE.fullmatch(v) for k, v in labels.items()
    ):  # fmt: skip
        problems.append(f"labels {labels!r} break the label rules")
    if problems:
        raise ApiError(400, "INVALID_ARGUMENT", "; ".join(problems), violation=True)


def parse_filter(text: str) -> list[tuple[str, str]]:
    """``labels.k="v" AND state=JOB_STATE_RUNNING`` -> [(field, value)]; 400 if unreadable."""
    terms = []
    for part in re.split(r"\s+AND\s+", text.strip(), flags=re.I) if text.strip() else []:
        match = _TERM.fullmatch(part)
        if match is None:
            raise ApiError(400, "INVALID_ARGUMENT", f"Unsupported filter: {part!r}",
                           violation=True)  # fmt: skip
        terms.append((match.group(1), match.group(2).strip('"')))
    return terms


def matches(job: Job, terms: list[tuple[str, str]]) -> bool:
    for name, value in terms:
        if name.startswith("labels."):
            found = job.labels.get(name.removeprefix("labels."))
        elif name == "display_name":
            found = job.body.get("displayName")
        else:
            found = job.state
        if found != value:
            return False
    return True
