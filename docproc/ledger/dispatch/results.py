"""The dispatch stage's room for what comes back from a batch: progress, its end, results.

A batch is ``ended`` when the provider says so and ``applied`` once every
result is recorded (requests without one are requeued); ``lost`` when the
provider no longer knows it. Each result closes its request (with usage and
cost) and moves its job: ``done``, requeued after a backoff, or quarantined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from docproc.costs import PriceTable
from docproc.errors import brief
from docproc.ledger.dispatch.jobs import ROUND, JobLedger
from docproc.ledger.dispatch.result_rows import (
    OUTPUT_PROBLEMS,
    UPDATE_REQUEST,
    Found,
    common,
    look_up,
    request_values,
    write_done,
)
from docproc.ledger.engine import Connection
from docproc.models import OutputProblem, ProviderResult, ResultKind

log = structlog.get_logger()
NO_RETRY = "canceled by an operator without retry (docproc cancel --no-retry)"
MAX_TOKENS_GROWTH = 2  # a response cut off at max_tokens is retried once with this much more room


@dataclass(frozen=True, slots=True)
class Applied:
    """How one chunk of results changed the jobs."""

    done: int = 0
    requeued: int = 0
    failed: int = 0
    ignored: int = 0


class ResultLedger:
    """Batch ends and per-request results, recorded as the provider reports them."""

    def __init__(self, jobs: JobLedger, *, prices: PriceTable | None = None) -> None:
        self.ledger = jobs.ledger
        self.jobs = jobs
        self._clock = jobs.clock
        self.prices = prices or PriceTable()

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
                f"SELECT r.job_id, {ROUND} FROM requests r JOIN jobs j ON j.id = r.job_id"  # noqa: S608
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
                    self.jobs.fail(conn, job_id, NO_RETRY)
                    continue
                self.jobs.retry_or_fail(conn, job_id, attempts, "no result for this request", 10**6)
            self.ledger.event(conn, "batch.applied", f"batch:{batch_id}", missing=len(missing))

    def batch_lost(self, batch_id: int, reason: str) -> int:
        """The provider no longer knows a submitted batch: requeue what it held."""
        with self.ledger.transaction() as conn:
            conn.execute(
                "UPDATE batches SET state = 'lost', error = ?, applied_at = ? WHERE id = ?",
                (reason, self.ledger.now(), batch_id),
            )
            pending = conn.execute(
                f"SELECT r.job_id, {ROUND} FROM requests r JOIN jobs j ON j.id = r.job_id"  # noqa: S608
                " WHERE r.batch_id = ? AND r.state = 'pending'"
                " AND j.state IN ('submitted', 'submitting')",
                (batch_id,),
            ).fetchall()
            conn.execute(
                "UPDATE requests SET state = 'missing' WHERE batch_id = ? AND state = 'pending'",
                (batch_id,),
            )
            for job_id, attempts in pending:
                self.jobs.retry_or_fail(conn, job_id, attempts, f"batch lost: {reason}", 10**6)
            self.ledger.event(conn, "batch.lost", f"batch:{batch_id}", reason=reason,
                              requeued=len(pending))  # fmt: skip
        return len(pending)

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
                with self.ledger.savepoint():
                    outcomes = self._apply_chunk(conn, results, max_attempts)
            except Exception:  # noqa: BLE001 - some result is at fault: one by one, below
                log.warning("results.chunk_refused", results=len(results))
                outcomes = [self._apply_isolated(conn, r, d, max_attempts) for r, d in results]
        for outcome in outcomes:
            counts[outcome] += 1
        return Applied(**counts)

    def _apply_chunk(
        self, conn: Connection, results: Sequence[tuple[ProviderResult, int]], max_attempts: int
    ) -> list[str]:
        """The chunk in its order: runs of common-path results written in bulk
        (:mod:`~docproc.ledger.dispatch.result_rows`), every other result alone."""
        found = look_up(conn, [result for result, _ in results])
        picked = common([result for result, _ in results], found)
        outcomes: list[str] = []
        run: list[tuple[ProviderResult, int, Found]] = []
        for index, (result, dropped) in enumerate(results):
            if index in picked:
                run.append((result, dropped, found[result.custom_id]))
                continue
            if run:
                write_done(self.ledger, conn, self.prices, run)
                outcomes += ["done"] * len(run)
                run = []
            outcomes.append(self._apply_one(conn, result, dropped, max_attempts))
        if run:
            write_done(self.ledger, conn, self.prices, run)
            outcomes += ["done"] * len(run)
        return outcomes

    def _apply_isolated(
        self, conn: Connection, result: ProviderResult, dropped: int, max_attempts: int
    ) -> str:
        """One result; if it cannot be recorded, its request is closed as errored with the
        reason and its job retried or quarantined, and the chunk goes on."""
        try:
            with self.ledger.savepoint():
                return self._apply_one(conn, result, dropped, max_attempts)
        except Exception as exc:  # noqa: BLE001 - one result line must not stop the others
            reason = f"its result could not be recorded: {brief(exc)}"
            log.warning("result.refused", custom_id=result.custom_id[:80], reason=reason)
        row = conn.execute(
            f"SELECT r.id, j.id, {ROUND} FROM requests r JOIN jobs j ON j.id = r.job_id"  # noqa: S608
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
        return self.jobs.retry_or_fail(conn, row[1], row[2], reason, max_attempts)

    def _apply_one(
        self, conn: Connection, result: ProviderResult, dropped: int, max_attempts: int
    ) -> str:
        row = conn.execute(
            f"SELECT r.id, r.state, j.id, j.state, {ROUND}, b.tier FROM requests r"  # noqa: S608
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
        if result.error_type in OUTPUT_PROBLEMS:
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
            return self.jobs.fail(conn, job_id, reason)
        if result.kind is ResultKind.CANCELED and self._canceled_for_good(conn, request_id):
            return self.jobs.fail(conn, job_id, NO_RETRY)
        return self.jobs.retry_or_fail(conn, job_id, attempts, reason, max_attempts)

    def _output_problem(
        self,
        conn: Connection,
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
            return self.jobs.fail(conn, job_id, reason)
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
        conn: Connection,
        request_id: int,
        result: ProviderResult,
        dropped: int,
        *,
        live: bool = False,
    ) -> None:
        values = request_values(self.ledger, self.prices, result, dropped, live=live)
        conn.execute(UPDATE_REQUEST, (*values, request_id))

    def _canceled_for_good(self, conn: Connection, request_id: int) -> bool:
        """Whether the request's batch was canceled by an operator without retry."""
        row = conn.execute(
            "SELECT b.cancel_retry FROM requests r JOIN batches b ON b.id = r.batch_id"
            " WHERE r.id = ?",
            (request_id,),
        ).fetchone()
        return row is not None and row[0] == 0


_RETRY_ONCE = frozenset({OutputProblem.MAX_TOKENS.value, OutputProblem.INVALID.value})


def _grown(max_tokens: int | None, result: ProviderResult) -> int:
    """More room for an answer cut off at ``max_tokens``: its output tokens times the growth."""
    used = max(result.usage.output_tokens, max_tokens or 0, 1)
    return used * MAX_TOKENS_GROWTH


def _reason(result: ProviderResult) -> str:
    if result.kind in (ResultKind.EXPIRED, ResultKind.CANCELED):
        return f"request {result.kind.value}"
    detail = f"{result.error_type}: {result.error_message}" if result.error_type else ""
    return f"request errored ({detail})" if detail else "request errored"
