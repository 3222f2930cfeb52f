"""What the budget counts: dollars billed for results, and reserved by batches in flight.

Read by the dispatch stage (before it opens a batch) and by ``docproc status``.
"""

from __future__ import annotations

from docproc.ledger.connection import Ledger


class BudgetLedger:
    """Spend as the ledger holds it."""

    def __init__(self, ledger: Ledger) -> None:
        self.conn = ledger.conn

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
