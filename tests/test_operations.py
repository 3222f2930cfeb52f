"""Operations through the ledger (issue 14): cancel and retry asked from a second
process, without the provider key, while the daemon (a real subprocess) runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.batchserver import FakeBatches, Outcome
from tests.clitools import docproc
from tests.daemonrun import DaemonProcess, write_config
from tests.test_daemon_anthropic import KEY, document

pytestmark = pytest.mark.slow


def without_key() -> dict[str, str]:
    """The operator's shell: no provider key anywhere."""
    return {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}


def start(
    tmp_path: Path, server: FakeBatches, count: int, ledger: str | None
) -> tuple[DaemonProcess, Path]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(count):
        (inbox / f"doc{i}.txt").write_text(document(i))
    extra = (f'[task]\nprovider = "anthropic"\nretry_backoff = 0.2\n'
             f'[anthropic]\nbase_url = "{server.url}"\n')  # fmt: skip
    config = write_config(tmp_path, [inbox], extra, ledger=ledger)
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY}  # only the daemon has it
    return DaemonProcess(config, env=env), config


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    out = docproc(*args, "--config", config, state=config.parent / "state", env=without_key())
    return out.returncode, out.stdout, out.stderr


def submitted(daemon: DaemonProcess) -> bool:
    return bool(daemon.query("SELECT 1 FROM batches WHERE state = 'submitted'"))


@pytest.mark.parametrize("retry", [True, False])
def test_cancel_from_a_second_process_without_the_key(
    tmp_path: Path, retry: bool, ledger_url: str | None
) -> None:
    with FakeBatches(api_key=KEY, end_after=None) as server:
        daemon, config = start(tmp_path, server, 4, ledger_url)
        try:
            daemon.until(lambda: submitted(daemon))
            args = ["cancel", "1", "--wait", "20"] + ([] if retry else ["--no-retry"])
            code, out, err = cli(config, *args)
            assert code == 0, err
            assert out.startswith("cancel of batch 1 done (request 1): the provider is canceling")
            (record,) = [b for b in server.batches.values() if b.cancel_initiated_at]
            if retry:  # the canceled requests are sent again, each under a new custom_id
                daemon.until(lambda: len(server.batches) == 2)
                second = next(b for b in server.batches.values() if b is not record)
                server.end(second.id)
                daemon.until(lambda: set(daemon.states().values()) == {"written"})
            else:
                daemon.until(lambda: set(daemon.states().values()) == {"failed"})
        finally:
            assert daemon.stop() == 0
        assert max(server.submitted_ids().values()) == 1  # no custom_id sent twice
        requests = json.loads(cli(config, "ledger", "requests", "--json")[1])
        assert [(r["kind"], r["state"]) for r in requests] == [("cancel", "done")]
        assert requests[0]["requested_by"]
        if not retry:
            files = json.loads(cli(config, "ledger", "files", "--json")[1])
            assert all("without retry" in row["error"] for row in files)
            assert len(server.batches) == 1  # nothing was sent again
        code, out, err = cli(config, "ledger", "verify")  # issue 16's invariants hold
        assert code == 0 and "every invariant holds" in out, err


def test_retry_from_a_second_process_is_carried_out_by_the_daemon(
    tmp_path: Path, ledger_url: str | None
) -> None:
    refused = {"mark": True}

    def outcome(custom_id: str, params: dict[str, object]) -> Outcome:
        return Outcome.INVALID if refused["mark"] else Outcome.SUCCEEDED

    with FakeBatches(api_key=KEY, end_after=0.2, outcome=outcome) as server:
        daemon, config = start(tmp_path, server, 3, ledger_url)
        try:
            daemon.until(lambda: set(daemon.states().values()) == {"failed"})
            refused["mark"] = False
            one = tmp_path / "inbox" / "doc0.txt"
            code, out, err = cli(config, "ledger", "retry", str(one), "--wait", "20")
            assert (code, out.strip()) == (0, "retry done (request 1): requeued 1 job(s)"), err
            daemon.until(lambda: daemon.states()["doc0.txt"] == "written")
            code, out, _ = cli(config, "ledger", "retry", "--wait", "20")
            assert out.strip() == "retry done (request 2): requeued 2 job(s)"
            daemon.until(lambda: set(daemon.states().values()) == {"written"})
        finally:
            assert daemon.stop() == 0
        assert max(server.submitted_ids().values()) == 1  # attempts grow: new custom_ids
        code, out, err = cli(config, "cancel", "1", "--wait", "0")
        assert code == 1 and "only a submitted batch" in err
        code, out, err = cli(config, "ledger", "verify")
        assert code == 0 and "every invariant holds" in out, err
        assert KEY not in daemon.output()


def test_a_request_recorded_while_no_daemon_runs_waits_for_the_next_start(
    tmp_path: Path, ledger_url: str | None
) -> None:
    def outcome(custom_id: str, params: dict[str, object]) -> Outcome:
        return Outcome.INVALID

    with FakeBatches(api_key=KEY, end_after=0.2, outcome=outcome) as server:
        daemon, config = start(tmp_path, server, 1, ledger_url)
        try:
            daemon.until(lambda: set(daemon.states().values()) == {"failed"})
        finally:
            assert daemon.stop() == 0
        code, out, _ = cli(config, "ledger", "retry", "--wait", "0.5")
        assert code == 0 and "recorded as request 1; the daemon carries it out" in out
        daemon = DaemonProcess(config, env={**os.environ, "ANTHROPIC_API_KEY": KEY})
        try:
            daemon.until(lambda: daemon.query(
                "SELECT state FROM operator_requests WHERE id = 1") == [("done",)])  # fmt: skip
        finally:
            assert daemon.stop() == 0
