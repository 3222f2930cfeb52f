"""Conditions the daemon records as events, for ``docproc status`` to read back.

Submission paused (the budget), small batches waiting for more (below a
provider's minimum), the daemon stuck (the same failure tick after tick):
each begins with an event carrying the reason and ends with another.
"""

from __future__ import annotations

from docproc.ledger.connection import Ledger


class Conditions:
    """Recording and reading the daemon's conditions."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.conn = ledger.conn

    def submission_paused(self, reason: str | None) -> None:
        """Record that submission paused (with why) or resumed; ``docproc status`` reads it."""
        self._set_condition("submission.paused", "submission.resumed", "dispatch", reason)

    def submission_waiting(self, reason: str | None) -> None:
        """Record that small batches wait (below the provider's minimum), or no longer do."""
        self._set_condition("submission.waiting", "submission.waiting_over", "dispatch", reason)

    def daemon_stuck(self, reason: str | None) -> None:
        """Record that the daemon's loop is stuck (with why) or going again."""
        self._set_condition("daemon.stuck", "daemon.recovered", "daemon", reason)

    def pause_reason(self) -> str | None:
        """Why submission is paused, as the daemon last recorded it (None: not paused)."""
        return self._condition("submission.paused", "submission.resumed")

    def waiting_reason(self) -> str | None:
        """Why ready documents wait for a bigger batch, as the daemon last recorded it."""
        return self._condition("submission.waiting", "submission.waiting_over")

    def stuck_reason(self) -> str | None:
        """Why the daemon is stuck, as it last recorded it (None: it is not)."""
        return self._condition("daemon.stuck", "daemon.recovered")

    def _set_condition(self, began: str, ended: str, subject: str, reason: str | None) -> None:
        """Record that a condition began (``reason``: why) or ended (None)."""
        with self.ledger.transaction() as conn:
            if reason:
                self.ledger.event(conn, began, subject, reason=reason)
            else:
                self.ledger.event(conn, ended, subject)

    def _condition(self, began: str, ended: str) -> str | None:
        """The reason of the last ``began`` event, unless an ``ended`` one came after."""
        reason = self.conn.dialect.json_text("detail", "reason")
        row = self.conn.execute(
            f"SELECT kind, {reason} FROM events"  # noqa: S608 - an expression of the dialect
            " WHERE kind IN (?, ?) ORDER BY id DESC LIMIT 1",
            (began, ended),
        ).fetchone()
        return row[1] if row is not None and row[0] == began else None
