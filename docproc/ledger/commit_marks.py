"""Commit marks: whether a PostgreSQL write transaction cut off during COMMIT happened.

When the connection drops while COMMIT is in flight (a server restart, a
failover, a network cut), the client cannot know from the connection whether
the server committed. A caller told "unreachable" keeps its work and records
it again, which is right only if the first commit did not happen. So every
write transaction of a writing :class:`~docproc.ledger.postgres.PostgresConnection`
also writes its own row of :data:`TABLE` (``writer`` = this connection, a
fresh random ``token``) under the ledger's advisory lock; it commits if and
only if the transaction's work commits. After a lost COMMIT, a new session:

1. ends the old session if it still holds the ledger's lock (the COMMIT never
   reached the server and the session waits for more: ended, it rolls back);
2. takes the ledger's lock itself, which waits for the old transaction to end
   either way (a commit in progress finishes first);
3. reads the writer's row: the new token means the commit happened, any other
   value that it did not.

The guarantee, and its limit:

- If the server can be asked within :data:`SETTLE_S` of the lost COMMIT
  (tries with backoff; the last may run one connection timeout, 10 s, over),
  ``write()`` ends as the transaction did: it returns normally when the work
  was committed (the caller must not redo it, and does not), and raises
  :class:`~docproc.errors.LedgerUnwritable` (``unreachable``) when it was not
  (the caller records it again, once). The caller never needs to know. The
  answer is the server's as it now is: after a failover that lost the commit,
  it was not committed, and recording it again is right.
- Otherwise ``write()`` raises ``LedgerUnwritable`` (``unreachable``) saying
  the outcome of the last commit is unknown; the caller holds its work as for
  any outage. Every later ``write()`` on that connection first asks again (up
  to 10 s) and runs nothing until it knows: still unknown, the same error;
  not committed, it goes on (the caller's retry is the one record);
  committed, :class:`~docproc.errors.LedgerCommitLanded`, and again at every
  later write on that connection, because the caller holds work that is
  already recorded and only starting again from the ledger (a restart) drops
  it. That case needs a lost COMMIT, a server out of reach for longer than
  :data:`SETTLE_S`, and a commit that did land. A COMMIT interrupted any
  other way (a signal) leaves the same open question for the next write.
- A process that ends with an outcome unknown leaves nothing in hand; the
  next one starts from what the ledger holds (as after ``kill -9``).
- The writer is one connection object (``host:pid:random``), kept across its
  reconnections: two connections of one process never share a row. A clean
  close removes the row; a crashed process leaves one small row behind.
- Step 1 knows the old session by its process id and start time, which holds
  for direct connections and session pooling; behind a transaction-pooling
  proxy the old session cannot be named, and an outcome stays unknown until
  that proxy ends it.

What a caller cached from inside a transaction that failed must go with it
(the events' chain head is read again at the start of every transaction).
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from docproc.errors import LedgerCommitLanded, LedgerUnwritable
from docproc.ledger.engine import Cursor, Params

__all__ = [
    "CREATE",
    "END_OLD_SESSION",
    "FORGET",
    "MARK",
    "READ",
    "SESSION",
    "SETTLE_S",
    "TABLE",
    "CommitMarks",
    "Mark",
    "Probe",
    "Session",
]

log = structlog.get_logger()

TABLE = "ledger_commits"
# PostgreSQL's text for the marks (psycopg placeholders). The table is the engine's own,
# not a migration (SQLite needs none); one row per writing connection, removed at close.
CREATE = (
    "CREATE TABLE IF NOT EXISTS ledger_commits (writer TEXT PRIMARY KEY, token TEXT NOT NULL,"
    " at TIMESTAMPTZ NOT NULL DEFAULT now())"
)
# A writing session notes who it is (an old one is named by both) and whether the table exists.
SESSION = (
    "SELECT pid, backend_start, to_regclass('ledger_commits') IS NOT NULL"
    " FROM pg_stat_activity WHERE pid = pg_backend_pid()"
)
# A write transaction's first statement, literals composed in (lock key, writer, token):
# the ledger's lock, then a new mark, in one round trip.
MARK = (
    "SELECT pg_advisory_xact_lock({}); INSERT INTO ledger_commits (writer, token)"
    " VALUES ({}, {}) ON CONFLICT (writer) DO UPDATE"
    " SET token = excluded.token, at = now()"
)
FORGET = "DELETE FROM ledger_commits WHERE writer = %s"
# Step 1 (through a ledger connection: ``?`` placeholders): the old session (pid,
# backend_start), if it still holds the ledger's lock (key: classid and objid in pg_locks).
END_OLD_SESSION = (
    "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a WHERE a.pid = ?"
    " AND a.backend_start = ? AND a.pid <> pg_backend_pid() AND EXISTS (SELECT 1 FROM pg_locks l"
    " WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted"
    " AND l.classid::bigint = ? >> 32 AND l.objid::bigint = ? & 4294967295 AND l.objsubid = 1)"
)
READ = "SELECT token FROM ledger_commits WHERE writer = ?"
SETTLE_S = 30.0  # how long a lost COMMIT's outcome is sought before "unknown"
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 4.0
MAX_TRIES = 20  # with the pauses above, more than SETTLE_S allows: the deadline ends it


@dataclass(frozen=True)
class Mark:
    """One write transaction's token, and the server session its COMMIT went out on."""

    token: str
    pid: int
    started: datetime  # that session's backend_start: a process id alone may be reused


class Session(Protocol):
    """What settling needs of a ledger connection (a reading one is enough)."""

    def execute(self, sql: str, params: Params = ()) -> Cursor: ...

    def write(self) -> AbstractContextManager[None]: ...

    def close(self) -> None: ...


# Opens a new session to the ledger (LedgerUnwritable when it cannot).
Probe = Callable[[], Session]


class CommitMarks:
    """The commit marks of one writing connection: its writer name, and an open question."""

    def __init__(self, where: str, lock_key: int, settle_s: float = SETTLE_S) -> None:
        self.where = where
        self.lock_key = lock_key
        self.settle_s = settle_s
        self.writer = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.unsettled: Mark | None = None  # a COMMIT sent, its outcome not known yet
        self._landed_late = False

    @staticmethod
    def new_token() -> str:
        return secrets.token_hex(16)

    def before_write(self, probe: Probe) -> None:
        """Settle an earlier commit's unknown outcome before anything else is written.

        Raises:
            LedgerUnwritable: (``unreachable``) still unknown; nothing was written.
            LedgerCommitLanded: it did commit, and the caller may hold its work again.
        """
        if self._landed_late:
            raise self._landed_error()
        mark = self.unsettled
        if mark is None:
            return
        landed, cause = self._settle(probe, mark, min(self.settle_s, 10.0))
        if landed is None:
            raise LedgerUnwritable(
                "unreachable",
                f"{self.where}: the outcome of an earlier commit is still unknown ({cause});"
                " nothing more is written until it is known",
            )
        self.unsettled = None
        if landed:
            self._landed_late = True
            raise self._landed_error()

    def after_lost_commit(self, probe: Probe, cause: str) -> None:
        """Return if the COMMIT just cut off happened; raise ``LedgerUnwritable`` if not.

        Raises:
            LedgerUnwritable: (``unreachable``) it did not commit, or nobody could
                tell within ``settle_s`` (the message says the outcome is unknown).
        """
        mark = self.unsettled
        if mark is None:  # pragma: no cover - the connection sets it before every COMMIT
            raise LedgerUnwritable("unreachable", f"{self.where}: {cause}")
        landed, last = self._settle(probe, mark, self.settle_s)
        if landed is None:
            raise LedgerUnwritable(
                "unreachable",
                f"{self.where}: the outcome of the last commit is unknown: the connection"
                f" was lost during COMMIT ({cause}) and the server could not be asked within"
                f" {self.settle_s:g} s ({last}); nothing more is written until it is known",
            )
        self.unsettled = None
        if not landed:
            raise LedgerUnwritable(
                "unreachable", f"{self.where}: {cause} (during COMMIT: not committed)"
            )

    def _settle(self, probe: Probe, mark: Mark, window_s: float) -> tuple[bool | None, str]:
        """Ask until ``window_s`` is spent: (True committed | False not | None unknown, why)."""
        deadline = time.monotonic() + window_s
        pause, cause = RETRY_FIRST_S, "no time left to ask"
        for _ in range(MAX_TRIES):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                landed = self._ask(probe, mark, left)
            except (Exception, LedgerUnwritable) as exc:  # noqa: BLE001 - any: no answer to trust
                cause = exc.reason if isinstance(exc, LedgerUnwritable) else _first_line(exc)
            else:
                log.warning("ledger.commit_settled", where=self.where, committed=landed)
                return landed, ""
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(pause * 2, RETRY_MAX_S)
        log.error("ledger.commit_unknown", where=self.where, reason=cause)
        return None, cause

    def _ask(self, probe: Probe, mark: Mark, left: float) -> bool:
        """Steps 1 to 3 on a session of their own, waiting at most ``left`` s for the lock."""
        session = probe()
        try:
            limit = f"{max(1, int(left * 1000))}ms"
            session.execute("SELECT set_config('lock_timeout', ?, false)", (limit,))
            key = self.lock_key
            session.execute(END_OLD_SESSION, (mark.pid, mark.started, key, key))
            with session.write():  # takes the ledger's lock: the old transaction has ended
                row = session.execute(READ, (self.writer,)).fetchone()
        finally:
            session.close()
        return row is not None and row[0] == mark.token

    def _landed_error(self) -> LedgerCommitLanded:
        return LedgerCommitLanded(
            f"ledger {self.where}: a commit whose outcome was unknown did happen; the work"
            " held to record again is already recorded, so this connection writes nothing"
            " more: start again from the ledger (restart docproc)"
        )


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
