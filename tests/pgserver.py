"""A throwaway PostgreSQL cluster for the tests (a pytest plugin over tests/pgcluster.py).

Session-scoped: one cluster (see :mod:`tests.pgcluster`: where, which roles,
how it stops) started once and removed at the end. The server binaries come
from Debian's ``postgresql`` package (``make system-deps``); without them the
fixture fails, naming that target.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pgcluster import (
    PASSWORD,
    PASSWORD_ROLE,
    TRUST_ROLE,
    NoServerError,
    PgServer,
    bindir,
    running_cluster,
)

__all__ = ["PASSWORD", "PASSWORD_ROLE", "TRUST_ROLE", "PgServer", "pg_server", "pg_url"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's cluster, started once and removed at the end."""
    try:
        bindir()
    except NoServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    with running_cluster() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a fresh empty database, as the trust role (no password)."""
    return pg_server.url(pg_server.new_database())
