"""Attempts only grow: ``ledger retry`` never makes a request reuse a custom_id (issue 16)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from docproc.ledger.connection import LedgerLocation, open_ledger
from docproc.ledger.dispatch import DispatchLedger
from docproc.ledger.dispatch.jobs import next_attempt
from docproc.ledger.invariants import check
from docproc.ledger.migrations import Database, migrations
from docproc.models import Extraction, ProviderResult, ResultKind, TaskSpec
from tests.parts import change, extractions, files, queries, sql


@pytest.fixture
def work(ledger_location: LedgerLocation) -> Iterator[DispatchLedger]:
    ledger = open_ledger(ledger_location)
    yield DispatchLedger.on(ledger, retry_base=0.0)
    ledger.close()


def one_job(work: DispatchLedger) -> str:
    root = files(work.ledger).ensure_root("file:///docs", kind="local", mode="events")
    files(work.ledger).record_version(
        root, Path("/docs/a.txt"), size=1, mtime_ns=1, sha256="0" * 64
    )
    extractions(work.ledger).record_extraction(Extraction("0" * 64, "native:text", "t" * 64, 10))
    task = work.jobs.register_task(TaskSpec())
    work.jobs.create_jobs(task, [root])
    return task


def send_and_fail(work: DispatchLedger, task: str, max_attempts: int) -> str:
    """Put the ready job in a batch and answer it with a retryable error."""
    (item,) = work.jobs.batch_items([job.job_id for job in work.jobs.ready_jobs(task)])
    custom_id = f"j{item.job_id}-a{item.attempt}"
    batch_id = work.batches.create_batch("local", [(item, custom_id)], 10)
    work.batches.batch_submitted(batch_id, f"b{batch_id}")
    error = ProviderResult(
        custom_id, ResultKind.ERRORED, error_type="api_error", error_message="overloaded"
    )
    work.results.apply_results([(error, 0)], max_attempts=max_attempts)
    return custom_id


def job(work: DispatchLedger) -> tuple[str, int, int]:
    row = sql(work.ledger).execute("SELECT state, attempts, attempts_at_retry FROM jobs").fetchone()
    return str(row[0]), int(row[1]), int(row[2])


def test_retry_starts_a_new_round_without_reusing_a_custom_id(work: DispatchLedger) -> None:
    task = one_job(work)
    sent = [send_and_fail(work, task, max_attempts=1)]
    assert job(work) == ("failed", 1, 0)
    for _ in range(3):  # the operator retries again and again; each round is one attempt
        assert work.rounds.requeue_failed() == 1
        sent.append(send_and_fail(work, task, max_attempts=1))
    assert sent == ["j1-a1", "j1-a2", "j1-a3", "j1-a4"]
    assert job(work) == ("failed", 4, 3)
    history = (
        sql(work.ledger).execute("SELECT custom_id, state FROM requests ORDER BY id").fetchall()
    )
    assert history == [(cid, "errored") for cid in sent]  # the audit keeps every attempt
    retries = [e for e in queries(work.ledger).events() if e["kind"] == "job.retry"]
    assert [e["detail"] for e in retries][-1] == '{"attempts_so_far":3}'


def test_a_retried_job_gets_max_attempts_again_with_backoff_from_the_round(
    work: DispatchLedger,
) -> None:
    task = one_job(work)
    send_and_fail(work, task, max_attempts=2)
    send_and_fail(work, task, max_attempts=2)
    assert job(work) == ("failed", 2, 0)
    work.rounds.requeue_failed()
    send_and_fail(work, task, max_attempts=2)
    assert job(work)[0] == "queued"  # the first attempt of the new round: one left
    send_and_fail(work, task, max_attempts=2)
    state, error = sql(work.ledger).execute("SELECT state, error FROM jobs").fetchone()
    assert state == "failed"
    assert error == "gave up after 2 attempts: request errored (api_error: overloaded)"


def test_next_attempt_is_above_both_the_count_and_the_recorded_requests() -> None:
    assert next_attempt(0, None) == 1
    assert next_attempt(3, None) == 4
    assert next_attempt(0, 5) == 6  # a count lowered by an older docproc
    assert next_attempt(7, 5) == 8


def undo_m007(path: Path) -> None:
    """Take a ledger back to the schema before m007 (the one the old retry ran on)."""
    raw = Database(path)
    raw.execute("DELETE FROM _sqlite_migrations WHERE name = 'm007_attempts_only_grow'")
    raw.execute("ALTER TABLE jobs DROP COLUMN attempts_at_retry")
    raw.conn.commit()
    raw.close()


def test_opening_a_ledger_left_by_the_old_retry_repairs_it(tmp_path: Path) -> None:
    """The state of the incident: attempts set back to 0 next to request j1-a1.

    (SQLite only: the incident's ledger was a SQLite file.)"""
    path = tmp_path / "ledger.db"
    with open_ledger(path) as ledger:
        work = DispatchLedger.on(ledger, retry_base=0.0)
        task = one_job(work)
        send_and_fail(work, task, max_attempts=1)
    undo_m007(path)
    raw = Database(path)
    raw.execute("UPDATE jobs SET state = 'queued', attempts = 0")  # what the old retry did
    raw.conn.commit()
    raw.close()
    old = Database(path)
    assert [m.name for m in migrations.pending(old)] == ["m007_attempts_only_grow"]
    old.close()
    with open_ledger(path) as ledger:  # migrates: the count comes back
        work = DispatchLedger.on(ledger, retry_base=0.0)
        assert job(work) == ("queued", 1, 1)
        assert send_and_fail(work, task, max_attempts=1) == "j1-a2"


def test_reprocess_starts_a_new_round_and_the_invariants_allow_the_answer_asked_for(
    work: DispatchLedger,
) -> None:
    """docproc reprocess (issue 14) goes through the rounds of issue 16: a done job whose
    first round used every attempt gets max_attempts again, under new custom_ids."""
    task = one_job(work)
    send_and_fail(work, task, max_attempts=2)
    (item,) = work.jobs.batch_items([job.job_id for job in work.jobs.ready_jobs(task)])
    batch_id = work.batches.create_batch("local", [(item, "j1-a2")], 10)
    work.batches.batch_submitted(batch_id, "b2")
    work.results.apply_results([(ProviderResult("j1-a2", ResultKind.SUCCEEDED, summary="S."), 0)],
                       max_attempts=2)  # fmt: skip
    assert job(work) == ("done", 2, 0)

    assert work.rounds.reprocess([1], task, by="tester") == (1, 0)
    assert job(work) == ("queued", 2, 2)
    assert send_and_fail(work, task, max_attempts=2) == "j1-a3"
    assert job(work)[0] == "queued"  # the first failure of the new round: one attempt left
    (item,) = work.jobs.batch_items([job.job_id for job in work.jobs.ready_jobs(task)])
    assert item.attempt == 4
    batch_id = work.batches.create_batch("local", [(item, "j1-a4")], 10)
    work.batches.batch_submitted(batch_id, "b4")
    work.results.apply_results([(ProviderResult("j1-a4", ResultKind.SUCCEEDED, summary="T."), 0)],
                       max_attempts=2)  # fmt: skip
    assert job(work) == ("done", 4, 2)
    assert check(sql(work.ledger)) == []  # answered twice: once, and once more as asked
    change(work.ledger, "INSERT INTO requests (batch_id, job_id, custom_id, attempt, state)"
                        " VALUES (3, 1, 'j1-a5', 5, 'succeeded')",
           "UPDATE jobs SET attempts = 5")  # fmt: skip
    (broken,) = check(sql(work.ledger))  # a third answer nobody asked for is a fault
    assert (broken.name, broken.examples) == ("written_once", ("job 1 answered 3 times",))
