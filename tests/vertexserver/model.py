"""The simulated Claude behind the Vertex AI test server: answers docproc's prompt.

It reads a record's ``request`` (the Messages body Vertex takes), checks what
Vertex would refuse per record (a ``model`` key, a wrong ``anthropic_version``,
no ``max_tokens``), and answers as Claude does: through the forced tool when
the request forces one (``tool_choice`` of type ``tool``), else with the JSON
the prompt asks for (bare, in a fence or in prose, by record; ``style``
``no_json`` answers in prose only). A summary is the document's first two
sentences; highlights quote sentences verbatim, plus one invented quote the
client must drop.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.bedrockserver.model import DOCUMENT, RecordError, reply_text, summary_of

VERSION = "vertex-2023-10-16"
MODEL_NAME = "claude-sonnet-4-5@20250929"


def answer(request: Any, custom_id: str, *, style: str = "") -> dict[str, Any]:
    """The Messages response to one record's request.

    Raises:
        RecordError: the request is one Vertex (or Claude) refuses (400).
    """
    system, text, max_tokens, tool = _read(request)
    document = DOCUMENT.search(text)
    if document is None:
        raise RecordError(400, "messages: no document in the user turn")
    digest = hashlib.sha256(custom_id.encode()).hexdigest()[:24]
    if tool and style != "no_json":
        fields = summary_of(document.group(1), custom_id)
        size = len(json.dumps(fields)) // 4 + 1
        content: list[dict[str, Any]] = [
            {"type": "tool_use", "id": f"toolu_vrtx_{digest}", "name": tool, "input": fields}
        ]
        stop = "tool_use"
        if size > max_tokens:  # cut off: the tool input is incomplete
            content[0]["input"] = {"summary": fields["summary"][: max_tokens * 2]}
            size, stop = max_tokens, "max_tokens"
    else:
        reply = reply_text(document.group(1), custom_id, style)
        size, stop = len(reply) // 4 + 1, "end_turn"
        if size > max_tokens:
            reply, size, stop = reply[: max_tokens * 4], max_tokens, "max_tokens"
        content = [{"type": "text", "text": reply}]
    return {
        "id": f"msg_vrtx_{digest}", "type": "message", "role": "assistant", "model": MODEL_NAME,
        "content": content, "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": (len(system) + len(text)) // 4 + 1, "output_tokens": size},
    }  # fmt: skip


def _read(request: Any) -> tuple[str, str, int, str]:
    """(system, user text, max_tokens, forced tool name or "") of a request."""
    if not isinstance(request, dict):
        raise RecordError(400, "request must be an object")
    if request.get("anthropic_version") != VERSION:
        raise RecordError(400, f"anthropic_version: Input should be '{VERSION}'")
    for extra in ("model", "stream"):
        if extra in request:
            raise RecordError(400, f"{extra}: Extra inputs are not permitted")
    max_tokens, messages = request.get("max_tokens"), request.get("messages")
    if not isinstance(max_tokens, int) or max_tokens < 1 or not isinstance(messages, list):
        raise RecordError(400, "max_tokens and messages: Field required")
    tool = ""
    choice = request.get("tool_choice")
    if choice is not None:
        names = [t.get("name") for t in request.get("tools") or () if isinstance(t, dict)]
        if (
            not isinstance(choice, dict)
            or choice.get("type") != "tool"
            or choice.get("name") not in names
        ):
            raise RecordError(400, "tool_choice: must name one of the tools")
        tool = str(choice["name"])
    text = "".join(
        block.get("text", "") if isinstance(block, dict) else str(block)
        for m in messages if isinstance(m, dict)
        for block in (m.get("content") if isinstance(m.get("content"), list)
                      else [{"text": m.get("content", "")}])
    )  # fmt: skip
    return json.dumps(request.get("system", "")), text, max_tokens, tool
