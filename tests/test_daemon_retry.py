"""Issue 16 end to end: quarantined by a failing provider, retried by the operator, written.

Against the Message Batches test server: 20 documents, the server erroring about
half of the requests, ``max_attempts = 1``, so those are quarantined; the server
recovers; ``docproc ledger retry``; a second daemon run writes everything, with
no tick failing (the old retry reused custom_ids and every later batch failed).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.batchserver import FakeBatches, Outcome, outcome_mix
from tests.clitools import docproc
from tests.daemonrun import DaemonProcess, write_config
from tests.test_daemon_anthropic import KEY, document, finished

pytestmark = pytest.mark.slow


class Recovering:
    """Errors about half the requests until ``healthy``; then everything succeeds."""

    def __init__(self) -> None:
        self.healthy = False
        self._sick = outcome_mix(errored=0.5, expired=0.0, seed=16)

    def __call__(self, custom_id: str, params: dict[str, Any]) -> Outcome:
        return Outcome.SUCCEEDED if self.healthy else self._sick(custom_id, params)


def test_retry_after_the_provider_recovers_writes_everything_without_a_failed_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_url: str | None
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(20):
        (inbox / f"doc{i:02d}.txt").write_text(document(i))
    outcome = Recovering()
    with FakeBatches(api_key=KEY, end_after=0.2, outcome=outcome) as server:
        config = write_config(tmp_path, [inbox], f"""
[task]
provider = "anthropic"
max_attempts = 1
retry_backoff = 0.2
[anthropic]
base_url = "{server.url}"
""", ledger=ledger_url)  # fmt: skip
        state = tmp_path / "state"
        daemon = DaemonProcess(config)
        try:
            daemon.until(lambda: finished(daemon) == 20, seconds=120)
        finally:
            assert daemon.stop() == 0
        first = Counter(daemon.states().values())
        assert first["failed"] >= 5 and first["written"] >= 5, first
        errors = daemon.query("SELECT error FROM file_status WHERE state = 'failed'")
        assert all(e.startswith("gave up after 1 attempts: request errored (") for (e,) in errors)

        outcome.healthy = True
        # No daemon runs: the retry is recorded for the next start to carry out (issue 14).
        retry = docproc("ledger", "retry", "--wait", "0", "--config", config, state=state)
        assert retry.stdout.startswith("retry recorded as request 1;"), retry.stderr
        daemon = DaemonProcess(config)
        try:
            daemon.until(lambda: Counter(daemon.states().values())["written"] == 20, seconds=120)
        finally:
            assert daemon.stop() == 0
        assert "daemon.tick_failed" not in daemon.output(), daemon.tail()
        assert "batch.requests_refused" not in daemon.output()
        assert server.violations == []
        assert max(server.submitted_ids().values()) == 1  # no custom_id sent twice
        assert len(server.submitted_ids()) == 20 + first["failed"]
        assert daemon.query("SELECT state, outcome FROM operator_requests") == [
            ("done", f"requeued {first['failed']} job(s)")
        ]
    # The history of the failed attempts is kept: one errored and one succeeded request each.
    histories: dict[int, list[str]] = {}
    for job_id, custom_id, request_state in daemon.query(
        "SELECT job_id, custom_id, state FROM requests ORDER BY job_id, id"
    ):
        histories.setdefault(job_id, []).append(f"{custom_id}:{request_state}")
    retried = {job: history for job, history in histories.items() if len(history) > 1}
    assert len(retried) == first["failed"]
    ((ledger_id,),) = daemon.query("SELECT value FROM ledger_info WHERE key = 'id'")
    for job_id, history in retried.items():
        cid = f"{ledger_id}-j{job_id}"
        assert history == [f"{cid}-a1:errored", f"{cid}-a2:succeeded"]
    verify = docproc("ledger", "verify", "--config", config, state=state)
    assert verify.returncode == 0, verify.stderr
    assert "every invariant holds" in verify.stdout
    for i in range(20):
        assert (inbox / f"doc{i:02d}.txt.docproc.json").exists()
