"""The hash-chained ``events`` table: every change of state, and proof it was not edited.

Each event carries the hash of its predecessor (the first, :data:`GENESIS`),
so :func:`verify` shows whether the history was edited. Events are appended
only inside a write transaction (:meth:`docproc.ledger.connection.Ledger.event`),
which holds the ledger's writer lock: the chain's head read once stays valid
until the transaction ends.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from docproc.ledger.bulk import append_rows
from docproc.ledger.engine import Connection

GENESIS = "0" * 64
_NAMES = ("at", "actor", "kind", "subject", "detail", "prev_hash", "hash")
_COLUMNS = [(name, "text") for name in _NAMES]
Pending = tuple[str, str, str, dict[str, Any]]  # an event to append: at, kind, subject, detail


def event_hash(prev: str, at: str, actor: str, kind: str, subject: str, detail: str) -> str:
    payload = json.dumps([prev, at, actor, kind, subject, detail], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of walking the event chain."""

    ok: bool
    events: int
    broken_at: int | None = None
    reason: str = ""


class Chain:
    """Appending to the chain, with its head remembered within one transaction."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        self._head: str | None = None

    def forget(self) -> None:
        """The transaction ended (or a savepoint holding an event was undone)."""
        self._head = None

    def append(
        self, conn: Connection, at: str, kind: str, subject: str, detail: dict[str, Any]
    ) -> None:
        """Append one event, inside the caller's write transaction."""
        (row,) = self._chained(conn, [(at, kind, subject, detail)])
        conn.execute(
            "INSERT INTO events (at, actor, kind, subject, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        self._head = row[-1]

    def append_many(self, conn: Connection, events: Sequence[Pending]) -> None:
        """Append ``events`` (``(at, kind, subject, detail)``) in their order, chained as
        if appended one by one, in a few statements (:func:`~docproc.ledger.bulk.append_rows`)."""
        if not events:
            return
        rows = self._chained(conn, events)
        append_rows(conn, "events", _COLUMNS, rows)
        self._head = rows[-1][-1]

    def _chained(self, conn: Connection, events: Sequence[Pending]) -> list[tuple[str, ...]]:
        """The rows of ``events`` as they follow the chain's head."""
        prev = self._head
        if prev is None:
            row = conn.execute("SELECT hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
            prev = row[0] if row else GENESIS
        rows: list[tuple[str, ...]] = []
        for at, kind, subject, detail in events:
            text = json.dumps(detail, sort_keys=True, separators=(",", ":"))
            digest = event_hash(prev, at, self.actor, kind, subject, text)
            rows.append((at, self.actor, kind, subject, text, prev, digest))
            prev = digest
        return rows


def verify(conn: Connection) -> Verification:
    """Walk the event chain and report the first event that does not fit."""
    prev, count = GENESIS, 0
    cursor = conn.execute(
        "SELECT id, at, actor, kind, subject, detail, prev_hash, hash FROM events ORDER BY id"
    )
    for event_id, at, actor, kind, subject, detail, prev_hash, digest in cursor:
        count += 1
        if prev_hash != prev:
            return Verification(False, count, event_id, "previous hash does not match")
        if event_hash(prev, at, actor, kind, subject, detail) != digest:
            return Verification(False, count, event_id, "event content was changed")
        prev = digest
    return Verification(True, count)
