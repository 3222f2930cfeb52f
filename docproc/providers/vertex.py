"""The ``vertex`` provider: Claude through Vertex AI batch prediction jobs.

A :class:`~docproc.providers.staged.StagedBatchProvider` with Vertex's parts
(reference/BATCH_APIS.md §5):

* the store: the ``staging`` Cloud Storage prefix (:class:`docproc.gcp.storage.GcsStaging`),
  a batch's input written as ``<staging><token>/input-00001.jsonl``...;
* the jobs: :class:`VertexJobApi`. Create has no idempotency key, so each job
  carries the labels ``docproc_batch=<token>`` (the ledger's id of the batch,
  unique to this ledger) and ``docproc_attempt=<n>`` (the ledger's number of
  this create call), both recorded before the call; after an unknown outcome
  the dispatcher asks :meth:`VertexJobApi.find`, a list filtered on the
  batch's label, before it creates again. Should two jobs ever carry one
  batch's label (a job that showed up in the list only after another was
  made), the oldest attempt is kept and the others are cancelled at once.
  Within ``list_settle`` seconds of a create whose outcome is unknown, a
  list that shows no job is retryable, not "not created" (the list may lag);
* the records: :mod:`docproc.providers.vertex_records` (forced tool, or JSON
  in the prompt).

Vertex has no minimum batch size, so there is no live path. The REST calls
are in :mod:`docproc.gcp.vertex`; this module is handed that client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import structlog

from docproc.errors import ProviderError, ProviderOutcomeUnknown, ProviderRetryable
from docproc.models import JobRequest, TaskSpec
from docproc.providers.base import ProviderLimits
from docproc.providers.messages import Structured
from docproc.providers.staged import StagedBatchProvider
from docproc.providers.staging import (
    FileLimits,
    JobSpec,
    JobView,
    Layout,
    ObjectStore,
    Phase,
    input_invalid,
)
from docproc.providers.vertex_records import VertexRecords

NAME = "vertex"
LABEL_BATCH = "docproc_batch"
LABEL_ATTEMPT = "docproc_attempt"
MODEL_PATH = "publishers/anthropic/models/"
LAYOUT = Layout(input_file="input-{:05d}.jsonl", input_prefix="input-", output_prefix="output/")
PHASES = {
    "JOB_STATE_UNSPECIFIED": Phase.RUNNING,  # not said yet: look again
    "JOB_STATE_QUEUED": Phase.RUNNING,
    "JOB_STATE_PENDING": Phase.RUNNING,
    "JOB_STATE_RUNNING": Phase.RUNNING,
    "JOB_STATE_CANCELLING": Phase.RUNNING,
    "JOB_STATE_PAUSED": Phase.RUNNING,  # resumed by Vertex (or by someone): look again
    "JOB_STATE_UPDATING": Phase.RUNNING,
    "JOB_STATE_SUCCEEDED": Phase.COMPLETED,
    "JOB_STATE_PARTIALLY_SUCCEEDED": Phase.PARTIAL,
    "JOB_STATE_FAILED": Phase.FAILED,
    "JOB_STATE_CANCELLED": Phase.STOPPED,
    "JOB_STATE_EXPIRED": Phase.EXPIRED,
}
COUNTS = ("successfulCount", "failedCount", "incompleteCount")
ENDED = frozenset(state for state, phase in PHASES.items() if phase is not Phase.RUNNING)
INVALID_ARGUMENT = 3  # google.rpc.Code

log = structlog.get_logger()


class VertexControl(Protocol):
    """The REST calls (:class:`docproc.gcp.vertex.VertexJobs`)."""

    def create_job(self, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def get_job(self, name: str) -> dict[str, Any]: ...
    def list_jobs(self, filter_: str) -> Iterator[dict[str, Any]]: ...
    def cancel_job(self, name: str) -> None: ...


class VertexJobApi:
    """Batch prediction jobs, as the staged provider's :class:`JobApi`."""

    def __init__(self, control: VertexControl, *, model: str, list_settle: float = 10.0) -> None:
        self.control, self.model, self.list_settle = control, model, list_settle
        self._unknown_at = float("-inf")  # monotonic time of the last unknown create

    def create(self, spec: JobSpec) -> str:
        body = {
            "displayName": spec.name,
            "model": MODEL_PATH + self.model.removeprefix(MODEL_PATH),
            "inputConfig": {"instancesFormat": "jsonl",
                            "gcsSource": {"uris": list(spec.input_files)}},
            "outputConfig": {"predictionsFormat": "jsonl",
                             "gcsDestination": {"outputUriPrefix": spec.output_uri}},
            "labels": {LABEL_BATCH: spec.name, LABEL_ATTEMPT: str(spec.attempt)},
        }  # fmt: skip
        try:
            name = str(self.control.create_job(body)["name"])
        except ProviderOutcomeUnknown:
            self._unknown_at = time.monotonic()
            raise
        if spec.attempt > 1:
            self._one_job(spec.name, keep=name)
        return name

    def get(self, job_id: str) -> JobView:
        return job_view(self.control.get_job(job_id))

    def find(self, name: str) -> str | None:
        """The job labelled with this batch token; of several, the oldest attempt's
        (the others are cancelled)."""
        jobs = self._labelled(name)
        settling = self.list_settle - (time.monotonic() - self._unknown_at)
        if not jobs and settling > 0:
            raise ProviderRetryable(
                f"no job labelled {name} in the list yet; one created"
                " moments ago may not show in it yet",
                retry_after=settling,
            )
        if not jobs:
            return None
        kept = min(jobs, key=_attempt_order)
        self._one_job(name, keep=str(kept["name"]), jobs=jobs)
        return str(kept["name"])

    def stop(self, job_id: str) -> None:
        self.control.cancel_job(job_id)

    def _labelled(self, token: str) -> list[dict[str, Any]]:
        found = self.control.list_jobs(f'labels.{LABEL_BATCH}="{token}"')
        return [job for job in found if _labels(job).get(LABEL_BATCH) == token
                and isinstance(job.get("name"), str)]  # fmt: skip

    def _one_job(self, token: str, *, keep: str, jobs: list[dict[str, Any]] | None = None) -> None:
        """Cancel every job of this batch but ``keep`` that has not ended (no request
        is ever in two live jobs). A failure is logged: the dispatcher still has its job."""
        try:
            for job in self._labelled(token) if jobs is None else jobs:
                if job["name"] != keep and job.get("state") not in ENDED:
                    log.warning("vertex.duplicate_job", token=token, job=job["name"], kept=keep)
                    self.control.cancel_job(str(job["name"]))
        except ProviderError as exc:
            log.warning("vertex.duplicate_check_failed", token=token, error=str(exc)[:300])


def job_view(job: Mapping[str, Any]) -> JobView:
    """A BatchPredictionJob as the staged provider sees it.

    The output is every ``*.jsonl`` under ``outputInfo.gcsOutputDirectory``;
    before Vertex names that directory (a job that failed early), the output
    prefix the job was given, which is this batch's alone.
    """
    name = str(job.get("name") or "")
    state = str(job.get("state") or "")
    phase = PHASES.get(state)
    if phase is None:
        log.warning("vertex.unknown_state", job=name, state=state)
        phase = Phase.RUNNING  # look again later rather than take it as an end
    error = _mapping(job.get("error"))
    message = _message(error, job.get("partialFailures"))
    invalid = input_invalid(str(error.get("message", "")),
                            flagged=error.get("code") == INVALID_ARGUMENT)  # fmt: skip
    return JobView(
        job_id=name,
        name=_labels(job).get(LABEL_BATCH) or str(job.get("displayName") or ""),
        state=state,
        phase=phase,
        inputs=tuple(str(uri) for uri in _gcs_uris(job)),
        output_uri=_output_dir(job),
        message=message,
        counts=_counts(job.get("completionStats")),
        input_invalid=phase is Phase.FAILED and invalid,
    )


def vertex_provider(
    *,
    store: ObjectStore,
    control: VertexControl,
    model: str,
    limits: ProviderLimits,
    structured: Structured = "tool",
    keep_staging: bool = False,
    on_close: Sequence[Callable[[], None]] = (),
) -> StagedBatchProvider:
    """The ``vertex`` provider from its clients and settings."""
    records = VertexRecords(model, structured)

    def build(job: JobRequest, task: TaskSpec) -> dict[str, Any]:
        return records.body(job, task)

    files = FileLimits(max_records=limits.max_requests, max_bytes=limits.max_bytes)
    return StagedBatchProvider(
        NAME, store=store, jobs=VertexJobApi(control, model=model), codec=records, build=build,
        limits=limits, files=files, keep_staging=keep_staging, layout=LAYOUT, on_close=on_close,
    )  # fmt: skip


def _attempt_order(job: Mapping[str, Any]) -> tuple[int, str]:
    attempt = _labels(job).get(LABEL_ATTEMPT, "")
    return (int(attempt) if attempt.isdigit() else 10**9, str(job.get("createTime") or ""))


def _labels(job: Mapping[str, Any]) -> dict[str, str]:
    labels = job.get("labels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _gcs_uris(job: Mapping[str, Any]) -> list[object]:
    uris = _mapping(_mapping(job.get("inputConfig")).get("gcsSource")).get("uris")
    return list(uris) if isinstance(uris, list) else []


def _output_dir(job: Mapping[str, Any]) -> str:
    directory = _mapping(job.get("outputInfo")).get("gcsOutputDirectory")
    if not isinstance(directory, str) or not directory:
        destination = _mapping(_mapping(job.get("outputConfig")).get("gcsDestination"))
        directory = str(destination.get("outputUriPrefix") or "")
    return directory if not directory or directory.endswith("/") else directory + "/"


def _message(error: Mapping[str, Any], partial: object) -> str:
    """The job's error and its partial failures (at most 20, Vertex says), in words."""
    parts = [str(error.get("message"))] if error.get("message") else []
    failures = [_mapping(f).get("message") for f in partial] if isinstance(partial, list) else []
    texts = [str(text) for text in failures if text]
    if texts:
        parts.append(f"{len(texts)} partial failure(s): " + "; ".join(texts[:20]))
    return " | ".join(parts)[:4000]


def _counts(stats: object) -> tuple[tuple[str, int], ...]:
    """completionStats, whose int64 counts JSON carries as strings."""
    found = _mapping(stats)
    counts = []
    for key in COUNTS:
        value = found.get(key)
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            counts.append((key, int(value)))
    return tuple(counts)
