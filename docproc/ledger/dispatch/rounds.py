"""The dispatch stage's room for new rounds an operator asks for: retry and reprocess.

``attempts`` is never lowered: a round starts at the attempts already made
(``attempts_at_retry``), so the next request has a new custom_id and the
history of earlier ones stays (GH issue 16).
"""

from __future__ import annotations

from collections.abc import Sequence

from docproc.ledger.dispatch.jobs import (
    REQUEST_OVERHEAD_BYTES,
    JobLedger,
    insert_job,
    text_bytes,
)


class Rounds:
    """Quarantined or finished jobs sent for another round."""

    def __init__(self, jobs: JobLedger) -> None:
        self.ledger = jobs.ledger
        self._clock = jobs.clock

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
                    size = overhead + text_bytes(chars or 0, json_bytes, max_chars)
                    job_id = insert_job(conn, version_id, task, now, ready_at, size)
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
