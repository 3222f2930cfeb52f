"""The daemon on a PostgreSQL ledger while the server goes away and comes back.

A real ``docproc run`` subprocess (tests/daemonrun.py), the offline ``local``
provider, the session's PostgreSQL cluster (tests/pgserver.py) stopped in the
middle of the work and started again. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from docproc.ledger.connection import open_ledger
from tests.clitools import docproc
from tests.daemonrun import DaemonProcess, free_port, scrape, write_config
from tests.notifysock import NotifySocket
from tests.pgserver import PgServer
from tests.tcpcut import CutRelay

pytestmark = pytest.mark.slow

SUFFIXES = (".summary.md", ".docproc.json")
TEXT = "It has a first sentence about ledgers. And a second one about servers going away."
DOCS = 50
OUTAGE_S = 4.0


def _drop(folder: Path, first: int, count: int) -> list[Path]:
    paths = []
    for i in range(first, first + count):
        path = folder / f"doc{i:02d}.txt"
        path.write_text(f"Document {i}. {TEXT}")
        paths.append(path)
    return paths


class Ledger:
    """Reads of the daemon's ledger on the server, as an auditor would make them."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            with psycopg.connect(self.url, connect_timeout=5) as conn:
                return conn.execute(sql).fetchall()
        except psycopg.OperationalError:
            return []  # the server is away: nothing seen yet

    def states(self) -> dict[str, str]:
        rows = self.query("SELECT path, state FROM file_status")
        return {Path(path).name: state for path, state in rows}

    def written(self, docs: list[Path]) -> bool:
        found = self.states()
        return all(found.get(doc.name) == "written" for doc in docs)


def _until(daemon: DaemonProcess, condition: Callable[[], bool], seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert daemon.proc.poll() is None, f"daemon exited:\n{daemon.tail()}"
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not reached in {seconds} s:\n{daemon.tail()}")


def test_a_server_restart_during_a_run_loses_nothing_and_does_nothing_twice(
    pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    port = free_port()
    extra = f'[metrics]\nlisten = "127.0.0.1:{port}"\n[ledger]\nurl = "{pg_url}"\n'
    config = write_config(tmp_path, [inbox], extra)
    ledger = Ledger(pg_url)
    notify = NotifySocket(tmp_path / "notify.sock")
    daemon = DaemonProcess(config, env={**os.environ, "NOTIFY_SOCKET": notify.address})
    stopped = False
    try:
        daemon.wait_ready()
        first = _drop(inbox, 0, DOCS // 2)
        _until(daemon, lambda: len(ledger.states()) >= 5)  # at work
        pg_server.stop()
        stopped = True
        away = time.monotonic()
        later = _drop(inbox, DOCS // 2, DOCS - DOCS // 2)  # seen while the ledger is away
        status = docproc("status", "--config", config, state=daemon.state)
        assert status.returncode == 1, status.stdout
        line = status.stderr.strip()
        where = pg_url.removeprefix("postgresql://")
        assert line.startswith(f"docproc: ledger unreachable: {where}: "), line
        assert "\n" not in line and "Traceback" not in line
        _until(daemon, lambda: 'docproc_ledger_unwritable{reason="ledger unreachable: ' in
               scrape(port), 30)  # fmt: skip

        def unreachable() -> list[str]:
            lines = [fields["STATUS"] for at, fields in notify.received("STATUS") if at > away]
            return [line for line in lines if line.startswith("ledger unreachable: ")]

        _until(daemon, lambda: bool(unreachable()), 30)
        assert unreachable()[0].startswith(f"ledger unreachable: {where}: "), unreachable()
        time.sleep(OUTAGE_S)
        assert daemon.proc.poll() is None, daemon.tail()
        pg_server.start()
        stopped = False
        _until(daemon, lambda: ledger.written(first + later), 180)
        _until(daemon, lambda: "docproc_ledger_unwritable 0" in scrape(port), 30)
    finally:
        if stopped:
            pg_server.start()
        code = daemon.stop()
        notify.close()
    assert code == 0, daemon.tail()
    out = daemon.output()
    assert "ledger.unwritable" in out and "ledger unreachable" in out
    assert "ledger.writable_again" in out
    _assert_whole(ledger, first + later, config, daemon)


def _assert_whole(ledger: Ledger, docs: list[Path], config: Path, daemon: DaemonProcess) -> None:
    """Sidecars for every document, a verified chain, nothing sent or written twice."""
    for doc in docs:
        for suffix in SUFFIXES:
            assert doc.with_name(doc.name + suffix).stat().st_size > 0, doc
    assert [n for n in os.listdir(docs[0].parent) if n.endswith(".tmp")] == []
    verified = docproc("ledger", "verify", "--config", config, state=daemon.state)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    twice = ledger.query(
        "SELECT custom_id FROM requests GROUP BY custom_id HAVING COUNT(DISTINCT batch_id) > 1"
    )
    assert twice == []
    answered = ledger.query(
        "SELECT job_id, COUNT(*) FROM requests WHERE state = 'succeeded' GROUP BY job_id"
    )
    assert len(answered) == len(docs) and all(n == 1 for _, n in answered)
    written = ledger.query(
        "SELECT subject, COUNT(*) FROM events WHERE kind = 'sidecars.written' GROUP BY subject"
    )
    assert len(written) == len(docs) and all(n == 1 for _, n in written), written
    status = json.loads(docproc("status", "--json", "--config", config, state=daemon.state).stdout)
    assert status["files"] == {"written": len(docs)}, status["files"]


def test_a_daemon_whose_claim_was_taken_while_away_exits_and_writes_nothing_more(
    pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    db = pg_url.rsplit("/", 1)[1]
    relay = CutRelay(pg_server.port)  # the daemon reaches the server through it
    via_relay = f"postgresql://docproc@127.0.0.1:{relay.port}/{db}"
    config = write_config(tmp_path, [inbox], f'[ledger]\nurl = "{via_relay}"\n')
    daemon = DaemonProcess(config)
    try:
        daemon.wait_ready()
        relay.refusing = True  # the daemon's network goes away...
        where = f"datname = '{db}' AND application_name LIKE 'docproc run pid=%'"
        pg_server.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {where}")  # noqa: S608
        _until(daemon, lambda: "ledger.unwritable" in daemon.output(), 30)
        with open_ledger(pg_url, actor="scan", claim="docproc scan"):  # ...and another writer
            relay.refusing = False  # comes in meanwhile; then the daemon is back
            code = daemon.wait(60)
    finally:
        daemon.stop()
        relay.stop()
    assert code == 3, daemon.tail()
    out = daemon.output()
    assert "daemon.ledger_restart_needed" in out and f"docproc scan pid={os.getpid()}" in out
    assert "writes nothing more" in out
