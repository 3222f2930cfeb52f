"""What the test server keeps of each request: a digest, its outcome, the checks of its shape."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from tests.batchserver.outcomes import Outcome, OutcomeFn
from tests.batchserver.wire import DOCUMENT_HEAD, EPHEMERAL_1H, SENTENCE_END


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
    if system[-1].get("cache_control") != EPHEMERAL_1H:
        return [f"system: last block must carry cache_control {EPHEMERAL_1H}"]
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
    head = document[:DOCUMENT_HEAD].strip()
    pieces = _sentences(head)
    if len(document) > DOCUMENT_HEAD and len(pieces) > 1:
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
    parts = SENTENCE_END.split(text)  # piece, end mark, piece, end mark, ..., piece
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
