"""The vertex provider against the Cloud Storage and Vertex AI test servers (HTTP on loopback).

Each test builds the provider the way the daemon does (``compose.make_vertex``)
with ``[vertex]`` pointing at the two servers and a token file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from docproc.compose import make_vertex
from docproc.config import Settings
from docproc.config.vertex import VertexSettings
from docproc.errors import (
    ProviderAccountRefused,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderRetryable,
)
from docproc.models import JobRequest, OutputProblem, ResultKind, TaskSpec
from docproc.providers.base import Ticket
from docproc.providers.staged import StagedBatchProvider
from tests.bedrockserver import invented_quote
from tests.gcsserver import CallFaults, FakeGcs
from tests.vertexserver import LOCATION, PROJECT, FakeVertex, JobFaults

MODEL = "claude-sonnet-4-5@20250929"
TASK = TaskSpec(provider="vertex", model=MODEL, prompt="Summarise in {summary_sentences}.")
TEXT = "The archive moved in May. Nobody lost a file. The index was rebuilt twice. All is well."
BUCKET = "docproc-staging"


class Rig:
    """The two servers, a bucket and providers built as the daemon builds them."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.gcs = FakeGcs(auth=lambda header: header == "Bearer test-token").start()
        self.gcs.store.bucket(BUCKET)
        self.fake: FakeVertex | None = None
        self.providers: list[StagedBatchProvider] = []
        self.token_file = tmp_path / "token"
        self.token_file.write_text("test-token\n")

    def server(self, **kwargs: Any) -> FakeVertex:
        kwargs.setdefault("phase_seconds", 0.02)
        self.fake = FakeVertex(self.gcs.store, **kwargs).start()
        return self.fake

    def settings(self, **changes: Any) -> VertexSettings:
        assert self.fake is not None
        base = VertexSettings(
            project=PROJECT, location=LOCATION, staging=f"gs://{BUCKET}/docproc/",
            api_endpoint=self.fake.url, storage_endpoint=self.gcs.url,
            access_token_file=self.token_file,
        )  # fmt: skip
        return replace(base, **changes)

    def provider(self, **changes: Any) -> StagedBatchProvider:
        task = replace(TASK, model=changes.pop("model", MODEL))
        provider = make_vertex(Settings(state_dir=self.tmp_path / "state", watches=(), task=task,
                                        vertex=self.settings(**changes)))  # fmt: skip
        assert isinstance(provider, StagedBatchProvider)
        self.providers.append(provider)
        return provider

    def names(self, prefix: str = "docproc/") -> list[str]:
        return self.gcs.store.names(BUCKET, prefix)

    def close(self) -> None:
        for provider in self.providers:
            provider.close()
        if self.fake is not None:
            self.fake.stop()
        self.gcs.stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path)
    yield made
    made.close()


def requests(provider: StagedBatchProvider, count: int, first: int = 1) -> list[dict[str, Any]]:
    return [
        provider.build_request(JobRequest(f"j{i}-a1", i, f"Doc {i}. {TEXT}", f"d{i}.txt"), TASK)
        for i in range(first, first + count)
    ]


def until_ended(provider: StagedBatchProvider, batch_id: str, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = provider.poll(batch_id)
        if status.ended:
            return status
        time.sleep(0.02)
    raise AssertionError(f"{batch_id} did not end in {seconds} s")


def test_a_job_is_staged_labelled_read_back_and_cleaned(rig: Rig) -> None:
    fake = rig.server(lines_per_file=4)
    provider = rig.provider(max_records=10)
    ticket = Ticket(7, "docproc-0123456789ab-b7", attempt=1)
    job = provider.submit(requests(provider, 10), ticket)
    token = ticket.token
    assert rig.names() == [f"docproc/{token}/input-00001.jsonl", f"docproc/{token}/staged.json"]
    stored = rig.gcs.store.get(BUCKET, rig.names()[0])
    assert stored.metadata == {"docproc-token": token} and rig.gcs.state.unconditional == []
    line = json.loads(next(rig.gcs.store.lines(BUCKET, rig.names()[0])))
    assert line["custom_id"] == "j1-a1" and set(line) == {"custom_id", "request"}
    body = line["request"]
    assert body["anthropic_version"] == "vertex-2023-10-16" and "model" not in body
    assert body["tool_choice"] == {"type": "tool", "name": "record_summary"}
    (record,) = fake.jobs.values()
    assert record.name == job and job.startswith("projects/123456789012/locations/us-east5/")
    assert record.labels == {"docproc_batch": token, "docproc_attempt": "1"}
    assert record.body["model"] == f"publishers/anthropic/models/{MODEL}"
    assert record.body["inputConfig"]["gcsSource"]["uris"] == [
        f"gs://{BUCKET}/docproc/{token}/input-00001.jsonl"
    ]
    status = until_ended(provider, job)
    assert status.state == "JOB_STATE_SUCCEEDED"
    assert dict(status.counts) == {"successfulCount": 10, "failedCount": 0, "incompleteCount": 0}
    outputs = [n for n in rig.names(f"docproc/{token}/output/") if n.endswith(".jsonl")]
    assert len(outputs) == 3  # every *.jsonl of the output directory is read
    results = list(provider.results(job))
    assert sorted(r.custom_id for r in results) == sorted(f"j{i}-a1" for i in range(1, 11))
    assert all(r.kind is ResultKind.SUCCEEDED and r.usage.input_tokens > 0 for r in results)
    assert all(r.model == MODEL and r.summary.startswith("Doc ") for r in results)
    assert all(any(h.quote == invented_quote(r.custom_id) for h in r.highlights) for r in results)
    provider.delete(job)
    assert rig.names() == [] and fake.violations == [] and fake.errors == []


def test_json_mode_asks_for_json_and_parses_it_tolerantly(rig: Rig) -> None:
    fake = rig.server()
    provider = rig.provider(structured="json")
    job = provider.submit(requests(provider, 12), Ticket(3, "docproc-0123456789ab-b3"))
    (record,) = fake.jobs.values()
    line = json.loads(next(rig.gcs.store.lines(BUCKET, f"docproc/{record.labels['docproc_batch']}"
                                                       "/input-00001.jsonl")))  # fmt: skip
    assert "tools" not in line["request"] and "JSON object" in line["request"]["system"]
    until_ended(provider, job)
    results = list(provider.results(job))
    assert len(results) == 12 and all(r.kind is ResultKind.SUCCEEDED for r in results)
    assert all(r.summary.startswith("Doc ") and r.highlights for r in results)
    assert fake.violations == []


def test_line_errors_missing_responses_and_prose_are_classified(rig: Rig) -> None:
    fake = rig.server(job_faults=JobFaults(record_errors=0.3, no_response=0.1, no_json=0.1),
                      seed=3)  # fmt: skip
    provider = rig.provider(structured="json")
    job = provider.submit(requests(provider, 60), Ticket(4, "docproc-0123456789ab-b4"))
    until_ended(provider, job)
    results = {r.custom_id: r for r in provider.results(job)}
    assert len(results) == 60
    faults = fake.state.jobs.faults
    for custom_id, result in results.items():
        fault = faults.record(custom_id)
        expected = {
            "error400": "invalid_request_error", "error429": "rate_limit_error",
            "error500": "api_error", "no_response": "api_error",
            "no_json": OutputProblem.INVALID.value, "ok": "",
        }[fault]  # fmt: skip
        assert result.error_type == expected, (custom_id, fault, result)
        assert (result.kind is ResultKind.SUCCEEDED) == (fault == "ok")
    assert {faults.record(c) for c in results} >= {"error400", "error429", "no_response", "ok"}


def test_a_create_whose_answer_is_lost_is_found_by_its_label(rig: Rig) -> None:
    fake = rig.server(faults=CallFaults(script={"create": ["drop_after"]}))
    provider = rig.provider()
    ticket = Ticket(5, "docproc-0123456789ab-b5")
    with pytest.raises(ProviderOutcomeUnknown):
        provider.submit(requests(provider, 6), ticket)
    (made,) = fake.jobs.values()
    found = provider.find_batch([], created_after=made.created, ticket=ticket)
    assert found == made.name
    assert provider.find_batch([], made.created, exclude={made.name}, ticket=ticket) is None
    other = Ticket(6, "docproc-0123456789ab-b6")
    with pytest.raises(ProviderRetryable, match="moments ago"):  # the list may lag a new job
        provider.find_batch([], made.created, ticket=other)
    provider.jobs.list_settle = 0.0  # type: ignore[attr-defined] # as if time had passed
    assert provider.find_batch([], made.created, ticket=other) is None
    assert len(fake.jobs) == 1 and fake.violations == []


def test_two_jobs_of_one_batch_keep_the_oldest_attempt_and_cancel_the_other(rig: Rig) -> None:
    fake = rig.server(phase_seconds=5.0)
    provider = rig.provider()
    first = provider.submit(requests(provider, 6), Ticket(8, "docproc-0123456789ab-b8", attempt=1))
    # a second create of the same batch (as if the list had not shown the first yet)
    second = provider.submit(requests(provider, 6), Ticket(8, "docproc-0123456789ab-b8", attempt=2))
    assert {first, second} == {job.name for job in fake.jobs.values()}
    states = {job.name: job.state for job in fake.jobs.values()}
    assert states[first] == "JOB_STATE_CANCELLING"  # the new one is the one recorded
    found = provider.find_batch([], created_after=fake.jobs[first.rsplit("/", 1)[-1]].created,
                                ticket=Ticket(8, "docproc-0123456789ab-b8"))  # fmt: skip
    assert found == first  # the oldest attempt's job, whatever its state


def test_quota_throttling_and_server_errors_are_retryable(rig: Rig) -> None:
    fake = rig.server(max_jobs=1, phase_seconds=5.0,
                      faults=CallFaults(script={"get": ["503", "500", "429"]}))  # fmt: skip
    provider = rig.provider()
    job = provider.submit(requests(provider, 3), Ticket(9, "docproc-0123456789ab-b9"))
    with pytest.raises(ProviderRetryable, match="RESOURCE_EXHAUSTED"):
        provider.submit(requests(provider, 3, 10), Ticket(10, "docproc-0123456789ab-b10"))
    for status in ("503", "500", "429"):
        with pytest.raises(ProviderRetryable, match=status):
            provider.poll(job)
    assert provider.poll(job).ended is False
    assert len(fake.jobs) == 1


def test_a_create_answered_with_5xx_may_have_been_made(rig: Rig) -> None:
    fake = rig.server(faults=CallFaults(script={"create": ["500"]}))
    provider = rig.provider()
    ticket = Ticket(11, "docproc-0123456789ab-b11")
    with pytest.raises(ProviderOutcomeUnknown):
        provider.submit(requests(provider, 3), ticket)
    with pytest.raises(ProviderRetryable, match="moments ago") as raised:
        provider.find_batch([], datetime.now(UTC), ticket=ticket)  # not "not created" yet
    assert 0 < (raised.value.retry_after or 0) <= 10.0
    provider.jobs.list_settle = 0.0  # type: ignore[attr-defined] # as if time had passed
    assert provider.find_batch([], datetime.now(UTC), ticket=ticket) is None
    assert fake.jobs == {}


def test_denied_and_bad_tokens_refuse_the_account(rig: Rig) -> None:
    fake = rig.server(faults=CallFaults(script={"create": ["403"]}))
    provider = rig.provider()
    with pytest.raises(ProviderAccountRefused, match="PERMISSION_DENIED"):
        provider.submit(requests(provider, 3), Ticket(12, "docproc-0123456789ab-b12"))
    rig.token_file.write_text("a-token-the-server-never-issued")
    with pytest.raises(ProviderAccountRefused, match=r"denied|UNAUTHENTICATED|401"):
        provider.submit(requests(provider, 3), Ticket(13, "docproc-0123456789ab-b13"))
    rig.token_file.write_text("test-token")  # the file is read again once it changes
    job = provider.submit(requests(provider, 3), Ticket(14, "docproc-0123456789ab-b14"))
    assert until_ended(provider, job).state == "JOB_STATE_SUCCEEDED"
    assert len(fake.jobs) == 1


def test_a_missing_bucket_refuses_the_account(rig: Rig) -> None:
    rig.server()
    provider = rig.provider(staging="gs://no-such-bucket/docproc/")
    with pytest.raises(ProviderAccountRefused, match="bucket does not exist"):
        provider.submit(requests(provider, 3), Ticket(15, "docproc-0123456789ab-b15"))


@pytest.mark.parametrize(
    ("ending", "state", "kinds"),
    [
        ("failed", "JOB_STATE_FAILED", {"job_failed"}),
        ("failed_input", "JOB_STATE_FAILED", {"invalid_request_error"}),
        ("expired", "JOB_STATE_EXPIRED", {"expired"}),
        ("partial", "JOB_STATE_PARTIALLY_SUCCEEDED", {"", "expired"}),
    ],
)
def test_jobs_that_end_badly_account_for_every_request(
    rig: Rig, ending: str, state: str, kinds: set[str]
) -> None:
    rig.server(job_faults=JobFaults(endings=[ending]), seed=2)
    provider = rig.provider()
    job = provider.submit(requests(provider, 20), Ticket(16, "docproc-0123456789ab-b16"))
    status = until_ended(provider, job)
    assert status.state == state
    results = list(provider.results(job))
    assert sorted(r.custom_id for r in results) == sorted(f"j{i}-a1" for i in range(1, 21))
    found = {r.error_type or (r.kind.value if r.kind is not ResultKind.SUCCEEDED else "")
             for r in results}  # fmt: skip
    assert found == kinds
    if ending == "partial":
        assert "partial failure" in status.message
        assert dict(status.counts)["incompleteCount"] > 0


def test_a_succeeded_job_with_missing_lines_leaves_them_out(rig: Rig) -> None:
    rig.server(job_faults=JobFaults(endings=["missing"]), seed=4)
    provider = rig.provider()
    job = provider.submit(requests(provider, 60), Ticket(17, "docproc-0123456789ab-b17"))
    until_ended(provider, job)
    results = list(provider.results(job))
    assert 0 < 60 - len(results) < 10  # the dispatcher requeues the absent ones


def test_cancel_ends_the_job_cancelled_and_the_rest_is_canceled(rig: Rig) -> None:
    fake = rig.server(phase_seconds=0.3)
    provider = rig.provider()
    job = provider.submit(requests(provider, 20), Ticket(18, "docproc-0123456789ab-b18"))
    time.sleep(0.7)  # running: some lines will be written
    provider.cancel(job)
    assert until_ended(provider, job).state == "JOB_STATE_CANCELLED"
    kinds = {r.kind for r in provider.results(job)}
    assert ResultKind.CANCELED in kinds
    with pytest.raises(ProviderRejected, match="FAILED_PRECONDITION"):
        provider.cancel(job)
    assert fake.violations == []


def test_a_staging_retry_reuses_the_complete_input_and_refuses_a_foreign_object(
    rig: Rig,
) -> None:
    fake = rig.server(faults=CallFaults(script={"create": ["429"]}))
    provider = rig.provider()
    ticket = Ticket(19, "docproc-0123456789ab-b19")
    with pytest.raises(ProviderRetryable):
        provider.submit(requests(provider, 5), ticket)
    uploads = len(rig.gcs.calls("upload"))
    job = provider.submit(requests(provider, 5), replace(ticket, attempt=2))
    assert len(rig.gcs.calls("upload")) == uploads  # staged.json: the input is reused
    assert fake.jobs[job.rsplit("/", 1)[-1]].labels["docproc_attempt"] == "2"
    foreign = "docproc-0123456789ab-b20"
    rig.gcs.store.put(BUCKET, f"docproc/{foreign}/input-00001.jsonl", [b"{}"], size=None)
    with pytest.raises(ProviderRejected, match="not staged for this batch"):
        provider.submit(requests(provider, 5), Ticket(20, foreign))
    assert rig.gcs.store.overwrites == 0


def test_storage_faults_on_reads_are_retried_and_uploads_are_not_repeated(rig: Rig) -> None:
    rig.gcs.state.faults = CallFaults(script={"list": ["503"], "get": ["500", "429"],
                                              "upload": ["503"]})  # fmt: skip
    rig.server()
    provider = rig.provider()
    ticket = Ticket(21, "docproc-0123456789ab-b21")
    with pytest.raises(ProviderRetryable, match="503"):
        provider.submit(requests(provider, 4), ticket)
    job = provider.submit(requests(provider, 4), replace(ticket, attempt=2))
    until_ended(provider, job)
    assert len(list(provider.results(job))) == 4


def test_every_job_state_is_mapped_and_counts_are_read_from_strings() -> None:
    from docproc.providers.staging import Phase
    from docproc.providers.vertex import PHASES, job_view

    states = ["UNSPECIFIED", "QUEUED", "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLING",
              "CANCELLED", "PAUSED", "EXPIRED", "UPDATING", "PARTIALLY_SUCCEEDED"]  # fmt: skip
    assert set(PHASES) == {f"JOB_STATE_{state}" for state in states}
    view = job_view({
        "name": "projects/1/locations/l/batchPredictionJobs/2", "state": "JOB_STATE_FAILED",
        "labels": {"docproc_batch": "docproc-ab-b1"},
        "error": {"code": 3, "message": "Request contains an invalid argument."},
        "completionStats": {"successfulCount": "7", "failedCount": "1"},
        "partialFailures": [{"code": 13, "message": "one"}, {"code": 13, "message": "two"}],
        "outputConfig": {"gcsDestination": {"outputUriPrefix": "gs://b/p/docproc-ab-b1/output"}},
    })  # fmt: skip
    assert view.phase is Phase.FAILED and view.input_invalid and view.name == "docproc-ab-b1"
    assert view.counts == (("successfulCount", 7), ("failedCount", 1))
    assert view.output_uri == "gs://b/p/docproc-ab-b1/output/"
    assert "2 partial failure(s): one; two" in view.message
    quota = job_view({"state": "JOB_STATE_FAILED", "error": {
        "code": 3, "message": "Quota exceeded for the model"}})  # fmt: skip
    assert not quota.input_invalid  # not the requests' fault: they are retried
    odd = job_view({"state": "JOB_STATE_SOMETHING_NEW"})
    assert odd.phase is Phase.RUNNING  # looked at again, never taken as an end


@pytest.mark.parametrize(
    ("line", "kind", "error_type"),
    [
        ({"status": "", "response": "RESPONSE"}, ResultKind.SUCCEEDED, ""),
        ({"status": {"code": 0}, "response": "RESPONSE"}, ResultKind.SUCCEEDED, ""),
        ({"response": "RESPONSE_TEXT"}, ResultKind.SUCCEEDED, ""),
        ({"status": "  ", "response": None}, ResultKind.ERRORED, "api_error"),
        ({"status": {"code": 3, "message": "bad"}}, ResultKind.ERRORED, "invalid_request_error"),
        ({"status": {"code": 8, "message": "RESOURCE_EXHAUSTED"}}, ResultKind.ERRORED,
         "rate_limit_error"),
        ({"status": "Bad Request: prompt is too long"}, ResultKind.ERRORED,
         "invalid_request_error"),
        ({"status": "503 Service Unavailable"}, ResultKind.ERRORED, "api_error"),
        ({"response": {"type": "error", "error": {"type": "overloaded_error", "message": "x"}}},
         ResultKind.ERRORED, "overloaded_error"),
    ],
)  # fmt: skip
def test_output_lines_are_read_whatever_their_shape(
    line: dict[str, Any], kind: ResultKind, error_type: str
) -> None:
    from docproc.providers.vertex_records import VertexRecords

    response = {"content": [{"type": "tool_use", "name": "record_summary", "input": {
        "summary": "S.", "highlights": [{"quote": "q", "why": "w"}]}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 3}}  # fmt: skip
    line = {"custom_id": "j1-a1", **line}
    if line.get("response") == "RESPONSE":
        line["response"] = response
    elif line.get("response") == "RESPONSE_TEXT":
        line["response"] = json.dumps(response)  # a JSON column written out as text
    result = VertexRecords(MODEL).result(line)
    assert (result.kind, result.error_type) == (kind, error_type), result


@pytest.mark.parametrize(
    ("ending", "state", "rest"),
    [
        ("failed_midway", "JOB_STATE_FAILED", "job_failed"),
        ("expired_midway", "JOB_STATE_EXPIRED", "expired"),
    ],
)
def test_a_job_that_ends_badly_after_writing_output_applies_it_once(
    rig: Rig, ending: str, state: str, rest: str
) -> None:
    """ "If the job is terminated, all completed rows are exported": each is a result,
    read once (it was paid for); the others are retried, none quarantined."""
    fake = rig.server(job_faults=JobFaults(endings=[ending]), seed=6)
    provider = rig.provider()
    job = provider.submit(requests(provider, 30), Ticket(30, "docproc-0123456789ab-b30"))
    assert until_ended(provider, job).state == state
    results = list(provider.results(job))
    assert sorted(r.custom_id for r in results) == sorted(f"j{i}-a1" for i in range(1, 31))
    answered = {r.custom_id for r in results if r.kind is ResultKind.SUCCEEDED}
    assert answered == set(fake.billed) and 0 < len(answered) < 30
    others = {r.error_type or r.kind.value for r in results if r.kind is not ResultKind.SUCCEEDED}
    assert others == {rest}


def test_failed_lines_in_errors_files_are_read_by_their_rpc_status(rig: Rig) -> None:
    """The REST reference's layout: predictions_0001.jsonl, and errors_0001.jsonl whose
    lines are the input plus ``error`` {code, message}; a record answered and also
    echoed in an errors file counts once, as answered."""
    fake = rig.server(job_faults=JobFaults(record_errors=0.4, error_files=True, echoed=0.3),
                      seed=7)  # fmt: skip
    provider = rig.provider()
    job = provider.submit(requests(provider, 40), Ticket(31, "docproc-0123456789ab-b31"))
    until_ended(provider, job)
    names = [n.rsplit("/", 1)[-1] for n in rig.names()]
    assert "predictions_0001.jsonl" in names and "errors_0001.jsonl" in names
    results = list(provider.results(job))
    assert sorted(r.custom_id for r in results) == sorted(f"j{i}-a1" for i in range(1, 41))
    faults = fake.state.jobs.faults
    expected = {"error400": "invalid_request_error", "error429": "rate_limit_error",
                "error500": "api_error", "ok": ""}  # fmt: skip
    for result in results:
        assert result.error_type == expected[faults.record(result.custom_id)], result
    assert {r.custom_id for r in results if r.kind is ResultKind.SUCCEEDED} == set(fake.billed)


def test_a_bucket_whose_name_says_bucket_is_not_taken_for_a_missing_one(rig: Rig) -> None:
    """GCS answers a missing object "No such object: <bucket>/<name>": that is no
    missing bucket, even when the bucket's own name holds the word."""
    rig.gcs.store.bucket("team-bucket")
    rig.server()
    provider = rig.provider(staging="gs://team-bucket/docproc/")
    job = provider.submit(requests(provider, 3), Ticket(32, "docproc-0123456789ab-b32"))
    until_ended(provider, job)
    assert len(list(provider.results(job))) == 3


def test_reconciliation_follows_every_page_of_the_filtered_list(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("docproc.gcp.vertex.LIST_PAGE", 1)
    fake = rig.server(phase_seconds=5.0)
    provider = rig.provider()
    token = "docproc-0123456789ab-b33"  # noqa: S105 - a batch token
    first = provider.submit(requests(provider, 3), Ticket(33, token, attempt=1))
    provider.submit(requests(provider, 3), Ticket(33, token, attempt=2))
    provider.submit(requests(provider, 3), Ticket(33, token, attempt=3))
    # newest first, one a page: the first attempt's job is on the third page
    assert provider.find_batch([], fake.jobs[first.rsplit("/", 1)[-1]].created,
                               ticket=Ticket(33, token)) == first  # fmt: skip
    assert len(fake.calls("list")) >= 3


@pytest.mark.parametrize(
    ("key", "output"),
    [
        ("out/prediction-model-2025-01-01T00:00:00.000Z/predictions.jsonl", True),
        ("out/prediction-model-x/predictions_0001.jsonl", True),
        ("out/prediction-model-x/errors_0002.jsonl", True),
        ("out/prediction-model-x/prediction.results-00000-of-00002", True),
        ("out/prediction-model-x/prediction.errors_stats-00000-of-00001", False),
        ("out/prediction-model-x/notes.txt", False),
    ],
)
def test_output_file_names_vertex_documents_are_read(key: str, output: bool) -> None:
    from docproc.providers.vertex_records import VertexRecords

    assert VertexRecords(MODEL).is_output(key) is output


def test_a_failed_job_that_answered_some_records_does_not_quarantine_the_rest() -> None:
    from docproc.providers.staged import _unanswered
    from docproc.providers.staging import JobView, Phase

    view = JobView("j", "t", "JOB_STATE_FAILED", Phase.FAILED, (), "", "Invalid input",
                   input_invalid=True)  # fmt: skip
    assert _unanswered("c1", view, answered_any=False).error_type == "invalid_request_error"
    assert _unanswered("c1", view, answered_any=True).error_type == "job_failed"


def test_cleaning_up_survives_transient_failures_of_the_job_lookup(rig: Rig) -> None:
    """delete is fired and forgotten by the dispatcher: it tries again itself."""
    fake = rig.server()
    provider = rig.provider()
    job = provider.submit(requests(provider, 3), Ticket(34, "docproc-0123456789ab-b34"))
    until_ended(provider, job)
    assert len(list(provider.results(job))) == 3
    fake.state.faults = CallFaults(script={"get": ["500", "503"]})
    provider.delete(job)
    assert rig.names() == [] and fake.calls("get")[-3:] == [500, 503, 200]
