"""``POST /v1/messages/count_tokens`` (reference/BATCH_APIS.md §1.11) for the test server.

The body is a Messages create body without ``max_tokens``: ``model`` and
``messages`` required; ``system``, ``tools``, ``tool_choice``, ``thinking``,
``output_config``, ``cache_control`` optional. The answer is
``{"input_tokens": N}``. The real tokenizer is not public; this server
counts by a fixed rule (:func:`count_tokens`) that tests can apply too.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tests.batchserver.wire import ApiError, invalid

COUNT_PATH = "/v1/messages/count_tokens"
MAX_COUNT_BODY = 32_000_000  # the token-counting endpoint takes what Messages takes (32 MB)
ALLOWED = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config",
     "cache_control", "mcp_servers"}
)  # fmt: skip
BYTES_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
BASE_OVERHEAD = 3


def count_body(raw: bytes) -> dict[str, Any]:
    """The answer to one count request, or an ApiError as the API words it."""
    if len(raw) > MAX_COUNT_BODY:
        raise ApiError(413, "request_too_large", "Request exceeds the maximum allowed size")
    try:
        body = json.loads(raw)
    except ValueError:
        raise invalid("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    extra = sorted(set(body) - ALLOWED)
    if extra:
        raise invalid(f"{extra[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise invalid("model: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: Field required")
    return {"input_tokens": count_tokens(body)}


def count_tokens(body: dict[str, Any]) -> int:
    """This server's count: a token per 4 UTF-8 bytes of each text, plus the tools'
    JSON the same way, plus a few tokens per message."""
    texts = [*_texts(body.get("system")), *(t for m in body["messages"] for t in _texts(
        m.get("content") if isinstance(m, dict) else None))]  # fmt: skip
    tools = body.get("tools") or []
    total = sum(_tokens(t) for t in texts) + sum(_tokens(json.dumps(t)) for t in tools)
    return total + MESSAGE_OVERHEAD * len(body["messages"]) + BASE_OVERHEAD


def _texts(content: object) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)
        ]
    return []


def _tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8", "replace")) / BYTES_PER_TOKEN)
