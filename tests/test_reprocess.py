"""docproc reprocess (issue 14) with the Message Batches test server and the daemon as a
subprocess: a dry run sends nothing; a confirmed run sends exactly the selected versions
once, under new custom_ids; the budget caps still apply."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.batchserver import FakeBatches
from tests.clitools import docproc
from tests.daemonrun import DaemonProcess, write_config
from tests.test_daemon_anthropic import KEY, document

pytestmark = pytest.mark.slow


def keyless() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}


def setup(
    tmp_path: Path, server: FakeBatches, ledger: str | None, budget: str = ""
) -> tuple[Path, Path]:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    for i in range(4):
        (inbox / f"doc{i}.txt").write_text(document(i))
    extra = f'[task]\nprovider = "anthropic"\n[anthropic]\nbase_url = "{server.url}"\n{budget}'
    return write_config(tmp_path, [inbox], extra, ledger=ledger), inbox


def run(config: Path) -> DaemonProcess:
    return DaemonProcess(config, env={**os.environ, "ANTHROPIC_API_KEY": KEY})


def all_written(daemon: DaemonProcess) -> None:
    daemon.until(lambda: len(daemon.states()) == 4 and set(daemon.states().values()) == {"written"})


def cli(config: Path, *args: str | Path) -> tuple[int, str, str]:
    out = docproc(*args, "--config", config, state=config.parent / "state", env=keyless())
    return out.returncode, out.stdout, out.stderr


def test_reprocess_sends_exactly_the_selection_once(tmp_path: Path, ledger_url: str | None) -> None:
    with FakeBatches(api_key=KEY, end_after=0.2) as server:
        config, inbox = setup(tmp_path, server, ledger_url)
        daemon = run(config)
        try:
            all_written(daemon)
            first = sum(server.submitted_ids().values())
            old = (inbox / "doc1.txt.docproc.json").read_text()
            code, out, err = cli(config, "reprocess", inbox / "doc1.txt", inbox / "doc2.txt",
                                 "--dry-run")  # fmt: skip
            assert code == 0, err
            assert "2 document(s) to summarise" in out and "dry run: nothing queued" in out
            code, out, err = cli(config, "reprocess", inbox / "doc1.txt")  # no terminal, no --yes
            assert code == 2 and "pass --yes" in err
            assert sum(server.submitted_ids().values()) == first
            assert daemon.query("SELECT COUNT(*) FROM operator_requests") == [(0,)]

            code, out, err = cli(config, "reprocess", inbox / "doc1.txt", inbox / "doc2.txt",
                                 "--yes", "--wait", "20")  # fmt: skip
            assert code == 0, err
            assert "done (request 1): queued 2 document(s)" in out
            daemon.until(lambda: (inbox / "doc1.txt.docproc.json").read_text() != old)
            daemon.until(lambda: set(daemon.states().values()) == {"written"})
        finally:
            assert daemon.stop() == 0
        sent = server.submitted_ids()
        assert sum(sent.values()) == first + 2 and max(sent.values()) == 1
        newest = max(server.batches.values(), key=lambda b: b.created_at)
        assert len(newest.custom_ids) == 2
        renewed = json.loads((inbox / "doc1.txt.docproc.json").read_text())
        assert renewed["provider"]["custom_id"] in newest.custom_ids
        (request,) = json.loads(cli(config, "ledger", "requests", "--json")[1])
        assert request["kind"] == "reprocess" and request["requested_by"]
        assert request["estimated_cost_usd"] > 0 and request["state"] == "done"
        assert cli(config, "ledger", "verify")[0] == 0


def test_reprocess_respects_the_budget(tmp_path: Path, ledger_url: str | None) -> None:
    with FakeBatches(api_key=KEY, end_after=0.2) as server:
        config, inbox = setup(tmp_path, server, ledger_url)
        daemon = run(config)
        try:
            all_written(daemon)
        finally:
            assert daemon.stop() == 0
        spent = json.loads(cli(config, "status", "--json")[1])["spend"]["today_usd"]
        capped, _ = setup(tmp_path, server, ledger_url, f"[budget]\ndaily_usd = {spent + 0.0001}\n")
        first = sum(server.submitted_ids().values())
        daemon = run(capped)
        try:
            code, out, err = cli(capped, "reprocess", "--all", "--yes", "--wait", "20")
            assert code == 0 and "queued 4 document(s)" in out, err
            daemon.until(lambda: json.loads(cli(capped, "status", "--json")[1])
                         ["submission_paused"] is not None)  # fmt: skip
        finally:
            assert daemon.stop() == 0
        assert sum(server.submitted_ids().values()) == first  # over the cap: nothing sent
        assert {p.name for p in inbox.glob("*.docproc.json")} == {f"doc{i}.txt.docproc.json"
                                                                 for i in range(4)}  # fmt: skip
