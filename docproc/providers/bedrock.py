"""The ``bedrock`` provider: Claude through Amazon Bedrock batch inference.

A :class:`~docproc.providers.staged.StagedBatchProvider` with Bedrock's parts
(reference/BATCH_APIS.md §4):

* the store: the ``staging`` S3 prefix (:class:`docproc.aws.staging.S3Staging`);
* the jobs: :class:`BedrockJobApi`, CreateModelInvocationJob with the ledger's
  token as both ``jobName`` and ``clientRequestToken`` (a create repeated after
  a crash or a lost answer gives back the same job), GetModelInvocationJob,
  ListModelInvocationJobs by ``nameContains`` to find a job the ledger has no
  ARN for, StopModelInvocationJob;
* the records: :mod:`docproc.providers.bedrock_records` (InvokeModel or
  Converse bodies; the answer as JSON in the text, since batch inference
  takes no tools);
* below the minimum records per job: :class:`BedrockLiveApi` (InvokeModel or
  Converse on bedrock-runtime) through :class:`~docproc.providers.live.LiveBatches`.

The boto3 calls are in :mod:`docproc.aws.bedrock`; this module never imports
boto3 and is handed those clients.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import structlog

from docproc.models import JobRequest, TaskSpec
from docproc.providers.base import ProviderLimits
from docproc.providers.bedrock_records import ConverseRecords, InvokeModelRecords
from docproc.providers.live import LiveBatches
from docproc.providers.staged import StagedBatchProvider
from docproc.providers.staging import (
    FileLimits,
    JobSpec,
    JobView,
    ObjectStore,
    Phase,
    input_invalid,
)

NAME = "bedrock"
INVOCATION_TYPES = ("InvokeModel", "Converse")
PHASES = {
    "Submitted": Phase.RUNNING,
    "Validating": Phase.RUNNING,
    "Scheduled": Phase.RUNNING,
    "InProgress": Phase.RUNNING,
    "Stopping": Phase.RUNNING,
    "Completed": Phase.COMPLETED,
    "PartiallyCompleted": Phase.PARTIAL,
    "Failed": Phase.FAILED,
    "Stopped": Phase.STOPPED,
    "Expired": Phase.EXPIRED,
}
COUNTS = ("totalRecordCount", "processedRecordCount", "successRecordCount", "errorRecordCount")

log = structlog.get_logger()


class BedrockControl(Protocol):
    """The control-plane calls (:class:`docproc.aws.bedrock.BedrockJobs`)."""

    def create_job(self, request: Mapping[str, Any]) -> str: ...
    def get_job(self, identifier: str) -> dict[str, Any]: ...
    def list_jobs(self, name_contains: str) -> Iterator[dict[str, Any]]: ...
    def stop_job(self, identifier: str) -> None: ...


class BedrockCalls(Protocol):
    """The live calls (:class:`docproc.aws.bedrock.BedrockRuntime`)."""

    def invoke_model(self, model_id: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def converse(self, model_id: str, params: Mapping[str, Any]) -> dict[str, Any]: ...


class BedrockJobApi:
    """Batch inference jobs, as the staged provider's :class:`JobApi`."""

    def __init__(
        self,
        control: BedrockControl,
        *,
        model: str,
        role_arn: str,
        timeout_hours: int = 24,
        invocation_type: str = "InvokeModel",
    ) -> None:
        self.control, self.model, self.role_arn = control, model, role_arn
        self.timeout_hours, self.invocation_type = timeout_hours, invocation_type

    def create(self, spec: JobSpec) -> str:
        request: dict[str, Any] = {
            "jobName": spec.name,
            "clientRequestToken": spec.name,
            "roleArn": self.role_arn,
            "modelId": self.model,
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": spec.input_uri,
                                                      "s3InputFormat": "JSONL"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": spec.output_uri}},
            "timeoutDurationInHours": self.timeout_hours,
        }  # fmt: skip
        if self.invocation_type != "InvokeModel":
            request["modelInvocationType"] = self.invocation_type
        return self.control.create_job(request)

    def get(self, job_id: str) -> JobView:
        return job_view(self.control.get_job(job_id))

    def find(self, name: str) -> str | None:
        for summary in self.control.list_jobs(name):
            if summary.get("jobName") == name and isinstance(summary.get("jobArn"), str):
                return str(summary["jobArn"])
        return None

    def stop(self, job_id: str) -> None:
        self.control.stop_job(job_id)


class BedrockLiveApi:
    """One request through bedrock-runtime, as the live batches' :class:`LiveApi`."""

    def __init__(self, calls: BedrockCalls, *, model: str, invocation_type: str) -> None:
        self.calls, self.model, self.invocation_type = calls, model, invocation_type

    def invoke(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if self.invocation_type == "Converse":
            return self.calls.converse(self.model, params)
        return self.calls.invoke_model(self.model, params)


def job_view(job: Mapping[str, Any]) -> JobView:
    """A GetModelInvocationJob answer as the staged provider sees it.

    The output of job ``arn:...:model-invocation-job/abc123def456`` is said to
    be in the folder ``abc123def456/`` under the output URI the job was given
    (§4.3; confirmed by client code, not by AWS's page). The output URI is
    this job's alone (one job per batch token), so its whole tree is read:
    output files are found wherever under it Bedrock put them.
    """
    arn = str(job.get("jobArn") or "")
    state = str(job.get("status") or "")
    phase = PHASES.get(state)
    if phase is None:
        log.warning("bedrock.unknown_status", job=arn, status=state)
        phase = Phase.RUNNING  # look again later rather than take it as an end
    output = _uri(job.get("outputDataConfig"), "s3OutputDataConfig")
    message = str(job.get("message") or "")
    return JobView(
        job_id=arn,
        name=str(job.get("jobName") or ""),
        state=state,
        phase=phase,
        inputs=(_uri(job.get("inputDataConfig"), "s3InputDataConfig"),),
        output_uri=output,
        message=message,
        counts=tuple((k, int(job[k])) for k in COUNTS if isinstance(job.get(k), int)),
        input_invalid=phase is Phase.FAILED and input_invalid(message),
    )


def bedrock_provider(
    *,
    store: ObjectStore,
    control: BedrockControl,
    calls: BedrockCalls,
    model: str,
    role_arn: str,
    spool_dir: Path,
    limits: ProviderLimits,
    files: FileLimits,
    timeout_hours: int = 24,
    invocation_type: str = "InvokeModel",
    live_concurrency: int = 4,
    keep_staging: bool = False,
) -> StagedBatchProvider:
    """The ``bedrock`` provider from its clients and settings."""
    records_type = ConverseRecords if invocation_type == "Converse" else InvokeModelRecords
    records = records_type(model)
    jobs = BedrockJobApi(control, model=model, role_arn=role_arn, timeout_hours=timeout_hours,
                         invocation_type=invocation_type)  # fmt: skip
    live = LiveBatches(
        spool_dir / "live",
        BedrockLiveApi(calls, model=model, invocation_type=invocation_type),
        records.answer,
        concurrency=live_concurrency,
    )

    def build(job: JobRequest, task: TaskSpec) -> dict[str, Any]:
        return records.body(job, task)

    return StagedBatchProvider(
        NAME, store=store, jobs=jobs, codec=records, build=build, limits=limits, files=files,
        live=live, keep_staging=keep_staging,
    )  # fmt: skip


def _uri(config: object, inner: str) -> str:
    section = config.get(inner) if isinstance(config, Mapping) else None
    return str(section.get("s3Uri") or "") if isinstance(section, Mapping) else ""
