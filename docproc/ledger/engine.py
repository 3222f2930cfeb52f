"""The seam between the ledger's SQL and the engine under it (SQLite or PostgreSQL).

Everything above this seam writes its SQL once, in the subset both engines
speak: ``?`` placeholders, ``INSERT ... ON CONFLICT ... DO NOTHING | DO UPDATE``,
``RETURNING id`` (read with :func:`inserted_id`; never ``lastrowid``),
``GREATEST``/``LEAST`` (registered on SQLite connections), times as ISO-8601
UTC text computed in Python, booleans as integers. What still differs (the
text of a few SQL fragments, how a write transaction takes its lock, which
errors mean a disk or a server fault) is answered by the engine's
:class:`Connection` and :class:`Dialect`; the engine modules (``sqlite``,
``postgres``) are the only ones that import a database driver.

An engine module offers ``connect(location, *, readonly) -> Connection``: a
connection to a ledger whose schema is current (a writer applies pending
migrations first; a reader refuses a schema that needs them, with
:class:`~docproc.errors.LedgerError`). :func:`docproc.ledger.connection.connect`
picks the engine from the location.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

Params = Sequence[Any] | Mapping[str, Any]
Row = dict[str, Any]


class Cursor(Protocol):
    """What an ``execute`` hands back: rows as tuples, and how many rows changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any:  # a row tuple, or None (as sqlite3 has it)
        ...

    def fetchall(self) -> list[tuple[Any, ...]]: ...

    def __iter__(self) -> Iterator[tuple[Any, ...]]: ...


class Dialect(Protocol):
    """SQL text that differs between the engines, as small pure functions."""

    name: str  # "sqlite" | "postgresql"

    def json_text(self, expr: str, key: str) -> str:
        """An expression for the text of ``key`` in the JSON object text ``expr``."""
        ...

    def byte_length(self, expr: str) -> str:
        """An expression for the length in bytes (UTF-8) of the text ``expr``."""
        ...

    def bytewise(self, expr: str) -> str:
        """The text ``expr`` compared and sorted by its bytes (not by a locale's collation)."""
        ...

    def round_to(self, expr: str, digits: int) -> str:
        """An expression for the number ``expr`` (a float) rounded to ``digits`` decimals."""
        ...

    def json_rows(self, types: Sequence[str]) -> str | None:
        """A table ``v`` of many rows read from one ``?`` parameter (a JSON array of
        arrays, each holding values of ``types``: ``int``, ``real``, ``text``), with
        columns ``c0``, ``c1``, ... and ``n``, the row's place in the array; ``None``
        where one statement per row costs no round trip (SQLite: ``executemany``).
        """
        ...


class Connection(Protocol):
    """One open connection to the ledger, as every ledger module uses it.

    Transactions are explicit: :meth:`write` is the only way to change data;
    outside it a connection only reads.
    """

    @property
    def dialect(self) -> Dialect: ...

    @property
    def where(self) -> str:
        """The ledger's location for people: a path, or a URL without its password."""
        ...

    def execute(self, sql: str, params: Params = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Params]) -> None: ...

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        """All rows of ``sql`` as dicts keyed by column name."""
        ...

    def write(self) -> AbstractContextManager[None]:
        """One write transaction, serialised against every other writer of this
        ledger (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a transaction-scoped
        advisory lock). Commits on success, rolls back on any exception. A
        storage or server fault comes out as :class:`~docproc.errors.LedgerUnwritable`.
        """
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A part of the current write transaction that may fail alone."""
        ...

    def claim(self, command: str) -> None:
        """Become the ledger's one writer, named ``command``, for this connection's life.

        PostgreSQL: a session advisory lock, taken again on every reconnection
        (:mod:`docproc.ledger.pglock`); another writer from any machine is
        refused with :class:`~docproc.errors.LedgerBusy` naming the first.
        SQLite: nothing here; the file's one writer is guarded by the flock on
        its state directory (:mod:`docproc.writerlock`), which every writer
        takes first.
        """
        ...

    def close(self) -> None: ...


def inserted_id(cursor: Cursor) -> int:
    """The id an ``INSERT ... RETURNING id`` gave back (the cursor is read to its end)."""
    rows = cursor.fetchall()
    return int(rows[0][0])
