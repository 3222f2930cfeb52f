"""The dispatcher with a real ledger, text store and the local provider."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from docproc.dispatch import Dispatcher
from docproc.ledger.connection import LedgerLocation, open_ledger
from docproc.ledger.dispatch import DispatchLedger
from docproc.models import BatchLimits, Extraction, TaskSpec
from docproc.providers.local import LocalProvider
from docproc.textstore import TextStore
from tests.parts import extractions, files, sql

TEXT = "The ledger records every step. Nothing is lost. Batches are reconciled after a crash."


@pytest.fixture
def setup(
    tmp_path: Path, ledger_location: LedgerLocation
) -> Iterator[tuple[Dispatcher, DispatchLedger, LocalProvider]]:
    ledger = open_ledger(ledger_location)
    store = TextStore(tmp_path / "text")
    root = files(ledger).ensure_root("file:///docs", kind="local", mode="poll")
    for i in range(3):
        sha = f"{i:064x}"
        files(ledger).record_version(root, Path(f"/docs/d{i}.txt"), size=1, mtime_ns=1, sha256=sha)
        text_sha = store.put(f"{TEXT} Number {i}.")
        extractions(ledger).record_extraction(
            Extraction(sha, "native:text", text_sha, len(TEXT) + 11)
        )
    work = DispatchLedger.on(ledger, retry_base=0.1)
    provider = LocalProvider(tmp_path / "spool", min_age=3600)  # batches never end here
    dispatcher = Dispatcher(work, provider, store, task=TaskSpec(), limits=BatchLimits(max_wait=0),
                            poll_interval=0.05, max_attempts=3)  # fmt: skip
    dispatcher.queue_jobs([root])
    yield dispatcher, work, provider
    dispatcher.close()
    ledger.close()


def tick_until(dispatcher: Dispatcher, condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        dispatcher.tick(time.monotonic(), flush_all=True)
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def states(work: DispatchLedger) -> list[str]:
    return [row[0] for row in sql(work.ledger).execute("SELECT state FROM batches ORDER BY id")]


def test_a_batch_the_provider_forgets_is_retried_while_young_then_lost_and_requeued(
    setup: tuple[Dispatcher, DispatchLedger, LocalProvider],
) -> None:
    dispatcher, work, provider = setup
    tick_until(dispatcher, lambda: states(work) == ["submitted"])
    (provider_id,) = work.batches.provider_batch_ids()
    (provider.spool_dir / f"{provider_id}.jsonl").unlink()  # the provider no longer knows it
    tick_until(dispatcher, lambda: dispatcher._open[1].failures >= 2)  # polled, refused twice
    assert states(work) == ["submitted"]  # young: an unknown id may be a transient 404
    for batch in dispatcher._open.values():  # as if created ten minutes ago
        batch.created_at = datetime.now(UTC) - timedelta(minutes=10)
    tick_until(dispatcher, lambda: states(work)[0] == "lost")
    lost = sql(work.ledger).execute("SELECT error FROM batches WHERE id = 1").fetchone()[0]
    assert "unknown batch" in lost
    requeued = (
        sql(work.ledger)
        .execute(
            "SELECT COUNT(*) FROM events WHERE kind = 'job.requeued' AND detail LIKE '%batch lost%'"
        )
        .fetchone()[0]
    )
    assert requeued == 3
    tick_until(dispatcher, lambda: states(work) == ["lost", "submitted"])  # sent again


def test_every_create_call_is_numbered_in_the_ledger_before_it_is_made(
    setup: tuple[Dispatcher, DispatchLedger, LocalProvider],
) -> None:
    dispatcher, work, provider = setup
    tickets = []
    submit = provider.submit

    def failing_once(requests, ticket=None):  # type: ignore[no-untyped-def]
        tickets.append(ticket.attempt)  # (on the provider thread: no ledger here)
        if len(tickets) == 1:
            list(requests)
            raise ConnectionError("the answer was lost")  # outcome unknown: reconcile first
        return submit(requests, ticket)

    provider.submit = failing_once  # type: ignore[method-assign]
    tick_until(dispatcher, lambda: states(work) == ["submitted"])
    assert tickets == [1, 2]  # the number recorded before each call
    assert sql(work.ledger).execute("SELECT create_attempts FROM batches").fetchone()[0] == 2
    events = (
        sql(work.ledger)
        .execute("SELECT COUNT(*) FROM events WHERE kind = 'batch.create_attempt'")
        .fetchone()[0]
    )
    assert events == 1  # the first attempt is recorded with the batch itself
