"""Many rows per statement: the portable SQL that makes a chunk of work a few round trips.

On PostgreSQL every statement is a round trip to the server (110-170 us on a
loopback), which cost more than the work itself when a chunk of results or a
batch of scanned files ran several statements per item. These helpers look a
whole list of keys up at once (:func:`select_in`), insert many rows in their
order (:func:`insert_rows`, :func:`append_rows`) and update many rows by id
(:func:`update_by_id`). Where the engine says how (:meth:`Dialect.json_rows
<docproc.ledger.engine.Dialect.json_rows>`: PostgreSQL), the rows travel as
one JSON parameter, so a statement's text stays the same and the server
prepares it once; otherwise (SQLite, in-process, no round trips) a list is
``IN (?, ?, ...)``, an insert one ``VALUES (...), (...)`` and an update an
``executemany``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from docproc.ledger.engine import Connection, Cursor

ROWS_PER_STATEMENT = 250  # keeps a statement's parameters far below both engines' limits
JSON_ROWS_PER_STATEMENT = 1000  # rows read from one JSON parameter (engine.Dialect.json_rows)


def pieces(items: Sequence[Any], size: int = ROWS_PER_STATEMENT) -> Iterator[Sequence[Any]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def marks(count: int) -> str:
    """``?, ?, ...``: the placeholders of a list of ``count`` values."""
    return ", ".join("?" * count)


def select_in(
    conn: Connection, sql: str, keys: Sequence[Any], params: Sequence[Any] = (), kind: str = "text"
) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` for every key of ``keys`` (of type ``kind``); ``sql`` holds
    ``{keys}`` where the list goes (``WHERE r.custom_id IN ({keys})``) and ``params``
    come before the keys. Where the engine reads rows from JSON, the list is one
    parameter (the statement's text stays the same, so the server prepares it once)."""
    rows: list[tuple[Any, ...]] = []
    source = conn.dialect.json_rows([kind])
    if source is not None:
        text = sql.format(keys=f"SELECT v.c0 FROM {source}")  # noqa: S608 - the seam's text
        for piece in pieces(keys, JSON_ROWS_PER_STATEMENT):
            rows += conn.execute(text, (*params, json_param([[key] for key in piece]))).fetchall()
        return rows
    for piece in pieces(keys):
        rows += conn.execute(sql.format(keys=marks(len(piece))), (*params, *piece)).fetchall()
    return rows


def insert_rows(
    conn: Connection, table: str, columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]], returning: str = "",
) -> list[tuple[Any, ...]]:  # fmt: skip
    """Insert ``rows`` (values of ``columns``: name, type) in their order, so ids are given
    in that order, with a few statements; what ``returning`` names (``id, uri``) comes back
    for each row, in no promised order: key it by a column."""
    names = ", ".join(name for name, _ in columns)
    tail = f" RETURNING {returning}" if returning else ""
    source = conn.dialect.json_rows([kind for _, kind in columns])
    back: list[tuple[Any, ...]] = []
    if source is not None:
        values = ", ".join(f"v.c{i}" for i in range(len(columns)))
        sql = f"INSERT INTO {table} ({names}) SELECT {values} FROM {source} ORDER BY v.n{tail}"  # noqa: S608
        for piece in pieces(rows, JSON_ROWS_PER_STATEMENT):
            back += _rows_of(conn.execute(sql, (json_param(piece),)), returning)
        return back
    one = f"({marks(len(columns))})"
    for piece in pieces(rows):
        sql = f"INSERT INTO {table} ({names}) VALUES {', '.join([one] * len(piece))}{tail}"  # noqa: S608
        back += _rows_of(conn.execute(sql, [value for row in piece for value in row]), returning)
    return back


def append_rows(
    conn: Connection, table: str, columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]],
) -> None:  # fmt: skip
    """Insert ``rows`` in their order: one ``executemany`` where statements cost no round
    trip, else one statement per :data:`JSON_ROWS_PER_STATEMENT` rows."""
    if conn.dialect.json_rows([]) is not None:
        insert_rows(conn, table, columns, rows)
        return
    names = ", ".join(name for name, _ in columns)
    conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks(len(columns))})", rows)  # noqa: S608


def update_by_id(
    conn: Connection, table: str, columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]], *, also: str = "",
) -> None:  # fmt: skip
    """Set ``columns`` (name, type) of the rows of ``table`` whose id ends each of ``rows``
    (the values of ``columns``, then the id); ``also`` adds fixed assignments
    (``"error = NULL, "``)."""
    source = conn.dialect.json_rows([kind for _, kind in columns] + ["int"])
    if source is None:
        sets = ", ".join(f"{name} = ?" for name, _ in columns)
        conn.executemany(f"UPDATE {table} SET {also}{sets} WHERE id = ?", rows)  # noqa: S608
        return
    sets = ", ".join(f"{name} = v.c{i}" for i, (name, _) in enumerate(columns))
    sql = f"UPDATE {table} SET {also}{sets} FROM {source} WHERE {table}.id = v.c{len(columns)}"  # noqa: S608
    for piece in pieces(rows, JSON_ROWS_PER_STATEMENT):
        conn.execute(sql, (json_param(piece),))


def json_param(rows: Sequence[Sequence[Any]]) -> str:
    """``rows`` as the one parameter of a ``json_rows`` table.

    Raises:
        ValueError: a value JSON cannot hold as it is (NaN, infinity).
        OverflowError: an integer beyond 64 bits (as binding it would be refused).
    """
    for row in rows:
        for value in row:
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise OverflowError(f"integer {value} does not fit in 64 bits")
    return json.dumps(rows, allow_nan=False, separators=(",", ":"))


def _rows_of(cursor: Cursor, returning: str) -> list[tuple[Any, ...]]:
    return cursor.fetchall() if returning else []
