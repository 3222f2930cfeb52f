"""The service plumbing in-process: sd_notify messages, the snapshot's renderings,
/metrics over real HTTP, log format choice and secret masking, and their config."""

from __future__ import annotations

import io
import json
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import structlog

from docproc import config, logconfig
from docproc.errors import ConfigError
from docproc.health import Snapshot, StageCounters, prometheus_text, status_line
from docproc.ledger.connection import open_ledger
from docproc.ledger.dispatch import DispatchLedger
from docproc.metrics import MetricsServer
from docproc.notify import Notifier
from tests.notifysock import NotifySocket
from tests.parts import queries


def test_without_a_socket_every_call_is_a_no_op() -> None:
    notifier = Notifier(None, watchdog_usec=None)
    assert not notifier.enabled
    assert notifier.send("READY=1") is False
    notifier.ready("status")
    notifier.watchdog(time.monotonic())


@pytest.mark.parametrize("abstract", [False, True])
def test_messages_reach_path_and_abstract_sockets(tmp_path: Path, abstract: bool) -> None:
    where: Path | str = (
        f"@docproc-test-{os.getpid()}-{time.monotonic_ns()}"
        if abstract
        else (tmp_path / "notify.sock")
    )
    sock = NotifySocket(where)
    try:
        notifier = Notifier(sock.address)
        notifier.ready("3 queued,\n 2 in flight")
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        notifier.reloading()
        notifier.stopping()
        notifier.extend_timeout(1.5)
        sock.wait_for("EXTEND_TIMEOUT_USEC", seconds=10)
    finally:
        sock.close()
    ready, reloading, stopping, extend = (fields for _, fields in sock.messages)
    assert ready == {"READY": "1", "STATUS": "3 queued, 2 in flight"}
    assert reloading["RELOADING"] == "1"
    assert before <= int(reloading["MONOTONIC_USEC"]) <= before + 10_000_000
    assert stopping == {"STOPPING": "1"}
    assert extend == {"EXTEND_TIMEOUT_USEC": "1500000"}


def test_watchdog_pings_at_half_the_interval(tmp_path: Path) -> None:
    sock = NotifySocket(tmp_path / "notify.sock")
    try:
        notifier = Notifier(sock.address, watchdog_usec=2_000_000)
        assert notifier.watchdog_interval == 1.0
        for now in (100.0, 100.4, 100.99, 101.0, 101.5, 102.1):
            notifier.watchdog(now)
        deadline = time.monotonic() + 10
        while len(sock.received("WATCHDOG")) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
    finally:
        sock.close()
    assert len(sock.received("WATCHDOG")) == 3  # at 100.0, 101.0 and 102.1


def test_a_vanished_socket_is_reported_once_and_not_fatal(tmp_path: Path) -> None:
    out = io.StringIO()
    logconfig.configure("info", "json", out)
    notifier = Notifier(str(tmp_path / "gone.sock"))
    assert notifier.send("STATUS=x") is False
    assert notifier.send("STATUS=y") is False
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert events == ["notify.failed"]


def test_service_env_honours_watchdog_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "@sock")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    env = config.service_env()
    assert (env.notify_socket, env.watchdog_usec, env.journal_stream) == ("@sock", 30_000_000,
                                                                           "8:1234")  # fmt: skip
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert config.service_env().watchdog_usec is None
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
        monkeypatch.delenv(name)
    assert config.service_env() == config.ServiceEnv()


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("", None), ("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9464", ("::1", 9464))],
)
def test_metrics_listen(tmp_path: Path, listen: str, expected: tuple[str, int] | None) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[metrics]\nlisten = "{listen}"\n')
    settings = config.load(path, watches_required=False)
    assert settings.metrics.listen == expected


@pytest.mark.parametrize("listen", ["localhost", "127.0.0.1:", ":9464", "127.0.0.1:99999"])
def test_metrics_listen_refused(tmp_path: Path, listen: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[metrics]\nlisten = "{listen}"\n')
    with pytest.raises(ConfigError, match=r"metrics\.listen: must be HOST:PORT"):
        config.load(path, watches_required=False)


def test_status_line_without_and_with_costs() -> None:
    quiet = Snapshot()
    assert status_line(quiet) == (
        "0 queued, 0 in flight (0 batches), 0 extracting, 0 written today, spend n/a"
    )
    busy = Snapshot(queued=1200, in_flight=40, batches_in_flight=1, oldest_batch_age=3725,
                    extracting=2, written_today=15, failed=3, spend_today=1.5,
                    paused="daily budget of $1.50 reached")  # fmt: skip
    assert status_line(busy) == (
        "1,200 queued, 40 in flight (1 batch, oldest 1h02m), 2 extracting, 15 written today,"
        " spend $1.50 today, 3 failed; submission paused: daily budget of $1.50 reached"
    )
    assert "\n" not in status_line(busy)


def test_prometheus_text_is_well_formed() -> None:
    paused = 'cap "monthly"\nreached'
    snapshot = Snapshot(queued=4, batches_in_flight=2, oldest_batch_age=12.5, spend_today=0.25,
                        paused=paused, counters=StageCounters(taken=7))  # fmt: skip
    text = prometheus_text(snapshot)
    samples: dict[str, str] = {}
    helps, types = set(), set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            types.add(line.split()[2])
            assert line.split()[3] in ("gauge", "counter")
        else:
            name, value = line.rsplit(" ", 1)
            samples[name] = value
            float(value)
    assert helps == types == {name.split("{")[0] for name in samples}
    assert samples["docproc_jobs_queued"] == "4"
    assert samples["docproc_batches_in_flight"] == "2"
    assert samples["docproc_batch_oldest_age_seconds"] == "12.5"
    assert samples["docproc_spend_today_usd"] == "0.25"
    assert samples["docproc_intake_versions_total"] == "7"
    assert samples['docproc_submission_paused{reason="cap \\"monthly\\"\\nreached"}'] == "1"
    assert "docproc_spend_today_usd" not in prometheus_text(Snapshot())
    assert "docproc_submission_paused 0" in prometheus_text(Snapshot())


def test_metrics_endpoint_serves_the_published_snapshot() -> None:
    server = MetricsServer("127.0.0.1", 0)
    try:
        host, port = server.address
        server.publish(Snapshot(written_today=42))
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = response.read().decode()
        assert "docproc_written_today 42" in body
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://{host}:{port}/", timeout=10)
        assert err.value.code == 404
        err.value.close()
    finally:
        server.close()


def test_written_since_counts_only_new_events(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "ledger.db") as ledger:
        work = DispatchLedger.on(ledger)
        with ledger.transaction() as conn:
            ledger.event(conn, "sidecars.written", "file:1")
            ledger.event(conn, "job.queued", "job:1")
        count, cursor = queries(work.ledger).written_since("1970-01-01", 0)
        assert count == 1
        assert queries(work.ledger).written_since("9999-01-01", 0)[0] == 0  # all before "today"
        with ledger.transaction() as conn:
            ledger.event(conn, "sidecars.written", "file:2")
            ledger.event(conn, "sidecars.written", "file:3")
        assert queries(work.ledger).written_since("1970-01-01", cursor)[0] == 2


def test_auto_format_is_console_on_a_terminal_and_json_on_the_journal() -> None:
    leader, follower = os.openpty()
    try:
        with open(follower, "w", closefd=False) as tty:
            assert logconfig.configure("info", "auto", tty) == "console"
            info = os.fstat(follower)
            journal = f"{info.st_dev}:{info.st_ino}"
            assert logconfig.configure("info", "auto", tty, journal_stream=journal) == "json"
            assert logconfig.configure("info", "auto", tty, journal_stream="1:2") == "console"
            assert logconfig.configure("info", "json", tty) == "json"
        assert logconfig.configure("info", "auto", io.StringIO()) == "json"
        assert logconfig.configure("info", "console", io.StringIO()) == "console"
    finally:
        os.close(leader)
        os.close(follower)


def test_secrets_are_masked_in_lines_and_tracebacks() -> None:
    secret = "sk-ant-" + os.urandom(8).hex()
    out = io.StringIO()
    logconfig.configure("info", "json", out, redact=[secret])
    log = structlog.get_logger()
    log.info("provider.request", header=f"x-api-key: {secret}")
    try:
        _fail(secret)
    except ValueError:
        log.exception("provider.failed")
    text = out.getvalue()
    assert secret not in text
    assert text.count(logconfig.REDACTED) == 2  # the field, the exception in the traceback
    assert all(json.loads(line) for line in text.splitlines())


def _fail(secret: str) -> None:
    raise ValueError(f"bad key {secret}")


def test_library_logging_comes_out_as_json_lines() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    try:
        logconfig.configure("info", "json", out)
        logconfig.capture_stdlib()
        logging.getLogger("somelib.pdf").warning("could not read page %d", 3)
        logging.getLogger("somelib.pdf").info("below the threshold")
    finally:
        root.handlers, root.level = saved[0], saved[1]
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "library.log"
    assert (record["logger"], record["message"], record["level"]) == (
        "somelib.pdf", "could not read page 3", "warning")  # fmt: skip
