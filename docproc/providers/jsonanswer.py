"""Structured output without tools: JSON asked for in the prompt, parsed tolerantly.

Bedrock batch inference takes no tool calling (reference/BATCH_APIS.md §4.2),
so the system prompt asks for one JSON object of the shape the forced tool
would have produced, ``{"summary": ..., "highlights": [{"quote": ..., "why":
...}]}``, and the answer is read from the response's text:

* a code fence (```` ```json ````) or prose around the object is fine: every
  ``{`` of the text is tried as the start of an object, in order, and the
  first that decodes to an answer of that shape wins;
* raw line breaks inside strings are accepted (models write them);
* an answer with no such object raises :class:`~docproc.providers.messages.ShapeError`
  with the reason, which the ledger records as ``invalid_output`` (retried
  once, then quarantined), exactly as a tool input that breaks the schema.

The verbatim check of the quotes is the same as for tool answers (the
dispatcher locates every quote in the source text and drops the others).
"""

from __future__ import annotations

import json

from docproc.models import Highlight, TaskSpec
from docproc.providers.messages import ShapeError, answer_fields, blocks

MAX_TRIES = 32  # starts of objects tried before giving up on a long answer

_INSTRUCTIONS = (
    "Answer with one JSON object and nothing else: no text before or after it, no"
    ' code fence. Its shape: {{"summary": "...", "highlights": [{{"quote": "...",'
    ' "why": "..."}}]}}. In "summary", write at most {summary_sentences} sentences.'
    ' In "highlights", give up to {max_highlights} passages, each "quote" copied'
    " character for character from the document (a sentence or two, never"
    ' paraphrased), and in "why" one short clause saying why it matters. Escape'
    " double quotes and backslashes inside strings as JSON requires."
)
_DECODER = json.JSONDecoder(strict=False)


def system_text(task: TaskSpec) -> str:
    """The shared system prompt in JSON mode: the user's template, then the JSON instructions."""
    values = {"summary_sentences": task.summary_sentences, "max_highlights": task.max_highlights}
    return task.prompt.format_map(values) + "\n\n" + _INSTRUCTIONS.format_map(values)


def text_answer(content: object) -> tuple[str, tuple[Highlight, ...]]:
    """Summary and highlights from the text blocks of a Messages response.

    Raises:
        ShapeError: the text holds no JSON object of the answer's shape.
    """
    text = "".join(
        str(b.get("text") or "") for b in blocks(content) if b.get("type", "text") == "text"
    )
    return parse_answer(text)


def parse_answer(text: str) -> tuple[str, tuple[Highlight, ...]]:
    """The answer object in ``text``, wherever it starts.

    Raises:
        ShapeError: no object of the shape ``{summary, highlights}`` is in the text;
            the message says what came closest.
    """
    unparsed, misshaped = "", ""  # the first of each kind of failure, for the reason
    start = text.find("{")
    for _ in range(MAX_TRIES):
        if start < 0:
            break
        try:
            data, _end = _DECODER.raw_decode(text, start)
        except ValueError as exc:
            unparsed = unparsed or f"the answer's JSON does not parse ({exc})"
        else:
            try:
                return answer_fields(data, "the answer")
            except ShapeError as exc:
                misshaped = misshaped or str(exc)
        start = text.find("{", start + 1)
    raise ShapeError(misshaped or unparsed or "the answer holds no JSON object")
