"""The ledger's second half: jobs, batches, per-request results and sidecars.

A *job* is (version, task fingerprint). Its states::

    queued -> submitting -> submitted -> done          (result stored)
       ^          |            |
       +----------+------------+  (retryable outcome, attempts left, after backoff)
                                -> failed              (quarantined, with the reason)

A batch is written ``planned`` with its request rows (custom_ids) *before*
the provider's create call, and ``submitted`` with the provider's id right
after; ``ended`` when the provider says so; ``applied`` once every result is
recorded. Sidecars are recorded ``writing`` (with the sha256 of the bytes
about to be written) before the write and ``written`` after it, so after a
crash a file at the target whose bytes match is known to be docproc's own.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import structlog

from docproc.costs import PriceTable
from docproc.errors import brief
from docproc.ledger.base import Ledger, Row
from docproc.ledger.retries import cleared
from docproc.models import (
    Highlight,
    OutputProblem,
    ProviderResult,
    ReadyJob,
    ResultKind,
    TaskSpec,
)

log = structlog.get_logger()
RETRY_BASE_S = 60.0
RETRY_CAP_S = 3600.0
REQUEST_OVERHEAD_BYTES = 4096
CUT_MARKER_BYTES = 200
COST_GROUPS = ("day", "model", "root", "batch_id", "tier")
NO_RETRY = "canceled by an operator without retry (docproc cancel --no-retry)"
MAX_TOKENS_GROWTH = 2  # a response cut off at max_tokens is retried once with this much more room


# (batch_id, job_id, custom_id, attempt, text_cut_from): one row of ``requests`` to insert.
RequestRow = tuple[int, int, str, int, int | None]


@dataclass(frozen=True, slots=True)
class BatchItem:
    """A job about to go into a batch."""

    job_id: int
    attempt: int
    text_sha256: str
    title: str
    max_tokens: int | None = None  # the job's own max_tokens, after a cut-off answer
    chars: int = 0


@dataclass(frozen=True, slots=True)
class Applied:
    """How one chunk of results changed the jobs."""

    done: int = 0
    requeued: int = 0
    failed: int = 0
    ignored: int = 0


class WorkLedger:
    """Job, batch and sidecar transitions on top of a :class:`Ledger`."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        clock: Callable[[], float] = time.time,
        prices: PriceTable | None = None,
        retry_base: float = RETRY_BASE_S,
    ) -> None:
        self.ledger = ledger
        self.conn = ledger.db.conn
        self._clock = clock
        self.prices = prices or PriceTable()
        self.retry_base = retry_base  # seconds before a job's first retry; doubles each time
        self._instance: str | None = None

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
        sql = (
            "SELECT v.id, v.chars, v.json_bytes, (SELECT MAX(LENGTH(CAST(f.path AS BLOB)))"  # noqa: S608
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
                size = overhead + (path_bytes or 0) + _text_bytes(chars or 0, json_bytes, max_chars)
                cur = conn.execute(
                    "INSERT INTO jobs (version_id, task, state, created_at, updated_at,"
                    " ready_at, request_bytes) VALUES (?, ?, 'queued', ?, ?, ?, ?)",
                    (version_id, task, now, now, ready_at, size),
                )
                self.ledger.event(conn, "job.queued", f"job:{cur.lastrowid}",
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
        for chunk in _chunks(list(job_ids), 500):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT j.id, j.attempts, {_LAST_ATTEMPT}, {_ITEM_COLUMNS}, j.max_tokens,"  # noqa: S608
                f" v.chars FROM jobs j JOIN versions v ON v.id = j.version_id"
                f" WHERE j.id IN ({marks})",
                chunk,
            )
            for job_id, attempts, last_sent, *rest in rows:
                found[job_id] = _item(job_id, next_attempt(attempts, last_sent), *rest)
        return [found[job_id] for job_id in job_ids if job_id in found]

    # -- batches ----------------------------------------------------------

    def create_batch(
        self,
        provider: str,
        items: Sequence[tuple[BatchItem, str]],
        request_bytes: int,
        *,
        model: str = "",
        estimated_cost: float = 0.0,
        max_chars: int | None = None,
        max_attempts: int = 10**6,
        tier: str = "batch",
    ) -> int | None:
        """Record a batch and its requests *before* the provider's create call.

        ``estimated_cost`` is reserved against the budget until the results
        arrive; a request whose text is longer than ``max_chars`` records the cut.
        A request that cannot be recorded (say, its custom_id is already taken)
        stays out of the batch, and its job is set back (the attempt counted,
        retried after a backoff or quarantined) with the reason: one bad row
        never stops the others (issue 16). Returns the batch id, or None when
        no request could be recorded; :meth:`batch_requests` says what is in it.
        The batch's idempotency token (:meth:`submit_token`) is recorded with it,
        and its first create attempt (:meth:`create_attempt`);
        ``tier`` is ``batch``, or ``live`` for requests sent through a live API.
        """
        with self.ledger.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO batches (provider, request_count, request_bytes, created_at, model,"
                " estimated_cost_usd, tier, create_attempts) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
                (provider, len(items), request_bytes, self.ledger.now(), model or None,
                 estimated_cost, tier),
            )  # fmt: skip
            batch_id = int(cur.lastrowid or 0)
            conn.execute(
                "UPDATE batches SET submit_token = ? WHERE id = ?",
                (self.submit_token(batch_id), batch_id),
            )
            rows = [
                (batch_id, item.job_id, cid, item.attempt,
                 item.chars if max_chars is not None and item.chars > max_chars else None)
                for item, cid in items
            ]  # fmt: skip
            recorded = self._record_requests(conn, rows, max_attempts)
            if recorded == 0:
                conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
                return None
            if recorded < len(rows):
                conn.execute(
                    "UPDATE batches SET request_count = ? WHERE id = ?", (recorded, batch_id)
                )
            self.ledger.event(conn, "batch.planned", f"batch:{batch_id}", provider=provider,
                              requests=recorded, bytes=request_bytes, tier=tier,
                              submit_token=self.submit_token(batch_id),
                              estimated_cost_usd=round(estimated_cost, 6))  # fmt: skip
        return batch_id

    @property
    def instance(self) -> str:
        """This ledger's random id (``m009_ledger_identity``; never changes)."""
        if self._instance is None:
            self._instance = self.ledger.identity()
        return self._instance

    def submit_token(self, batch_id: int) -> str:
        """The batch's idempotency token, unique to this ledger, e.g. ``docproc-3f9a2c1b-b42``.

        Fit for every platform's rules at once: a Bedrock ``jobName`` and
        ``clientRequestToken``, a Vertex label value, an S3 key segment.
        """
        return f"docproc-{self.instance}-b{batch_id}"

    def _record_requests(
        self, conn: sqlite3.Connection, rows: Sequence[RequestRow], max_attempts: int
    ) -> int:
        """Insert request rows and move their jobs to ``submitting``; how many went in.

        All at once first; if that fails, one by one, so that only the rows at
        fault stay out (their jobs set back with the reason).
        """
        try:
            with self.ledger.savepoint(conn):
                self._insert_requests(conn, rows)
        except Exception:  # noqa: BLE001 - some row is at fault: find which, below
            log.warning("batch.requests_refused", requests=len(rows))
        else:
            return len(rows)
        recorded = 0
        for row in rows:
            try:
                with self.ledger.savepoint(conn):
                    self._insert_requests(conn, [row])
            except Exception as exc:  # noqa: BLE001 - this row alone: its job is set back
                reason = f"its request {row[2]} could not be recorded: {brief(exc)}"
                log.warning("job.request_refused", job_id=row[1], reason=reason)
                self.attempt_failed(conn, row[1], reason, max_attempts)
            else:
                recorded += 1
        return recorded

    def _insert_requests(self, conn: sqlite3.Connection, rows: Sequence[RequestRow]) -> None:
        conn.executemany(
            "INSERT INTO requests (batch_id, job_id, custom_id, attempt, text_cut_from)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(  # attempts only grow (see ledger.invariants)
            "UPDATE jobs SET state = 'submitting', updated_at = ?,"
            " attempts = CASE WHEN attempts < ? THEN ? ELSE attempts END WHERE id = ?",
            [(self.ledger.now(), attempt, attempt, job_id) for _, job_id, _, attempt, _ in rows],
        )

    def attempt_failed(
        self, conn: sqlite3.Connection, job_id: int, reason: str, max_attempts: int
    ) -> str:
        """An attempt of this job failed before it reached the provider: count it (so its
        custom_id is never built again) and retry after a backoff, or quarantine."""
        conn.execute("UPDATE jobs SET attempts = attempts + 1 WHERE id = ?", (job_id,))
        row = conn.execute(
            f"SELECT {_ROUND} FROM jobs j WHERE j.id = ?",  # noqa: S608
            (job_id,),
        ).fetchone()
        return self._retry_or_fail(conn, job_id, int(row[0]), reason, max_attempts)

    def batch_submitted(self, batch_id: int, provider_batch_id: str) -> None:
        """The provider accepted the batch: record its id."""
        with self.ledger.transaction() as conn:
            conn.execute(
                "UPDATE batches SET state = 'submitted', provider_batch_id = ?, submitted_at = ?,"
                " error = NULL WHERE id = ?",
                (provider_batch_id, self.ledger.now(), batch_id),
            )
            conn.execute(
                "UPDATE jobs SET state = 'submitted' WHERE id IN"
                " (SELECT job_id FROM requests WHERE batch_id = ?) AND state = 'submitting'",
                (batch_id,),
            )
            self.ledger.event(conn, "batch.submitted", f"batch:{batch_id}",
                              provider_batch_id=provider_batch_id)  # fmt: skip

    def batch_not_created(self, batch_id: int, reason: str, max_attempts: int) -> None:
        """The create call certainly failed: nothing was created; requeue its jobs."""
        with self.ledger.transaction() as conn:
            conn.execute(
                "UPDATE batches SET state = 'failed', error = ? WHERE id = ?", (reason, batch_id)
            )
            self.ledger.event(conn, "batch.failed", f"batch:{batch_id}", reason=reason)
            jobs = conn.execute(
                f"SELECT j.id, {_ROUND} FROM jobs j JOIN requests r ON r.job_id = j.id"  # noqa: S608
                " WHERE r.batch_id = ? AND j.state = 'submitting'",
                (batch_id,),
            ).fetchall()
            for job_id, attempts in jobs:
                self._retry_or_fail(conn, job_id, attempts, reason, max_attempts)

    def create_attempt(self, batch_id: int) -> int:
        """Number the next create call of a planned batch, before it is made; the number."""
        with self.ledger.transaction() as conn:
            conn.execute(
                "UPDATE batches SET create_attempts = create_attempts + 1 WHERE id = ?",
                (batch_id,),
            )
            (attempt,) = conn.execute(
                "SELECT create_attempts FROM batches WHERE id = ?", (batch_id,)
            ).fetchone()
            self.ledger.event(conn, "batch.create_attempt", f"batch:{batch_id}", attempt=attempt)
        return int(attempt)

    def batch_note(self, batch_id: int, note: str | None) -> None:
        """Record why a batch is waiting (a failed call and its next try), or clear it
        (None); no state change."""
        with self.ledger.transaction() as conn:
            conn.execute("UPDATE batches SET error = ? WHERE id = ?", (note, batch_id))

    def create_unknown(self, batch_id: int, reason: str) -> None:
        """A create may or may not have reached the provider: reconcile before resending."""
        with self.ledger.transaction() as conn:
            conn.execute(
                "UPDATE batches SET error = ? WHERE id = ?",
                (f"create outcome unknown: {reason}", batch_id),
            )
            self.ledger.event(conn, "batch.create_unknown", f"batch:{batch_id}", reason=reason)

    def batch_ended(self, batch_id: int, status: str = "", detail: str = "") -> None:
        """The provider says the batch ended; ``status`` and ``detail`` (JSON) are its words."""
        with self.ledger.transaction() as conn:
            conn.execute(
                "UPDATE batches SET state = 'ended', ended_at = ?,"
                " provider_status = COALESCE(?, provider_status),"
                " provider_detail = COALESCE(?, provider_detail)"
                " WHERE id = ? AND state != 'ended'",
                (self.ledger.now(), status or None, detail or None, batch_id),
            )
            self.ledger.event(conn, "batch.ended", f"batch:{batch_id}", status=status or None)

    def batch_progress(self, batch_id: int, status: str, detail: str = "") -> None:
        """What the provider last said of a batch in flight (e.g. ``Validating``); an event
        when the status changes, so the ledger shows how long each stage took."""
        with self.ledger.transaction() as conn:
            row = conn.execute(
                "SELECT provider_status FROM batches WHERE id = ?", (batch_id,)
            ).fetchone()
            conn.execute(
                "UPDATE batches SET provider_status = ?, provider_detail = ? WHERE id = ?",
                (status, detail or None, batch_id),
            )
            if row is not None and row[0] != status:
                self.ledger.event(conn, "batch.progress", f"batch:{batch_id}", status=status)

    def batch_applied(self, batch_id: int) -> None:
        """Every result is recorded; requests without one are requeued."""
        with self.ledger.transaction() as conn:
            conn.execute(
                "UPDATE batches SET state = 'applied', applied_at = ? WHERE id = ?",
                (self.ledger.now(), batch_id),
            )
            missing = conn.execute(
                f"SELECT r.job_id, {_ROUND} FROM requests r JOIN jobs j ON j.id = r.job_id"  # noqa: S608
                " WHERE r.batch_id = ? AND r.state = 'pending' AND j.state = 'submitted'",
                (batch_id,),
            ).fetchall()
            conn.execute(
                "UPDATE requests SET state = 'missing' WHERE batch_id = ? AND state = 'pending'",
                (batch_id,),
            )
            (cancel_retry,) = conn.execute(
                "SELECT cancel_retry FROM batches WHERE id = ?", (batch_id,)
            ).fetchone()
            for job_id, attempts in missing:
                if cancel_retry == 0:  # canceled by an operator, without retry
                    self._fail(conn, job_id, NO_RETRY)
                    continue
                self._retry_or_fail(conn, job_id, attempts, "no result for this request", 10**6)
            self.ledger.event(conn, "batch.applied", f"batch:{batch_id}", missing=len(missing))

    def batch_lost(self, batch_id: int, reason: str) -> int:
        """The provider no longer knows a submitted batch: requeue what it held."""
        with self.ledger.transaction() as conn:
            conn.execute(
                "UPDATE batches SET state = 'lost', error = ?, applied_at = ? WHERE id = ?",
                (reason, self.ledger.now(), batch_id),
            )
            pending = conn.execute(
                f"SELECT r.job_id, {_ROUND} FROM requests r JOIN jobs j ON j.id = r.job_id"  # noqa: S608
                " WHERE r.batch_id = ? AND r.state = 'pending'"
                " AND j.state IN ('submitted', 'submitting')",
                (batch_id,),
            ).fetchall()
            conn.execute(
                "UPDATE requests SET state = 'missing' WHERE batch_id = ? AND state = 'pending'",
                (batch_id,),
            )
            for job_id, attempts in pending:
                self._retry_or_fail(conn, job_id, attempts, f"batch lost: {reason}", 10**6)
            self.ledger.event(conn, "batch.lost", f"batch:{batch_id}", reason=reason,
                              requeued=len(pending))  # fmt: skip
        return len(pending)

    def submission_paused(self, reason: str | None) -> None:
        """Record that submission paused (with why) or resumed; ``docproc status`` reads it."""
        self._set_condition("submission.paused", "submission.resumed", "dispatch", reason)

    def submission_waiting(self, reason: str | None) -> None:
        """Record that small batches wait (below the provider's minimum), or no longer do."""
        self._set_condition("submission.waiting", "submission.waiting_over", "dispatch", reason)

    def waiting_reason(self) -> str | None:
        """Why ready documents wait for a bigger batch, as the daemon last recorded it."""
        return self._condition("submission.waiting", "submission.waiting_over")

    def cancel_requested(self, batch_id: int, *, retry: bool = True, by: str = "") -> None:
        """Someone asked the provider to cancel this batch (it still ends and is applied).

        ``retry``: its canceled requests are sent again (with backoff); without,
        they are quarantined (``docproc ledger retry`` sends them later).
        """
        with self.ledger.transaction() as conn:
            conn.execute("UPDATE batches SET cancel_retry = ? WHERE id = ?", (int(retry), batch_id))
            self.ledger.event(conn, "batch.cancel_requested", f"batch:{batch_id}", retry=retry,
                              by=by)  # fmt: skip

    def provider_batch_ids(self) -> set[str]:
        """Every provider batch id the ledger holds (reconciliation must not adopt these)."""
        rows = self.conn.execute(
            "SELECT provider_batch_id FROM batches WHERE provider_batch_id IS NOT NULL"
        )
        return {row[0] for row in rows}

    def find_batch(self, ident: str) -> Row | None:
        """A batch by ledger id or provider id."""
        column = "id" if ident.isdigit() else "provider_batch_id"
        rows = list(self.ledger.db.query(f"SELECT * FROM batches WHERE {column} = ?", [ident]))  # noqa: S608
        return rows[0] if rows else None

    def billed(self, since: str) -> float:
        """Dollars billed for results recorded since ``since`` (an ISO time)."""
        row = self.conn.execute(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM requests WHERE completed_at >= ?", (since,)
        ).fetchone()
        return float(row[0])

    def reserved(self) -> float:
        """Estimated dollars of the batches still in flight (settled when results arrive)."""
        row = self.conn.execute(
            "SELECT COALESCE(SUM(estimated_cost_usd), 0) FROM batches"
            " WHERE state IN ('planned', 'submitted', 'ended')"
        ).fetchone()
        return float(row[0])

    def open_batches(self) -> list[Row]:
        """Batches planned, submitted or ended whose results are not yet applied."""
        return list(
            self.ledger.db.query(
                "SELECT * FROM batches WHERE state IN ('planned', 'submitted', 'ended') ORDER BY id"
            )
        )

    def batch_requests(self, batch_id: int) -> list[tuple[BatchItem, str]]:
        """Every request of a batch, in submission order, with its custom_id."""
        rows = self.conn.execute(
            f"SELECT r.job_id, r.attempt, {_ITEM_COLUMNS}, j.max_tokens, v.chars,"  # noqa: S608
            " r.custom_id FROM requests r JOIN jobs j ON j.id = r.job_id"
            " JOIN versions v ON v.id = j.version_id WHERE r.batch_id = ? ORDER BY r.id",
            (batch_id,),
        )
        return [(_item(*row[:6]), row[6]) for row in rows]

    # -- results ----------------------------------------------------------

    def apply_results(
        self, results: Sequence[tuple[ProviderResult, int]], *, max_attempts: int
    ) -> Applied:
        """Record one chunk of results (each with its dropped-highlight count) in one transaction.

        A result whose request is unknown, already answered, or whose job is no
        longer waiting for it (e.g. written from a duplicate batch) is ignored.
        """
        counts = {"done": 0, "requeued": 0, "failed": 0, "ignored": 0}
        with self.ledger.transaction() as conn:
            try:  # all at once first: one savepoint instead of one per result
                with self.ledger.savepoint(conn):
                    outcomes = [self._apply_one(conn, r, d, max_attempts) for r, d in results]
            except Exception:  # noqa: BLE001 - some result is at fault: one by one, below
                log.warning("results.chunk_refused", results=len(results))
                outcomes = [self._apply_isolated(conn, r, d, max_attempts) for r, d in results]
        for outcome in outcomes:
            counts[outcome] += 1
        return Applied(**counts)

    def _apply_isolated(
        self, conn: sqlite3.Connection, result: ProviderResult, dropped: int, max_attempts: int
    ) -> str:
        """One result; if it cannot be recorded, its request is closed as errored with the
        reason and its job retried or quarantined, and the chunk goes on."""
        try:
            with self.ledger.savepoint(conn):
                return self._apply_one(conn, result, dropped, max_attempts)
        except Exception as exc:  # noqa: BLE001 - one result line must not stop the others
            reason = f"its result could not be recorded: {brief(exc)}"
            log.warning("result.refused", custom_id=result.custom_id[:80], reason=reason)
        row = conn.execute(
            f"SELECT r.id, j.id, {_ROUND} FROM requests r JOIN jobs j ON j.id = r.job_id"  # noqa: S608
            " WHERE r.custom_id = ? AND r.state = 'pending'"
            " AND j.state IN ('submitted', 'submitting')",
            (result.custom_id,),
        ).fetchone()
        if row is None:
            return "ignored"
        conn.execute(
            "UPDATE requests SET state = 'errored', error = ?, completed_at = ? WHERE id = ?",
            (reason, self.ledger.now(), row[0]),
        )
        return self._retry_or_fail(conn, row[1], row[2], reason, max_attempts)

    def _apply_one(
        self, conn: sqlite3.Connection, result: ProviderResult, dropped: int, max_attempts: int
    ) -> str:
        row = conn.execute(
            f"SELECT r.id, r.state, j.id, j.state, {_ROUND}, b.tier FROM requests r"  # noqa: S608
            " JOIN jobs j ON j.id = r.job_id JOIN batches b ON b.id = r.batch_id"
            " WHERE r.custom_id = ?",
            (result.custom_id,),
        ).fetchone()
        if row is not None and row[1] != "pending":
            return "ignored"  # delivered again (results streamed anew after a failure)
        if row is None or row[3] not in ("submitted", "submitting"):
            self.ledger.event(conn, "result.ignored", f"request:{result.custom_id}",
                              kind=result.kind.value)  # fmt: skip
            return "ignored"
        request_id, _, job_id, _, attempts, tier = row
        self._store_result(conn, request_id, result, dropped, live=tier == "live")
        if result.error_type in _OUTPUT_PROBLEMS:
            return self._output_problem(conn, job_id, attempts, result, max_attempts)
        if result.kind is ResultKind.SUCCEEDED:
            conn.execute(
                "UPDATE jobs SET state = 'done', result_request_id = ?, error = NULL,"
                " updated_at = ? WHERE id = ?",
                (request_id, self.ledger.now(), job_id),
            )
            self.ledger.event(conn, "job.done", f"job:{job_id}", custom_id=result.custom_id,
                              dropped_highlights=dropped)  # fmt: skip
            return "done"
        reason = _reason(result)
        if result.error_type == "invalid_request_error":
            return self._fail(conn, job_id, reason)
        if result.kind is ResultKind.CANCELED and self._canceled_for_good(conn, request_id):
            return self._fail(conn, job_id, NO_RETRY)
        return self._retry_or_fail(conn, job_id, attempts, reason, max_attempts)

    def _output_problem(
        self,
        conn: sqlite3.Connection,
        job_id: int,
        attempts: int,
        result: ProviderResult,
        max_attempts: int,
    ) -> str:
        """A billed answer without a usable summary: retried once where that can help."""
        reason = f"{result.error_type}: {result.error_message}"
        retried, max_tokens = conn.execute(
            "SELECT output_retries, max_tokens FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if result.error_type not in _RETRY_ONCE or retried >= 1 or attempts >= max_attempts:
            return self._fail(conn, job_id, reason)
        grow = result.error_type == OutputProblem.MAX_TOKENS.value
        conn.execute(
            "UPDATE jobs SET state = 'queued', error = ?, ready_at = ?, updated_at = ?,"
            " output_retries = output_retries + 1, max_tokens = ? WHERE id = ?",
            (reason, self._clock(), self.ledger.now(),
             _grown(max_tokens, result) if grow else max_tokens, job_id),
        )  # fmt: skip
        self.ledger.event(conn, "job.requeued", f"job:{job_id}", reason=reason, delay_s=0,
                          more_tokens=grow)  # fmt: skip
        return "requeued"

    def _store_result(
        self,
        conn: sqlite3.Connection,
        request_id: int,
        result: ProviderResult,
        dropped: int,
        *,
        live: bool = False,
    ) -> None:
        usage = result.usage
        cost = self.prices.cost(result.model, usage, batch=not live) if result.model else None
        conn.execute(
            "UPDATE requests SET state = ?, summary = ?, highlights = ?, dropped_highlights = ?,"
            " model = ?, stop_reason = ?, input_tokens = ?, output_tokens = ?,"
            " cache_creation_input_tokens = ?, cache_read_input_tokens = ?, error_type = ?,"
            " error = ?, completed_at = ?, cost_usd = ? WHERE id = ?",
            (
                result.kind.value, result.summary or None,
                _highlights_json(result.highlights) if result.highlights else None,
                dropped, result.model or None, result.stop_reason or None,
                usage.input_tokens, usage.output_tokens, usage.cache_creation_input_tokens,
                usage.cache_read_input_tokens, result.error_type or None,
                result.error_message or None, self.ledger.now(), cost, request_id,
            ),
        )  # fmt: skip

    def _canceled_for_good(self, conn: sqlite3.Connection, request_id: int) -> bool:
        """Whether the request's batch was canceled by an operator without retry."""
        row = conn.execute(
            "SELECT b.cancel_retry FROM requests r JOIN batches b ON b.id = r.batch_id"
            " WHERE r.id = ?",
            (request_id,),
        ).fetchone()
        return row is not None and row[0] == 0

    def fail_job(self, job_id: int, reason: str) -> None:
        """Quarantine one job with a reason (e.g. too large to batch)."""
        with self.ledger.transaction() as conn:
            self._fail(conn, job_id, reason)

    def _fail(self, conn: sqlite3.Connection, job_id: int, reason: str) -> str:
        conn.execute(
            "UPDATE jobs SET state = 'failed', error = ?, updated_at = ? WHERE id = ?",
            (reason, self.ledger.now(), job_id),
        )
        self.ledger.event(conn, "job.failed", f"job:{job_id}", reason=reason)
        return "failed"

    def _retry_or_fail(
        self, conn: sqlite3.Connection, job_id: int, attempts: int, reason: str, max_attempts: int
    ) -> str:
        if attempts >= max_attempts:
            return self._fail(conn, job_id, f"gave up after {attempts} attempts: {reason}")
        delay = min(RETRY_CAP_S, self.retry_base * 2 ** max(0, attempts - 1))
        conn.execute(
            "UPDATE jobs SET state = 'queued', error = ?, ready_at = ?, updated_at = ?"
            " WHERE id = ?",
            (reason, self._clock() + delay, self.ledger.now(), job_id),
        )
        self.ledger.event(conn, "job.requeued", f"job:{job_id}", reason=reason, delay_s=delay)
        return "requeued"

    def requeue_failed(self, job_ids: Sequence[int] | None = None) -> int:
        """Give quarantined jobs (all, or these) another round of attempts.

        ``attempts`` is never lowered (a lowered count made the next request
        reuse a custom_id the ledger already holds, and every later batch
        failed, GH issue 16): the round starts at the attempts already made,
        so the next request is attempt ``attempts + 1`` and the history of the
        earlier ones stays. Whatever sends a job again (reprocess, a cancel
        and resend) goes through here or :meth:`batch_items`.
        """
        sql, args = "SELECT id, attempts FROM jobs WHERE state = 'failed'", []
        if job_ids:
            sql += " AND id IN (" + ",".join("?" * len(job_ids)) + ")"
            args = list(job_ids)
        with self.ledger.transaction() as conn:
            rows = conn.execute(sql, args).fetchall()
            for job_id, attempts in rows:
                conn.execute(
                    "UPDATE jobs SET state = 'queued', attempts_at_retry = attempts, error = NULL,"
                    " ready_at = ?, updated_at = ? WHERE id = ?",
                    (self._clock(), self.ledger.now(), job_id),
                )
                self.ledger.event(conn, "job.retry", f"job:{job_id}", attempts_so_far=attempts)
        return len(rows)

    def reprocess(
        self,
        version_ids: Sequence[int],
        task: str,
        *,
        by: str,
        overhead: int = REQUEST_OVERHEAD_BYTES,
        max_chars: int | None = None,
    ) -> tuple[int, int]:
        """Queue these versions under ``task`` again, as an operator asked; one transaction.

        A version without a job under ``task`` gets one; one whose job is done or
        failed has it queued again for a new round of attempts, as ``ledger
        retry`` does (:meth:`requeue_failed`: the count goes on, so the next
        request has a new custom_id, and ``max_attempts`` counts from here), and
        its written sidecars marked ``superseded``: they stay on disk, and are
        replaced only when the new result is written. A job already queued or
        in a batch is left as it is. Returns (queued, skipped).
        """
        queued = skipped = 0
        with self.ledger.transaction() as conn:
            now, ready_at = self.ledger.now(), self._clock()
            for version_id in version_ids:
                row = conn.execute(
                    "SELECT j.id, j.state, v.chars, v.json_bytes FROM versions v"
                    " LEFT JOIN jobs j ON j.version_id = v.id AND j.task = ?"
                    " WHERE v.id = ? AND v.state = 'extracted'",
                    (task, version_id),
                ).fetchone()
                if row is None or row[1] in ("queued", "submitting", "submitted"):
                    skipped += 1
                    continue
                job_id, _, chars, json_bytes = row
                if job_id is None:
                    size = overhead + _text_bytes(chars or 0, json_bytes, max_chars)
                    job_id = conn.execute(
                        "INSERT INTO jobs (version_id, task, state, created_at, updated_at,"
                        " ready_at, request_bytes) VALUES (?, ?, 'queued', ?, ?, ?, ?)",
                        (version_id, task, now, now, ready_at, size),
                    ).lastrowid
                else:
                    conn.execute(
                        "UPDATE jobs SET state = 'queued', attempts_at_retry = attempts,"
                        " error = NULL, ready_at = ?, updated_at = ?, output_retries = 0,"
                        " max_tokens = NULL WHERE id = ?",
                        (ready_at, now, job_id),
                    )
                    conn.execute(
                        "UPDATE sidecars SET state = 'superseded' WHERE job_id = ?"
                        " AND state = 'written'",
                        (job_id,),
                    )
                self.ledger.event(conn, "job.reprocess", f"job:{job_id}", version_id=version_id,
                                  task=task, by=by)  # fmt: skip
                queued += 1
        return queued, skipped

    # -- sidecars ---------------------------------------------------------

    def to_publish(self, task: str, limit: int, after_file_id: int = 0) -> list[Row]:
        """Live files (id above ``after_file_id``) whose current job is done and whose
        sidecars are not yet written (nor waiting for a later try), in file id order."""
        return list(
            self.ledger.db.query(
                "SELECT f.id AS file_id, f.uri, f.path, r.uri AS root_uri, v.id AS version_id,"
                " v.sha256, j.id AS job_id, j.task, q.summary, q.highlights, q.dropped_highlights,"
                " q.model, q.custom_id, q.completed_at, q.input_tokens, q.output_tokens,"
                " q.cache_creation_input_tokens, q.cache_read_input_tokens, q.cost_usd,"
                " b.provider, b.provider_batch_id,"
                " EXISTS (SELECT 1 FROM sidecars s1 WHERE s1.file_id = f.id AND s1.job_id = j.id"
                "   AND s1.state = 'writing') AS interrupted"
                " FROM files f JOIN roots r ON r.id = f.root_id"
                " JOIN versions v ON v.id = f.version_id"
                " JOIN jobs j ON j.version_id = v.id AND j.task = ? AND j.state = 'done'"
                " JOIN requests q ON q.id = j.result_request_id"
                " JOIN batches b ON b.id = q.batch_id"
                " WHERE f.id > ? AND f.state = 'present' AND NOT EXISTS (SELECT 1 FROM sidecars s"
                "   WHERE s.file_id = f.id AND s.job_id = j.id"
                "   AND s.state IN ('written', 'conflict'))"
                " AND NOT EXISTS (SELECT 1 FROM sidecar_retries t WHERE t.file_id = f.id"
                "   AND t.job_id = j.id AND t.retry_at > ?)"
                " ORDER BY f.id LIMIT ?",
                [task, after_file_id, self._clock(), limit],
            )
        )

    def orphaned_sidecars(self, limit: int) -> list[Row]:
        """Sidecars written for files that have since been deleted."""
        return list(
            self.ledger.db.query(
                "SELECT s.id, s.uri, s.sha256, s.file_id, r.uri AS root_uri FROM sidecars s"
                " JOIN files f ON f.id = s.file_id JOIN roots r ON r.id = f.root_id"
                " WHERE f.state = 'deleted' AND s.state = 'written' ORDER BY s.id LIMIT ?",
                [limit],
            )
        )

    def sidecar_removed(self, sidecar_id: int, file_id: int, *, kept: bool) -> None:
        """The source is gone: its sidecar was removed, or kept because someone changed it."""
        state = "kept" if kept else "removed"
        with self.ledger.transaction() as conn:
            conn.execute("UPDATE sidecars SET state = ? WHERE id = ?", (state, sidecar_id))
            self.ledger.event(conn, f"sidecar.{state}", f"file:{file_id}", sidecar_id=sidecar_id)

    def written_elsewhere(self, job_id: int, file_id: int) -> bool:
        """Whether this job's result was already written for another file (same bytes)."""
        row = self.conn.execute(
            "SELECT 1 FROM sidecars WHERE job_id = ? AND file_id != ? AND state = 'written'",
            (job_id, file_id),
        ).fetchone()
        return row is not None

    def source_etags(self, file_ids: Sequence[int]) -> dict[int, str]:
        """The ETag last listed for each of these files that is an S3 object."""
        found: dict[int, str] = {}
        for chunk in _chunks(list(file_ids), 500):
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT file_id, etag FROM s3_objects WHERE file_id IN ({marks})",  # noqa: S608
                chunk,
            )
            found.update((int(file_id), str(etag)) for file_id, etag in rows)
        return found

    def sidecar_hashes(self, uri: str) -> set[str]:
        """sha256 of every sidecar docproc wrote (or tried to write) at ``uri``."""
        rows = self.conn.execute(
            "SELECT sha256 FROM sidecars WHERE uri = ? AND sha256 IS NOT NULL"
            " AND state IN ('writing', 'written', 'superseded', 'error')",
            (uri,),
        )
        return {sha for (sha,) in rows if sha}

    def sidecars_intent(
        self, intents: Sequence[tuple[int, int, Sequence[tuple[str, str]]]]
    ) -> None:
        """Before writing: for each (file, job), the (uri, sha256) of the sidecars to write."""
        now = self.ledger.now()
        rows = [
            (file_id, job_id, uri, sha, now)
            for file_id, job_id, targets in intents
            for uri, sha in targets
        ]
        with self.ledger.transaction() as conn:
            conn.executemany(
                "INSERT INTO sidecars (file_id, job_id, uri, sha256, state, created_at)"
                " VALUES (?, ?, ?, ?, 'writing', ?)",
                rows,
            )

    def sidecars_written(self, written: Sequence[tuple[int, int, bool]]) -> None:
        """After the writes: each (file, job, reused) has its sidecars in place."""
        with self.ledger.transaction() as conn:
            for file_id, job_id, reused in written:
                # The newest intent per target: older ones (of a try that crashed or
                # failed) stay ``writing``, so each target is written once (written_once).
                conn.execute(
                    "UPDATE sidecars SET state = 'written', written_at = ? WHERE id IN"
                    " (SELECT MAX(id) FROM sidecars WHERE file_id = ? AND job_id = ?"
                    " AND state = 'writing' GROUP BY uri)",
                    (self.ledger.now(), file_id, job_id),
                )
                cleared(conn, file_id, job_id)
                self.ledger.event(conn, "sidecars.written", f"file:{file_id}", job_id=job_id,
                                  reused=reused)  # fmt: skip

    def sidecar_problem(self, file_id: int, job_id: int, uri: str, state: str, reason: str) -> None:
        """A sidecar could not be written: ``state`` is ``conflict`` (someone else's file: a
        person resolves it) or ``error``. Intents stay: whatever was written is docproc's.
        (A write that failed for a storage reason waits in ``sidecar_retries`` instead.)"""
        with self.ledger.transaction() as conn:
            cleared(conn, file_id, job_id)
            conn.execute(
                "INSERT INTO sidecars (file_id, job_id, uri, state, detail, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (file_id, job_id, uri, state, reason, self.ledger.now()),
            )
            self.ledger.event(conn, f"sidecars.{state}", f"file:{file_id}", job_id=job_id,
                              reason=reason)  # fmt: skip

    # -- audit ------------------------------------------------------------

    def batches(self, limit: int | None = None) -> list[Row]:
        """Batches, newest first, with counts, estimated and billed cost."""
        sql = "SELECT * FROM batch_status ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return list(self.ledger.db.query(sql))

    def costs(self, by: str) -> list[Row]:
        """Requests, tokens and dollars grouped by ``day``, ``model``, ``root``, ``batch_id``
        or ``tier``; each group is split by tier (``batch`` or ``live`` price).

        Raises:
            ValueError: ``by`` is not one of those.
        """
        if by not in COST_GROUPS:
            raise ValueError(f"cannot group costs by {by!r} (known: {', '.join(COST_GROUPS)})")
        keys = by if by == "tier" else f"{by}, tier"
        return list(
            self.ledger.db.query(
                f"SELECT {keys}, COUNT(*) AS requests, SUM(input_tokens) AS input_tokens,"  # noqa: S608
                " SUM(output_tokens) AS output_tokens,"
                " SUM(cache_creation_input_tokens) AS cache_write_tokens,"
                " SUM(cache_read_input_tokens) AS cache_read_tokens,"
                f" ROUND(SUM(cost_usd), 6) AS cost_usd FROM request_costs GROUP BY {keys}"
                f" ORDER BY {keys}"
            )
        )

    def pause_reason(self) -> str | None:
        """Why submission is paused, as the daemon last recorded it (None: not paused)."""
        return self._condition("submission.paused", "submission.resumed")

    def daemon_stuck(self, reason: str | None) -> None:
        """Record that the daemon's loop is stuck (with why) or going again."""
        self._set_condition("daemon.stuck", "daemon.recovered", "daemon", reason)

    def _set_condition(self, began: str, ended: str, subject: str, reason: str | None) -> None:
        """Record that a condition began (``reason``: why) or ended (None)."""
        with self.ledger.transaction() as conn:
            if reason:
                self.ledger.event(conn, began, subject, reason=reason)
            else:
                self.ledger.event(conn, ended, subject)

    def stuck_reason(self) -> str | None:
        """Why the daemon is stuck, as it last recorded it (None: it is not)."""
        return self._condition("daemon.stuck", "daemon.recovered")

    def _condition(self, began: str, ended: str) -> str | None:
        """The reason of the last ``began`` event, unless an ``ended`` one came after."""
        row = self.conn.execute(
            "SELECT kind, json_extract(detail, '$.reason') FROM events"
            " WHERE kind IN (?, ?) ORDER BY id DESC LIMIT 1",
            (began, ended),
        ).fetchone()
        return row[1] if row is not None and row[0] == began else None

    # -- status -----------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Jobs per state and batches in flight, for status lines."""
        jobs = dict(self.conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"))
        in_flight = self.conn.execute(
            "SELECT COUNT(*) FROM batches WHERE state IN ('planned', 'submitted', 'ended')"
        ).fetchone()[0]
        return {**{f"jobs_{k}": v for k, v in jobs.items()}, "batches_in_flight": in_flight}

    def job_states(self, task: str) -> dict[str, int]:
        """Jobs of ``task`` per state (an index-only count)."""
        rows = self.conn.execute("SELECT state, COUNT(*) FROM jobs WHERE task = ? GROUP BY state",
                                 (task,))  # fmt: skip
        return dict(rows)

    def written_since(self, since: str, after_event: int) -> tuple[int, int]:
        """Sidecar writes recorded at or after ``since`` (ISO UTC) in events after ``after_event``.

        Returns the count and the last event id looked at: passing it back
        next time counts only new events, so a running total costs a short
        range scan instead of a scan of the whole log.
        """
        last = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
        count = self.conn.execute(
            "SELECT COUNT(*) FROM events WHERE id > ? AND id <= ? AND kind = 'sidecars.written'"
            " AND at >= ?",
            (after_event, last, since),
        ).fetchone()[0]
        return int(count), int(last)


# Attempts made in the job's current round (``docproc ledger retry`` starts a new
# round without lowering ``attempts``): what ``max_attempts`` and backoff count.
_ROUND = "j.attempts - j.attempts_at_retry"
# The highest attempt any request of the job was recorded with.
_LAST_ATTEMPT = "(SELECT MAX(r.attempt) FROM requests r WHERE r.job_id = j.id)"


def next_attempt(attempts: int, last_sent: int | None) -> int:
    """The attempt number of a job's next request: above every attempt made or recorded.

    Both are looked at so that a custom_id (``j<job>-a<attempt>``) is never
    built twice, even from a ledger whose ``attempts`` was lowered by an older
    docproc.
    """
    return max(attempts, last_sent or 0) + 1


# What a BatchItem needs besides job and attempt: the text, and a title for the prompt.
_ITEM_COLUMNS = "v.text_sha256, (SELECT MIN(f.path) FROM files f WHERE f.version_id = v.id)"


def _item(
    job_id: int,
    attempt: int,
    text_sha256: str,
    path: str | None,
    max_tokens: int | None = None,
    chars: int | None = None,
) -> BatchItem:
    title = (path or "").rsplit("/", 1)[-1]
    return BatchItem(job_id, attempt, text_sha256, title, max_tokens, chars or 0)


_OUTPUT_PROBLEMS = frozenset(problem.value for problem in OutputProblem)
_RETRY_ONCE = frozenset({OutputProblem.MAX_TOKENS.value, OutputProblem.INVALID.value})


def _grown(max_tokens: int | None, result: ProviderResult) -> int:
    """More room for an answer cut off at ``max_tokens``: its output tokens times the growth."""
    used = max(result.usage.output_tokens, max_tokens or 0, 1)
    return used * MAX_TOKENS_GROWTH


def _text_bytes(chars: int, json_bytes: int | None, max_chars: int | None) -> int:
    """The bytes a text adds to a request: exact when measured and not cut, else a bound."""
    if max_chars is not None and chars > max_chars:
        return max_chars * 6 + CUT_MARKER_BYTES  # every character escaped, at worst
    if json_bytes is not None:
        return json_bytes
    return chars * 6  # measured before docproc recorded it: the worst case


def _highlights_json(highlights: Sequence[Highlight]) -> str:
    """Highlights as stored in a request row (what ``asdict`` gives, at a quarter of its cost:
    measured, it was 40% of applying a result)."""
    return json.dumps(
        [{"quote": h.quote, "why": h.why, "start": h.start, "end": h.end} for h in highlights]
    )


def stored_highlights(text: str | None) -> tuple[Highlight, ...]:
    """Highlights as stored in a request row."""
    return tuple(Highlight(**item) for item in json.loads(text)) if text else ()


def _reason(result: ProviderResult) -> str:
    if result.kind in (ResultKind.EXPIRED, ResultKind.CANCELED):
        return f"request {result.kind.value}"
    detail = f"{result.error_type}: {result.error_message}" if result.error_type else ""
    return f"request errored ({detail})" if detail else "request errored"


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
