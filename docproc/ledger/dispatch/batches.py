"""The dispatch stage's room for batches and the requests in them.

A batch is written ``planned`` with its request rows (custom_ids) *before*
the provider's create call, and ``submitted`` with the provider's id right
after; each create call is numbered first (:meth:`BatchLedger.create_attempt`).
What comes back (progress, the end, results) is :mod:`docproc.ledger.dispatch.results`.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from docproc.errors import brief
from docproc.ledger.dispatch.jobs import ITEM_COLUMNS, ROUND, BatchItem, JobLedger, make_item
from docproc.ledger.engine import Connection, Row, inserted_id

log = structlog.get_logger()

# (batch_id, job_id, custom_id, attempt, text_cut_from): one row of ``requests`` to insert.
RequestRow = tuple[int, int, str, int, int | None]


class BatchLedger:
    """Batches planned, created, submitted and canceled, with their requests."""

    def __init__(self, jobs: JobLedger) -> None:
        self.ledger = jobs.ledger
        self.conn = jobs.ledger.conn
        self.jobs = jobs
        self._instance: str | None = None

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
            batch_id = inserted_id(conn.execute(
                "INSERT INTO batches (provider, request_count, request_bytes, created_at, model,"
                " estimated_cost_usd, tier, create_attempts) VALUES (?, ?, ?, ?, ?, ?, ?, 1)"
                " RETURNING id",
                (provider, len(items), request_bytes, self.ledger.now(), model or None,
                 estimated_cost, tier),
            ))  # fmt: skip
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
        self, conn: Connection, rows: Sequence[RequestRow], max_attempts: int
    ) -> int:
        """Insert request rows and move their jobs to ``submitting``; how many went in.

        All at once first; if that fails, one by one, so that only the rows at
        fault stay out (their jobs set back with the reason).
        """
        try:
            with self.ledger.savepoint():
                self._insert_requests(conn, rows)
        except Exception:  # noqa: BLE001 - some row is at fault: find which, below
            log.warning("batch.requests_refused", requests=len(rows))
        else:
            return len(rows)
        recorded = 0
        for row in rows:
            try:
                with self.ledger.savepoint():
                    self._insert_requests(conn, [row])
            except Exception as exc:  # noqa: BLE001 - this row alone: its job is set back
                reason = f"its request {row[2]} could not be recorded: {brief(exc)}"
                log.warning("job.request_refused", job_id=row[1], reason=reason)
                self.jobs.attempt_failed(conn, row[1], reason, max_attempts)
            else:
                recorded += 1
        return recorded

    def _insert_requests(self, conn: Connection, rows: Sequence[RequestRow]) -> None:
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
                f"SELECT j.id, {ROUND} FROM jobs j JOIN requests r ON r.job_id = j.id"  # noqa: S608
                " WHERE r.batch_id = ? AND j.state = 'submitting'",
                (batch_id,),
            ).fetchall()
            for job_id, attempts in jobs:
                self.jobs.retry_or_fail(conn, job_id, attempts, reason, max_attempts)

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
        rows = list(self.conn.query(f"SELECT * FROM batches WHERE {column} = ?", [ident]))  # noqa: S608
        return rows[0] if rows else None

    def open_batches(self) -> list[Row]:
        """Batches planned, submitted or ended whose results are not yet applied."""
        return list(
            self.conn.query(
                "SELECT * FROM batches WHERE state IN ('planned', 'submitted', 'ended') ORDER BY id"
            )
        )

    def batch_requests(self, batch_id: int) -> list[tuple[BatchItem, str]]:
        """Every request of a batch, in submission order, with its custom_id."""
        rows = self.conn.execute(
            f"SELECT r.job_id, r.attempt, {ITEM_COLUMNS}, j.max_tokens, v.chars,"  # noqa: S608
            " r.custom_id FROM requests r JOIN jobs j ON j.id = r.job_id"
            " JOIN versions v ON v.id = j.version_id WHERE r.batch_id = ? ORDER BY r.id",
            (batch_id,),
        )
        return [(make_item(*row[:6]), row[6]) for row in rows]
