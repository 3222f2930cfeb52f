"""Result lines of a test batch, as the real API writes them (one JSON object per line)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.batchserver.outcomes import Outcome
from tests.batchserver.planned import PlannedRequest
from tests.batchserver.wire import b62, error_body


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
        return {"type": "errored", "error": error_body(kind, message, b62(ids[24:]))}
    if outcome is Outcome.INVALID:
        message = planned.error or "messages: the request was refused (emulated)"
        return {
            "type": "errored",
            "error": error_body("invalid_request_error", message, b62(ids[24:])),
        }
    content, stop_reason, output_tokens = _content(planned, outcome, ids)
    reply = {
        "id": "msg_" + b62(ids[:24]),
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
        "id": "toolu_" + b62(ids[24:]),
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
