"""``docproc ledger copy``: an SQLite ledger, history and all, into an empty PostgreSQL one.

The target is migrated first (:mod:`.schema_pg`), then filled in one write
transaction: every table in the order its references need, ids kept, in
chunks through ``COPY`` (memory stays flat however big the ledger), identity
sequences moved past the highest id. The ledger's own id (``ledger_info``)
goes with it, so custom ids stay unique across the move. Before the commit
the event hash chain is walked on both sides (as ``docproc ledger verify``
walks it) and must agree; otherwise nothing is kept.

Refused, with the reason, when the source is not a ledger, needs migrating,
has a broken chain, or the target already holds ledger rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docproc.errors import LedgerError
from docproc.ledger.events import GENESIS, event_hash
from docproc.ledger.postgres import PostgresConnection
from docproc.ledger.schema_pg import NAMES, migrate

__all__ = ["TABLES", "CopyReport", "copy_ledger"]

# Every ledger table, each after the tables it references.
TABLES = (
    "roots", "versions", "files", "tasks", "jobs", "batches", "requests", "sidecars",
    "s3_objects", "ledger_info", "operator_requests", "sidecar_retries", "events",
)  # fmt: skip
CHUNK = 5000
_EVENT_COLUMNS = "id, at, actor, kind, subject, detail, prev_hash, hash"
Page = Callable[[int], Sequence[Sequence[Any]]]  # the events after an id, CHUNK at most


@dataclass(frozen=True, slots=True)
class CopyReport:
    """Rows copied per table (in copy order) and the events whose chain was checked."""

    counts: dict[str, int]
    events: int


def copy_ledger(source: Path, target: PostgresConnection) -> CopyReport:
    """Copy the SQLite ledger at ``source`` into the empty PostgreSQL ledger ``target``.

    Raises:
        LedgerError: refused or failed verification (the reason says which); the
            target holds no copied row.
        LedgerUnwritable: the server went away; nothing copied was committed.
    """
    src = _open_source(source)
    try:
        _check_source(src, source)
        _check_target_empty(target)
        migrate(target)
        src.execute("BEGIN")  # one snapshot of every table, even with a writer at work
        events = _verify(_sqlite_pages(src), f"the source {source}")
        with target.write():
            target.execute(
                "DELETE FROM ledger_info"
            )  # the migration's id: the source's replaces it
            counts = {table: _copy_table(src, target, table) for table in TABLES}
            _reset_identities(target)
            copied = _verify(_pg_pages(target), f"the copy in {target.where}")
            if copied != events:
                raise LedgerError(f"the copy holds {copied} events, the source {events}")
        return CopyReport(counts, events)
    finally:
        src.close()


def _open_source(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise LedgerError(f"no SQLite ledger at {path}")
    try:
        return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open {path}: {exc}") from None


def _check_source(src: sqlite3.Connection, path: Path) -> None:
    try:
        rows = src.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = 'docproc'"
        ).fetchall()
    except sqlite3.Error:
        raise LedgerError(f"{path} is not a docproc ledger (no migration record)") from None
    done = {str(row[0]) for row in rows}
    if missing := [name for name in NAMES if name not in done]:
        raise LedgerError(
            f"{path} needs migrating ({', '.join(missing)}): run `docproc scan` or"
            " `docproc run` on it once with this version, then copy"
        )
    if unknown := sorted(done - set(NAMES)):
        raise LedgerError(f"{path} has migrations this version does not know: {unknown}")


def _check_target_empty(target: PostgresConnection) -> None:
    """Refuse a target whose ledger tables hold rows (its own ``ledger_info`` id aside)."""
    full = []
    for table in TABLES:
        if table == "ledger_info":
            continue
        exists = target.execute("SELECT to_regclass(?) IS NOT NULL", (table,)).fetchone()
        if exists and exists[0]:
            row = target.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()  # noqa: S608 - names from TABLES
            if row and row[0]:
                full.append(table)
    if full:
        raise LedgerError(
            f"{target.where} is not empty ({', '.join(full)} hold rows): ledger copy"
            " only fills an empty database"
        )


def _columns(target: PostgresConnection, table: str) -> list[str]:
    rows = target.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [str(row[0]) for row in rows]


def _copy_table(src: sqlite3.Connection, target: PostgresConnection, table: str) -> int:
    columns = _columns(target, table)
    cursor = src.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid")  # noqa: S608 - names from the schema

    def rows() -> Iterator[Sequence[Any]]:
        while chunk := cursor.fetchmany(CHUNK):
            yield from chunk

    return target.copy_rows(table, columns, rows())


def _reset_identities(target: PostgresConnection) -> None:
    """Each identity column's next value just past the highest id copied."""
    identities = target.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ).fetchall()
    for table, column in identities:
        target.execute(
            f"SELECT setval(pg_get_serial_sequence(?, ?), COALESCE(MAX({column}), 1),"  # noqa: S608 - names from the catalog
            f" MAX({column}) IS NOT NULL) FROM {table}",
            (table, column),
        )


def _sqlite_pages(src: sqlite3.Connection) -> Page:
    sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT {CHUNK}"  # noqa: S608 - constants
    return lambda after: src.execute(sql, (after,)).fetchall()


def _pg_pages(target: PostgresConnection) -> Page:
    sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT {CHUNK}"  # noqa: S608 - constants
    return lambda after: target.execute(sql, (after,)).fetchall()


def _verify(page: Page, side: str) -> int:
    """Walk the chain as ``Ledger.verify`` does, a page at a time; the number of events.

    Raises:
        LedgerError: naming the side and the first event that does not fit.
    """
    prev, count, after = GENESIS, 0, 0
    while rows := page(after):
        for event_id, at, actor, kind, subject, detail, prev_hash, digest in rows:
            count += 1
            if prev_hash != prev:
                raise LedgerError(f"{side}: chain broken at event {event_id} (previous hash)")
            if event_hash(prev, at, actor, kind, subject, detail) != digest:
                raise LedgerError(f"{side}: chain broken at event {event_id} (content changed)")
            prev, after = digest, int(event_id)
    return count
