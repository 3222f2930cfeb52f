"""One writer per ledger on PostgreSQL: a session advisory lock, held for the writer's life.

The flock of :mod:`docproc.writerlock` guards one machine's state directory;
a ledger on a server is written from wherever its URL is configured. So a
writer (``run``, ``scan``, ``ledger import-sidecars``, ``ledger copy``)
claims the database too: ``pg_try_advisory_lock`` (:data:`WRITER_LOCK_KEY`,
not the key every write transaction takes) on its own connection, held until
that connection ends. The connection names its holder in
``application_name`` (``docproc run pid=123 host=h``), and a second writer
from any machine is refused at once with one line naming the first: its name,
server process and ``backend_start`` (through ``pg_locks`` ⨝ ``pg_stat_activity``).
Readers and the one-row requests of ``cancel`` and ``ledger retry`` claim
nothing, as with SQLite.

The server drops the lock with the connection (a restart, a failover, a cut,
``kill -9`` of the holder): a stale lock never blocks a restart. When the
writer reconnects it takes the lock again before anything else. If its own
old session still holds it (a network cut the server has not noticed yet),
that session, known by its pid and ``backend_start``, is ended first. If
another process holds it, this one got there first meanwhile and is now the
writer: :class:`~docproc.errors.LedgerWriterLost`, and every later attempt
on this claim says the same, so this process writes nothing more, ever.

This module holds the SQL and the decisions; :mod:`docproc.ledger.postgres`
runs them on its psycopg connection (``%s`` placeholders).
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime
from typing import Any, Protocol

import structlog

from docproc.errors import LedgerBusy, LedgerWriterLost

__all__ = ["WRITER_LOCK_KEY", "WriterClaim", "application_name"]

log = structlog.get_logger()

# The bytes of "docprocW": one per database, distinct from the write transactions' key.
WRITER_LOCK_KEY = int.from_bytes(b"docprocW", "big")
NAME_MAX = 63  # PostgreSQL keeps this many bytes of application_name
OWN_OLD_SESSION_WAIT_S = 5.0  # for the server to end our own old session, and its lock to go
_PAUSE_S = 0.1
_TRIES = int(OWN_OLD_SESSION_WAIT_S / _PAUSE_S) + 1

TRY = "SELECT pg_try_advisory_lock(%s::bigint)"
SELF = "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
# Who holds the claim in this database (pg_locks splits a bigint key into classid, objid).
HOLDER = (
    "SELECT a.pid, a.application_name, a.backend_start FROM pg_locks l"
    " JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND l.classid::bigint = %s::bigint >> 32 AND l.objid::bigint = %s::bigint & 4294967295"
)
END_OWN_OLD = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE pid = %s AND backend_start = %s AND pid <> pg_backend_pid()"
)


class Session(Protocol):
    """What a claim needs of a connection: ``execute`` with ``%s`` placeholders."""

    def execute(self, query: Any, params: Any = ...) -> Any: ...


def application_name(command: str) -> str:
    """``docproc run pid=123 host=h``: what ``pg_stat_activity`` shows for a writer."""
    name = f"{command} pid={os.getpid()} host={socket.gethostname()}"
    return name.encode()[:NAME_MAX].decode(errors="ignore")


class WriterClaim:
    """A writer's claim on one ledger database, taken again on every new connection."""

    def __init__(self, command: str, where: str) -> None:
        self.command = command
        self.name = application_name(command)
        self.where = where
        self._held_by: tuple[int, datetime] | None = None  # our session holding it (pid, start)
        self._lost: str | None = None

    def take(self, conn: Session) -> None:
        """Hold the claim on ``conn`` (a new connection), or refuse.

        Raises:
            LedgerBusy: another process holds it, at the first take (before any work).
            LedgerWriterLost: another process took it while this one was away.
        """
        if self._lost is not None:
            raise LedgerWriterLost(self._lost)
        holder: tuple[Any, ...] | None = None
        deadline = time.monotonic() + OWN_OLD_SESSION_WAIT_S
        for _ in range(_TRIES):
            if conn.execute(TRY, (WRITER_LOCK_KEY,)).fetchone()[0]:
                self._took(conn)
                return
            holder = conn.execute(HOLDER, (WRITER_LOCK_KEY, WRITER_LOCK_KEY)).fetchone()
            ours = holder is not None and self._held_by == (holder[0], holder[2])
            if (holder is not None and not ours) or time.monotonic() >= deadline:
                break
            if ours:  # our session from before the cut, still alive on the server: end it
                conn.execute(END_OWN_OLD, self._held_by)
            time.sleep(_PAUSE_S)  # released meanwhile, or ours ending: try again
        self._refuse(holder)

    def _took(self, conn: Session) -> None:
        again = self._held_by is not None
        pid, started = conn.execute(SELF).fetchone()
        self._held_by = (int(pid), started)
        if again:
            log.info("ledger.writer_claim_retaken", where=self.where)

    def _refuse(self, holder: tuple[Any, ...] | None) -> None:
        who = describe(holder)
        if self._held_by is None:
            raise LedgerBusy(
                f"ledger {self.where} is in use by {who}; one writer per ledger"
                " (stop that one first; read-only commands work meanwhile)",
                who,
            )
        self._lost = (
            f"ledger {self.where}: while this writer's connection was away, {who} became"
            " the ledger's writer; this one writes nothing more (one writer per ledger)"
        )
        log.error("ledger.writer_claim_lost", where=self.where, holder=who)
        raise LedgerWriterLost(self._lost)


def describe(holder: tuple[Any, ...] | None) -> str:
    """The holder in words: ``docproc run pid=123 host=h (server pid 456, since ...)``."""
    if holder is None:
        return "another session (it let go as it was looked up)"
    pid, name, started = holder
    since = started.isoformat(timespec="seconds") if isinstance(started, datetime) else "unknown"
    return f"{name or 'a session without a name'} (server pid {pid}, since {since})"
