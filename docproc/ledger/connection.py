"""Opening the ledger, and the handle every part of it works through.

A location is a :class:`~pathlib.Path` (the SQLite file, the embedded
default) or a ``postgresql://`` URL (:mod:`docproc.ledger.postgres`, loaded
only then). :func:`open_ledger` gives a :class:`Ledger`: one connection with
its transactions, savepoints and the hash-chained events; the parts each
stage owns (:mod:`~docproc.ledger.intake`, :mod:`~docproc.ledger.dispatch`,
:mod:`~docproc.ledger.publishing`, :mod:`~docproc.ledger.queries`, ...) are
built on it. The writer (the daemon or a scan) changes state only through
:meth:`Ledger.transaction`, which also appends to ``events``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from docproc.errors import LedgerError
from docproc.ledger import sqlite
from docproc.ledger.engine import Connection
from docproc.ledger.events import Chain

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
LedgerLocation = Path | str  # a SQLite file, or a postgresql:// URL


def utc(moment: datetime) -> str:
    """A moment as the ledger writes times: ISO-8601 UTC text, to the microsecond."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def is_url(location: LedgerLocation) -> bool:
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def connect(
    location: LedgerLocation,
    *,
    readonly: bool = False,
    password: str | None = None,
    claim: str | None = None,
) -> Connection:
    """A connection to the ledger at ``location``, its schema current.

    A writer migrates the schema first; a reader refuses one that needs it.
    ``password`` is for PostgreSQL (a systemd credential); libpq otherwise
    looks in ``PGPASSWORD`` and ``~/.pgpass``. ``claim`` (a writer's command,
    ``docproc run``) makes this connection the ledger's one writer before
    anything else (:meth:`~docproc.ledger.engine.Connection.claim`).

    Raises:
        LedgerError: it cannot be opened (see the engine's ``connect``), it needs
            migrating and is opened read-only, or a PostgreSQL URL is given and
            that engine is not installed.
        LedgerUnwritable: the disk or the server refused (full, read-only, unreachable).
        LedgerBusy: ``claim`` is given and another process is the writer.
    """
    if is_url(location):
        return _connect_postgres(str(location), readonly=readonly, password=password, claim=claim)
    conn = sqlite.connect(Path(location), readonly=readonly)
    if claim is not None:
        conn.claim(claim)
    return conn


def _connect_postgres(
    url: str, *, readonly: bool, password: str | None, claim: str | None
) -> Connection:
    try:  # imported here: psycopg is loaded only by those who use PostgreSQL
        from docproc.ledger import postgres, schema_pg
    except ModuleNotFoundError as exc:
        raise LedgerError(f"a PostgreSQL ledger needs {exc.name}, which is missing") from None
    conn = postgres.connect(url, readonly=readonly, password=password, claim=claim)
    try:
        missing = schema_pg.pending(conn)
        if readonly:
            _refuse_pending(conn.where, missing)
        elif missing:  # nothing to do needs no CREATE: an operator's role records requests
            schema_pg.migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _refuse_pending(where: str, missing: list[str]) -> None:
    if missing:
        raise LedgerError(
            f"ledger {where} needs migrating ({', '.join(missing)}); run any writing command first"
        )


def open_ledger(
    location: LedgerLocation,
    *,
    readonly: bool = False,
    actor: str = "docproc",
    clock: Callable[[], datetime] | None = None,
    password: str | None = None,
    claim: str | None = None,
) -> Ledger:
    """The ledger at ``location`` (a writer's handle, or a reader's with ``readonly``).

    ``claim`` names a writer that must be the only one (``docproc run``, ``docproc
    scan``): see :func:`connect`.
    """
    conn = connect(location, readonly=readonly, password=password, claim=claim)
    return Ledger(conn, location=location, readonly=readonly, actor=actor, clock=clock)


class Ledger:
    """One open connection to the ledger: transactions, savepoints, events, the time."""

    def __init__(
        self,
        conn: Connection,
        *,
        location: LedgerLocation,
        readonly: bool = False,
        actor: str = "docproc",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.conn = conn
        self.location = location
        self.where = conn.where  # for people: a path, or a URL without its password
        self.actor = actor
        self.readonly = readonly
        self._clock = clock or (lambda: datetime.now(UTC))
        self._chain = Chain(actor)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def identity(self) -> str:
        """This ledger's random id (8 hex digits), made when it was created or migrated."""
        row = self.conn.execute("SELECT value FROM ledger_info WHERE key = 'id'").fetchone()
        return str(row[0])

    def now(self) -> str:
        return utc(self._clock())

    def later(self, delay: timedelta) -> str:
        """The time ``delay`` from now, as the ledger writes times."""
        return utc(self._clock() + delay)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction: all of it commits, or none.

        Raises:
            LedgerUnwritable: the storage refused the write (full, read-only, I/O
                error, a server fault); nothing of the transaction was recorded.
        """
        self._chain.forget()  # its head is valid while this transaction holds the lock
        try:
            with self.conn.write():
                yield self.conn
        finally:
            self._chain.forget()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the current transaction that may fail alone (one item of many).

        On an exception its changes, events included, are undone and the
        exception propagates; the rest of the transaction stands. A storage
        fault is no item's fault: it comes out as
        :class:`~docproc.errors.LedgerUnwritable`, which per-item handlers let
        pass, and the whole transaction is rolled back.
        """
        try:
            with self.conn.savepoint():
                yield
        except BaseException:
            self._chain.forget()  # an event appended inside was undone with it
            raise

    def event(self, conn: Connection, name: str, subject: str, **detail: Any) -> None:
        """Append one event to the hash chain, inside the caller's transaction."""
        self._chain.append(conn, self.now(), name, subject, detail)

    def events(self, conn: Connection, events: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """Append ``(name, subject, detail)`` events in their order, in a few statements."""
        pending = [(self.now(), name, subject, detail) for name, subject, detail in events]
        self._chain.append_many(conn, pending)
