"""Claude Messages shapes: the request docproc sends and the result line it reads back.

Pure functions, no I/O (the transport is :mod:`docproc.providers.anthropic`).

A request (reference/BATCH_APIS.md §1.3, §2.1):

* ``system``: one text block, the same for every request of a task, marked
  cacheable with the 1-hour TTL (batches can run longer than 5 minutes);
* the user turn: the document between ``<document title="...">`` and
  ``</document>`` lines, cut to the task's ``max_input_chars`` with a visible
  marker when longer;
* output forced through one tool (``tool_choice`` of type ``tool``) whose
  input is ``{summary, highlights: [{quote, why}]}``.

A result line (§1.6, §1.7) becomes a :class:`~docproc.models.ProviderResult`.
A succeeded response that gives no usable summary (cut off at ``max_tokens``,
a refusal, a tool input that breaks the schema) becomes an ``ERRORED`` result
whose ``error_type`` is an :class:`~docproc.models.OutputProblem` and whose
usage is kept: it was billed.

The cloud platforms take the same body with their own ``anthropic_version``
and no ``model`` (:func:`platform_body`); where they take no tools (Bedrock
batch inference), the answer is JSON asked for in the prompt
(:mod:`docproc.providers.jsonanswer`). :func:`read_message` reads a response
either way, given the reader of its answer.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any, Literal

from docproc.models import (
    Highlight,
    JobRequest,
    OutputProblem,
    ProviderResult,
    ResultKind,
    TaskSpec,
    Usage,
)

TOOL_NAME = "record_summary"
# The placeholders a prompt template may use (the configuration checks for others).
PROMPT_FIELDS = frozenset({"summary_sentences", "max_highlights"})
CACHE_1H = {"type": "ephemeral", "ttl": "1h"}

_INSTRUCTIONS = (
    "Answer only by calling the {tool} tool. In `summary`, write at most"
    " {summary_sentences} sentences. In `highlights`, give up to {max_highlights}"
    " passages, each `quote` copied character for character from the document"
    " (a sentence or two, never paraphrased), and in `why` one short clause saying"
    " why it matters."
)

TOOL: dict[str, Any] = {
    "name": TOOL_NAME,
    "description": "Record the summary of the document and its most important passages.",
    "input_schema": {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "description": "A short summary of the document."},
            "highlights": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "quote": {"type": "string", "description": "Verbatim passage."},
                        "why": {"type": "string", "description": "Why it matters."},
                    },
                    "required": ["quote", "why"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["summary", "highlights"],
        "additionalProperties": False,
    },
}


# How the answer's structure is obtained: a forced tool call, or JSON asked for in the prompt.
Structured = Literal["tool", "json"]
# Reads (summary, highlights) from a response's content blocks; ShapeError when it cannot.
AnswerReader = Callable[[object], "tuple[str, tuple[Highlight, ...]]"]


class ShapeError(ValueError):
    """A result line or tool input is not shaped as documented."""


def system_text(task: TaskSpec) -> str:
    """The shared system prompt: the user's template, then the tool instructions."""
    values = {"summary_sentences": task.summary_sentences, "max_highlights": task.max_highlights}
    prompt = task.prompt.format_map(values)
    return prompt + "\n\n" + _INSTRUCTIONS.format(tool=TOOL_NAME, **values)


def cut_text(text: str, budget: int) -> tuple[str, int | None]:
    """The text to send, and its original length when it was cut to ``budget``."""
    if len(text) <= budget:
        return text, None
    marker = (
        f"\n\n[docproc: the document was cut here; {budget:,} of {len(text):,}"
        " characters were sent]"
    )
    return text[:budget] + marker, len(text)


def document_text(job: JobRequest, task: TaskSpec) -> str:
    """The user turn's text: the document, cut to the context budget, in a titled tag."""
    text, _ = cut_text(job.text, task.max_input_chars)
    title = html.escape(job.title, quote=True)
    return f'<document title="{title}">\n{text}\n</document>'


def build_params(job: JobRequest, task: TaskSpec, system: str) -> dict[str, Any]:
    """The Messages ``params`` of one request."""
    document = document_text(job, task)
    return {
        "model": task.model,
        "max_tokens": job.max_tokens or task.max_tokens,
        "system": [{"type": "text", "text": system, "cache_control": CACHE_1H}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": document}]}],
        "tools": [TOOL],
        "tool_choice": {"type": "tool", "name": TOOL_NAME},
    }


def platform_body(
    job: JobRequest, task: TaskSpec, system: str, *, version: str, structured: Structured
) -> dict[str, Any]:
    """The Messages body a cloud platform takes (Bedrock's InvokeModel, Vertex's
    rawPredict and their batch records): its ``anthropic_version``, no ``model``
    (the job or endpoint names it), no cache marks (a batch record with one may
    fail), and the forced tool only in ``tool`` mode."""
    body: dict[str, Any] = {
        "anthropic_version": version,
        "max_tokens": job.max_tokens or task.max_tokens,
        "system": system,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": document_text(job, task)}]}
        ],
    }
    if structured == "tool":
        body["tools"] = [TOOL]
        body["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
    return body


# -- results -------------------------------------------------------------------


def parse_result(line: Mapping[str, Any]) -> ProviderResult:
    """One decoded JSONL line of a batch's results.

    Raises:
        ShapeError: the line does not have the documented shape.
    """
    custom_id = line.get("custom_id")
    result = line.get("result")
    if not isinstance(custom_id, str) or not isinstance(result, Mapping):
        raise ShapeError("result line without custom_id and result")
    kind = result.get("type")
    if kind == "succeeded":
        return read_message(custom_id, result.get("message"), tool_answer)
    if kind == "errored":
        error = _mapping(_mapping(result.get("error")).get("error"))
        return ProviderResult(
            custom_id,
            ResultKind.ERRORED,
            error_type=str(error.get("type") or "unknown_error"),
            error_message=str(error.get("message") or "")[:2000],
        )
    if kind in ("canceled", "expired"):
        return ProviderResult(custom_id, ResultKind(kind))
    raise ShapeError(f"unknown result type {kind!r}")


def read_message(
    custom_id: str, message: object, read: AnswerReader, *, model: str = ""
) -> ProviderResult:
    """A Messages response as a result: SUCCEEDED with the answer ``read`` found in its
    content, or ERRORED with an :class:`OutputProblem` (usage kept: it was billed).
    ``model``, when given, names the model instead of the response's own field."""
    message = _mapping(message)
    usage = usage_of(_mapping(message.get("usage")))
    model = model or str(message.get("model") or "")
    stop = str(message.get("stop_reason") or "")
    problem: tuple[OutputProblem, str] | None = None
    if stop == "max_tokens":
        problem = OutputProblem.MAX_TOKENS, "the answer was cut off at max_tokens"
    elif stop == "refusal":
        problem = OutputProblem.REFUSAL, "the model declined to summarise this document"
    elif stop == "model_context_window_exceeded":
        problem = OutputProblem.CONTEXT, "the document does not fit the model's context window"
    if problem is None:
        try:
            summary, highlights = read(message.get("content"))
        except ShapeError as exc:
            problem = OutputProblem.INVALID, str(exc)
        else:
            return ProviderResult(
                custom_id, ResultKind.SUCCEEDED, summary=summary, highlights=highlights,
                usage=usage, model=model, stop_reason=stop,
            )  # fmt: skip
    kind, reason = problem
    return ProviderResult(
        custom_id, ResultKind.ERRORED, usage=usage, model=model, stop_reason=stop,
        error_type=kind.value, error_message=reason,
    )  # fmt: skip


def tool_answer(content: object) -> tuple[str, tuple[Highlight, ...]]:
    """Summary and highlights from the forced tool call; ShapeError if they break the schema."""
    calls = [
        b for b in blocks(content) if b.get("type") == "tool_use" and b.get("name") == TOOL_NAME
    ]
    if not calls:
        raise ShapeError(f"the response has no {TOOL_NAME} tool call")
    return answer_fields(calls[0].get("input"), "the tool input")


def blocks(content: object) -> list[Mapping[str, Any]]:
    """The content blocks of a response that are objects."""
    return [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []


def answer_fields(data: object, what: str) -> tuple[str, tuple[Highlight, ...]]:
    """Summary and highlights of an answer object ``{summary, highlights: [{quote, why}]}``.

    Raises:
        ShapeError: it breaks that schema (``what`` names it in the message).
    """
    if not isinstance(data, Mapping):
        raise ShapeError(f"{what} is not an object")
    summary, items = data.get("summary"), data.get("highlights")
    if not isinstance(summary, str) or not summary.strip():
        raise ShapeError(f"{what} has no summary string")
    if not isinstance(items, list):
        raise ShapeError(f"{what}'s highlights are not a list")
    highlights = []
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("quote"), str):
            raise ShapeError("a highlight is not an object with a quote string")
        why = item.get("why", "")
        highlights.append(Highlight(item["quote"], why if isinstance(why, str) else ""))
    return summary.strip(), tuple(h for h in highlights if h.quote.strip())


def usage_of(raw: Mapping[str, Any]) -> Usage:
    def count(name: str) -> int:
        value = raw.get(name)
        return value if isinstance(value, int) and value >= 0 else 0

    return Usage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_creation_input_tokens=count("cache_creation_input_tokens"),
        cache_read_input_tokens=count("cache_read_input_tokens"),
    )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
