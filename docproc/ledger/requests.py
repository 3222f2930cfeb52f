"""Operator requests: what people asked docproc to do, carried out by the daemon.

``docproc cancel`` and ``docproc ledger retry`` (and ``reprocess``) need no
provider key: they record a request here, and the running daemon, which
holds the key (a systemd credential), carries it out and records the
outcome; the command waits for that and reports it. Each request keeps who
asked, when, and (for reprocessing) what it was estimated to cost.

States: ``pending`` -> ``done`` (with what was done) or ``refused`` (with why).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from docproc.ledger.connection import Ledger
from docproc.ledger.engine import Row, inserted_id

KINDS = ("cancel", "retry", "reprocess")


@dataclass(frozen=True, slots=True)
class OperatorRequest:
    """One request waiting for the daemon."""

    id: int
    kind: str
    detail: dict[str, Any]
    requested_by: str


class RequestLedger:
    """Operator requests on top of a :class:`Ledger`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.conn = ledger.conn

    def record(
        self,
        kind: str,
        detail: dict[str, Any],
        *,
        requested_by: str,
        estimated_cost: float | None = None,
    ) -> int:
        """Record a request (from the command line); returns its id.

        Raises:
            ValueError: ``kind`` is not one of :data:`KINDS`.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown request kind {kind!r}")
        with self.ledger.transaction() as conn:
            request_id = inserted_id(conn.execute(
                "INSERT INTO operator_requests (kind, detail, requested_by, requested_at,"
                " estimated_cost_usd) VALUES (?, ?, ?, ?, ?) RETURNING id",
                (kind, json.dumps(detail, sort_keys=True), requested_by, self.ledger.now(),
                 estimated_cost),
            ))  # fmt: skip
            self.ledger.event(conn, f"operator.{kind}_requested", f"operator:{request_id}",
                              by=requested_by, estimated_cost_usd=estimated_cost,
                              **detail)  # fmt: skip
        return request_id

    def pending(self, limit: int = 20) -> list[OperatorRequest]:
        """Requests not yet carried out, oldest first."""
        rows = self.conn.execute(
            "SELECT id, kind, detail, requested_by FROM operator_requests"
            " WHERE state = 'pending' ORDER BY id LIMIT ?",
            (limit,),
        )
        return [OperatorRequest(int(i), k, json.loads(d), by) for i, k, d, by in rows]

    def finish(self, request_id: int, *, done: bool, outcome: str) -> None:
        """The daemon carried the request out (``done``) or could not (refused, with why)."""
        state = "done" if done else "refused"
        with self.ledger.transaction() as conn:
            conn.execute(
                "UPDATE operator_requests SET state = ?, outcome = ?, done_at = ?"
                " WHERE id = ? AND state = 'pending'",
                (state, outcome, self.ledger.now(), request_id),
            )
            self.ledger.event(conn, f"operator.{state}", f"operator:{request_id}",
                              outcome=outcome)  # fmt: skip

    def get(self, request_id: int) -> Row | None:
        rows = list(
            self.ledger.conn.query("SELECT * FROM operator_requests WHERE id = ?", [request_id])
        )
        return rows[0] if rows else None

    def requests(self, limit: int | None = None) -> list[Row]:
        """Every request, newest first."""
        sql = "SELECT * FROM operator_requests ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return list(self.ledger.conn.query(sql))
