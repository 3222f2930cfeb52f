"""Vertex AI batch records for Claude: the JSONL line of a request, what a line of output says.

Input line (reference/BATCH_APIS.md §5): ``{"custom_id", "request"}``, the
request being the Claude Messages body with ``anthropic_version:
"vertex-2023-10-16"`` and no ``model`` (the job names it). Structured output
comes, by ``structured``:

* ``tool`` (the default): the forced tool call, as with the Anthropic API;
* ``json``: JSON asked for in the prompt and parsed tolerantly
  (:mod:`docproc.providers.jsonanswer`), as for Bedrock.

Output line: the input's ``custom_id`` and ``request``, plus ``response``
(the Messages response) and ``status`` (empty on success, the reason
otherwise): the two column names Vertex reserves for batch output. A failed
instance may instead come back in an ``errors_0001.jsonl`` file, as the input
line plus ``error``, a google.rpc.Status ``{code, message}`` (the REST
reference of ``OutputConfig.gcsDestination``). A line with a non-empty
``status`` or an ``error``, or without a ``response``, is an errored result:
an invalid request (HTTP 400, ``invalid_request_error``, ``INVALID_ARGUMENT``;
a google.rpc code in an ``error`` or ``status`` object is trusted over words)
is quarantined; anything else (throttling, overload, 5xx, a status that says
nothing) is retried. ``response`` may be the object
or its JSON text (a BigQuery JSON column written out).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from docproc.models import JobRequest, ProviderResult, ResultKind, TaskSpec
from docproc.providers import jsonanswer, messages
from docproc.providers.base import is_valid_custom_id
from docproc.providers.messages import (
    AnswerReader,
    ShapeError,
    Structured,
    platform_body,
    read_message,
)

VERTEX_VERSION = "vertex-2023-10-16"
INVALID = "invalid_request_error"
# Error words of a request that cannot succeed as it is; of a call worth trying again.
_INVALID_WORDS = re.compile(
    r"invalid_request_error|INVALID_ARGUMENT|Bad Request|\b400\b|prompt is too long", re.I
)
_RETRY_WORDS = re.compile(
    r"RESOURCE_EXHAUSTED|rate_limit|overloaded|\b429\b|\b5\d\d\b|INTERNAL|UNAVAILABLE"
    r"|DEADLINE_EXCEEDED|timeout|api_error",
    re.I,
)
_GOOGLE_INVALID_CODES = frozenset({3, 400})  # google.rpc INVALID_ARGUMENT, or HTTP 400


class VertexRecords:
    """Records of a Vertex AI batch prediction job for Claude.

    ``model`` (the configured model, e.g. ``claude-sonnet-4-5@20250929``)
    names the model of every result, so its cost is looked up under the name
    the price table knows.
    """

    def __init__(self, model: str, structured: Structured = "tool") -> None:
        self.model, self.structured = model, structured
        self._read: AnswerReader = (
            messages.tool_answer if structured == "tool" else jsonanswer.text_answer
        )
        self._system: tuple[str, str] | None = None  # (task fingerprint, system text)

    def body(self, job: JobRequest, task: TaskSpec) -> dict[str, Any]:
        return platform_body(
            job, task, self.system(task), version=VERTEX_VERSION, structured=self.structured
        )

    def system(self, task: TaskSpec) -> str:
        if self._system is None or self._system[0] != task.fingerprint:
            maker = messages.system_text if self.structured == "tool" else jsonanswer.system_text
            self._system = (task.fingerprint, maker(task))
        return self._system[1]

    # -- the RecordCodec seam ------------------------------------------------------

    def record(self, custom_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"custom_id": custom_id, "request": params}

    def custom_id(self, line: Mapping[str, Any]) -> str | None:
        found = line.get("custom_id")
        return found if isinstance(found, str) and is_valid_custom_id(found) else None

    def result(self, line: Mapping[str, Any]) -> ProviderResult:
        custom_id = self.custom_id(line)
        if custom_id is None:
            raise ShapeError(f"output line with an unknown custom_id {line.get('custom_id')!r}")
        status, response = line.get("status"), _decoded(line.get("response"))
        if _failed(status) or not isinstance(response, Mapping):
            failure = line.get("error")  # a line of an errors_* file: google.rpc.Status
            if not _failed(status) and isinstance(failure, Mapping):
                status = failure
            return _errored(custom_id, status, response)
        error = response.get("error")
        if response.get("type") == "error" and isinstance(error, Mapping):
            return _errored(custom_id, error, None)
        return self.answer(custom_id, response)

    def answer(self, custom_id: str, body: Mapping[str, Any]) -> ProviderResult:
        return read_message(custom_id, body, self._read, model=self.model)

    def is_output(self, key: str) -> bool:
        """Whether an object of the job's output directory holds result lines: every
        ``*.jsonl`` (``predictions.jsonl``, ``predictions_0001.jsonl``, ``errors_0001.jsonl``),
        and the sharded names without an extension (``prediction.results-00000-of-00002``,
        ``prediction.errors-...``), but not the error statistics (``*errors_stats*``)."""
        name = key.rsplit("/", 1)[-1]
        if "errors_stats" in name:
            return False
        return name.endswith(".jsonl") or name.startswith(("prediction", "errors"))

    def is_manifest(self, key: str) -> bool:
        return False  # the job itself carries its counts (completionStats)


def _failed(status: object) -> bool:
    """Whether a line's ``status`` reports an error: a non-blank text, or a status object
    other than OK (google.rpc code 0 without a message)."""
    if isinstance(status, Mapping):
        return bool(status.get("code") not in (0, None) or status.get("message"))
    return bool(str(status or "").strip())


def _decoded(response: object) -> object:
    """The response object, also when a line carries it as JSON text."""
    if isinstance(response, str) and response.strip().startswith("{"):
        try:
            return json.loads(response)
        except ValueError:
            return response
    return response


def _errored(custom_id: str, status: object, response: object) -> ProviderResult:
    """A line Vertex could not answer: quarantined when the request itself is invalid,
    retried otherwise (a line without a response and without a reason, too)."""
    if isinstance(status, Mapping):
        text = json.dumps(status, ensure_ascii=False)
        code = status.get("code")
        kind = str(status.get("type") or "")
    else:
        text, code, kind = str(status or "").strip(), None, ""
    if not text and response is not None:
        text = f"unexpected response: {json.dumps(response, ensure_ascii=False)[:300]}"
    text = text or "the output line has no response"
    invalid = (
        kind == INVALID
        or code in _GOOGLE_INVALID_CODES
        or (
            not isinstance(code, int)  # a google.rpc code other than INVALID_ARGUMENT is trusted
            and bool(_INVALID_WORDS.search(text))
            and not _RETRY_WORDS.search(text)
        )
    )
    if invalid:
        error_type = INVALID
    elif kind:
        error_type = kind
    else:
        throttled = code in (8, 429) or re.search(r"RESOURCE_EXHAUSTED|rate_limit|\b429\b", text,
                                                  re.I)  # fmt: skip
        error_type = "rate_limit_error" if throttled else "api_error"
    return ProviderResult(custom_id, ResultKind.ERRORED, error_type=error_type,
                          error_message=text[:2000])  # fmt: skip
