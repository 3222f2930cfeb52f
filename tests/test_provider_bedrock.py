"""The bedrock provider against moto's S3 and the Bedrock test server (no mock of boto3).

Each test builds the provider the way the daemon does (``compose.make_bedrock``)
with boto3's endpoint variables pointing at the loopback servers.
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

from docproc.compose import make_bedrock
from docproc.config import Settings
from docproc.config.bedrock import BedrockSettings
from docproc.errors import (
    ProviderAccountRefused,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderRetryable,
)
from docproc.models import JobRequest, OutputProblem, ResultKind, TaskSpec
from docproc.providers.base import Ticket
from docproc.providers.bedrock_records import custom_id_of
from docproc.providers.staged import StagedBatchProvider
from tests.bedrockserver import FakeBedrock, Faults, Limits
from tests.s3server import Moto

pytestmark = pytest.mark.usefixtures("aws_env")
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
TASK = TaskSpec(provider="bedrock", model=MODEL, prompt="Summarise in {summary_sentences}.")
TEXT = "The archive moved in May. Nobody lost a file. The index was rebuilt twice. All is well."


class Rig:
    """moto, a bucket, the Bedrock test server and a provider built as the daemon builds it."""

    def __init__(self, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.moto, self.tmp_path, self.monkeypatch = moto, tmp_path, monkeypatch
        self.s3 = moto.client()
        self.bucket = moto.bucket(self.s3)
        self.fake: FakeBedrock | None = None
        self.providers: list[StagedBatchProvider] = []

    def server(self, **kwargs: Any) -> FakeBedrock:
        kwargs.setdefault("limits", Limits(min_records=5))
        kwargs.setdefault("phase_seconds", 0.02)
        self.fake = FakeBedrock(self.moto.url, **kwargs).start()
        self.monkeypatch.setenv("AWS_ENDPOINT_URL_S3", self.moto.url)
        self.monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK", self.fake.url)
        self.monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", self.fake.url)
        return self.fake

    def provider(self, **settings: Any) -> StagedBatchProvider:
        bedrock = BedrockSettings(
            region="us-east-1", role_arn="arn:aws:iam::123456789012:role/docproc",
            staging=f"s3://{self.bucket}/docproc/", min_records=5,
        )  # fmt: skip
        task = replace(TASK, model=settings.pop("model", MODEL))
        provider = make_bedrock(Settings(state_dir=self.tmp_path / "state", watches=(), task=task,
                                         bedrock=replace(bedrock, **settings)))  # fmt: skip
        assert isinstance(provider, StagedBatchProvider)
        self.providers.append(provider)
        return provider

    def keys(self, prefix: str = "docproc/") -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])
        return sorted(o["Key"] for o in listed)

    def close(self) -> None:
        for provider in self.providers:
            provider.close()
        if self.fake is not None:
            self.fake.stop()


@pytest.fixture
def rig(moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    made = Rig(moto, tmp_path, monkeypatch)
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


def test_a_job_is_staged_split_created_by_token_read_back_and_cleaned(rig: Rig) -> None:
    fake = rig.server()
    provider = rig.provider(max_file_records=4)
    ticket = Ticket(7, "docproc-0123456789ab-b7")
    job = provider.submit(requests(provider, 10), ticket)
    assert rig.keys() == [
        *(f"docproc/{ticket.token}/input/part-0000{n}.jsonl" for n in (1, 2, 3)),
        f"docproc/{ticket.token}/staged.json",
    ]
    head = rig.s3.head_object(Bucket=rig.bucket, Key=rig.keys()[0])
    assert head["Metadata"] == {"docproc-token": ticket.token}
    first = rig.s3.get_object(Bucket=rig.bucket, Key=rig.keys()[0])["Body"].read()
    line = json.loads(first.splitlines()[0])
    assert custom_id_of(line["recordId"]) == "j1-a1" and line["recordId"].isalnum()
    body = line["modelInput"]
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in body and "tools" not in body and "cache_control" not in json.dumps(body)
    (record,) = fake.jobs.values()
    assert record.name == record.token == ticket.token and record.arn == job
    assert record.request["timeoutDurationInHours"] == 24
    assert record.request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"].endswith(
        f"/docproc/{ticket.token}/input/"
    )
    status = until_ended(provider, job)
    assert status.state == "Completed" and dict(status.counts)["successRecordCount"] == 10
    results = list(provider.results(job))
    assert sorted(r.custom_id for r in results) == sorted(f"j{i}-a1" for i in range(1, 11))
    assert all(r.kind is ResultKind.SUCCEEDED and r.usage.input_tokens > 0 for r in results)
    assert all(r.model == MODEL and r.summary.startswith("Doc ") for r in results)
    provider.delete(job)
    assert rig.keys() == [] and fake.violations == []


def test_a_create_whose_answer_is_lost_yields_the_same_job_again(rig: Rig) -> None:
    fake = rig.server(faults=Faults(script={"create": ["drop_after_create"]}))
    provider = rig.provider()
    ticket = Ticket(1, "docproc-0123456789ab-b1")
    with pytest.raises(ProviderOutcomeUnknown):
        provider.submit(requests(provider, 6), ticket)  # no blind retry by botocore
    (job,) = fake.jobs.values()
    assert provider.find_batch([], None, frozenset(), ticket) == job.arn  # type: ignore[arg-type]
    assert provider.find_batch([], None, {job.arn}, ticket) is None  # type: ignore[arg-type]
    staged_before = rig.keys()
    assert provider.submit(requests(provider, 6), ticket) == job.arn  # same token, same job
    assert len(fake.jobs) == 1 and fake.state.jobs.creates[ticket.token] == 2
    assert rig.keys() == staged_before  # the staged input was used as it was


def test_staging_leftovers_of_this_batch_are_replaced_and_foreign_objects_refused(
    rig: Rig,
) -> None:
    rig.server()
    provider = rig.provider()
    ticket = Ticket(2, "docproc-0123456789ab-b2")
    prefix = f"docproc/{ticket.token}/input/"
    rig.s3.put_object(Bucket=rig.bucket, Key=prefix + "part-00001.jsonl", Body=b"{}\n",
                      Metadata={"docproc-token": ticket.token})  # fmt: skip
    rig.s3.put_object(Bucket=rig.bucket, Key=prefix + "part-00009.jsonl", Body=b"{}\n",
                      Metadata={"docproc-token": ticket.token})  # fmt: skip
    job = provider.submit(requests(provider, 6), ticket)
    assert rig.keys(prefix) == [prefix + "part-00001.jsonl"]
    assert len(list(provider.results(job) if until_ended(provider, job) else ())) == 6
    other = Ticket(3, "docproc-0123456789ab-b3")
    foreign = f"docproc/{other.token}/input/theirs.jsonl"
    rig.s3.put_object(Bucket=rig.bucket, Key=foreign, Body=b"not ours\n")
    with pytest.raises(ProviderRejected, match="not overwriting"):
        provider.submit(requests(provider, 6), other)
    assert rig.s3.get_object(Bucket=rig.bucket, Key=foreign)["Body"].read() == b"not ours\n"
    third = Ticket(4, "docproc-0123456789ab-b4")
    rig.s3.put_object(Bucket=rig.bucket, Key=f"docproc/{third.token}/staged.json",
                      Body=b'{"records": 1}')  # fmt: skip
    with pytest.raises(ProviderRejected, match="not staged for this batch"):
        provider.submit(requests(provider, 6), third)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("throttle", ProviderRetryable),
        ("quota", ProviderRetryable),
        ("denied", ProviderAccountRefused),
    ],
)
def test_create_faults_are_classified(rig: Rig, fault: str, error: type[Exception]) -> None:
    fake = rig.server(faults=Faults(script={"create": [fault]}))
    provider = rig.provider()
    with pytest.raises(error):
        provider.submit(requests(provider, 6), Ticket(4, "docproc-0123456789ab-b4"))
    assert fake.jobs == {}


def test_a_missing_bucket_refuses_the_account_without_a_create(rig: Rig) -> None:
    fake = rig.server()
    provider = rig.provider(staging="s3://no-such-bucket-docproc/x/")
    with pytest.raises(ProviderAccountRefused, match="bucket does not exist"):
        provider.submit(requests(provider, 6), Ticket(5, "docproc-0123456789ab-b5"))
    assert fake.jobs == {}


@pytest.mark.parametrize(
    ("ending", "absent"),
    [
        ("partial", ResultKind.EXPIRED),
        ("expired", ResultKind.EXPIRED),
        ("failed", ResultKind.ERRORED),
        ("failed_input", ResultKind.ERRORED),
    ],
)
def test_every_record_has_an_outcome_whatever_the_end_of_its_job(
    rig: Rig, ending: str, absent: ResultKind
) -> None:
    rig.server(faults=Faults(endings=[ending]), seed=3)
    provider = rig.provider()
    job = provider.submit(requests(provider, 20), Ticket(6, "docproc-0123456789ab-b6"))
    status = until_ended(provider, job)
    results = list(provider.results(job))
    assert sorted(r.custom_id for r in results) == sorted(f"j{i}-a1" for i in range(1, 21))
    missing = [r for r in results if r.kind is not ResultKind.SUCCEEDED]
    assert missing and all(r.kind is absent for r in missing)
    if ending == "partial":
        assert status.state == "PartiallyCompleted" and len(missing) < 20
    if ending.startswith("failed"):
        assert status.message and all(status.message in r.error_message for r in missing)
        expected = "invalid_request_error" if ending == "failed_input" else "job_failed"
        assert {r.error_type for r in missing} == {expected}


def test_a_stopped_job_ends_stopped_and_its_unanswered_records_are_canceled(rig: Rig) -> None:
    rig.server(phase_seconds=0.3)
    provider = rig.provider()
    job = provider.submit(requests(provider, 20), Ticket(8, "docproc-0123456789ab-b8"))
    provider.cancel(job)
    assert provider.poll(job).state == "Stopping"
    assert until_ended(provider, job).state == "Stopped"
    kinds = {r.kind for r in provider.results(job)}
    assert ResultKind.CANCELED in kinds


def test_record_errors_and_answers_without_json(rig: Rig) -> None:
    fake = rig.server(faults=Faults(record_errors=0.3, no_json=0.3), seed=11)
    provider = rig.provider()
    job = provider.submit(requests(provider, 60), Ticket(9, "docproc-0123456789ab-b9"))
    until_ended(provider, job)
    results = {r.custom_id: r for r in provider.results(job)}
    assert len(results) == 60
    types = {r.error_type for r in results.values()}
    assert {"invalid_request_error", "rate_limit_error", "api_error"} <= types
    no_json = [r for r in results.values() if r.error_type == OutputProblem.INVALID.value]
    assert no_json and all(r.usage.output_tokens > 0 for r in no_json)  # billed all the same
    assert "no JSON" in no_json[0].error_message
    assert fake.violations == []


def test_below_the_minimum_the_live_api_answers_and_a_restart_resumes(rig: Rig) -> None:
    fake = rig.server()
    provider = rig.provider()
    ticket = Ticket(10, "docproc-0123456789ab-b10", live=True)
    batch = provider.submit(requests(provider, 3), ticket)
    assert batch == "live-" + ticket.token
    until_ended(provider, batch)
    results = list(provider.results(batch))
    assert {r.kind for r in results} == {ResultKind.SUCCEEDED} and len(results) == 3
    assert fake.jobs == {} and sum(fake.state.live_billed.values()) == 3
    # a new process on the same spool: nothing is asked twice, all is found again
    again = rig.provider()
    assert again.find_batch([], None, frozenset(), ticket) == batch  # type: ignore[arg-type]
    assert again.poll(batch).ended and len(list(again.results(batch))) == 3
    assert sum(fake.state.live_billed.values()) == 3
    again.delete(batch)
    assert again.find_batch([], None, frozenset(), ticket) is None  # type: ignore[arg-type]


def test_live_errors_are_recorded_per_request(rig: Rig) -> None:
    fake = rig.server(faults=Faults(record_errors=0.5), seed=4)
    provider = rig.provider()
    assert provider._live is not None
    provider._live.backoff = 0.01  # the test server's throttling is not worth waiting for
    batch = provider.submit(requests(provider, 12), Ticket(11, "docproc-0123456789ab-b11", True))
    until_ended(provider, batch)
    results = list(provider.results(batch))
    assert len(results) == 12
    kinds = {r.error_type for r in results if r.kind is ResultKind.ERRORED}
    assert "invalid_request_error" in kinds and kinds - {"invalid_request_error"}
    assert fake.violations == []


def test_converse_jobs_and_live_calls(rig: Rig) -> None:
    fake = rig.server()
    provider = rig.provider(invocation_type="Converse")
    job = provider.submit(requests(provider, 6), Ticket(12, "docproc-0123456789ab-b12"))
    record = next(iter(fake.jobs.values()))
    assert record.request["modelInvocationType"] == "Converse"
    until_ended(provider, job)
    results = list(provider.results(job))
    assert {r.kind for r in results} == {ResultKind.SUCCEEDED}
    assert all(r.usage.output_tokens > 0 for r in results)
    live = provider.submit(requests(provider, 2, 50), Ticket(13, "docproc-0123456789ab-b13", True))
    until_ended(provider, live)
    assert {r.kind for r in provider.results(live)} == {ResultKind.SUCCEEDED}
    assert fake.violations == []


def test_an_unknown_job_is_rejected_and_throttled_polls_are_retryable(rig: Rig) -> None:
    rig.server(faults=Faults(script={"get": ["throttle"]}))
    provider = rig.provider()
    arn = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefabcdef"
    with pytest.raises(ProviderRetryable):
        provider.poll(arn)
    with pytest.raises(ProviderRejected, match="ResourceNotFound"):
        provider.poll(arn)


def test_a_job_below_the_services_minimum_fails_and_its_records_are_retried(rig: Rig) -> None:
    fake = rig.server(limits=Limits(min_records=50))  # the account's quota is above the setting
    provider = rig.provider(min_records=5)
    job = provider.submit(requests(provider, 6), Ticket(14, "docproc-0123456789ab-b14"))
    status = until_ended(provider, job)
    assert status.state == "Failed" and "minimum" in status.message
    results = list(provider.results(job))
    assert len(results) == 6 and {r.error_type for r in results} == {
        "job_failed"
    }  # not quarantined
    assert fake.billed == {}


def test_a_job_failed_midway_applies_what_it_wrote_and_retries_the_rest(rig: Rig) -> None:
    """A Failed job that wrote output: every answered record is a result (it was paid
    for), read once; the others are retried, not quarantined."""
    fake = rig.server(faults=Faults(endings=["failed_midway"]), seed=5)
    provider = rig.provider()
    job = provider.submit(requests(provider, 30), Ticket(21, "docproc-0123456789ab-b21"))
    assert until_ended(provider, job).state == "Failed"
    results = list(provider.results(job))
    assert sorted(r.custom_id for r in results) == sorted(f"j{i}-a1" for i in range(1, 31))
    answered = {r.custom_id for r in results if r.kind is ResultKind.SUCCEEDED}
    billed = {custom_id_of(record) for record in fake.billed}
    assert answered == billed and 0 < len(answered) < 30
    assert all(n == 1 for n in fake.billed.values())
    assert {r.error_type for r in results if r.kind is not ResultKind.SUCCEEDED} == {"job_failed"}


def test_reconciliation_follows_every_page_of_the_job_list(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nameContains matches every job whose name holds the token (b1 is in b10...):
    the one named exactly so is found on whatever page it is."""
    monkeypatch.setattr("docproc.aws.bedrock.LIST_PAGE", 2)
    fake = rig.server(phase_seconds=5.0, limits=Limits(min_records=1))
    provider = rig.provider(min_records=1)
    first = provider.submit(requests(provider, 2), Ticket(1, "docproc-0123456789ab-b1"))
    for n in range(10, 15):
        provider.submit(
            requests(provider, 1, first=n * 10), Ticket(n, f"docproc-0123456789ab-b{n}")
        )
    found = provider.find_batch([], datetime.now(UTC), ticket=Ticket(1, "docproc-0123456789ab-b1"))
    assert found == first
    assert len(fake.calls("list")) >= 3  # newest first, two a page


@pytest.mark.parametrize(
    ("error", "error_type"),
    [
        ({"errorCode": 400, "errorMessage": "bad request"}, "invalid_request_error"),  # documented
        ({"errorCode": "429", "errorMessage": "slow down"}, "rate_limit_error"),
        ({"errorCode": 500}, "api_error"),
        ({"errorCode": "ThrottlingException", "errorMessage": "x"}, "rate_limit_error"),
        ({"errorCode": "ValidationException", "errorMessage": "x"}, "invalid_request_error"),
        ({"errorMessage": "ModelTimeoutException: timed out"}, "api_error"),
        ("ThrottlingException: Too many tokens", "rate_limit_error"),
    ],
)
def test_error_records_are_read_whatever_their_code_says(error: Any, error_type: str) -> None:
    from docproc.providers.bedrock_records import InvokeModelRecords, record_id

    line = {"recordId": record_id("j1-a1"), "modelInput": {}, "error": error}
    result = InvokeModelRecords(MODEL).result(line)
    assert (result.custom_id, result.kind, result.error_type) == (
        "j1-a1", ResultKind.ERRORED, error_type
    )  # fmt: skip
