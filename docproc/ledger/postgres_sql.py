"""The SQL text PostgreSQL is sent: placeholders translated, and the dialect.

Pure text, no driver: :mod:`docproc.ledger.postgres` runs what this gives.
``?`` placeholders (and ``:name`` with a mapping) become psycopg's ``%s``
(``%(name)s``), except in quoted text, quoted names and comments; every
literal ``%`` is doubled, since psycopg reads it everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["PostgresDialect", "translate"]

# Quoted text, quoted names and comments (kept as they are), or one character
# that means something to psycopg or to us: ?, %, :name.
_TOKENS = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|::|:[A-Za-z_]\w*|[?%]|[^'"?%:/-]+|.""",
    re.DOTALL,
)


@lru_cache(maxsize=1024)
def translate(sql: str, named: bool = False) -> str:
    """``sql`` with ``?`` (``:name`` when ``named``) as psycopg placeholders, each ``%`` doubled.

    A ``?`` or ``:name`` inside quoted text, a quoted name or a comment stays as it is.
    """
    out: list[str] = []
    for part in _TOKENS.findall(sql):
        if part == "?":
            out.append("%s")
        elif part == "%":
            out.append("%%")
        elif named and part.startswith(":") and part != "::" and len(part) > 1:
            out.append(f"%({part[1:]})s")
        else:  # psycopg reads % everywhere, inside quotes and comments too
            out.append(part.replace("%", "%%"))
    return "".join(out)


class PostgresDialect:
    """PostgreSQL's text for what differs between the engines."""

    name = "postgresql"

    def json_text(self, expr: str, key: str) -> str:
        quoted = key.replace("'", "''")
        return f"(({expr})::jsonb ->> '{quoted}')"

    def byte_length(self, expr: str) -> str:
        return f"octet_length({expr})"

    def bytewise(self, expr: str) -> str:
        return f'{expr} COLLATE "C"'  # the database's own collation may be a locale's

    def round_to(self, expr: str, digits: int) -> str:
        # ROUND(double precision, int) does not exist; numeric's comes back as a float
        return f"ROUND(CAST({expr} AS NUMERIC), {int(digits)})"

    def json_rows(self, types: Sequence[str]) -> str | None:
        columns = ", ".join(
            f"(e.value ->> {i})::{_JSON_TYPES[kind]} AS c{i}" for i, kind in enumerate(types)
        )
        return (
            f"(SELECT e.n, {columns} FROM"  # noqa: S608 - names and types are this module's
            " jsonb_array_elements(CAST(? AS jsonb)) WITH ORDINALITY AS e (value, n)) AS v"
        )


_JSON_TYPES = {"int": "bigint", "real": "double precision", "text": "text"}
