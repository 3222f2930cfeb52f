"""A COMMIT cut off with its connection is never done twice nor lost (real server, no mocks).

The work is one row of ``work`` (no unique key: a second record would be a
second row). The caller does what the daemon does with
:class:`LedgerUnwritable`: keep the work and record it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from structlog.testing import capture_logs

from docproc.errors import LedgerCommitLanded, LedgerUnwritable
from docproc.ledger.postgres import PostgresConnection, connect
from tests.pgserver import PgServer
from tests.tcpcut import CutRelay

SETUP = """
CREATE TABLE work (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item TEXT NOT NULL);
CREATE TABLE slow (seconds DOUBLE PRECISION NOT NULL);
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(seconds) FROM slow;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER work_slow_commit AFTER INSERT ON work
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();
"""
WAIT_S = 20.0


@pytest.fixture
def db(pg_server: PgServer) -> str:
    """A fresh database with the ``work`` table (and a COMMIT made slow on demand)."""
    name = pg_server.new_database()
    with psycopg.connect(pg_server.url(name), autocommit=True) as conn:
        conn.execute(SETUP.encode())
    return name


@pytest.fixture
def relay(pg_server: PgServer) -> Iterator[CutRelay]:
    cut = CutRelay(pg_server.port)
    yield cut
    cut.stop()


def _via(relay: CutRelay, db: str) -> str:
    return f"postgresql://docproc@127.0.0.1:{relay.port}/{db}"


def _record(
    ledger: PostgresConnection, item: str, *, then: Callable[[], object] | None = None
) -> None:
    """One unit of work: one row, in one write transaction; ``then()`` just before COMMIT."""
    with ledger.write():
        ledger.execute("INSERT INTO work (item) VALUES (?)", (item,))
        if then is not None:
            then()


def _count(pg_server: PgServer, db: str, item: str) -> int:
    with psycopg.connect(pg_server.url(db), autocommit=True) as conn:
        row = conn.execute("SELECT COUNT(*) FROM work WHERE item = %s", (item,)).fetchone()
    return int(row[0]) if row else -1


def _sessions(pg_server: PgServer, db: str) -> list[tuple[int, str]]:
    """(pid, state) of the client sessions in ``db`` other than the asking one."""
    with psycopg.connect(pg_server.url(db), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, state FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchall()
    return [(int(pid), str(state)) for pid, state in rows]


def _record_until_done(ledger: PostgresConnection, item: str) -> int:
    """What the daemon does: on ``LedgerUnwritable`` keep the work and try again; tries made."""
    for tries in range(1, 6):
        try:
            _record(ledger, item)
        except LedgerUnwritable:
            time.sleep(0.2)
            continue
        return tries
    raise AssertionError("not recorded in 5 tries")


def test_reply_lost_after_the_commit_happened_is_success_and_recorded_once(
    pg_server: PgServer, db: str, relay: CutRelay
) -> None:
    ledger = connect(_via(relay, db))
    first_session = _sessions(pg_server, db)
    started = time.monotonic()
    with capture_logs() as logs:
        _record(ledger, "a", then=lambda: relay.cut_next("reply"))  # no exception: it committed
    assert time.monotonic() - started < 5.0
    assert [(e["event"], e["committed"]) for e in logs] == [("ledger.commit_settled", True)]
    assert _count(pg_server, db, "a") == 1
    assert not set(first_session) & set(_sessions(pg_server, db))  # that session is gone
    _record(ledger, "b")  # the connection goes on as usual
    assert _count(pg_server, db, "b") == 1
    writer = ledger._marks.writer
    ledger.close()
    with psycopg.connect(pg_server.url(db), autocommit=True) as conn:
        left = conn.execute("SELECT COUNT(*) FROM ledger_commits WHERE writer = %s", (writer,))
        assert left.fetchone() == (0,)  # a clean close removes the writer's mark


def test_commit_that_never_arrived_is_not_recorded_and_the_retry_records_it_once(
    pg_server: PgServer, db: str, relay: CutRelay
) -> None:
    ledger = connect(_via(relay, db))
    started = time.monotonic()
    with pytest.raises(LedgerUnwritable) as lost:
        _record(ledger, "a", then=lambda: relay.cut_next("request"))
    assert time.monotonic() - started < 5.0
    assert lost.value.kind == "unreachable"
    assert "(during COMMIT: not committed)" in str(lost.value)
    # The old session, left waiting in its transaction with the ledger's lock, was ended.
    assert all(state != "idle in transaction" for _, state in _sessions(pg_server, db))
    assert _count(pg_server, db, "a") == 0
    assert _record_until_done(ledger, "a") == 1
    assert _count(pg_server, db, "a") == 1
    ledger.close()


def _kill_during_commit(pg_server: PgServer, db: str, kill: str) -> threading.Thread:
    """In a thread: when a session sleeps in COMMIT (the deferred trigger), end it.

    ``kill`` is ``terminate`` (pg_terminate_backend of that session) or
    ``restart`` (the whole server stops at once and starts again).
    """

    def run() -> None:
        deadline = time.monotonic() + WAIT_S
        with psycopg.connect(pg_server.url(db), autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
                    " AND query = 'COMMIT' AND datname = current_database()"
                ).fetchone()
                if row:
                    break
                time.sleep(0.05)
            else:
                return
            if kill == "terminate":
                conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        if kill == "restart":
            pg_server.restart()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("kill", ["terminate", "restart"])
def test_session_killed_while_commit_runs_is_not_recorded_and_the_retry_records_it_once(
    pg_server: PgServer, db: str, kill: str
) -> None:
    ledger = connect(pg_server.url(db))
    with psycopg.connect(pg_server.url(db), autocommit=True) as conn:
        conn.execute("INSERT INTO slow VALUES (5)")  # COMMIT sleeps 5 s in the deferred trigger
    killer = _kill_during_commit(pg_server, db, kill)
    started = time.monotonic()
    with pytest.raises(LedgerUnwritable) as lost:
        _record(ledger, "a")
    elapsed = time.monotonic() - started
    killer.join(timeout=WAIT_S)
    assert not killer.is_alive()
    assert elapsed < 4.5 or kill == "restart"  # cut off in COMMIT, not after it
    assert elapsed < WAIT_S
    assert lost.value.kind == "unreachable"
    assert "(during COMMIT: not committed)" in str(lost.value)
    assert _count(pg_server, db, "a") == 0
    with psycopg.connect(pg_server.url(db), autocommit=True) as conn:
        conn.execute("DELETE FROM slow")
    assert _record_until_done(ledger, "a") == 1
    assert _count(pg_server, db, "a") == 1
    ledger.close()


def test_outcome_unknown_then_found_committed_stops_every_later_write(
    pg_server: PgServer, db: str, relay: CutRelay
) -> None:
    ledger = connect(_via(relay, db), settle_s=1.5)
    started = time.monotonic()
    with pytest.raises(LedgerUnwritable) as unknown:
        _record(ledger, "a", then=lambda: relay.cut_next("reply", then_refuse=True))
    assert 1.5 <= time.monotonic() - started < 8.0  # it asked for settle_s, then gave up
    assert unknown.value.kind == "unreachable"
    assert "the outcome of the last commit is unknown" in str(unknown.value)
    assert "\n" not in str(unknown.value)
    ran: list[str] = []
    with pytest.raises(LedgerUnwritable, match="earlier commit is still unknown"):
        _record(ledger, "a", then=lambda: ran.append("retry"))
    assert ran == []  # nothing runs while the outcome is unknown
    relay.refusing = False
    for _ in range(2):  # it did commit: the retry in hand must not be recorded, now or later
        with pytest.raises(LedgerCommitLanded, match="did happen"):
            _record(ledger, "a", then=lambda: ran.append("retry"))
    assert ran == []
    assert _count(pg_server, db, "a") == 1
    ledger.close()
    fresh = connect(_via(relay, db))  # a new start (a restarted process) writes again
    _record(fresh, "b")
    assert _count(pg_server, db, "b") == 1
    fresh.close()


def test_outcome_unknown_then_found_not_committed_lets_the_retry_record_it_once(
    pg_server: PgServer, db: str, relay: CutRelay
) -> None:
    ledger = connect(_via(relay, db), settle_s=1.5)
    with pytest.raises(LedgerUnwritable, match="the outcome of the last commit is unknown"):
        _record(ledger, "a", then=lambda: relay.cut_next("request", then_refuse=True))
    assert [state for _, state in _sessions(pg_server, db)] == ["idle in transaction"]
    relay.refusing = False
    assert _record_until_done(ledger, "a") == 1  # settled first (the old session ended), then run
    assert _count(pg_server, db, "a") == 1
    assert _sessions(pg_server, db) == [(pid, "idle") for pid, _ in _sessions(pg_server, db)]
    ledger.close()


def test_commit_refused_by_the_server_is_an_error_not_a_question(pg_url: str) -> None:
    ledger = connect(pg_url)
    ledger.script("CREATE TABLE u (k INT UNIQUE DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(psycopg.errors.UniqueViolation), ledger.write():
        ledger.execute("INSERT INTO u VALUES (1), (1)")  # refused at COMMIT: rolled back
    with ledger.write():
        ledger.execute("INSERT INTO u VALUES (1)")
    assert ledger.query("SELECT COUNT(*) AS c FROM u") == [{"c": 1}]
    ledger.close()


def test_a_read_only_connection_writes_no_commit_mark(pg_url: str) -> None:
    writer = connect(pg_url)
    writer.script("CREATE TABLE t (n INT)")
    with writer.write():
        writer.execute("INSERT INTO t VALUES (1)")
    reader = connect(pg_url, readonly=True)
    with reader.write():
        assert reader.query("SELECT COUNT(*) AS c FROM t") == [{"c": 1}]
    assert reader.query("SELECT writer FROM ledger_commits") == [{"writer": writer._marks.writer}]
    reader.close()
    writer.close()
