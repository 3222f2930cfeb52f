"""Sidecar writes waiting for their next try: the ``sidecar_retries`` table.

A sidecar that could not be written (a full disk, a read-only mount, a
folder the daemon may not write, an S3 bucket refusing it) is not a dead
end: its file gets one row here, with the fault's kind and sentence, the
place the write needs (a folder, or ``s3://bucket/prefix/``) and when the
next try is due. Tries back off from :data:`FIRST_DELAY_S`, doubling, to
:data:`FAULT_CAP_S` (a path refused by the planner, which only a new
configuration can fix, to :data:`REFUSED_CAP_S`; something unexpected, to
:data:`UNEXPECTED_CAP_S`). A write that works in a
place makes every file waiting on that place due at once (:meth:`release`),
so a cleared fault is noticed by one try, not one per file. The row goes
when the sidecars are written (:func:`cleared`, inside that transaction).

``docproc status`` and ``/metrics`` read it through
:meth:`docproc.ledger.queries.Queries.sidecars_waiting`, and ``file_status``
shows such a file as ``retrying``, the sentence as the error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from docproc.ledger.connection import Ledger
from docproc.ledger.engine import Connection
from docproc.storage import OWN_KINDS, REFUSED, UNEXPECTED

FIRST_DELAY_S = 2.0
FAULT_CAP_S = 60.0
REFUSED_CAP_S = 3600.0
UNEXPECTED_CAP_S = 300.0

# Live rows: the file is still there, the job is its current one, nothing written yet.
_LIVE = (
    " FROM sidecar_retries t JOIN files f ON f.id = t.file_id AND f.state = 'present'"
    " JOIN jobs j ON j.id = t.job_id AND j.version_id = f.version_id"
)


@dataclass(frozen=True, slots=True)
class Retry:
    """One file whose sidecars wait for another try, and why."""

    file_id: int
    job_id: int
    place: str
    kind: str
    reason: str


def retry_delay(kind: str, attempts: int) -> float:
    """Seconds before try ``attempts + 1``: doubling from 2 s, capped by kind."""
    cap = {REFUSED: REFUSED_CAP_S, UNEXPECTED: UNEXPECTED_CAP_S}.get(kind, FAULT_CAP_S)
    return float(min(cap, FIRST_DELAY_S * 2.0 ** min(max(attempts - 1, 0), 20)))


def cleared(conn: Connection, file_id: int, job_id: int) -> None:
    """Inside the caller's transaction: the sidecars of (file, job) were written or resolved."""
    conn.execute("DELETE FROM sidecar_retries WHERE file_id = ? AND job_id = ?", (file_id, job_id))


class SidecarRetries:
    """The publishing stage's record of sidecars waiting for another try."""

    def __init__(self, ledger: Ledger, *, clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self._clock = clock

    def record(self, retries: Sequence[Retry]) -> None:
        """These files' sidecars were not written: schedule their next try, in one transaction.

        An event is appended when a file starts waiting or its reason changes,
        not at every try. This try's intents (``writing``) become ``error``:
        their bytes stay known as docproc's, for the next try to replace.
        """
        if not retries:
            return
        with self.ledger.transaction() as conn:
            for retry in retries:
                self._record(conn, retry)

    def _record(self, conn: Connection, r: Retry) -> None:
        row = conn.execute(
            "SELECT attempts, reason FROM sidecar_retries WHERE file_id = ? AND job_id = ?",
            (r.file_id, r.job_id),
        ).fetchone()
        attempts, now = (1 if row is None else int(row[0]) + 1), self.ledger.now()
        due = self._clock() + retry_delay(r.kind, attempts)
        if row is None:
            conn.execute(
                "INSERT INTO sidecar_retries (file_id, job_id, place, kind, reason, attempts,"
                " first_at, last_at, retry_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
                (r.file_id, r.job_id, r.place, r.kind, r.reason, now, now, due),
            )
        else:
            conn.execute(
                "UPDATE sidecar_retries SET place = ?, kind = ?, reason = ?, attempts = ?,"
                " last_at = ?, retry_at = ? WHERE file_id = ? AND job_id = ?",
                (r.place, r.kind, r.reason, attempts, now, due, r.file_id, r.job_id),
            )
        conn.execute(
            "UPDATE sidecars SET state = 'error', detail = ? WHERE file_id = ? AND job_id = ?"
            " AND state = 'writing'",
            (r.reason, r.file_id, r.job_id),
        )
        if row is None or row[1] != r.reason:
            self.ledger.event(conn, "sidecars.retrying", f"file:{r.file_id}", job_id=r.job_id,
                              kind=r.kind, reason=r.reason)  # fmt: skip

    def release(self, places: Sequence[str]) -> int:
        """Writes in ``places`` worked: every file waiting on them is due now."""
        if not places:
            return 0
        marks = ",".join("?" * len(places))
        now = self._clock()
        with self.ledger.transaction() as conn:
            cur = conn.execute(
                f"UPDATE sidecar_retries SET retry_at = ? WHERE retry_at > ?"  # noqa: S608
                f" AND place IN ({marks})",
                (now, now, *places),
            )
            return cur.rowcount

    def next_due(self, *, faults_only: bool = False) -> float | None:
        """When the earliest waiting file is due (epoch seconds); ``None``: none waits.

        ``faults_only``: leave out files with a problem of their own (a refused
        path, something unexpected): a person, not time, fixes those.
        """
        sql = "SELECT MIN(t.retry_at)" + _LIVE
        args: tuple[str, ...] = ()
        if faults_only:
            sql, args = sql + " WHERE t.kind NOT IN (?, ?)", OWN_KINDS
        row = self.ledger.conn.execute(sql, args).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def places(self) -> dict[str, str]:
        """The places files wait on, with the fault kind (folders to sweep at start-up)."""
        rows = self.ledger.conn.execute("SELECT t.place, MAX(t.kind)" + _LIVE + " GROUP BY t.place")
        return {str(place): str(kind) for place, kind in rows}
