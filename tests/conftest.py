"""Shared fixtures: an isolated environment per test, and no leaked threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from docproc.ledger.connection import LedgerLocation
from tests.s3server import AWS_ENV, Moto

ENGINES = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's environment or writes to their home."""
    for name in ("DOCPROC_STATE_DIR", "STATE_DIRECTORY", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves threads running (observers, servers) behind."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked:
            return
        time.sleep(0.05)
    pytest.fail(f"threads leaked: {[t.name for t in leaked]}")


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """moto's S3 and SQS server on 127.0.0.1 (its access log in a file), once per session."""
    server = Moto(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials for boto3's default chain; nothing read from the developer's ~/.aws."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The ledger's engine a test runs on: each test that asks runs on both."""
    return str(request.param)


@pytest.fixture
def ledger_url(engine: str, request: pytest.FixtureRequest) -> str | None:
    """``[ledger] url`` for the engine: a fresh empty PostgreSQL database, or None (SQLite)."""
    if engine == "sqlite":
        return None
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def fresh_ledger_url(engine: str, request: pytest.FixtureRequest) -> Callable[[], str | None]:
    """Another empty ledger on the engine, on each call (SQLite: None, the state dir's file)."""
    if engine == "sqlite":
        return lambda: None
    server = request.getfixturevalue("pg_server")
    return lambda: str(server.url(server.new_database()))


@pytest.fixture
def ledger_location(ledger_url: str | None, tmp_path: Path) -> LedgerLocation:
    """Where a test's ledger is: the SQLite file in ``tmp_path/state``, or a fresh PG database."""
    return ledger_url or tmp_path / "state" / "ledger.db"


pytest_plugins = ["tests.pgserver"]
