"""docproc estimate (issue 14): known token counts and prices, locally and with --exact
against the Message Batches test server's count_tokens; a changed [task] resends nothing."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

from docproc.costs import BYTES_PER_TOKEN, PriceTable
from docproc.estimate import estimate
from docproc.ledger.connection import open_ledger
from docproc.ledger.selection import Selected
from docproc.models import JobRequest, TaskSpec
from docproc.providers.anthropic import AnthropicProvider
from docproc.providers.base import request_size
from docproc.writerlock import WriterLock
from tests.batchserver import FakeBatches
from tests.batchserver.tokens import count_tokens
from tests.clitools import docproc
from tests.daemonrun import DaemonProcess, ledger_of, write_config
from tests.test_daemon_anthropic import KEY, document

SONNET = TaskSpec(provider="anthropic", model="claude-sonnet-4-5", max_tokens=1000)


def selected(i: int, json_bytes: int, **changes: object) -> Selected:
    base = {"version_id": i, "sha256": f"{i:064x}", "state": "extracted", "chars": json_bytes,
            "json_bytes": json_bytes, "text_sha256": "t", "title": f"d{i}.txt",
            "summarised": False, "in_flight": False}  # fmt: skip
    return Selected(**{**base, **changes})  # type: ignore[arg-type]


def test_local_estimate_from_known_sizes_and_prices(tmp_path: Path) -> None:
    provider = AnthropicProvider("", spool_dir=tmp_path)
    items = [selected(1, 3000), selected(2, 6000), selected(3, 900, summarised=True),
             selected(4, 0, state="failed", text_sha256=None)]  # fmt: skip
    result = estimate(items, task=SONNET, provider=provider, prices=PriceTable())
    prefix = math.ceil(request_size(provider.build_request(JobRequest("j0-a0", 0, "", ""),
                                                           SONNET)) / BYTES_PER_TOKEN)  # fmt: skip
    docs = math.ceil((3000 + 6) / BYTES_PER_TOKEN) + math.ceil((6000 + 6) / BYTES_PER_TOKEN)
    assert (result.documents, result.already_summarised, result.unreadable) == (2, 1, 1)
    assert result.prefix_tokens == prefix
    assert result.input_tokens == docs + 2 * prefix
    assert result.output_tokens == 2 * 1000  # no history: max_tokens, a ceiling
    batch = (result.input_tokens * 3.0 + result.output_tokens * 15.0) / 1e6 * 0.5
    assert math.isclose(result.batch_usd, batch)
    assert math.isclose(result.live_usd, 2 * batch)
    assert not result.cacheable and result.cache_saving_usd == 0.0  # prompt under 1,024 tokens
    with_history = estimate(items, task=SONNET, provider=provider, prices=PriceTable(),
                            history=(8, 240.4))  # fmt: skip
    assert (
        with_history.output_tokens == 2 * 241 and "mean of 8 answers" in with_history.output_basis
    )
    assert math.isclose(with_history.max_batch_usd, batch)


def test_a_long_shared_prompt_is_cached_and_the_saving_shown(tmp_path: Path) -> None:
    provider = AnthropicProvider("", spool_dir=tmp_path)
    task = TaskSpec(provider="anthropic", model="claude-sonnet-4-5",
                    prompt="Read with care. " * 400)  # fmt: skip
    items = [selected(i, 4000) for i in range(10)]
    result = estimate(items, task=task, provider=provider, prices=PriceTable())
    assert result.cacheable and result.prefix_tokens >= 1024
    per_input = 3.0 * 0.5 / 1e6
    saved = (9 * result.prefix_tokens * (1 - 0.1) - result.prefix_tokens * (2.0 - 1)) * per_input
    assert math.isclose(result.cache_saving_usd, saved)
    assert result.prefix_tokens < 4096  # Haiku 4.5 caches only from 4,096 tokens
    haiku = estimate(items, task=replace(task, model="claude-haiku-4-5"), provider=provider,
                     prices=PriceTable())  # fmt: skip
    assert not haiku.cacheable and haiku.cache_saving_usd == 0.0


def test_exact_counts_come_from_count_tokens_and_match_its_answers(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(4):
        (inbox / f"doc{i}.txt").write_text(document(i) * (i + 1))
    with FakeBatches(api_key=KEY) as server:
        config = write_config(tmp_path, [inbox], f'[task]\nprovider = "anthropic"\n'
                              f'[anthropic]\nbase_url = "{server.url}"\n')  # fmt: skip
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY}
        out = docproc("estimate", inbox, "--exact", "--json", "--config", config,
                      state=tmp_path / "state", env=env)  # fmt: skip
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["exact"] and result["documents"] == 4
        prefix, *documents = server.token_counts
        assert result["prefix_tokens"] == prefix
        assert result["input_tokens"] == sum(documents)  # each request as the server counted it
        assert not server.violations and not server.batches  # counted, nothing sent
        local = json.loads(docproc("estimate", "--json", "--config", config,
                                   state=tmp_path / "state", env=env).stdout)  # fmt: skip
        assert not local["exact"] and local["documents"] == 4
        keyless = {k: v for k, v in env.items() if k != "ANTHROPIC_API_KEY"}
        out = docproc("estimate", "--config", config, state=tmp_path / "state", env=keyless)
        assert out.returncode == 0 and "4 document(s) to summarise" in out.stdout
        assert docproc("estimate", "--json", "--csv", state=tmp_path / "state").returncode == 2


def test_count_tokens_rule_of_the_test_server() -> None:
    user = {"role": "user", "content": [{"type": "text", "text": "é" * 4}]}
    body = {"model": "m", "system": [{"type": "text", "text": "abcd" * 10}], "messages": [user]}
    assert count_tokens(body) == 10 + 2 + 4 + 3


def test_a_changed_task_resends_nothing_by_itself(tmp_path: Path, ledger_url: str | None) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(3):
        (inbox / f"doc{i}.txt").write_text(document(i))
    with FakeBatches(api_key=KEY, end_after=0.2) as server:
        base = f'[anthropic]\nbase_url = "{server.url}"\n[task]\nprovider = "anthropic"\n'
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY}
        daemon = DaemonProcess(write_config(tmp_path, [inbox], base, ledger=ledger_url), env=env)
        try:
            daemon.until(lambda: set(daemon.states().values()) == {"written"} and
                         len(daemon.states()) == 3)  # fmt: skip
        finally:
            assert daemon.stop() == 0
        changed = write_config(
            tmp_path, [inbox], base + 'prompt = "Summarise tersely."\n', ledger=ledger_url
        )
        (inbox / "late.txt").write_text(document(7))
        daemon = DaemonProcess(changed, env=env)
        try:
            daemon.until(lambda: daemon.states().get("late.txt") == "written")
        finally:
            assert daemon.stop() == 0
        assert sum(server.submitted_ids().values()) == 4  # three once, and the new file
        out = docproc("estimate", "--json", "--config", changed, state=tmp_path / "state")
        result = json.loads(out.stdout)
        assert (result["documents"], result["already_summarised"]) == (3, 1)
        open_ledger(ledger_of(changed), readonly=True).close()


def test_estimate_of_a_folder_while_another_process_writes_the_ledger(tmp_path: Path) -> None:
    """The daemon holds the writer lock: the folder is not read, the ledger is priced.

    (SQLite only: the writer lock is a file in the state directory.)"""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(2):
        (inbox / f"doc{i}.txt").write_text(document(i))
    config, state = write_config(tmp_path, [inbox]), tmp_path / "state"
    assert docproc("scan", inbox, "--config", config, state=state).returncode == 0
    (inbox / "late.txt").write_text(document(5))
    with WriterLock.acquire(state, "docproc run"):
        out = docproc("estimate", inbox, "--json", "--config", config, state=state)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["documents"] == 2  # late.txt is not in the ledger yet
    (note,) = out.stderr.splitlines()
    assert note.startswith(f"note: docproc run (pid {os.getpid()} on ")
    assert "files it has not read yet are left out" in note
    out = docproc("estimate", inbox, "--json", "--config", config, state=state)
    assert json.loads(out.stdout)["documents"] == 3 and out.stderr == ""  # free: read first
