"""The simulated Claude behind the test server: answers docproc's summarisation prompt.

It reads a record's ``modelInput`` (InvokeModel: a Messages body; Converse: a
Converse request), checks what Bedrock would refuse per record (a ``model``
key, tools in a batch, a wrong ``anthropic_version``), and answers with the
JSON the prompt asks for: a summary (the first two sentences), highlights
quoting sentences verbatim, plus one invented quote the client must drop.
How the JSON is wrapped varies by record (bare, a ```json fence, prose
around it), so a client must parse tolerantly; ``style`` can force an answer
with no JSON at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

VERSION = "bedrock-2023-05-31"
MODEL_NAME = "claude-sonnet-4-5-20250929"  # what a Messages answer says in its "model"
_SENTENCE = re.compile(r"[^.!?]+[.!?]")
DOCUMENT = re.compile(r'<document title="[^"]*">\n(.*)\n</document>', re.S)
_WRAPPINGS = ("bare", "bare", "bare", "fence", "prose")


class RecordError(Exception):
    """A record Bedrock refuses: ``{"errorCode": code, "errorMessage": message}``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def invented_quote(record_id: str) -> str:
    return f"The emulator invented this sentence for {record_id}; it is not in the document."


def answer(model_input: Any, record_id: str, *, converse: bool, style: str = "") -> dict[str, Any]:
    """The ``modelOutput`` of one record (InvokeModel or Converse shape).

    Raises:
        RecordError: the record's input is one Bedrock would refuse.
    """
    system, text, max_tokens = (_converse_input if converse else _messages_input)(model_input)
    document = DOCUMENT.search(text)
    if document is None:
        raise RecordError(400, "Malformed input request: no document in the user turn")
    reply, stop = reply_text(document.group(1), record_id, style), "end_turn"
    output_tokens = len(reply) // 4 + 1
    if output_tokens > max_tokens:
        reply, stop, output_tokens = reply[: max_tokens * 4], "max_tokens", max_tokens
    input_tokens = (len(system) + len(text)) // 4 + 1
    if converse:
        usage = {"inputTokens": input_tokens, "outputTokens": output_tokens,
                 "totalTokens": input_tokens + output_tokens}  # fmt: skip
        return {"output": {"message": {"role": "assistant", "content": [{"text": reply}]}},
                "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 1}}  # fmt: skip
    digest = hashlib.sha256(record_id.encode()).hexdigest()[:24]
    return {
        "id": f"msg_bdrk_{digest}", "type": "message", "role": "assistant", "model": MODEL_NAME,
        "content": [{"type": "text", "text": reply}], "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }  # fmt: skip


def _messages_input(body: Any) -> tuple[str, str, int]:
    if not isinstance(body, dict):
        raise RecordError(400, "Malformed input request: modelInput must be an object")
    if body.get("anthropic_version") != VERSION:
        raise RecordError(400, f"anthropic_version: must be {VERSION!r}")
    for extra in ("model", "tools", "tool_choice", "stream"):
        if extra in body:
            raise RecordError(400, f"Malformed input request: extraneous key [{extra}]")
    max_tokens = body.get("max_tokens")
    messages = body.get("messages")
    if not isinstance(max_tokens, int) or max_tokens < 1 or not isinstance(messages, list):
        raise RecordError(400, "Malformed input request: max_tokens and messages are required")
    system = body.get("system", "")
    if _has_cache_control(system) or _has_cache_control(messages):
        raise RecordError(400, "Malformed input request: cache_control is not supported")
    text = "".join(
        block.get("text", "") for m in messages if isinstance(m, dict)
        for block in m.get("content", ()) if isinstance(block, dict)
    )  # fmt: skip
    return json.dumps(system), text, max_tokens


def _converse_input(body: Any) -> tuple[str, str, int]:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise RecordError(400, "Malformed input request: messages are required")
    if "modelId" in body or "anthropic_version" in body:
        raise RecordError(400, "Malformed input request: not a Converse request")
    config = body.get("inferenceConfig") or {}
    text = "".join(
        block.get("text", "") for m in body["messages"] for block in m.get("content", ())
    )
    return json.dumps(body.get("system", "")), text, int(config.get("maxTokens") or 4096)


def _has_cache_control(value: Any) -> bool:
    return "cache_control" in json.dumps(value) if value else False


def summary_of(document: str, record_id: str) -> dict[str, Any]:
    """The answer a diligent model gives: ``{summary, highlights}``, one quote invented."""
    sentences = [s.strip() for s in _SENTENCE.findall(document[:6000]) if s.strip()]
    summary = " ".join(sentences[:2]) or document[:200]
    why = "It states one of the document's main points."
    highlights = [{"quote": quote, "why": why} for quote in sentences[1:4]]
    highlights.append({"quote": invented_quote(record_id), "why": why})
    return {"summary": summary, "highlights": highlights}


def reply_text(document: str, record_id: str, style: str = "") -> str:
    """The answer as text: JSON, bare or wrapped (by record), or prose (``no_json``)."""
    if style == "no_json":
        return "I am sorry, but I can only describe this document in prose."
    body = json.dumps(summary_of(document, record_id), ensure_ascii=False)
    wrapping = style or _WRAPPINGS[hashlib.sha256(record_id.encode()).digest()[0] % 5]
    if wrapping == "fence":
        return f"```json\n{body}\n```"
    if wrapping == "prose":
        return f"Here is the summary you asked for:\n\n{body}\n\nI hope this helps."
    return body
