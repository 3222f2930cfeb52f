"""Batch prediction jobs in the Vertex AI test server: create, get, list, cancel,
lifecycle.

A job moves on with time (``phase_seconds`` per step): QUEUED -> PENDING -> RUNNING ->
an end. Leaving PENDING reads the input objects from the shared Cloud Storage store
(each line ``{"custom_id", "request"}``, ids unique); the end writes the output where
Vertex would, ``<outputUriPrefix>/prediction-model-<time>/predictions_0001.jsonl`` ...,
lines shuffled, each ``{"custom_id", "request", "response", "status"}``; with
``error_files``, the failed lines go to ``errors_0001.jsonl`` ... instead, as the input
line plus ``error``, a google.rpc.Status ``{code, message}`` (the REST reference's
layout). How each job ends comes from the faults: ``succeeded``; ``missing`` (succeeded,
some lines absent); ``partial`` (PARTIALLY_SUCCEEDED, lines absent, partialFailures);
``failed`` (INTERNAL); ``failed_input`` (INVALID_ARGUMENT); ``expired``;
``failed_midway`` and ``expired_midway`` (that end, with the rows completed so far
written). A cancel ends it CANCELLED with part of the output written.

Paid twice? Every line answered with a response is counted in ``billed`` by custom_id,
across all jobs; a custom_id found in two jobs not yet ended is a violation ("no request
is ever in two live jobs").
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.bedrockserver.model import RecordError
from tests.gcsserver.store import GcsStore, StoreError
from tests.vertexserver.wire import (
    STATUS,
    ApiError,
    encoded,
    invalid,
    matches,
    parse_filter,
    rfc3339,
    validate,
)

QUEUED, PENDING, RUNNING = "JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING"
STEPS = (QUEUED, PENDING, RUNNING)
SUCCEEDED, PARTIAL = "JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"
FAILED, CANCELLING, CANCELLED = "JOB_STATE_FAILED", "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED"
EXPIRED = "JOB_STATE_EXPIRED"
ENDED = {SUCCEEDED, PARTIAL, FAILED, CANCELLED, EXPIRED}
ENDINGS = ("succeeded", "missing", "partial", "failed", "failed_input", "expired",
           "failed_midway", "expired_midway")  # fmt: skip
PARTIAL_SHARE = 0.7  # of the records a partial or cancelled job answers
MISSING_SHARE = 0.05  # of the lines a "missing" job leaves out
RPC_CODES = {"error400": 3, "error429": 8, "error500": 13}  # google.rpc codes of line errors


@dataclass
class JobFaults:
    """How jobs end and what happens to records.

    Args:
        endings: how successive jobs end (then ``succeeded``); see ``ENDINGS``.
        record_errors: share of records answered with an error status (400, 429 or 500).
        no_response: share of records whose line has neither response nor status.
        no_json: share of records answered in prose without the JSON asked for.
        error_files: failed records go to ``errors_*.jsonl`` with a google.rpc.Status.
        echoed: share of answered records also written to an errors file (a retry
            inside Vertex that failed after one that succeeded).
    """

    endings: list[str] = field(default_factory=list)
    record_errors: float = 0.0
    no_response: float = 0.0
    no_json: float = 0.0
    error_files: bool = False
    echoed: float = 0.0
    seed: int = 1
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if any(ending not in ENDINGS for ending in self.endings):
            raise ValueError(f"unknown job ending in {self.endings}")
        self.endings = list(self.endings)

    def ending(self) -> str:
        with self._lock:
            return self.endings.pop(0) if self.endings else "succeeded"

    def record(self, custom_id: str) -> str:
        """ok, no_json, no_response, or error400 / error429 / error500."""
        digest = hashlib.sha256(f"{self.seed}/{custom_id}".encode()).digest()
        roll = int.from_bytes(digest[:4], "big") / 2**32
        if roll < self.record_errors:
            return ("error400", "error429", "error500")[digest[4] % 3]
        if roll < self.record_errors + self.no_response:
            return "no_response"
        if roll < self.record_errors + self.no_response + self.no_json:
            return "no_json"
        return "ok"


@dataclass
class Job:
    name: str
    body: dict[str, Any]
    created: datetime
    started: float  # monotonic
    ending: str
    state: str = QUEUED
    error: dict[str, Any] | None = None
    partial_failures: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    output_dir: str = ""
    ended_at: datetime | None = None
    cancel_at: float | None = None
    custom_ids: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.body.get("labels") or {})


Answer = Callable[[str, Any, str], dict[str, Any]]  # (custom_id, request, style) -> response


class JobStore:
    """The jobs of one test server (thread-safe)."""

    def __init__(
        self, gcs: GcsStore, answer: Answer, *, faults: JobFaults, max_jobs: int,
        project_number: str, location: str, phase_seconds: float, seed: int,
        violation: Callable[[str], None], lines_per_file: int = 10_000,
    ) -> None:  # fmt: skip
        self.gcs, self.answer, self.faults, self.max_jobs = gcs, answer, faults, max_jobs
        self.project_number, self.location = project_number, location
        self.phase_seconds, self.lines_per_file = phase_seconds, lines_per_file
        self.rng = random.Random(seed)
        self.violation = violation
        self.jobs: dict[str, Job] = {}  # by numeric id
        self.billed: Counter[str] = Counter()  # custom_id -> answers produced
        self._lock = threading.Lock()
        self._next = 1000 + seed

    # -- the API ---------------------------------------------------------------------

    def create(self, location: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check_location(location)
        validate(body)
        with self._lock:
            live = sum(1 for job in self.jobs.values() if job.state not in ENDED)
            if live >= self.max_jobs:
                raise ApiError(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric"
                               " 'Concurrent batch prediction jobs' (limit"
                               f" {self.max_jobs}).")  # fmt: skip
            self._next += 1
            ident = str(self._next * 7919 % 10**12 + 10**15)
            parent = f"projects/{self.project_number}/locations/{self.location}"
            name = f"{parent}/batchPredictionJobs/{ident}"
            job = Job(name, body, datetime.now(UTC), time.monotonic(), self.faults.ending())
            self.jobs[ident] = job
        return self.describe(job)

    def get(self, location: str, ident: str) -> dict[str, Any]:
        job = self._find(location, ident)
        self._advance(job)
        return self.describe(job)

    def list(self, location: str, query: dict[str, str]) -> dict[str, Any]:
        self._check_location(location)
        terms = parse_filter(query.get("filter", ""))
        with self._lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            self._advance(job)
        chosen = sorted((j for j in jobs if matches(j, terms)), key=lambda j: j.created,
                        reverse=True)  # fmt: skip
        start = int(query.get("pageToken") or 0)
        size = int(query.get("pageSize") or 100)
        if not 1 <= size <= 1000:
            raise ApiError(400, "INVALID_ARGUMENT", "pageSize out of range", violation=True)
        answer: dict[str, Any] = {}
        page = chosen[start : start + size]
        if page:
            answer["batchPredictionJobs"] = [self.describe(j) for j in page]
        if start + size < len(chosen):
            answer["nextPageToken"] = str(start + size)
        return answer

    def cancel(self, location: str, ident: str) -> dict[str, Any]:
        job = self._find(location, ident)
        self._advance(job)
        with job.lock:
            if job.state in ENDED or job.state == CANCELLING:
                raise ApiError(
                    400,
                    "FAILED_PRECONDITION",
                    f"Batch prediction job is in state {job.state}: cannot cancel.",
                )
            job.state, job.cancel_at = CANCELLING, time.monotonic()
        return {}

    def end_now(self, name: str) -> None:
        """Let a job reach its end at the next look (tests that do not want to wait)."""
        job = self.jobs[name.rsplit("/", 1)[-1]]
        with job.lock:
            job.started -= 3600

    # -- lifecycle -----------------------------------------------------------------

    def _find(self, location: str, ident: str) -> Job:
        self._check_location(location)
        with self._lock:
            job = self.jobs.get(ident)
        if job is None:
            raise ApiError(404, "NOT_FOUND", f"The BatchPredictionJob {ident} does not exist.")
        return job

    def _check_location(self, location: str) -> None:
        if location != self.location:
            raise ApiError(400, "INVALID_ARGUMENT", f"location {location} does not match the"
                           f" endpoint's ({self.location})", violation=True)  # fmt: skip

    def _advance(self, job: Job) -> None:
        """Move the job on to where its age says it is (one thread at a time)."""
        with job.lock:
            if job.state in ENDED:
                return
            if job.state == CANCELLING:
                if time.monotonic() - (job.cancel_at or 0) >= self.phase_seconds:
                    ran = bool(job.custom_ids)
                    self._finish(job, CANCELLED, share=PARTIAL_SHARE if ran else 0.0)
                return
            step = int((time.monotonic() - job.started) / self.phase_seconds) if \
                self.phase_seconds else 9  # fmt: skip
            for state in STEPS[STEPS.index(job.state) + 1 : step + 1]:
                if job.state == PENDING and not self._start(job):
                    return
                job.state = state
            if step >= len(STEPS):
                self._end(job)

    def _start(self, job: Job) -> bool:
        """Leaving PENDING: read the input; a record already in another live job is a violation."""
        try:
            ids = [custom_id for custom_id, _ in self._records(job)]
        except ApiError as err:
            self._fail(job, 3 if err.word == "INVALID_ARGUMENT" else 9, err.message)
            return False
        with self._lock:
            live = [j for j in self.jobs.values() if j is not job and j.state not in ENDED]
            job.custom_ids = set(ids)
        for other in live:
            both = job.custom_ids & other.custom_ids
            if both:
                self.violation(f"{len(both)} request(s), e.g. {min(both)}, are in two live jobs:"
                               f" {job.name} and {other.name}")  # fmt: skip
        job.stats["total"] = len(ids)
        return True

    def _end(self, job: Job) -> None:
        ending = job.ending
        if ending == "failed":
            self._fail(job, 13, "Internal error occurred. Please retry in a few minutes.")
        elif ending == "failed_input":
            self._fail(job, 3, "Invalid input: the request schema is not valid for the model.")
        elif ending == "failed_midway":  # terminated: the completed rows are exported
            self._run(job, PARTIAL_SHARE)
            self._fail(job, 13, "Internal error occurred while running the job.")
        elif ending in ("expired", "expired_midway"):
            self._finish(job, EXPIRED, share=PARTIAL_SHARE if ending == "expired_midway" else 0)
        elif ending == "partial":
            job.partial_failures = [{"code": 13, "message": "Some requests did not complete."}]
            self._finish(job, PARTIAL, share=PARTIAL_SHARE)
        else:
            self._finish(job, SUCCEEDED, share=1.0 - (MISSING_SHARE if ending == "missing" else 0))

    def _fail(self, job: Job, code: int, message: str) -> None:
        job.error = {"code": code, "message": message}
        self._finish(job, FAILED, share=0.0)

    def _finish(self, job: Job, state: str, *, share: float) -> None:
        if share > 0:
            self._run(job, share)
        job.state, job.ended_at = state, datetime.now(UTC)

    def _run(self, job: Job, share: float) -> None:
        """Answer a share of the records, write the output files (lines shuffled)."""
        prefix = job.body["outputConfig"]["gcsDestination"]["outputUriPrefix"].rstrip("/")
        stamp = job.created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        job.output_dir = f"{prefix}/prediction-model-{stamp}"
        bucket, _, folder = job.output_dir.removeprefix("gs://").partition("/")
        lines: list[bytes] = []
        errors: list[bytes] = []
        ok = failed = files = 0

        def flush() -> None:
            nonlocal files, lines, errors
            self.rng.shuffle(lines)  # the order of the output is not the input's
            files += 1
            self.gcs.put_lines(bucket, f"{folder}/predictions_{files:04d}.jsonl", lines)
            if errors:
                self.gcs.put_lines(bucket, f"{folder}/errors_{files:04d}.jsonl", errors)
            lines, errors = [], []

        for custom_id, request in self._records(job):
            if share < 1.0 and self.rng.random() >= share:
                continue
            line, answered = self._line(custom_id, request)
            failure = self._failure_line(custom_id, request, line, answered)
            (lines if failure is None else errors).append(line if failure is None else failure)
            if answered and self.rng.random() < self.faults.echoed:
                errors.append(self._error_line(custom_id, request, "error500"))
            ok, failed = ok + answered, failed + (not answered)
            if len(lines) + len(errors) >= self.lines_per_file:
                flush()
        if lines or errors or not files:
            flush()
        total = job.stats.get("total", ok + failed)
        job.stats.update(successful=ok, failed=failed, incomplete=total - ok - failed)

    def _line(self, custom_id: str, request: Any) -> tuple[bytes, bool]:
        fault = self.faults.record(custom_id)
        out: dict[str, Any] = {"custom_id": custom_id, "request": request}
        if fault.startswith("error"):
            out["status"] = STATUS[fault]
            return encoded(out), False
        if fault == "no_response":
            return encoded(out), False
        try:
            out["response"] = self.answer(custom_id, request, fault)
        except RecordError as err:
            self.violation(f"request {custom_id} refused: {err.message}")
            out["status"] = f"Bad Request: {json.dumps(invalid(err.message))}"
            return encoded(out), False
        out["status"] = ""
        with self._lock:
            self.billed[custom_id] += 1
        return encoded(out), True

    def _failure_line(
        self, custom_id: str, request: Any, line: bytes, answered: bool
    ) -> bytes | None:
        """With ``error_files``, the errors-file line of a failed record (else None)."""
        fault = self.faults.record(custom_id)
        if answered or not self.faults.error_files or not fault.startswith("error"):
            return None
        return self._error_line(custom_id, request, fault)

    @staticmethod
    def _error_line(custom_id: str, request: Any, fault: str) -> bytes:
        error = {"code": RPC_CODES[fault], "message": STATUS[fault]}
        return encoded({"custom_id": custom_id, "request": request, "error": error})

    def _records(self, job: Job) -> Iterator[tuple[str, Any]]:
        """(custom_id, request) of every input line; ApiError for unreadable input."""
        seen: set[str] = set()
        for uri in job.body["inputConfig"]["gcsSource"]["uris"]:
            bucket, _, name = uri.removeprefix("gs://").partition("/")
            try:
                self.gcs.get(bucket, name)
            except StoreError as err:
                raise ApiError(400, "FAILED_PRECONDITION", f"Unable to read {uri}: {err}") from None
            for number, raw in enumerate(self.gcs.lines(bucket, name), start=1):
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    raise ApiError(400, "INVALID_ARGUMENT", f"{uri} line {number} is not JSON",
                                   violation=True) from None  # fmt: skip
                custom_id = line.get("custom_id") if isinstance(line, dict) else None
                if not isinstance(custom_id, str) or custom_id in seen or "request" not in line:
                    self.violation(f"{uri} line {number}: bad or duplicate custom_id")
                    raise ApiError(400, "INVALID_ARGUMENT", f"{uri} line {number}: bad custom_id")
                seen.add(custom_id)
                yield custom_id, line["request"]

    def describe(self, job: Job) -> dict[str, Any]:
        body = job.body
        answer: dict[str, Any] = {
            "name": job.name, "displayName": body["displayName"], "model": body["model"],
            "inputConfig": body["inputConfig"], "outputConfig": body["outputConfig"],
            "state": job.state, "createTime": rfc3339(job.created),
            "updateTime": rfc3339(datetime.now(UTC)), "labels": job.labels,
            "modelVersionId": "1",
        }  # fmt: skip
        if job.state not in (QUEUED, PENDING):
            answer["startTime"] = rfc3339(job.created)
        if job.stats.get("successful") is not None:
            answer["completionStats"] = {
                k + "Count": str(job.stats[k]) for k in ("successful", "failed", "incomplete")
            }
        if job.output_dir:
            answer["outputInfo"] = {"gcsOutputDirectory": job.output_dir}
        if job.error:
            answer["error"] = job.error
        if job.partial_failures:
            answer["partialFailures"] = job.partial_failures
        if job.ended_at is not None:
            answer["endTime"] = rfc3339(job.ended_at)
        return answer
