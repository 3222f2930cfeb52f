"""One writer per ledger on PostgreSQL, from any machine: the claim of docproc.ledger.pglock.

A real server (tests/pgserver.py); "another machine" is another state directory
pointing at the same database, where the state directory's flock cannot help.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from docproc.errors import LedgerBusy, LedgerUnwritable, LedgerWriterLost
from docproc.ledger.connection import Ledger, open_ledger
from docproc.ledger.pglock import WRITER_LOCK_KEY
from tests.clitools import docproc
from tests.pgserver import PgServer
from tests.tcpcut import CutRelay

HOLD = """
import sys, time
from docproc.ledger.connection import open_ledger
ledger = open_ledger(sys.argv[1], claim="docproc run")
print("held", flush=True)
time.sleep(60)
"""


def _holders(pg_server: PgServer, db: str) -> list[str]:
    """The application_name of every session holding the writer claim on ``db``."""
    import psycopg

    with psycopg.connect(host=str(pg_server.home), port=pg_server.port, user="postgres",
                         dbname=db, connect_timeout=10) as conn:  # fmt: skip
        rows = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.classid::bigint = %s::bigint >> 32"
            " AND l.objid::bigint = %s::bigint & 4294967295",
            (WRITER_LOCK_KEY, WRITER_LOCK_KEY),
        ).fetchall()
    return [str(row[0]) for row in rows]


def _end_sessions(pg_server: PgServer, db: str, command: str) -> None:
    """The server ends the sessions of ``command`` (as a restart or failover would)."""
    where = f"datname = '{db}' AND application_name LIKE '{command} pid=%'"
    pg_server.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {where}")  # noqa: S608


def _write(ledger: Ledger, note: str) -> None:
    with ledger.transaction() as conn:
        ledger.event(conn, "test.note", note)


def _write_soon(ledger: Ledger, note: str, tries: int = 5) -> None:
    """A write, after the lost connection's first refusal (``unreachable``) if there is one."""
    for attempt in range(tries):
        try:
            _write(ledger, note)
        except LedgerUnwritable as exc:
            assert exc.kind == "unreachable", exc
            assert attempt < tries - 1, exc
            time.sleep(0.2)
        else:
            return


def test_a_second_writer_is_refused_naming_the_first_readers_and_requests_are_not(
    pg_url: str,
) -> None:
    first = open_ledger(pg_url, actor="daemon", claim="docproc run")
    try:
        with pytest.raises(LedgerBusy) as refused:
            open_ledger(pg_url, actor="scan", claim="docproc scan")
        message = str(refused.value)
        assert f"in use by docproc run pid={os.getpid()} host=" in message, message
        assert "(server pid " in message and ", since 20" in message and "\n" not in message
        assert "one writer per ledger" in message
        with open_ledger(pg_url, readonly=True) as reader:  # status, ledger reads
            assert reader.identity() == first.identity()
        with open_ledger(pg_url, actor="cli") as request:  # cancel, ledger retry: no claim
            _write(request, "a request")
        _write(first, "the writer writes")
    finally:
        first.close()
    with open_ledger(pg_url, actor="scan", claim="docproc scan") as second:  # released
        _write(second, "the next writer")


def test_the_claim_is_taken_again_after_the_connection_is_lost(
    pg_server: PgServer, pg_url: str
) -> None:
    db = pg_url.rsplit("/", 1)[1]
    with open_ledger(pg_url, actor="daemon", claim="docproc run") as writer:
        _write(writer, "before")
        assert len(_holders(pg_server, db)) == 1
        _end_sessions(pg_server, db, "docproc run")
        assert _holders(pg_server, db) == []
        _write_soon(writer, "after")  # reconnected, claimed again first
        assert [h.split(" host=")[0] for h in _holders(pg_server, db)] == [
            f"docproc run pid={os.getpid()}"
        ]
        with pytest.raises(LedgerBusy):
            open_ledger(pg_url, claim="docproc scan")


def test_a_writer_whose_claim_was_taken_meanwhile_writes_nothing_more(
    pg_server: PgServer, pg_url: str
) -> None:
    db = pg_url.rsplit("/", 1)[1]
    first = open_ledger(pg_url, actor="daemon", claim="docproc run")
    try:
        _write(first, "first")
        _end_sessions(pg_server, db, "docproc run")
        with open_ledger(pg_url, actor="scan", claim="docproc scan") as second:
            with pytest.raises((LedgerWriterLost, LedgerUnwritable)):
                _write(first, "must not land")
            with pytest.raises(LedgerWriterLost) as lost:
                _write(first, "must not land either")
            assert "docproc scan pid=" in str(lost.value)
            assert "writes nothing more" in str(lost.value)
            _write(second, "second")
        with pytest.raises(LedgerWriterLost):  # never again, even with the other one gone
            _write(first, "still not")
    finally:
        first.close()
    with open_ledger(pg_url, readonly=True) as reader:
        notes = [r["subject"] for r in reader.conn.query(
            "SELECT subject FROM events WHERE kind = 'test.note' ORDER BY id")]  # fmt: skip
    assert notes == ["first", "second"]


def test_our_own_old_session_still_holding_the_claim_is_ended(
    pg_server: PgServer, pg_url: str
) -> None:
    """A network cut the server has not noticed: the old session still holds the claim."""
    db = pg_url.rsplit("/", 1)[1]
    relay = CutRelay(pg_server.port)
    try:
        url = f"postgresql://docproc@127.0.0.1:{relay.port}/{db}"
        with open_ledger(url, actor="daemon", claim="docproc run") as writer:
            _write(writer, "before")
            relay.cut_next("request")  # the next statement is lost; the server's side stays
            with pytest.raises(LedgerUnwritable):
                _write(writer, "cut")
            assert len(_holders(pg_server, db)) == 1  # the old session, still there
            _write_soon(writer, "after")
            assert len(_holders(pg_server, db)) == 1
    finally:
        relay.stop()


def test_cli_writers_elsewhere_are_refused_while_status_works(
    pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, pg_url],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        (inbox / "a.txt").write_text("One sentence here.")
        config = tmp_path / "elsewhere.toml"  # another machine: its own state directory
        config.write_text(f'state_dir = "{tmp_path / "state"}"\n[ledger]\nurl = "{pg_url}"\n')
        state = tmp_path / "state"
        scan = docproc("scan", "--config", config, "--settle", "0", inbox, state=state)
        assert scan.returncode == 1, scan.stderr
        line = scan.stderr.strip()
        assert "\n" not in line and "Traceback" not in line, line
        assert f"in use by docproc run pid={holder.pid} host=" in line, line
        imported = docproc("ledger", "import-sidecars", "--config", config, inbox, state=state)
        assert imported.returncode == 1 and f"pid={holder.pid}" in imported.stderr
        copied = docproc("ledger", "copy", "--to", pg_url, state=tmp_path / "other")
        assert copied.returncode == 1 and f"pid={holder.pid}" in copied.stderr, copied.stderr
        shown = docproc("status", "--config", config, state=state)
        assert shown.returncode == 0, shown.stderr
        checked = docproc("ledger", "verify", "--config", config, state=state)
        assert checked.returncode == 0, checked.stderr
    finally:
        holder.kill()
        holder.wait(timeout=10)
        assert holder.stdout is not None
        holder.stdout.close()
