"""What ``docproc config check`` asks a PostgreSQL ledger: reachable, as whom, schema current.

Read-only (a read-only role can be checked), one short connection; loaded only
when ``[ledger] url`` is set, so the SQLite default never imports psycopg.
"""

from __future__ import annotations

from dataclasses import dataclass

from docproc.ledger import schema_pg
from docproc.ledger.postgres import PostgresConnection, connect

__all__ = ["ServerCheck", "check_server"]

# What the role may do, from the privileges that matter, most first (table, privilege, words).
_MAY = (
    ("files", "INSERT", "may write (run, scan)"),
    ("operator_requests", "INSERT", "may record requests (cancel, ledger retry), not write"),
)
_PRIVILEGE = "SELECT CASE WHEN to_regclass(?) IS NULL THEN false ELSE has_table_privilege(?, ?) END"
_MAY_CREATE = "SELECT has_schema_privilege(current_schema(), 'CREATE')"


@dataclass(frozen=True)
class ServerCheck:
    """One look at the server: where, its version, the role and what it may do, what is pending."""

    where: str
    version: str
    role: str
    may: str
    pending: list[str]


def check_server(url: str, *, password: str | None = None) -> ServerCheck:
    """Connect read-only to ``url`` and look.

    Raises:
        LedgerUnwritable: (``unreachable``) the server cannot be reached or refused the login.
    """
    conn = connect(url, readonly=True, password=password)
    try:
        row = conn.execute("SELECT current_user, current_setting('server_version')").fetchone()
        role, version = (str(row[0]), str(row[1])) if row else ("?", "?")
        pending = schema_pg.pending(conn)
        may = _may(conn, pending)
    finally:
        conn.close()
    return ServerCheck(conn.where, version.split()[0], role, may, pending)


def _may(conn: PostgresConnection, pending: list[str]) -> str:
    """What this role may do with the ledger, in words."""
    if pending:
        row = conn.execute(_MAY_CREATE).fetchone()
        if row and row[0]:
            return "may create and migrate the schema (the first writer does)"
        return "may not create the schema (no CREATE on it): only its owner can migrate it"
    for table, privilege, words in _MAY:
        found = conn.execute(_PRIVILEGE, (table, table, privilege)).fetchone()
        if found and found[0]:
            return words
    return "read-only (status, ledger reads)"
