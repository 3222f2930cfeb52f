"""The daemon against the Message Batches test server: 1,000 documents through faults.

The daemon runs as a real subprocess; the server is a real HTTP server on
127.0.0.1 that validates every request and answers as the API does.
"""

from __future__ import annotations

import json
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.batchserver import FakeBatches, Faults, outcome_mix
from tests.clitools import docproc
from tests.daemonrun import DaemonProcess, crashed_when, held_after, write_config

KEY = "sk-ant-test-e2e-4b7d1c"
WORDS = ("ledger", "batch", "summary", "audit", "folder", "archive", "contract", "invoice",
         "report", "memo")  # fmt: skip


def document(i: int) -> str:
    """A small document with several distinct sentences (quotable highlights)."""
    pick = [WORDS[(i * 7 + k) % len(WORDS)] for k in range(6)]
    return (
        f"Document {i} concerns the {pick[0]} of unit {i}. The {pick[1]} was filed on day {i % 28}."
        f" Nobody questioned the {pick[2]} until {i}. Then the {pick[3]} changed hands."
        f" Finally the {pick[4]} and the {pick[5]} were closed.\n"
    )


def anthropic_config(
    tmp_path: Path, inbox: Path, server: FakeBatches, extra: str = "", ledger: str | None = None
) -> Path:
    return write_config(
        tmp_path,
        [inbox],
        f"""
[task]
provider = "anthropic"
max_attempts = 4
retry_backoff = 0.3
[anthropic]
base_url = "{server.url}"
timeout = 20
{extra}""",
        ledger=ledger,
    )


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    return KEY


@pytest.fixture
def server() -> Iterator[FakeBatches]:
    script = {"create": ["500", "drop_after_create", "429"], "results": ["cut"]}
    faults = Faults(script=script, rate=0.05, retry_after=0.2,
                    kinds=("429", "529", "500", "drop", "drop_after_create"))  # fmt: skip
    with FakeBatches(api_key=KEY, end_after=0.3, faults=faults, seed=7,
                     outcome=outcome_mix(errored=0.05, expired=0.04, invalid=0.01,
                                         seed=7)) as fake:  # fmt: skip
        yield fake


def test_a_thousand_documents_through_errors_expiry_and_http_faults(
    inbox: Path, tmp_path: Path, server: FakeBatches, api_key: str, ledger_url: str | None
) -> None:
    for i in range(1000):
        (inbox / f"doc{i:04d}.txt").write_text(document(i))
    daemon = DaemonProcess(anthropic_config(tmp_path, inbox, server, ledger=ledger_url))
    try:
        daemon.until(lambda: finished(daemon) == 1000, seconds=240)
    finally:
        assert daemon.stop() == 0
    states = Counter(daemon.states().values())
    assert states["written"] + states["failed"] == 1000, states
    assert states["written"] >= 950, states  # ~1% invalid, and retries run out rarely
    failed = daemon.query("SELECT path, error FROM file_status WHERE state = 'failed'")
    assert all(error for _, error in failed)
    assert any("invalid_request_error" in error for _, error in failed)
    assert server.violations == []
    injected = server.faults_injected
    assert injected["drop_after_create"] and injected["cut"] and injected["429"], injected
    assert "batch.reconciled" in daemon.output()  # the lost create was adopted, not resent
    requeued = daemon.query("SELECT COUNT(*) FROM events WHERE kind = 'job.requeued'")[0][0]
    assert requeued >= 50  # ~9% errored or expired, sent again with backoff

    # Nothing paid twice: a custom_id is in two batches only after an unknown create,
    # and every job has at most one succeeded request; every file one sidecars.written.
    twice = {cid for cid, n in server.submitted_ids().items() if n > 1}
    reconciled = reconciled_custom_ids(daemon)
    assert twice <= reconciled, sorted(twice - reconciled)[:5]
    assert (
        daemon.query(
            "SELECT job_id FROM requests WHERE state = 'succeeded'"
            " GROUP BY job_id HAVING COUNT(*) > 1"
        )
        == []
    )
    assert (
        daemon.query(
            "SELECT subject FROM events WHERE kind = 'sidecars.written' GROUP BY subject"
            " HAVING COUNT(*) > 1"
        )
        == []
    )
    costed = daemon.query("SELECT COUNT(*), SUM(cost_usd) FROM requests WHERE state = 'succeeded'")
    assert costed[0][0] >= 950 and costed[0][1] > 0
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaked == []  # not in the ledger, logs, spool or sidecars
    sample = json.loads((inbox / "doc0007.txt.docproc.json").read_text())
    assert sample["provider"]["name"] == "anthropic" and sample["cost_usd"] > 0
    for highlight in sample["highlights"]:
        assert highlight["quote"] in document(7)  # the invented quote was dropped
    dropped = daemon.query("SELECT SUM(dropped_highlights) FROM requests")[0][0]
    assert dropped >= states["written"]  # the server invents one quote per document


def finished(daemon: DaemonProcess) -> int:
    rows = daemon.query("SELECT COUNT(*) FROM file_status WHERE state IN ('written', 'failed')")
    return int(rows[0][0]) if rows else 0


def reconciled_custom_ids(daemon: DaemonProcess) -> set[str]:
    """custom_ids of batches whose create outcome was once unknown."""
    rows = daemon.query(
        "SELECT r.custom_id FROM requests r JOIN batches b ON b.id = r.batch_id"
        " WHERE b.id IN (SELECT CAST(substr(subject, 7) AS INTEGER) FROM events"
        " WHERE kind = 'batch.create_unknown')"
    )
    return {row[0] for row in rows}


def test_kill_9_between_create_and_recording_its_id_pays_nothing_twice(
    inbox: Path, tmp_path: Path, api_key: str, ledger_url: str | None
) -> None:
    created, release = threading.Event(), threading.Event()
    with FakeBatches(api_key=KEY, end_after=0.3) as server:
        create = server.store.create
        # the daemon dies before it hears the id
        server.store.create = held_after(create, created, release)  # type: ignore[method-assign]
        for i in range(20):
            (inbox / f"doc{i}.txt").write_text(document(i))
        config = anthropic_config(tmp_path, inbox, server, ledger=ledger_url)
        daemon = crashed_when(config, created, release)
        server.store.create = create  # type: ignore[method-assign]
        planned = daemon.query("SELECT state, provider_batch_id FROM batches")
        assert planned and all(state == "planned" and pid is None for state, pid in planned)
        daemon = DaemonProcess(config)
        try:
            daemon.until(lambda: finished(daemon) == 20, seconds=60)
        finally:
            assert daemon.stop() == 0
        assert server.violations == []
        assert max(server.submitted_ids().values()) == 1  # adopted, not sent again
        assert len(server.batches) == len(planned)
        assert "batch.reconciled" in daemon.output()
        assert Counter(daemon.states().values()) == {"written": 20}


def test_budget_pauses_submission_not_intake_and_a_raised_cap_resumes(
    inbox: Path, tmp_path: Path, api_key: str
) -> None:
    with FakeBatches(api_key=KEY, end_after=0.2) as server:
        for i in range(10):
            (inbox / f"doc{i}.txt").write_text(document(i))
        config = anthropic_config(tmp_path, inbox, server, "[budget]\ndaily_usd = 0.0001\n")
        daemon = DaemonProcess(config)
        try:
            daemon.until(lambda: "submission.paused" in kinds(daemon))
            daemon.until(lambda: Counter(daemon.states().values())["queued"] == 10)
            status = docproc("status", "--config", str(config), state=tmp_path / "state")
            assert "SUBMISSION PAUSED: daily budget" in status.stdout, status.stdout
            assert server.batches == {}  # nothing was sent
            (inbox / "late.txt").write_text(document(99))  # intake goes on
            daemon.until(lambda: daemon.states().get("late.txt") == "queued")
            config.write_text(config.read_text().replace("daily_usd = 0.0001", "daily_usd = 50"))
            daemon.signal(signal.SIGHUP)
            daemon.until(lambda: Counter(daemon.states().values())["written"] == 11)
        finally:
            assert daemon.stop() == 0
        assert "submission.resumed" in kinds(daemon)
        status = docproc("status", "--json", "--config", str(config), state=tmp_path / "state")
        report = json.loads(status.stdout)
        assert report["submission_paused"] is None and report["spend"]["today_usd"] > 0
        batches = docproc(
            "ledger", "batches", "--json", "--config", str(config), state=tmp_path / "state"
        )
        rows = json.loads(batches.stdout)
        assert rows and all(r["state"] == "applied" and r["cost_usd"] > 0 for r in rows)
        args = ("ledger", "costs", "--by", "model", "--json", "--config", str(config))
        costs = json.loads(docproc(*args, state=tmp_path / "state").stdout)
        assert [(c["model"], c["requests"]) for c in costs] == [("claude-sonnet-4-5", 11)]


def test_cancel_from_the_command_line(inbox: Path, tmp_path: Path, api_key: str) -> None:
    with FakeBatches(api_key=KEY, end_after=None) as server:
        for i in range(5):
            (inbox / f"doc{i}.txt").write_text(document(i))
        config = anthropic_config(tmp_path, inbox, server)
        daemon = DaemonProcess(config)
        try:
            daemon.until(lambda: bool(daemon.query(
                "SELECT 1 FROM batches WHERE state = 'submitted'")))  # fmt: skip
            missing = docproc(
                "cancel", "msgbatch_nope", "--config", str(config), state=tmp_path / "state"
            )
            assert missing.returncode == 1 and "no batch" in missing.stderr
            done = docproc("cancel", "1", "--config", str(config), state=tmp_path / "state")
            assert done.returncode == 0, done.stderr
            assert "cancel of batch 1 done (request 1)" in done.stdout
            daemon.until(lambda: "batch.applied" in kinds(daemon))
            again = docproc("cancel", "1", "--config", str(config), state=tmp_path / "state")
            assert again.returncode == 1 and "only a submitted" in again.stderr
        finally:
            assert daemon.stop() == 0
        (record,) = server.batches.values()
        assert record.cancel_initiated_at is not None
        requeued = daemon.query(
            "SELECT COUNT(*) FROM events WHERE kind = 'job.requeued'"
            " AND detail LIKE '%request canceled%'"
        )
        assert requeued[0][0] == 5
        assert "batch.cancel_requested" in kinds(daemon)
        assert KEY not in (daemon.output() + done.stdout + done.stderr)


def kinds(daemon: DaemonProcess) -> set[str]:
    return {row[0] for row in daemon.query("SELECT DISTINCT kind FROM events")}


def test_a_refused_key_pauses_submission_and_quarantines_nothing(
    inbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeBatches(api_key=KEY, end_after=0.2) as server:
        for i in range(4):
            (inbox / f"doc{i}.txt").write_text(document(i))
        config = anthropic_config(tmp_path, inbox, server)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-revoked-0000")
        daemon = DaemonProcess(config)
        try:
            daemon.until(lambda: "submission.paused" in kinds(daemon))
            status = docproc("status", "--config", str(config), state=tmp_path / "state")
            assert (
                "refused the account" in status.stdout and "authentication_error" in status.stdout
            )
        finally:
            assert daemon.stop() == 0
        refused_run = daemon.output()
        assert "failed" not in daemon.states().values()
        server.violations.clear()  # the wrong key was the point
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        daemon = DaemonProcess(config)
        try:
            daemon.until(lambda: Counter(daemon.states().values())["written"] == 4)
        finally:
            assert daemon.stop() == 0
        assert server.violations == []
        assert "authentication_error" in refused_run
        assert "sk-ant-revoked" not in status.stdout + refused_run
