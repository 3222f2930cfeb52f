"""The ledger on PostgreSQL, through psycopg 3: the only module that imports psycopg.

It answers the SQL written above :mod:`docproc.ledger.engine` as SQLite does:

- ``?`` placeholders (and ``:name`` with a mapping) become psycopg's ``%s``
  (``%(name)s``), except in quoted text, quoted names and comments; every
  literal ``%`` is doubled (psycopg reads it everywhere). Each translation is cached per SQL string.
- Outside :meth:`PostgresConnection.write` every statement runs in autocommit:
  a read sees what is committed, and no transaction stays open while idle.
  ``write()`` is one transaction that first takes a transaction-scoped
  advisory lock (:data:`LEDGER_LOCK_KEY`), so writers of one ledger take
  turns, as SQLite's ``BEGIN IMMEDIATE`` makes them: the event chain has one
  head at a time.
- Values come back as SQLite gives them: a boolean as 0 or 1, an exact
  ``numeric`` (``SUM`` of integers) as an int, otherwise a float; a Python
  bool is sent as an integer.
- A lost or refused connection (restart, failover, wrong host) is
  :class:`~docproc.errors.LedgerUnwritable` of kind ``unreachable``, with a
  one-line reason naming ``user@host:port/db``; the next call connects again.
- A write transaction whose connection is lost *during COMMIT* is not reported
  as failed when it committed, nor as done when it did not: its commit mark is
  read back (:mod:`docproc.ledger.commit_marks`: how, the guarantee, its limit).

The password never comes from the URL (the configuration refuses it): libpq
reads ``PGPASSWORD`` and ``~/.pgpass`` itself, and a systemd credential is
handed in as ``password``. Nothing here renders it: :attr:`~PostgresConnection.where`
and ``repr`` show the URL without it, and any message is scrubbed of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Buffer, Dumper, Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.sql import SQL, Literal

from docproc.errors import LedgerError, LedgerUnwritable
from docproc.ledger import commit_marks as marks
from docproc.ledger.commit_marks import SETTLE_S, CommitMarks, Mark
from docproc.ledger.engine import Params, Row
from docproc.ledger.pglock import WriterClaim
from docproc.ledger.postgres_sql import PostgresDialect, translate

__all__ = [
    "LEDGER_LOCK_KEY",
    "PostgresConnection",
    "PostgresDialect",
    "connect",
    "translate",
    "where",
]

# pg_advisory_xact_lock key held by every write transaction of a docproc ledger
# (the bytes of "docproc"); one per database, as the ledger is one per database.
LEDGER_LOCK_KEY = int.from_bytes(b"docproc", "big")
CONNECT_TIMEOUT_S = 10
# SQLSTATE classes and codes that say the server, not the statement, failed.
_LOST_CLASSES = ("08", "57P")  # connection exceptions; admin/crash shutdown, cannot connect now
_DISK_FULL = "53100"


def where(url: str) -> str:
    """``user@host:port/db`` of a libpq URL or conninfo: no password, no options."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(unparseable PostgreSQL URL)"
    user = params.get("user")
    host = str(params.get("host") or "localhost")
    port = params.get("port")
    place = f"{host}:{port}" if port else host
    return (
        f"{user}@{place}/{params.get('dbname', '')}"
        if user
        else f"{place}/{params.get('dbname', '')}"
    )


class _IntBoolLoader(Loader):
    """A boolean as SQLite gives it: 1 or 0."""

    def load(self, data: Buffer) -> int:
        return 1 if bytes(data) == b"t" else 0


class _NumberLoader(Loader):
    """An exact ``numeric`` (``SUM`` of integers) as an int; one with a fraction as a float."""

    def load(self, data: Buffer) -> int | float:
        text = bytes(data)
        if text.lstrip(b"-").isdigit():
            return int(text)
        return float(text)


class _BoolAsIntDumper(Dumper):
    """A Python bool stored as SQLite stores it: the integer 1 or 0."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> Buffer:
        return b"1" if obj else b"0"


class _Rows:
    """What :meth:`PostgresConnection.execute` hands back (tuples; none for a plain write)."""

    def __init__(self, cursor: psycopg.Cursor[tuple[Any, ...]]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone() if self._cursor.description is not None else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall() if self._cursor.description is not None else []

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


class PostgresConnection:
    """One connection to a ledger in PostgreSQL (see the module's docstring)."""

    dialect = PostgresDialect()

    def __init__(
        self,
        url: str,
        *,
        readonly: bool = False,
        password: str | None = None,
        settle_s: float = SETTLE_S,
    ) -> None:
        self._url = url
        self._password = password or None
        self.readonly = readonly
        self.where = where(url)
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._session: tuple[int, Any] = (0, None)  # the server process and its backend_start
        self._writing = False
        self._marks = CommitMarks(self.where, LEDGER_LOCK_KEY, settle_s)
        self._probe = partial(connect, url, readonly=True, password=self._password)  # to settle
        self._claim: WriterClaim | None = None

    def __repr__(self) -> str:
        mode = " read-only" if self.readonly else ""
        return f"<PostgresConnection {self.where}{mode}>"

    # -- the engine.Connection protocol ------------------------------------

    def execute(self, sql: str, params: Params = ()) -> _Rows:
        with self._faults():
            conn = self._connection()
            named = isinstance(params, Mapping)
            return _Rows(conn.execute(translate(sql, named), params))

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """Run ``sql`` once per row, pipelined (one round trip per batch, not per row)."""
        if not rows:
            return
        with self._faults():
            conn = self._connection()
            with conn.cursor() as cursor:
                cursor.executemany(translate(sql, isinstance(rows[0], Mapping)), rows)

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        with self._faults():
            conn = self._connection()
            with conn.cursor(row_factory=dict_row) as cursor:
                cursor.execute(translate(sql, isinstance(params, Mapping)), params)
                return cursor.fetchall() if cursor.description is not None else []

    @contextmanager
    def write(self) -> Iterator[None]:
        """One write transaction, after every other writer of this ledger (advisory lock).

        Raises:
            LedgerUnwritable: nothing of it committed (a COMMIT cut off is settled first).
            LedgerCommitLanded: an earlier commit of unknown outcome did happen.
        """
        if self._writing:
            raise LedgerError("a ledger write transaction is already open on this connection")
        if not self.readonly:
            self._marks.before_write(self._probe)
        try:
            with self._faults():
                conn = self._connection()
                if not self.readonly and self._session[1] is None:  # its first write
                    self._prepare_writer(conn)
                self._writing = True
                try:
                    with conn.transaction():
                        mark = self._begin(conn)
                        yield
                        self._marks.unsettled = mark  # the COMMIT goes out as this block ends
                except psycopg.Error as exc:
                    if self._marks.unsettled is None or not _lost(exc, self._conn):
                        self._marks.unsettled = None  # refused by the server: rolled back
                        raise
                    self.close_quietly()
                    self._marks.after_lost_commit(self._probe, self._cause(exc))
                self._marks.unsettled = None
        finally:
            self._writing = False

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the open write transaction that may fail alone (rolled back to here)."""
        if not self._writing:
            raise LedgerError("a savepoint needs an open write transaction")
        with self._faults(), self._connection().transaction():
            yield

    def claim(self, command: str) -> None:
        """Be this ledger's one writer while this object lives (:mod:`docproc.ledger.pglock`).

        Raises:
            LedgerBusy: another process is the writer; the message names it.
            LedgerError: the connection is read-only.
        """
        if self.readonly:
            raise LedgerError("a read-only ledger connection cannot be its writer")
        self._claim = WriterClaim(command, self.where)
        self.close_quietly()  # the next connection is made under the claim's name
        with self._faults():
            self._connection()

    def close(self) -> None:
        """Close; a writer with no open question first removes its commit mark."""
        conn, self._conn = self._conn, None
        if conn is None or conn.closed:
            return
        if not (self.readonly or self._writing or conn.broken or self._marks.unsettled):
            with suppress(psycopg.Error):
                conn.execute(marks.FORGET, (self._marks.writer,))
        conn.close()

    # -- what only PostgreSQL's tools use (migrations, ledger copy) ----------

    def script(self, sql: str) -> None:
        """Run statements as written (no placeholders, ``$$`` bodies allowed)."""
        with self._faults():
            self._connection().execute(sql.encode())

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """``COPY`` rows into ``table`` (names are the caller's, never user input); how many."""
        written = 0
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with (
            self._faults(),
            self._connection().cursor() as cursor,
            cursor.copy(statement.encode()) as copy,
        ):
            for row in rows:
                copy.write_row(row)
                written += 1
        return written

    # -- inside ----------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            if self._writing:  # never carry on a transaction's work on a new connection
                raise psycopg.OperationalError("the connection was lost in a write transaction")
            self._conn = None
            extra: dict[str, Any] = {}
            if self._password:
                extra["password"] = self._password
            if "connect_timeout" not in self._url:
                extra["connect_timeout"] = CONNECT_TIMEOUT_S
            if self._claim is not None:
                extra["application_name"] = self._claim.name
            conn = psycopg.connect(self._url, autocommit=True, **extra)
            try:
                self._set_up(conn)
            except BaseException:
                with suppress(psycopg.Error):
                    conn.close()
                raise
            self._conn, self._session = conn, (0, None)
        return self._conn

    def _set_up(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """A new connection as the ledger wants it; a writer's claim taken first."""
        if self._claim is not None:
            self._claim.take(conn)
        conn.adapters.register_loader("bool", _IntBoolLoader)
        conn.adapters.register_loader("numeric", _NumberLoader)
        conn.adapters.register_dumper(bool, _BoolAsIntDumper)
        if self.readonly:
            conn.execute("SET default_transaction_read_only = on")

    def _begin(self, conn: psycopg.Connection[tuple[Any, ...]]) -> Mark | None:
        """Take the ledger's lock and, on a writing connection, write a new commit mark."""
        if self.readonly:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LEDGER_LOCK_KEY,))
            return None
        token = self._marks.new_token()
        values = (LEDGER_LOCK_KEY, self._marks.writer, token)
        conn.execute(SQL(marks.MARK).format(*map(Literal, values)))
        return Mark(token, *self._session)

    def _prepare_writer(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Note this session (pid, start); create the commit marks' table if it is missing."""
        pid, started, ready = conn.execute(marks.SESSION).fetchone() or (0, None, 0)
        if not ready:
            try:
                with conn.transaction():  # under the lock: two first writers do not race
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LEDGER_LOCK_KEY,))
                    conn.execute(marks.CREATE)
            except pg_errors.InsufficientPrivilege as exc:
                raise LedgerError(
                    f"{self.where}: this role may not create the table {marks.TABLE} (commit"
                    f" marks): {self._cause(exc)}; create it as the ledger's owner"
                ) from None
        self._session = (int(pid), started)

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """A server or connection fault as :class:`LedgerUnwritable`; other errors pass."""
        try:
            yield
        except psycopg.Error as exc:
            fault = self._fault(exc)
            if fault is None:
                raise
            raise fault from None

    def _fault(self, exc: psycopg.Error) -> LedgerUnwritable | None:
        state = exc.sqlstate or ""
        if _lost(exc, self._conn):
            self.close_quietly()
            return LedgerUnwritable("unreachable", f"{self.where}: {self._cause(exc)}")
        if state == _DISK_FULL:
            return LedgerUnwritable("no_space", f"{self.where}: {self._cause(exc)}")
        if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
            return LedgerUnwritable("read_only", f"{self.where}: {self._cause(exc)}")
        if isinstance(exc, pg_errors.InsufficientPrivilege):  # the role lacks a GRANT
            return LedgerUnwritable("denied", f"{self.where}: {self._cause(exc)}")
        return None

    def _cause(self, exc: BaseException) -> str:
        """The first line of the driver's words, without the password in any form."""
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        cause = lines[0] if lines else type(exc).__name__
        if self._password:
            cause = cause.replace(self._password, "***")
        return cause

    def close_quietly(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()


def _lost(exc: psycopg.Error, conn: psycopg.Connection[Any] | None) -> bool:
    """Whether ``exc`` says the connection, not the statement, failed."""
    state = exc.sqlstate or ""
    if conn is None or conn.closed or conn.broken or state.startswith(_LOST_CLASSES):
        return True
    return not state and isinstance(exc, psycopg.OperationalError)


def connect(
    url: str,
    *,
    readonly: bool = False,
    password: str | None = None,
    settle_s: float = SETTLE_S,
    claim: str | None = None,
) -> PostgresConnection:
    """The ledger at ``url`` (``postgresql://user@host:port/db?sslmode=...``).

    Connects now, so a wrong host or a refused login is said at once.

    Args:
        readonly: every transaction read-only (``default_transaction_read_only``):
            for ``status`` and ``ledger`` reads, which a read-only role may run.
        password: from a systemd credential; otherwise libpq looks in
            ``PGPASSWORD`` and ``~/.pgpass``.
        settle_s: how long a write whose COMMIT was cut off seeks its outcome
            (:mod:`docproc.ledger.commit_marks`).

        claim: become the ledger's one writer, named so (``docproc run``; see
            :meth:`PostgresConnection.claim`).

    Raises:
        LedgerUnwritable: (``unreachable``) the server cannot be reached or refused the login.
        LedgerBusy: ``claim`` is given and another process is the writer.
    """
    ledger = PostgresConnection(url, readonly=readonly, password=password, settle_s=settle_s)
    if claim is not None:
        ledger.claim(claim)
        return ledger
    with ledger._faults():
        ledger._connection()
    return ledger
