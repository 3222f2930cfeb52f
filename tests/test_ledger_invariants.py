"""The ledger's invariants: each one holds on a ledger docproc wrote, and each is caught
by name, with examples, when the state breaks it (by ``docproc ledger verify`` too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from docproc.ledger.connection import LedgerLocation, open_ledger
from docproc.ledger.dispatch import DispatchLedger
from docproc.ledger.invariants import INVARIANTS, check
from docproc.models import Extraction, ProviderResult, ResultKind, TaskSpec
from tests.clitools import docproc, on_engine
from tests.parts import change, extractions, files, sidecars, sql


@pytest.fixture
def work(ledger_location: LedgerLocation) -> Iterator[DispatchLedger]:
    ledger = open_ledger(ledger_location)
    work = DispatchLedger.on(ledger, retry_base=0.0)
    root = files(ledger).ensure_root("file:///docs", kind="local", mode="events")
    for i in range(2):
        sha = f"{i:064x}"
        files(ledger).record_version(root, Path(f"/docs/f{i}.txt"), size=1, mtime_ns=1, sha256=sha)
        extractions(ledger).record_extraction(Extraction(sha, "native:text", "t" * 64, 10))
    task = work.jobs.register_task(TaskSpec())
    work.jobs.create_jobs(task, [root])
    items = work.jobs.batch_items([job.job_id for job in work.jobs.ready_jobs(task)])
    batch = work.batches.create_batch(
        "local", [(i, f"j{i.job_id}-a{i.attempt}") for i in items], 10
    )
    work.batches.batch_submitted(batch, "b1")
    yield work
    ledger.close()


def names(work: DispatchLedger) -> list[str]:
    return [violation.name for violation in check(sql(work.ledger))]


def edit(work: DispatchLedger, *statements: str) -> None:
    change(work.ledger, *statements)


def test_a_ledger_docproc_wrote_keeps_every_invariant(work: DispatchLedger) -> None:
    assert names(work) == []
    answers = [(ProviderResult("j1-a1", ResultKind.SUCCEEDED, summary="S."), 0),
               (ProviderResult("j2-a1", ResultKind.EXPIRED), 0)]  # fmt: skip
    work.results.apply_results(answers, max_attempts=1)
    work.results.batch_ended(1)
    work.results.batch_applied(1)
    sidecars(work.ledger).sidecars_intent([(1, 1, [("file:///docs/f0.txt.summary.md", "a" * 64)])])
    sidecars(work.ledger).sidecars_intent(
        [(1, 1, [("file:///docs/f0.txt.summary.md", "b" * 64)])]
    )  # a retry
    sidecars(work.ledger).sidecars_written([(1, 1, False)])
    work.rounds.requeue_failed()
    assert names(work) == []
    assert len(INVARIANTS) == 7


@pytest.mark.parametrize(
    ("name", "statements", "example"),
    [
        ("custom_ids_never_reused",
         ["INSERT INTO requests (batch_id, job_id, custom_id, attempt) VALUES (1, 1, 'x', 1)"],
         "job 1 sent attempt 1 2 times"),
        ("attempts_increase", ["UPDATE jobs SET attempts = 0 WHERE id = 2"],
         "job 2 has attempts 0 but sent attempt 1"),
        ("attempts_increase",
         ["INSERT INTO requests (batch_id, job_id, custom_id, attempt, state)"
          " VALUES (1, 1, 'j1-a0', 0, 'missing')"],
         "job 1: j1-a1 then j1-a0"),
        ("one_live_batch",
         ["INSERT INTO batches (provider, request_count, request_bytes, created_at)"
          " VALUES ('local', 1, 1, 't')",
          "INSERT INTO requests (batch_id, job_id, custom_id, attempt) VALUES (2, 1, 'j1-a2', 2)",
          "UPDATE jobs SET attempts = 2 WHERE id = 1"],
         "job 1 waits in 2 live batches"),
        ("written_once",
         ["INSERT INTO sidecars (file_id, job_id, uri, state, created_at)"
          " VALUES (1, 1, 'file:///docs/f0.txt.docproc.json', 'written', 't')"] * 2,
         "file 1, job 1: file:///docs/f0.txt.docproc.json written 2 times"),
        ("documented_states", ["UPDATE jobs SET state = 'paused' WHERE id = 1"],
         "jobs 1 is paused"),
        ("documented_states", ["UPDATE jobs SET state = 'done' WHERE id = 1"],
         "job 1 is done without a succeeded request of its own"),
        ("no_wait_on_closed_batch", ["UPDATE batches SET state = 'applied'"],
         "job 1 is submitted with no pending request in a live batch"),
    ],
)  # fmt: skip
def test_each_broken_invariant_is_named_with_an_example(
    work: DispatchLedger, name: str, statements: list[str], example: str
) -> None:
    edit(work, *statements)
    broken = {violation.name: violation for violation in check(sql(work.ledger))}
    assert name in broken, broken
    assert example in broken[name].examples


def test_verify_exits_1_naming_each_violated_invariant(
    work: DispatchLedger, tmp_path: Path, ledger_url: str | None
) -> None:
    state, config = tmp_path / "state", on_engine(tmp_path, ledger_url)
    ok = docproc("ledger", "verify", *config, state=state)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[1] == "ok: every invariant holds (docproc.ledger.invariants)"
    # The state an older `ledger retry` left behind (issue 16), and a stray job state.
    edit(work, "UPDATE jobs SET state = 'queued', attempts = 0 WHERE id = 2",
         "UPDATE jobs SET state = 'retrying' WHERE id = 1")  # fmt: skip
    out = docproc("ledger", "verify", *config, state=state)
    assert out.returncode == 1
    assert out.stdout.startswith("ok:")  # the hash chain itself is intact
    assert "VIOLATED attempts_increase" in out.stderr
    assert "e.g. job 2 has attempts 0 but sent attempt 1" in out.stderr
    assert "VIOLATED documented_states: every row is in a documented state" in out.stderr
    assert "e.g. jobs 1 is retrying" in out.stderr
    assert "e.g. job 2 is queued but waits in live batch 1" in out.stderr  # one_live_batch
    assert "no_wait_on_closed_batch" not in out.stderr
