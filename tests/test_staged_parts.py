"""The pure parts of staged batches: record ids, JSON answers, file splits, job views."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docproc.models import OutputProblem, ResultKind
from docproc.providers.bedrock import input_invalid, job_view
from docproc.providers.bedrock_records import (
    ConverseRecords,
    InvokeModelRecords,
    custom_id_of,
    record_id,
)
from docproc.providers.jsonanswer import parse_answer, text_answer
from docproc.providers.messages import ShapeError
from docproc.providers.staging import FileLimits, Phase, split_files

ANSWER = {"summary": "It moved.", "highlights": [{"quote": "The archive moved.", "why": "news"}]}
MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"


@given(st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True))
def test_record_ids_are_alphanumeric_and_reversible(custom_id: str) -> None:
    rid = record_id(custom_id)
    assert rid.isascii() and rid.isalnum()
    assert custom_id_of(rid) == custom_id


def test_record_ids_docproc_did_not_make_are_not_taken_for_custom_ids() -> None:
    assert record_id("j12-a1") == "j12Z1a1"
    assert custom_id_of("CALL0000001") == "CALL0000001"  # any alphanumeric id is one
    for foreign in ("abcZ", "abZ9", "a-b", "", None, 12):
        assert custom_id_of(foreign) is None
    with pytest.raises(ValueError, match="not a custom_id"):
        record_id("a.b")


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(ANSWER),
        f"```json\n{json.dumps(ANSWER, indent=2)}\n```",
        f"Here is the JSON you asked for:\n{json.dumps(ANSWER)}\nAnything else?",
        '{"note": "first"} then ' + json.dumps(ANSWER),
        json.dumps({"result": ANSWER}),
        '{"summary": "It\nmoved.", "highlights": [{"quote": "The archive moved.", "why": "n"}]}',
    ],
)
def test_json_answers_are_found_in_fences_prose_and_wrappers(text: str) -> None:
    summary, highlights = parse_answer(text)
    assert summary.startswith("It") and summary.endswith("moved.")
    assert [h.quote for h in highlights] == ["The archive moved."]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("I would rather describe it in words.", "holds no JSON object"),
        ('{"summary": "x", "highlights": [,]}', "does not parse"),
        ('{"summary": "", "highlights": []}', "no summary string"),
        ('{"summary": "x", "highlights": "none"}', "highlights are not a list"),
        ('{"summary": "x", "highlights": [{"why": "no quote"}]}', "quote string"),
    ],
)
def test_answers_without_the_object_say_why(text: str, reason: str) -> None:
    with pytest.raises(ShapeError, match=reason):
        parse_answer(text)


def test_a_record_line_becomes_a_result() -> None:
    records = InvokeModelRecords(MODEL)
    message = {"content": [{"type": "text", "text": json.dumps(ANSWER)}], "stop_reason": "end_turn",
               "usage": {"input_tokens": 10, "output_tokens": 5}, "model": "claude-x"}  # fmt: skip
    ok = records.result({"recordId": "j1Z1a1", "modelInput": {}, "modelOutput": message})
    assert (ok.custom_id, ok.kind, ok.model, ok.usage.output_tokens) == (
        "j1-a1", ResultKind.SUCCEEDED, MODEL, 5,
    )  # fmt: skip
    cut = records.result(
        {"recordId": "j2Z1a1", "modelOutput": {**message, "stop_reason": "max_tokens"}}
    )
    assert cut.error_type == OutputProblem.MAX_TOKENS.value and cut.usage.input_tokens == 10
    for code, kind in (
        (400, "invalid_request_error"),
        ("429", "rate_limit_error"),
        (503, "api_error"),
    ):
        line = {"recordId": "j3Z1a1", "error": {"errorCode": code, "errorMessage": "why"}}
        failed = records.result(line)
        assert (failed.kind, failed.error_type) == (ResultKind.ERRORED, kind)
        assert failed.error_message.endswith("why")
    for bad in ({"recordId": "j4Z1a1"}, {"recordId": "x-y", "modelOutput": message}):
        with pytest.raises(ShapeError):
            records.result(bad)


def test_a_converse_answer_reads_like_a_message() -> None:
    body = {"output": {"message": {"role": "assistant", "content": [{"text": json.dumps(ANSWER)}]}},
            "stopReason": "content_filtered",
            "usage": {"inputTokens": 7, "outputTokens": 3, "cacheReadInputTokens": 2}}  # fmt: skip
    refused = ConverseRecords(MODEL).answer("j1-a1", body)
    assert refused.error_type == OutputProblem.REFUSAL.value
    assert refused.usage.cache_read_input_tokens == 2
    ok = ConverseRecords(MODEL).answer("j1-a1", {**body, "stopReason": "end_turn"})
    assert ok.kind is ResultKind.SUCCEEDED and ok.summary == "It moved."
    assert text_answer(
        [
            {"type": "text", "text": "```json\n"},
            {"type": "text", "text": json.dumps(ANSWER) + "```"},
        ]
    )


@given(
    st.lists(st.integers(min_value=1, max_value=40), max_size=60),
    st.integers(min_value=1, max_value=7),
    st.integers(min_value=1, max_value=100),
)
def test_files_split_in_order_within_their_limits(
    sizes: list[int], records: int, size: int
) -> None:
    lines = [b"x" * n for n in sizes]
    files = [list(f) for f in split_files(lines, FileLimits(max_records=records, max_bytes=size))]
    assert [line for f in files for line in f] == lines
    for f in files:
        assert f and len(f) <= records
        assert sum(map(len, f)) <= size or len(f) == 1  # an oversized line alone


def test_job_views_map_every_status_and_find_the_output_folder() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc123def456"
    raw = {"jobArn": arn, "jobName": "docproc-x-b1", "status": "Validating",
           "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://b/p/docproc-x-b1/input/"}},
           "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://b/p/docproc-x-b1/output/"}},
           "totalRecordCount": 10}  # fmt: skip
    view = job_view(raw)
    assert view.phase is Phase.RUNNING and view.counts == (("totalRecordCount", 10),)
    assert view.output_uri == "s3://b/p/docproc-x-b1/output/"  # read at any depth
    phases = {"Submitted": Phase.RUNNING, "Scheduled": Phase.RUNNING,
              "InProgress": Phase.RUNNING, "Stopping": Phase.RUNNING,
              "Completed": Phase.COMPLETED, "PartiallyCompleted": Phase.PARTIAL,
              "Failed": Phase.FAILED, "Stopped": Phase.STOPPED, "Expired": Phase.EXPIRED,
              "Mystery": Phase.RUNNING}  # fmt: skip
    for status, phase in phases.items():
        assert job_view({**raw, "status": status}).phase is phase
    failed = job_view({**raw, "status": "Failed", "message": "Malformed JSON in line 3"})
    assert failed.input_invalid


@pytest.mark.parametrize(
    ("message", "invalid"),
    [
        ("The input file contains malformed JSON on line 12", True),
        ("Invalid modelInput format for the model", True),
        ("Unable to access the input data: Access Denied", False),
        ("The number of records (12) is less than the minimum (100)", False),
        ("The input exceeds the maximum records per file", False),
        ("An internal error occurred while processing the job.", False),
        ("", False),
    ],
)
def test_a_failed_job_blames_its_input_only_when_the_message_says_so(
    message: str, invalid: bool
) -> None:
    assert input_invalid(message) is invalid
