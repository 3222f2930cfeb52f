"""Request building and result parsing for Claude Message Batches (pure, no network)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from docproc.models import JobRequest, OutputProblem, ResultKind, TaskSpec
from docproc.providers.base import request_size
from docproc.providers.messages import (
    TOOL_NAME,
    ShapeError,
    build_params,
    cut_text,
    parse_result,
    system_text,
)

TASK = TaskSpec(
    provider="anthropic",
    model="claude-sonnet-4-5",
    prompt="Summarise in {summary_sentences}.",
    max_tokens=900,
    summary_sentences=2,
    max_highlights=4,
    max_input_chars=1000,
)


def params_for(text: str, title: str = "a.txt", max_tokens: int | None = None) -> dict[str, Any]:
    return build_params(JobRequest("j1-a1", 1, text, title, max_tokens), TASK, system_text(TASK))


def test_request_shares_a_cacheable_system_prompt_and_forces_the_tool() -> None:
    params = params_for("Hello world.")
    assert params["model"] == "claude-sonnet-4-5" and params["max_tokens"] == 900
    (system,) = params["system"]
    assert system["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert system["text"].startswith("Summarise in 2.") and "up to 4" in system["text"]
    assert params["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    schema = params["tools"][0]["input_schema"]
    assert schema["required"] == ["summary", "highlights"]
    assert schema["properties"]["highlights"]["items"]["required"] == ["quote", "why"]
    (turn,) = params["messages"]
    assert turn["role"] == "user"
    assert turn["content"][0]["text"] == '<document title="a.txt">\nHello world.\n</document>'
    assert params_for("Other text.")["system"] == params["system"]  # identical: cache hits


def test_title_is_escaped_and_job_max_tokens_wins() -> None:
    params = params_for("x", title='a "b" <c>.txt', max_tokens=4000)
    assert params["messages"][0]["content"][0]["text"].startswith(
        '<document title="a &quot;b&quot; &lt;c&gt;.txt">'
    )
    assert params["max_tokens"] == 4000


def test_long_text_is_cut_with_a_visible_marker() -> None:
    text, cut_from = cut_text("x" * 1500, 1000)
    assert cut_from == 1500 and text.startswith("x" * 1000)
    assert "1,000 of 1,500 characters" in text[1000:]
    assert cut_text("short", 1000) == ("short", None)
    sent = params_for("y" * 5000)["messages"][0]["content"][0]["text"]
    assert sent.count("y") == 1000 and "cut here" in sent


def test_request_size_grows_with_the_text_exactly() -> None:
    small = request_size({"custom_id": "j1-a1", "params": params_for("")})
    big = request_size({"custom_id": "j1-a1", "params": params_for("é\n" * 100)})
    assert big - small == len(json.dumps("é\n" * 100, ensure_ascii=False).encode()) - 2


def message(content: list[dict[str, Any]], stop: str = "tool_use") -> dict[str, Any]:
    usage = {
        "input_tokens": 100,
        "output_tokens": 50,
        "cache_read_input_tokens": 900,
        "cache_creation_input_tokens": 0,
        "service_tier": "batch",
    }
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def tool(data: object) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_1", "name": TOOL_NAME, "input": data}


def line(result: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": "j7-a2", "result": result}


def test_succeeded_result_gives_summary_highlights_and_usage() -> None:
    data = {
        "summary": " It says hi. ",
        "highlights": [{"quote": "Hello", "why": "greeting"}, {"quote": "  ", "why": "blank"}],
    }
    result = parse_result(line({"type": "succeeded", "message": message([tool(data)])}))
    assert result.kind is ResultKind.SUCCEEDED and result.custom_id == "j7-a2"
    assert result.summary == "It says hi."
    assert [(h.quote, h.why) for h in result.highlights] == [("Hello", "greeting")]
    assert result.usage.cache_read_input_tokens == 900 and result.usage.output_tokens == 50
    assert result.model == "claude-sonnet-4-5" and result.stop_reason == "tool_use"


@pytest.mark.parametrize(
    ("msg", "problem"),
    [
        (message([tool({"summary": "cut"})], stop="max_tokens"), OutputProblem.MAX_TOKENS),
        (message([{"type": "text", "text": "I can't"}], stop="refusal"), OutputProblem.REFUSAL),
        (message([tool({"summary": "s", "highlights": "x"})]), OutputProblem.INVALID),
        (message([tool({"highlights": []})]), OutputProblem.INVALID),
        (
            message([tool({"summary": "s", "highlights": [{"why": "no quote"}]})]),
            OutputProblem.INVALID,
        ),
        (message([{"type": "text", "text": "plain"}], stop="end_turn"), OutputProblem.INVALID),
        (message([], stop="model_context_window_exceeded"), OutputProblem.CONTEXT),
    ],
)
def test_unusable_answers_are_errors_that_keep_their_billed_usage(
    msg: dict[str, Any], problem: OutputProblem
) -> None:
    result = parse_result(line({"type": "succeeded", "message": msg}))
    assert result.kind is ResultKind.ERRORED and result.error_type == problem.value
    assert result.error_message and result.usage.input_tokens == 100


def test_errored_canceled_expired_results() -> None:
    error = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "bad"},
        "request_id": None,
    }
    errored = parse_result(line({"type": "errored", "error": error}))
    assert (errored.kind, errored.error_type, errored.error_message) == (
        ResultKind.ERRORED,
        "invalid_request_error",
        "bad",
    )
    assert parse_result(line({"type": "expired"})).kind is ResultKind.EXPIRED
    assert parse_result(line({"type": "canceled"})).kind is ResultKind.CANCELED
    for bad in ({"custom_id": 3, "result": {}}, {"custom_id": "j1-a1", "result": {"type": "odd"}}):
        with pytest.raises(ShapeError):
            parse_result(bad)
