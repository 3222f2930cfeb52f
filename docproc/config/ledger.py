"""The ``[ledger]`` section: where the ledger lives (unset: SQLite in the state directory).

``url = "postgresql://user@host:port/db"`` puts it on a PostgreSQL server;
TLS and other libpq settings ride in the query (``?sslmode=verify-full&
sslrootcert=/etc/ssl/db-ca.pem``). The password never does: a URL carrying
one is refused, naming the key, without repeating it. libpq reads it from
``PGPASSWORD`` or ``~/.pgpass``; a systemd credential named ``ledger-password``
is read by :func:`docproc.config.environment.ledger_password`.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from docproc.config.table import Table
from docproc.errors import ConfigError

SCHEMES = ("postgresql", "postgres")
_URL_CREDENTIAL_HINT = (
    "must not carry a password: give it in PGPASSWORD, ~/.pgpass or a systemd"
    " credential named ledger-password"
)


def ledger(t: Table) -> str | None:
    """``url``: a ``postgresql://`` URL without password, or None (the SQLite default)."""
    url = t.get("url", str, "")
    t.finish()
    return check_ledger_url(t.key("url"), url) if url else None


def check_ledger_url(key: str, url: str) -> str:
    """``url`` if it names a PostgreSQL database and carries no password.

    Raises:
        ConfigError: naming ``key``; the URL is not repeated when it holds a password.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        raise ConfigError(key, "is not a valid postgresql:// URL") from None
    if password is not None or "password" in parse_qs(parts.query):
        raise ConfigError(key, _URL_CREDENTIAL_HINT)
    if parts.scheme not in SCHEMES:
        raise ConfigError(key, f"must be a postgresql://user@host:port/db URL (got {url!r})")
    if not parts.path.strip("/"):
        raise ConfigError(
            key, f"must name a database: postgresql://user@host:port/db (got {url!r})"
        )
    return url
