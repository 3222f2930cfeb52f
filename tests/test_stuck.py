"""A loop that fails for the same cause again is *stuck*: it says so (STATUS=, /metrics,
``docproc status``) and stops feeding systemd's watchdog, instead of looping silently."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from docproc.health import Snapshot, TickFailures, failure_site, prometheus_text, status_line
from tests.clitools import docproc
from tests.daemonrun import DaemonProcess, write_config
from tests.notifysock import NotifySocket
from tests.test_service import scrape_until

REFUSE_JOBS = """CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs
BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"""


def caught(exc: BaseException) -> BaseException:
    """``exc`` raised here and caught, with its traceback (the line below is its site)."""
    try:
        raise exc  # noqa: TRY301 - the point: a real traceback
    except BaseException as raised:
        return raised


def raise_from_here(message: str) -> BaseException:
    return caught(sqlite3.OperationalError(message))


def raise_elsewhere() -> BaseException:
    return caught(ValueError("other"))


def test_a_cause_failing_again_within_the_window_is_stuck_until_a_quiet_window() -> None:
    ticks = TickFailures(window=60)
    assert not ticks.failed(raise_from_here("no such table: jobs"), now=0)
    assert not ticks.failed(raise_elsewhere(), now=1)  # a different cause: not yet
    assert not ticks.succeeded(now=2) and ticks.stuck is None
    assert ticks.failed(raise_from_here("no such table: jobs 2"), now=5)  # again: stuck
    assert ticks.stuck is not None
    assert "with OperationalError: no such table: jobs 2 (at test_stuck.py:" in ticks.stuck
    assert not ticks.failed(raise_from_here("x"), now=6)  # still stuck, not "became"
    assert not ticks.succeeded(now=30)  # idle ticks between failures are not a recovery
    assert ticks.succeeded(now=67) and ticks.stuck is None
    assert not ticks.failed(raise_from_here("x"), now=200)  # long after: a fresh failure


def test_the_failure_site_is_the_innermost_docproc_frame() -> None:
    from docproc.ledger.invariants import check

    conn = sqlite3.connect(":memory:")
    try:
        check(conn)
    except sqlite3.OperationalError as exc:
        site = failure_site(exc)
    assert site.startswith("invariants.py:")


def test_status_line_and_metrics_say_stuck_and_why() -> None:
    snapshot = Snapshot(queued=3, stuck='ticks keep failing with "x"')
    assert status_line(snapshot).startswith('STUCK: ticks keep failing with "x"; 3 queued')
    text = prometheus_text(snapshot)
    assert 'docproc_stuck{reason="ticks keep failing with \\"x\\""} 1' in text
    assert "docproc_stuck 0" in prometheus_text(Snapshot())


@pytest.mark.slow
def test_a_stuck_daemon_says_so_and_stops_feeding_the_watchdog(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.txt").write_text("The first document. It has two sentences.")
    config = write_config(tmp_path, [inbox], extra='[metrics]\nlisten = "127.0.0.1:0"\n')
    state = tmp_path / "state"
    sock = NotifySocket(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": sock.address, "WATCHDOG_USEC": "1000000"}
    daemon = DaemonProcess(config, env=env)
    try:
        daemon.until(lambda: daemon.states().get("a.txt") == "written")
        # From now on the ledger refuses new jobs, as a full disk would; readers are fine.
        with sqlite3.connect(state / "ledger.db", timeout=30) as db:
            db.execute(REFUSE_JOBS)
        broke_at = time.monotonic()
        (inbox / "b.txt").write_text("A second document. Written after the repair.")
        fields = sock.wait_for("STATUS", after=broke_at, seconds=60)
        deadline = time.monotonic() + 60
        while not fields["STATUS"].startswith("STUCK:") and time.monotonic() < deadline:
            fields = sock.wait_for("STATUS", after=sock.received("STATUS")[-1][0] - 1e-6)
            time.sleep(0.2)
        assert fields["STATUS"].startswith("STUCK: ticks keep failing with"), fields
        assert "IntegrityError: database or disk is full" in fields["STATUS"]
        stuck_at = sock.received("STATUS")[-1][0]
        metrics = scrape_until(daemon, "docproc_stuck{")
        assert "database or disk is full" in metrics
        status = docproc("status", "--config", config, state=state)
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith("DAEMON STUCK: ticks keep failing with"), status.stdout
        time.sleep(3)  # three watchdog intervals: not one ping while stuck
        assert [at for at, _ in sock.received("WATCHDOG") if at > stuck_at + 0.5] == []
        assert daemon.proc.poll() is None  # alive: systemd's watchdog is what ends it
    finally:
        daemon.stop()
        sock.close()
    with sqlite3.connect(state / "ledger.db", timeout=30) as db:
        db.execute("DROP TRIGGER refuse_jobs")
    daemon = DaemonProcess(config)
    try:
        daemon.until(lambda: daemon.states().get("b.txt") == "written")
    finally:
        assert daemon.stop() == 0
    report = json.loads(docproc("status", "--json", "--config", config, state=state).stdout)
    assert report["stuck"] is None
    kinds = [k for (k,) in daemon.query("SELECT kind FROM events WHERE subject = 'daemon'")]
    assert kinds == ["daemon.stuck", "daemon.recovered"]
