"""The SQLite engine: the embedded default, one file under the state directory.

WAL mode with a busy timeout and foreign keys on. A write is one
``BEGIN IMMEDIATE`` transaction (the writer lock of SQLite); readers (the CLI,
sqlite3, datasette) open the file read-only and are never blocked by it.

``synchronous=NORMAL``: a crash of the process (kill -9) loses nothing that
was committed; a power cut may lose the last transactions but never corrupts
the file, and the reconcile scan finds any file they described again.

SQLite's words for a disk fault (full, read-only, I/O error) come out of a
write as :class:`~docproc.errors.LedgerUnwritable`. This module and
:mod:`docproc.ledger.migrations` are the only ones that import ``sqlite3``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

from docproc.errors import LedgerError, LedgerUnwritable
from docproc.ledger import migrations
from docproc.ledger.engine import Cursor, Params, Row
from docproc.storage import sqlite_fault

BUSY_TIMEOUT_S = 30.0


class SqliteDialect:
    """SQLite's spelling of what differs."""

    name = "sqlite"

    def json_text(self, expr: str, key: str) -> str:
        return f"json_extract({expr}, '$.{key}')"

    def byte_length(self, expr: str) -> str:
        return f"LENGTH(CAST({expr} AS BLOB))"

    def bytewise(self, expr: str) -> str:
        return expr  # BINARY, SQLite's default collation

    def round_to(self, expr: str, digits: int) -> str:
        return f"ROUND({expr}, {int(digits)})"

    def json_rows(self, types: Sequence[str]) -> str | None:
        return None  # in-process: executemany is cheaper than reading JSON


class SqliteConnection:
    """One ``sqlite3`` connection behind :class:`docproc.ledger.engine.Connection`."""

    dialect = SqliteDialect()

    def __init__(self, raw: sqlite3.Connection, path: Path) -> None:
        self.raw = raw  # for the migrations (sqlite-utils) and tests that look underneath
        self.path = path
        self.where = str(path)

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self.raw.executemany(sql, rows)

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = self.raw.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    @contextmanager
    def write(self) -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction: all of it commits, or none.

        Raises:
            LedgerUnwritable: the disk refused the write (full, read-only, I/O
                error); nothing of the transaction was recorded.
        """
        conn = self.raw
        with self.faults():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                conn.rollback()
                raise
            try:
                conn.commit()
            except BaseException:
                with suppress(sqlite3.Error):  # SQLite has already rolled back on a disk fault
                    conn.rollback()
                raise

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the current transaction that may fail alone (one item of many).

        On an exception its changes are undone and the exception propagates;
        the rest of the transaction stands. A disk fault is no item's fault: it
        comes out as :class:`LedgerUnwritable`, which per-item handlers let
        pass, and the whole transaction is rolled back.
        """
        conn = self.raw
        with self.faults():
            conn.execute("SAVEPOINT item")
            try:
                yield
            except BaseException:
                conn.execute("ROLLBACK TO SAVEPOINT item")
                conn.execute("RELEASE SAVEPOINT item")
                raise
            conn.execute("RELEASE SAVEPOINT item")

    @contextmanager
    def faults(self) -> Iterator[None]:
        """Turn SQLite's words for a disk fault into :class:`LedgerUnwritable`."""
        try:
            yield
        except sqlite3.Error as exc:
            fault = sqlite_fault(exc, self.path.parent)
            if fault is None:
                raise
            raise LedgerUnwritable(fault.kind, fault.reason) from exc

    def claim(self, command: str) -> None:
        """Nothing: a SQLite ledger's one writer is guarded by its state directory's flock."""

    def close(self) -> None:
        self.raw.close()


def connect(path: Path, *, readonly: bool = False) -> SqliteConnection:
    """The ledger at ``path``, its schema current (a writer migrates it first).

    Raises:
        LedgerError: no ledger there (read-only), it cannot be opened, or it
            needs migrating and is opened read-only.
        LedgerUnwritable: the disk refused to create or migrate it.
    """
    conn = SqliteConnection(_open(path, readonly), path)
    try:
        _current(conn, readonly)
    except BaseException:
        conn.close()
        raise
    return conn


def _current(conn: SqliteConnection, readonly: bool) -> None:
    """Migrate the ledger (a writer), or refuse one that needs it (a reader)."""
    if not readonly:
        with conn.faults():
            migrations.apply(conn.raw)
    elif migrations.pending(conn.raw):
        raise LedgerError(f"ledger {conn.path} needs migrating; run any writing command first")


def _greatest(*values: Any) -> Any:
    """PostgreSQL's GREATEST: the largest argument that is not NULL."""
    return max((v for v in values if v is not None), default=None)


def _least(*values: Any) -> Any:
    """PostgreSQL's LEAST: the smallest argument that is not NULL."""
    return min((v for v in values if v is not None), default=None)


def _open(path: Path, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            if not path.exists():
                raise LedgerError(f"no ledger at {path}: nothing has been recorded yet")
            conn = sqlite3.connect(
                f"file:{quote(str(path))}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.create_function("GREATEST", -1, _greatest, deterministic=True)
        conn.create_function("LEAST", -1, _least, deterministic=True)
    except sqlite3.Error as exc:
        fault = sqlite_fault(exc, path.parent)
        if fault is not None and not readonly:
            raise LedgerUnwritable(fault.kind, f"{fault.reason} (opening {path})") from exc
        raise LedgerError(f"cannot open ledger {path}: {exc}") from exc
    return conn
