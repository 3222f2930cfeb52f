"""The parts of a ledger as tests reach them: each built on an open ledger, as stages get them.

A part holds only references, so building one per call costs nothing; tests
say which part they use, as the stages do.
"""

from __future__ import annotations

import sqlite3

from docproc.ledger.connection import Ledger
from docproc.ledger.engine import Connection
from docproc.ledger.intake import ExtractionLedger, FileLedger
from docproc.ledger.publishing import SidecarLedger
from docproc.ledger.queries import Queries
from docproc.ledger.sqlite import SqliteConnection


def files(ledger: Ledger) -> FileLedger:
    return FileLedger(ledger)


def extractions(ledger: Ledger) -> ExtractionLedger:
    return ExtractionLedger(ledger)


def queries(ledger: Ledger) -> Queries:
    return Queries(ledger)


def sidecars(ledger: Ledger) -> SidecarLedger:
    return SidecarLedger(ledger)


def raw(ledger: Ledger) -> sqlite3.Connection:
    """The SQLite connection under the ledger, for tests about SQLite itself (PRAGMAs, files)."""
    conn = ledger.conn
    assert isinstance(conn, SqliteConnection)
    return conn.raw


def sql(ledger: Ledger) -> Connection:
    """The ledger's connection on either engine, for tests that look underneath (reads)."""
    return ledger.conn


def change(ledger: Ledger, *statements: str) -> None:
    """Reach underneath on either engine: ``statements`` in one write transaction."""
    with ledger.conn.write():
        for statement in statements:
            ledger.conn.execute(statement)


def count(ledger: Ledger, table: str) -> int:
    return int(sql(ledger).execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
