"""The dispatch stage's room for tasks and jobs: what is to be summarised, and how it stands.

A *job* is (version, task fingerprint). Its states::

    queued -> submitting -> submitted -> done          (result stored)
       ^          |            |
       +----------+------------+  (retryable outcome, attempts left, after backoff)
                                -> failed              (quarantined, with the reason)

:meth:`JobLedger.retry_or_fail` and :meth:`JobLedger.fail` are the two ways
a job leaves a batch without a result; the batch and result rooms use them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from docproc.ledger.connection import Ledger
from docproc.ledger.engine import Connection, inserted_id
from docproc.models import ReadyJob, TaskSpec

RETRY_BASE_S = 60.0
RETRY_CAP_S = 3600.0
REQUEST_OVERHEAD_BYTES = 4096
CUT_MARKER_BYTES = 200

# Attempts made in the job's current round (``docproc ledger retry`` starts a new
# round without lowering ``attempts``): what ``max_attempts`` and backoff count.
ROUND = "j.attempts - j.attempts_at_retry"
# The highest attempt any request of the job was recorded with.
_LAST_ATTEMPT = "(SELECT MAX(r.attempt) FROM requests r WHERE r.job_id = j.id)"
# What a BatchItem needs besides job and attempt: the text, and a title for the prompt.
ITEM_COLUMNS = "v.text_sha256, (SELECT MIN(f.path) FROM files f WHERE f.version_id = v.id)"


@dataclass(frozen=True, slots=True)
class BatchItem:
    """A job about to go into a batch."""

    job_id: int
    attempt: int
    text_sha256: str
    title: str
    max_tokens: int | None = None  # the job's own max_tokens, after a cut-off answer
    chars: int = 0


class JobLedger:
    """Tasks and the jobs under them, as the dispatch stage moves them."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        clock: Callable[[], float] = time.time,
        retry_base: float = RETRY_BASE_S,
    ) -> None:
        self.ledger = ledger
        self.conn = ledger.conn
        self._clock = clock
        self.retry_base = retry_base  # seconds before a job's first retry; doubles each time

    def clock(self) -> float:
        """Wall-clock seconds, the time base of ``ready_at`` and backoff."""
        return self._clock()

    # -- tasks and jobs ---------------------------------------------------

    def register_task(self, spec: TaskSpec) -> str:
        """Record what a task fingerprint stands for; returns the fingerprint."""
        fingerprint = spec.fingerprint
        with self.ledger.transaction() as conn:
            if conn.execute("SELECT 1 FROM tasks WHERE fingerprint = ?", (fingerprint,)).fetchone():
                return fingerprint
            text = json.dumps(asdict(spec), sort_keys=True)
            conn.execute(
                "INSERT INTO tasks (fingerprint, spec, created_at) VALUES (?, ?, ?)",
                (fingerprint, text, self.ledger.now()),
            )
            self.ledger.event(conn, "task.registered", f"task:{fingerprint}",
                              provider=spec.provider, model=spec.model)  # fmt: skip
        return fingerprint

    def create_jobs(
        self,
        task: str,
        root_ids: Sequence[int],
        *,
        overhead: int = REQUEST_OVERHEAD_BYTES,
        max_chars: int | None = None,
    ) -> int:
        """Queue a job for every extracted version held by a live file under ``root_ids``.

        A version already summarised under another task (the prompt or model
        changed since) gets none: sending it again is ``docproc reprocess``,
        an explicit and costed decision, never a side effect of a new config.

        Each job's request size is computed from the text's JSON size (measured
        at extraction) plus ``overhead`` (the request without text or title),
        so the planner fills batches close to the provider's byte limit.
        """
        if not root_ids:
            return 0
        marks = ",".join("?" * len(root_ids))
        path_length = self.conn.dialect.byte_length("f.path")
        sql = (
            f"SELECT v.id, v.chars, v.json_bytes, (SELECT MAX({path_length})"  # noqa: S608
            " FROM files f WHERE f.version_id = v.id) FROM versions v"
            " WHERE v.state = 'extracted'"
            " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.version_id = v.id"
            "   AND (j.task = ? OR j.state = 'done'))"  # summarised under another task: kept
            " AND EXISTS (SELECT 1 FROM files f WHERE f.version_id = v.id"
            f" AND f.state = 'present' AND f.root_id IN ({marks}))"
        )
        with self.ledger.transaction() as conn:
            rows = conn.execute(sql, (task, *root_ids)).fetchall()
            now, ready_at = self.ledger.now(), self._clock()
            for version_id, chars, json_bytes, path_bytes in rows:
                size = overhead + (path_bytes or 0) + text_bytes(chars or 0, json_bytes, max_chars)
                job_id = insert_job(conn, version_id, task, now, ready_at, size)
                self.ledger.event(conn, "job.queued", f"job:{job_id}",
                                  version_id=version_id, task=task)  # fmt: skip
        return len(rows)

    def ready_jobs(self, task: str) -> list[ReadyJob]:
        """Queued jobs whose backoff (if any) is over, oldest first."""
        rows = self.conn.execute(
            "SELECT j.id, j.request_bytes, j.ready_at FROM jobs j"
            " JOIN versions v ON v.id = j.version_id AND v.state = 'extracted'"
            " WHERE j.task = ? AND j.state = 'queued' AND j.ready_at <= ?"
            " ORDER BY j.ready_at, j.id",
            (task, self._clock()),
        )
        return [ReadyJob(job_id, size, ready_at) for job_id, size, ready_at in rows]

    def text_lost(self, job_ids: Sequence[int]) -> None:
        """The stored text of these jobs' versions is gone: extract them again first."""
        with self.ledger.transaction() as conn:
            for job_id in job_ids:
                conn.execute(
                    "UPDATE versions SET state = 'pending' WHERE id ="
                    " (SELECT version_id FROM jobs WHERE id = ?)",
                    (job_id,),
                )
                self.ledger.event(conn, "job.text_lost", f"job:{job_id}")

    def pending_jobs(self, task: str) -> int:
        row = self.conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE task = ? AND state IN"
            " ('queued', 'submitting', 'submitted')",
            (task,),
        ).fetchone()
        return int(row[0])

    def batch_items(self, job_ids: Sequence[int]) -> list[BatchItem]:
        """What building the requests of these jobs needs, in the given order."""
        found: dict[int, BatchItem] = {}
        for chunk in chunks(list(job_ids), 500):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT j.id, j.attempts, {_LAST_ATTEMPT}, {ITEM_COLUMNS}, j.max_tokens,"  # noqa: S608
                f" v.chars FROM jobs j JOIN versions v ON v.id = j.version_id"
                f" WHERE j.id IN ({marks})",
                chunk,
            )
            for job_id, attempts, last_sent, *rest in rows:
                found[job_id] = make_item(job_id, next_attempt(attempts, last_sent), *rest)
        return [found[job_id] for job_id in job_ids if job_id in found]

    def attempt_failed(self, conn: Connection, job_id: int, reason: str, max_attempts: int) -> str:
        """An attempt of this job failed before it reached the provider: count it (so its
        custom_id is never built again) and retry after a backoff, or quarantine."""
        conn.execute("UPDATE jobs SET attempts = attempts + 1 WHERE id = ?", (job_id,))
        row = conn.execute(
            f"SELECT {ROUND} FROM jobs j WHERE j.id = ?",  # noqa: S608
            (job_id,),
        ).fetchone()
        return self.retry_or_fail(conn, job_id, int(row[0]), reason, max_attempts)

    def fail_job(self, job_id: int, reason: str) -> None:
        """Quarantine one job with a reason (e.g. too large to batch)."""
        with self.ledger.transaction() as conn:
            self.fail(conn, job_id, reason)

    def fail(self, conn: Connection, job_id: int, reason: str) -> str:
        """Quarantine the job, inside the caller's transaction; returns ``failed``."""
        conn.execute(
            "UPDATE jobs SET state = 'failed', error = ?, updated_at = ? WHERE id = ?",
            (reason, self.ledger.now(), job_id),
        )
        self.ledger.event(conn, "job.failed", f"job:{job_id}", reason=reason)
        return "failed"

    def retry_or_fail(
        self, conn: Connection, job_id: int, attempts: int, reason: str, max_attempts: int
    ) -> str:
        """Queue the job again after a backoff, or quarantine it when its round's
        ``attempts`` reached ``max_attempts``; returns ``requeued`` or ``failed``."""
        if attempts >= max_attempts:
            return self.fail(conn, job_id, f"gave up after {attempts} attempts: {reason}")
        delay = min(RETRY_CAP_S, self.retry_base * 2 ** max(0, attempts - 1))
        conn.execute(
            "UPDATE jobs SET state = 'queued', error = ?, ready_at = ?, updated_at = ?"
            " WHERE id = ?",
            (reason, self._clock() + delay, self.ledger.now(), job_id),
        )
        self.ledger.event(conn, "job.requeued", f"job:{job_id}", reason=reason, delay_s=delay)
        return "requeued"


def next_attempt(attempts: int, last_sent: int | None) -> int:
    """The attempt number of a job's next request: above every attempt made or recorded.

    Both are looked at so that a custom_id (``j<job>-a<attempt>``) is never
    built twice, even from a ledger whose ``attempts`` was lowered by an older
    docproc.
    """
    return max(attempts, last_sent or 0) + 1


def make_item(
    job_id: int,
    attempt: int,
    text_sha256: str,
    path: str | None,
    max_tokens: int | None = None,
    chars: int | None = None,
) -> BatchItem:
    title = (path or "").rsplit("/", 1)[-1]
    return BatchItem(job_id, attempt, text_sha256, title, max_tokens, chars or 0)


def text_bytes(chars: int, json_bytes: int | None, max_chars: int | None) -> int:
    """The bytes a text adds to a request: exact when measured and not cut, else a bound."""
    if max_chars is not None and chars > max_chars:
        return max_chars * 6 + CUT_MARKER_BYTES  # every character escaped, at worst
    if json_bytes is not None:
        return json_bytes
    return chars * 6  # measured before docproc recorded it: the worst case


def chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def insert_job(
    conn: Connection, version_id: int, task: str, now: str, ready_at: float, size: int
) -> int:
    """A queued job for ``version_id`` under ``task``, ``size`` bytes to send; its id."""
    return inserted_id(
        conn.execute(
            "INSERT INTO jobs (version_id, task, state, created_at, updated_at,"
            " ready_at, request_bytes) VALUES (?, ?, 'queued', ?, ?, ?, ?) RETURNING id",
            (version_id, task, now, now, ready_at, size),
        )
    )
