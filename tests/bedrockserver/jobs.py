"""Batch inference jobs in the test server: create, get, list, stop, and their lifecycle.

A job moves on with time (``phase_seconds`` per step): Submitted ->
Validating -> Scheduled -> InProgress -> an end. Leaving Validating reads
the input from S3 (JSONL format, the minimum records per job and the
per-file and per-job maximums); reaching the end writes the output. How
each job ends comes from the faults (``completed``, ``partial``, ``failed``,
``failed_input``, ``expired``, ``failed_midway``: failed with part of the
output written); a stop ends it ``Stopped`` with part of the output written.

Paid twice? Every record that produced an answer is counted in ``billed``
by record id, across all jobs; and a record id found in two jobs not yet
ended is a violation ("no record is ever in two live jobs").
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.bedrockserver.faults import Faults
from tests.bedrockserver.process import S3Io
from tests.bedrockserver.wire import ApiError, check_input, iso, job_arn, job_id, parse_time

STEPS = ("Submitted", "Validating", "Scheduled", "InProgress")
ENDED = {"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"}
PARTIAL_SHARE = 0.7  # of the records a PartiallyCompleted or Stopped job answers


@dataclass
class Limits:
    """The account's quotas in the test server (Bedrock's defaults, adjustable)."""

    min_records: int = 100
    max_records: int = 50_000
    max_file_records: int = 50_000
    max_jobs: int = 20


@dataclass
class Job:
    arn: str
    name: str
    token: str
    request: dict[str, Any]
    submitted: datetime
    started: float  # monotonic
    ending: str
    status: str = "Submitted"
    message: str = ""
    ended_at: datetime | None = None
    stop_at: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    record_ids: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class JobStore:
    """The jobs of one test server (thread-safe)."""

    def __init__(
        self, s3: S3Io, answer: Callable[[str, Any, bool], dict[str, Any]], *, faults: Faults,
        limits: Limits, region: str, phase_seconds: float, seed: int,
        violation: Callable[[str], None],
    ) -> None:  # fmt: skip
        self.s3, self.answer, self.faults, self.limits = s3, answer, faults, limits
        self.region, self.phase_seconds = region, phase_seconds
        self.rng = random.Random(seed)
        self.violation = violation
        self.jobs: dict[str, Job] = {}  # by ARN
        self.billed: Counter[str] = Counter()  # record id -> answers produced
        self.creates: Counter[str] = Counter()  # token -> create calls
        self._lock = threading.Lock()

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        check_input("bedrock", "CreateModelInvocationJob", params)
        token = params.get("clientRequestToken")
        with self._lock:
            self.creates[str(token)] += 1
            for job in self.jobs.values():
                if token is not None and job.token == token:
                    return {"jobArn": job.arn}  # same token: the same job, no error
                if job.name == params["jobName"]:
                    raise ApiError(400, "ConflictException", f"job {job.name} already exists")
            live = sum(1 for job in self.jobs.values() if job.status not in ENDED)
            if live >= self.limits.max_jobs:
                raise ApiError(400, "ServiceQuotaExceededException",
                               f"at most {self.limits.max_jobs} jobs in progress")  # fmt: skip
            arn = job_arn(self.region, job_id())
            now = datetime.now(UTC)
            self.jobs[arn] = Job(arn, params["jobName"], str(token or ""), params, now,
                                 time.monotonic(), self.faults.ending())  # fmt: skip
        return {"jobArn": arn}

    def get(self, identifier: str) -> dict[str, Any]:
        job = self._find(identifier)
        self._advance(job)
        return self._describe(job)

    def list(self, query: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            self._advance(job)
        name, status = query.get("nameContains"), query.get("statusEquals")
        after, before = query.get("submitTimeAfter"), query.get("submitTimeBefore")
        chosen = [
            job for job in jobs
            if (not name or name in job.name) and (not status or job.status == status)
            and (not after or job.submitted > parse_time(after))
            and (not before or job.submitted < parse_time(before))
        ]  # fmt: skip
        chosen.sort(key=lambda j: j.submitted, reverse=query.get("sortOrder") != "Ascending")
        start = int(query.get("nextToken") or 0)
        size = int(query.get("maxResults") or 1000)
        page = chosen[start : start + size]
        answer: dict[str, Any] = {"invocationJobSummaries": [self._describe(j) for j in page]}
        if start + size < len(chosen):
            answer["nextToken"] = str(start + size)
        return answer

    def stop(self, identifier: str) -> dict[str, Any]:
        job = self._find(identifier)
        self._advance(job)
        with job.lock:
            if job.status in ENDED or job.status == "Stopping":
                raise ApiError(400, "ValidationException", f"job is {job.status}: cannot stop")
            job.status, job.stop_at = "Stopping", time.monotonic()
        return {}

    def end_now(self, arn: str) -> None:
        """Let a job reach its end at the next look (tests that do not want to wait)."""
        with self.jobs[arn].lock:
            self.jobs[arn].started -= 3600

    # -- lifecycle ---------------------------------------------------------------

    def _find(self, identifier: str) -> Job:
        with self._lock:
            for job in self.jobs.values():
                if identifier in (job.arn, job.arn.rsplit("/", 1)[-1]):
                    return job
        raise ApiError(404, "ResourceNotFoundException", f"no job {identifier}")

    def _advance(self, job: Job) -> None:
        """Move the job on to where its age says it is (one thread at a time)."""
        with job.lock:
            if job.status in ENDED:
                return
            if job.status == "Stopping":
                if time.monotonic() - (job.stop_at or 0) >= self.phase_seconds:
                    self._finish(job, "Stopped")
                return
            step = (
                int((time.monotonic() - job.started) / self.phase_seconds)
                if self.phase_seconds
                else 9
            )
            for name in STEPS[STEPS.index(job.status) + 1 : step + 1]:
                if job.status == "Validating" and not self._validate(job):
                    return
                job.status = name
            if step >= len(STEPS):
                self._end(job)

    def _validate(self, job: Job) -> bool:
        """Leaving Validating: the input's format and the record quotas."""
        uri = job.request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
        try:
            ids, most = self.s3.scan(uri)
        except ValueError as exc:
            self._fail(job, f"Invalid input: {exc}")
            return False
        except Exception as exc:  # an S3 error: the role cannot read the input
            self._fail(job, f"Unable to access the input data in {uri}: {exc}")
            return False
        limits, problem, total = self.limits, "", len(ids)
        if total < limits.min_records:
            problem = (f"The number of records ({total}) is less than the minimum"
                       f" ({limits.min_records}) required for a batch inference job")  # fmt: skip
        elif total > limits.max_records or most > limits.max_file_records:
            problem = f"The input exceeds the maximum records ({total} in all, {most} in a file)"
        if problem:
            self._fail(job, problem)
            return False
        self._one_live_job(job, ids)
        job.counts["totalRecordCount"] = total
        return True

    def _end(self, job: Job) -> None:
        ending = job.ending
        if ending == "failed":
            self._fail(job, "An internal error occurred while processing the job.")
        elif ending == "failed_input":
            self._fail(job, "Invalid input: malformed modelInput in the input file.")
        elif ending == "failed_midway":  # the records processed so far are written
            self._run(job, share=PARTIAL_SHARE)
            self._fail(job, "An internal error occurred while processing the job.")
        elif ending == "expired":
            self._finish(job, "Expired", run=False)
        else:
            self._finish(job, "PartiallyCompleted" if ending == "partial" else "Completed")

    def _fail(self, job: Job, message: str) -> None:
        job.message = message
        self._finish(job, "Failed", run=False)

    def _finish(self, job: Job, status: str, *, run: bool = True) -> None:
        if run:
            self._run(job, share=1.0 if status == "Completed" else PARTIAL_SHARE)
        job.status, job.ended_at = status, datetime.now(UTC)

    def _run(self, job: Job, share: float) -> None:
        """Answer the records (a share of them when the job is cut short), write the output."""
        request = job.request
        converse = request.get("modelInvocationType") == "Converse"
        output = request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"].rstrip("/")
        ident = job.arn.rsplit("/", 1)[-1]

        def keep(record_id: str) -> bool:
            return share >= 1.0 or self.rng.random() < share

        counts = self.s3.run(
            request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"], f"{output}/{ident}/",
            lambda rid, model_input: self.answer(rid, model_input, converse), keep=keep,
            rng=self.rng,
        )  # fmt: skip
        with self._lock:
            self.billed.update(counts.billed)
        job.counts.update({k: v for k, v in counts.manifest().items() if "Token" not in k})

    def _one_live_job(self, job: Job, ids: list[str]) -> None:
        """A record already in another job not yet ended is a violation."""
        with self._lock:
            live = [j for j in self.jobs.values() if j is not job and j.status not in ENDED]
            job.record_ids = set(ids)
        for other in live:
            both = job.record_ids & other.record_ids
            if both:
                self.violation(f"{len(both)} record(s), e.g. {min(both)}, are in two live jobs:"
                               f" {job.arn} and {other.arn}")  # fmt: skip

    def _describe(self, job: Job) -> dict[str, Any]:
        request = job.request
        answer: dict[str, Any] = {
            "jobArn": job.arn, "jobName": job.name, "modelId": request["modelId"],
            "roleArn": request["roleArn"], "status": job.status, "submitTime": iso(job.submitted),
            "lastModifiedTime": iso(datetime.now(UTC)),
            "inputDataConfig": request["inputDataConfig"],
            "outputDataConfig": request["outputDataConfig"],
            "timeoutDurationInHours": request.get("timeoutDurationInHours", 24),
            "jobExpirationTime": iso(job.submitted + timedelta(hours=24)),
            "modelInvocationType": request.get("modelInvocationType", "InvokeModel"), **job.counts,
        }  # fmt: skip
        if job.token:
            answer["clientRequestToken"] = job.token
        if job.message:
            answer["message"] = job.message
        if job.ended_at is not None:
            answer["endTime"] = iso(job.ended_at)
        return answer
