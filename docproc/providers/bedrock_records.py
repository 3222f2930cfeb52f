"""Bedrock batch records: the JSONL line of a request, and what a line of output says.

Input line (reference/BATCH_APIS.md §4.2): ``{"recordId", "modelInput"}``.
``modelInput`` is, by the job's invocation type:

* ``InvokeModel``: the Claude Messages body with ``anthropic_version:
  "bedrock-2023-05-31"``, no ``model`` (the job names it) and no tools (batch
  inference takes none): the answer is JSON asked for in the prompt
  (:mod:`docproc.providers.jsonanswer`);
* ``Converse``: a Converse request (``messages``, ``system``, ``inferenceConfig``).

Output line (§4.3): ``{"recordId", "modelInput", "modelOutput"}``, or
``"error": {"errorCode", "errorMessage"}`` in place of ``modelOutput``.
A live answer (InvokeModel or Converse) is read exactly as a ``modelOutput``.

Record ids: Bedrock documents them as alphanumeric, so a custom_id
(``[A-Za-z0-9_-]``) is escaped reversibly: ``Z`` -> ``ZZ``, ``-`` -> ``Z1``,
``_`` -> ``Z2`` (``j12-a1`` -> ``j12Z1a1``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from docproc.models import JobRequest, ProviderResult, ResultKind, TaskSpec
from docproc.providers import jsonanswer
from docproc.providers.live import error_type
from docproc.providers.messages import ShapeError, document_text, platform_body, read_message

BEDROCK_VERSION = "bedrock-2023-05-31"
MANIFEST = "manifest.json.out"
_ESCAPES = {"Z": "ZZ", "-": "Z1", "_": "Z2"}
_UNESCAPES = {"Z": "Z", "1": "-", "2": "_"}
# Converse stop reasons in the words of the Messages API (which read_message knows).
_CONVERSE_STOPS = {"content_filtered": "refusal", "guardrail_intervened": "refusal"}
_THROTTLED = re.compile(r"Throttl|TooManyRequests|ServiceQuotaExceeded|\b429\b", re.I)
_INVALID = re.compile(r"\bValidationException\b", re.I)


def record_id(custom_id: str) -> str:
    """The alphanumeric record id of a custom_id (reversible).

    Raises:
        ValueError: the custom_id has a character outside ``[A-Za-z0-9_-]``.
    """
    out = []
    for char in custom_id:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isascii() and char.isalnum():
            out.append(char)
        else:
            raise ValueError(f"not a custom_id: {custom_id[:80]!r}")
    return "".join(out)


def custom_id_of(record: object) -> str | None:
    """The custom_id a record id stands for; None for one docproc did not make."""
    if not isinstance(record, str) or not record.isascii() or not record.isalnum():
        return None
    out, chars = [], iter(record)
    for char in chars:
        if char != "Z":
            out.append(char)
            continue
        escaped = _UNESCAPES.get(next(chars, ""))
        if escaped is None:
            return None
        out.append(escaped)
    return "".join(out) or None


class InvokeModelRecords:
    """Records of an ``InvokeModel`` job: Messages bodies, answers in JSON text.

    ``model`` (the configured model id) names the model of every result, so
    its cost is looked up under the id the price table knows.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self._system: tuple[str, str] | None = None  # (task fingerprint, system text)

    def body(self, job: JobRequest, task: TaskSpec) -> dict[str, Any]:
        return platform_body(
            job, task, self.system(task), version=BEDROCK_VERSION, structured="json"
        )

    def system(self, task: TaskSpec) -> str:
        if self._system is None or self._system[0] != task.fingerprint:
            self._system = (task.fingerprint, jsonanswer.system_text(task))
        return self._system[1]

    def record(self, custom_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"recordId": record_id(custom_id), "modelInput": params}

    def custom_id(self, line: Mapping[str, Any]) -> str | None:
        return custom_id_of(line.get("recordId"))

    def result(self, line: Mapping[str, Any]) -> ProviderResult:
        custom_id = self.custom_id(line)
        if custom_id is None:
            raise ShapeError(f"output line with an unknown recordId {line.get('recordId')!r}")
        error = line.get("error")
        if isinstance(error, str) and error.strip():  # an error told in words only
            error = {"errorMessage": error}
        if isinstance(error, Mapping):
            return _errored(custom_id, error)
        output = line.get("modelOutput")
        if not isinstance(output, Mapping):
            raise ShapeError("output line without modelOutput or error")
        return self.answer(custom_id, output)

    def answer(self, custom_id: str, body: Mapping[str, Any]) -> ProviderResult:
        return read_message(custom_id, body, jsonanswer.text_answer, model=self.model)

    def is_output(self, key: str) -> bool:
        """``<input file>.out`` (``part-00001.jsonl.out``), not the manifest."""
        return key.endswith(".out") and not self.is_manifest(key)

    def is_manifest(self, key: str) -> bool:
        return key.endswith("/" + MANIFEST) or key == MANIFEST


class ConverseRecords(InvokeModelRecords):
    """Records of a ``Converse`` job: Converse requests and answers."""

    def body(self, job: JobRequest, task: TaskSpec) -> dict[str, Any]:
        return {
            "messages": [{"role": "user", "content": [{"text": document_text(job, task)}]}],
            "system": [{"text": self.system(task)}],
            "inferenceConfig": {"maxTokens": job.max_tokens or task.max_tokens},
        }

    def answer(self, custom_id: str, body: Mapping[str, Any]) -> ProviderResult:
        return read_message(custom_id, as_message(body), jsonanswer.text_answer, model=self.model)


def as_message(body: Mapping[str, Any]) -> dict[str, Any]:
    """A Converse answer in the shape of a Messages response."""
    output = body.get("output")
    message = output.get("message") if isinstance(output, Mapping) else None
    content = message.get("content") if isinstance(message, Mapping) else None
    texts = [b["text"] for b in content or () if isinstance(b, Mapping) and "text" in b]
    usage = body.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    stop = str(body.get("stopReason") or "")
    return {
        "content": [{"type": "text", "text": text} for text in texts],
        "stop_reason": _CONVERSE_STOPS.get(stop, stop),
        "usage": {
            "input_tokens": usage.get("inputTokens"),
            "output_tokens": usage.get("outputTokens"),
            "cache_read_input_tokens": usage.get("cacheReadInputTokens"),
            "cache_creation_input_tokens": usage.get("cacheWriteInputTokens"),
        },
    }


def _errored(custom_id: str, error: Mapping[str, Any]) -> ProviderResult:
    """A record Bedrock could not process: 400 is the request's fault (quarantined);
    429 and 5xx are retried later."""
    raw = error.get("errorCode")
    message = str(error.get("errorMessage") or error.get("message") or "")[:2000]
    if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()):
        code = int(raw)
    else:  # an exception name, or none: by what it says
        said = f"{raw or ''} {message}"
        code = 429 if _THROTTLED.search(said) else 400 if _INVALID.search(said) else 500
    return ProviderResult(
        custom_id, ResultKind.ERRORED, error_type=error_type(code),
        error_message=f"{code}: {message}" if message else str(code),
    )  # fmt: skip
