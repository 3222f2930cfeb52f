"""Jobs, batches and results in a real ledger: every outcome, backoff, quarantine, retry."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from docproc.costs import ModelPrice, PriceTable, period_starts
from docproc.ledger.connection import LedgerLocation, open_ledger
from docproc.ledger.dispatch import BatchItem, DispatchLedger
from docproc.ledger.requests import RequestLedger
from docproc.models import Extraction, OutputProblem, ProviderResult, ResultKind, TaskSpec, Usage
from tests.parts import extractions, files, queries, sql

TASK = TaskSpec()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def work(ledger_location: LedgerLocation, clock: Clock) -> Iterator[DispatchLedger]:
    ledger = open_ledger(ledger_location)
    yield DispatchLedger.on(ledger, clock=clock)
    ledger.close()


def extracted_files(work: DispatchLedger, count: int) -> int:
    """``count`` extracted versions under one root; returns the root id."""
    root = files(work.ledger).ensure_root("file:///docs", kind="local", mode="events")
    for i in range(count):
        sha = f"{i:064x}"
        files(work.ledger).record_version(
            root, Path(f"/docs/f{i}.txt"), size=10, mtime_ns=1, sha256=sha
        )
        extractions(work.ledger).record_extraction(Extraction(sha, "native:text", "t" * 64, 100))
    return root


def submit(work: DispatchLedger, task: str) -> tuple[int, list[str]]:
    items = work.jobs.batch_items([job.job_id for job in work.jobs.ready_jobs(task)])
    pairs = [(item, f"j{item.job_id}-a{item.attempt}") for item in items]
    batch_id = work.batches.create_batch("local", pairs, 1000)
    work.batches.batch_submitted(batch_id, f"localbatch_{batch_id}")
    return batch_id, [cid for _, cid in pairs]


def result(custom_id: str, kind: ResultKind, error_type: str = "") -> tuple[ProviderResult, int]:
    return ProviderResult(custom_id, kind, summary="S.", error_type=error_type), 0


def job_states(work: DispatchLedger) -> dict[int, str]:
    return dict(sql(work.ledger).execute("SELECT id, state FROM jobs"))


def test_jobs_are_queued_once_per_version_and_task(work: DispatchLedger) -> None:
    root = extracted_files(work, 3)
    task = work.jobs.register_task(TASK)
    assert work.jobs.create_jobs(task, [root]) == 3
    assert work.jobs.create_jobs(task, [root]) == 0
    assert work.jobs.create_jobs(task, []) == 0
    assert [j.job_id for j in work.jobs.ready_jobs(task)] == [1, 2, 3]


def test_each_outcome_moves_its_job(work: DispatchLedger) -> None:
    root = extracted_files(work, 4)
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [root])
    _, ids = submit(work, task)
    applied = work.results.apply_results(
        [
            result(ids[0], ResultKind.SUCCEEDED),
            result(ids[1], ResultKind.ERRORED, "invalid_request_error"),
            result(ids[2], ResultKind.EXPIRED),
            result(ids[3], ResultKind.ERRORED, "overloaded_error"),
        ],
        max_attempts=3,
    )
    assert (applied.done, applied.failed, applied.requeued) == (1, 1, 2)
    assert job_states(work) == {1: "done", 2: "failed", 3: "queued", 4: "queued"}
    assert work.jobs.ready_jobs(task) == []  # both requeued jobs wait for their backoff


def test_retry_after_backoff_then_quarantine_after_max_attempts(
    work: DispatchLedger, clock: Clock
) -> None:
    root = extracted_files(work, 1)
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [root])
    for attempt in (1, 2):
        _, ids = submit(work, task)
        assert ids == [f"j1-a{attempt}"]
        work.results.apply_results([result(ids[0], ResultKind.EXPIRED)], max_attempts=2)
        clock.now += 3600
    (state, error) = sql(work.ledger).execute("SELECT state, error FROM jobs").fetchone()
    assert state == "failed"
    assert error == "gave up after 2 attempts: request expired"
    assert work.rounds.requeue_failed() == 1
    assert [j.job_id for j in work.jobs.ready_jobs(task)] == [1]


def test_duplicate_and_unknown_results_are_ignored(work: DispatchLedger) -> None:
    root = extracted_files(work, 1)
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [root])
    _, ids = submit(work, task)
    work.results.apply_results([result(ids[0], ResultKind.SUCCEEDED)], max_attempts=3)
    again = work.results.apply_results(
        [result(ids[0], ResultKind.ERRORED, "invalid_request_error"),
         result("j99-a1", ResultKind.SUCCEEDED)],
        max_attempts=3,
    )  # fmt: skip
    assert again.ignored == 2
    assert job_states(work) == {1: "done"}


def test_requests_without_a_result_are_requeued_when_the_batch_is_applied(
    work: DispatchLedger,
) -> None:
    root = extracted_files(work, 2)
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [root])
    batch_id, ids = submit(work, task)
    work.results.apply_results([result(ids[0], ResultKind.SUCCEEDED)], max_attempts=3)
    work.results.batch_applied(batch_id)
    assert job_states(work) == {1: "done", 2: "queued"}
    states = dict(sql(work.ledger).execute("SELECT custom_id, state FROM requests"))
    assert states == {ids[0]: "succeeded", ids[1]: "missing"}


def test_a_batch_that_was_never_created_requeues_its_jobs(work: DispatchLedger) -> None:
    root = extracted_files(work, 2)
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [root])
    items = work.jobs.batch_items([j.job_id for j in work.jobs.ready_jobs(task)])
    batch_id = work.batches.create_batch("local", [(i, f"j{i.job_id}-a1") for i in items], 10)
    assert set(job_states(work).values()) == {"submitting"}
    work.batches.batch_not_created(batch_id, "request_too_large", max_attempts=3)
    assert set(job_states(work).values()) == {"queued"}
    assert work.batches.open_batches() == []


def test_every_transition_is_in_the_verified_chain(work: DispatchLedger) -> None:
    root = extracted_files(work, 2)
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [root])
    batch_id, ids = submit(work, task)
    work.results.batch_ended(batch_id)
    work.results.apply_results([result(i, ResultKind.SUCCEEDED) for i in ids], max_attempts=3)
    work.results.batch_applied(batch_id)
    kinds = [e["kind"] for e in queries(work.ledger).events()]
    for kind in ("task.registered", "job.queued", "batch.planned", "batch.submitted",
                 "batch.ended", "job.done", "batch.applied"):  # fmt: skip
        assert kind in kinds
    assert queries(work.ledger).verify().ok


def test_batch_item_carries_attempt_and_title(work: DispatchLedger) -> None:
    root = extracted_files(work, 1)
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [root])
    assert work.jobs.batch_items([1]) == [BatchItem(1, 1, "t" * 64, "f0.txt", chars=100)]


def test_cli_retry_requeues_quarantined_jobs(
    tmp_path: Path, ledger_location: LedgerLocation, ledger_url: str | None
) -> None:
    from tests.clitools import docproc, on_engine

    state, config = tmp_path / "state", on_engine(tmp_path, ledger_url)
    with open_ledger(ledger_location) as ledger:
        work = DispatchLedger.on(ledger)
        root = extracted_files(work, 2)
        task = work.jobs.register_task(TASK)
        work.jobs.create_jobs(task, [root])
        _, ids = submit(work, task)
        work.results.apply_results(
            [result(i, ResultKind.ERRORED, "invalid_request_error") for i in ids], max_attempts=3
        )
    status = docproc("status", "--json", *config, state=state)
    assert '"jobs_failed": 2' in status.stdout
    one = docproc("ledger", "retry", "/docs/f0.txt", "--wait", "0", *config, state=state)
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith("retry recorded as request 1; the daemon carries it out")
    with open_ledger(ledger_location) as ledger:  # what the daemon does with it
        (request,) = RequestLedger(ledger).pending()
        assert request.detail == {"job_ids": [1]} and request.kind == "retry"
        assert DispatchLedger.on(ledger).rounds.requeue_failed(request.detail["job_ids"]) == 1
    assert docproc("ledger", "verify", *config, state=state).returncode == 0


def test_batch_requests_give_back_items_and_custom_ids_in_order(work: DispatchLedger) -> None:
    root = extracted_files(work, 2)
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [root])
    batch_id, ids = submit(work, task)
    assert work.batches.batch_requests(batch_id) == [
        (BatchItem(1, 1, "t" * 64, "f0.txt", chars=100), ids[0]),
        (BatchItem(2, 1, "t" * 64, "f1.txt", chars=100), ids[1]),
    ]


# -- issue 4: output problems, costs, lost batches, budget state -------------------


def billed(
    custom_id: str, error_type: str = "", output_tokens: int = 500
) -> tuple[ProviderResult, int]:
    usage = Usage(input_tokens=1000, output_tokens=output_tokens, cache_read_input_tokens=2000)
    kind = ResultKind.ERRORED if error_type else ResultKind.SUCCEEDED
    return ProviderResult(custom_id, kind, summary="S.", usage=usage, model="m",
                          error_type=error_type, error_message="why"), 0  # fmt: skip


@pytest.fixture
def priced(ledger_location: LedgerLocation, clock: Clock) -> Iterator[DispatchLedger]:
    ledger = open_ledger(ledger_location)
    yield DispatchLedger.on(
        ledger, clock=clock, prices=PriceTable(prices={"m": ModelPrice(2.0, 10.0)})
    )
    ledger.close()


def test_cut_off_answer_is_retried_once_with_more_tokens_then_quarantined(
    priced: DispatchLedger,
) -> None:
    task = priced.jobs.register_task(TASK)
    priced.jobs.create_jobs(task, [extracted_files(priced, 1)])
    _, ids = submit(priced, task)
    applied = priced.results.apply_results([billed(ids[0], OutputProblem.MAX_TOKENS.value, 1024)],
                                   max_attempts=3)  # fmt: skip
    assert applied.requeued == 1
    (item,) = priced.jobs.batch_items([1])
    assert item.max_tokens == 2048 and item.attempt == 2  # more room, at once (no backoff)
    assert [job.job_id for job in priced.jobs.ready_jobs(task)] == [1]
    _, ids = submit(priced, task)
    priced.results.apply_results(
        [billed(ids[0], OutputProblem.MAX_TOKENS.value, 2048)], max_attempts=3
    )
    assert job_states(priced) == {1: "failed"}


@pytest.mark.parametrize("problem", [OutputProblem.REFUSAL, OutputProblem.CONTEXT])
def test_refusals_and_oversized_documents_are_quarantined_at_once(
    priced: DispatchLedger, problem: OutputProblem
) -> None:
    task = priced.jobs.register_task(TASK)
    priced.jobs.create_jobs(task, [extracted_files(priced, 1)])
    _, ids = submit(priced, task)
    assert priced.results.apply_results([billed(ids[0], problem.value)], max_attempts=3).failed == 1
    error = sql(priced.ledger).execute("SELECT error FROM jobs").fetchone()[0]
    assert error.startswith(problem.value)


def test_every_billed_request_is_costed_and_grouped(priced: DispatchLedger, clock: Clock) -> None:
    task = priced.jobs.register_task(TASK)
    priced.jobs.create_jobs(task, [extracted_files(priced, 3)])
    items = priced.jobs.batch_items([job.job_id for job in priced.jobs.ready_jobs(task)])
    pairs = [(item, f"j{item.job_id}-a{item.attempt}") for item in items]
    batch_id = priced.batches.create_batch("anthropic", pairs, 9000, model="m", estimated_cost=1.5)
    priced.batches.batch_submitted(batch_id, "msgbatch_x")
    day, month = period_starts(clock())
    assert priced.budget.reserved() == 1.5 and priced.budget.billed(day) == 0
    ids = [cid for _, cid in pairs]
    priced.results.apply_results([billed(ids[0]), billed(ids[1], OutputProblem.INVALID.value),
                          result(ids[2], ResultKind.EXPIRED)], max_attempts=3)  # fmt: skip
    priced.results.batch_ended(batch_id)
    priced.results.batch_applied(batch_id)
    one = (1000 * 2 + 2000 * 2 * 0.1 + 500 * 10) / 1e6 / 2  # batch price: half
    assert priced.budget.billed(day) == pytest.approx(2 * one)  # the invalid answer was billed too
    assert priced.budget.reserved() == 0 and priced.budget.billed(month) == pytest.approx(2 * one)
    (by_model,) = queries(priced.ledger).costs("model")
    assert by_model["model"] == "m" and by_model["requests"] == 3
    assert by_model["cost_usd"] == pytest.approx(2 * one)
    assert queries(priced.ledger).costs("root")[0]["root"] == "file:///docs"
    (row,) = queries(priced.ledger).batches()
    assert (row["succeeded"], row["failed"], row["estimated_cost_usd"]) == (1, 2, 1.5)
    assert row["cost_usd"] == pytest.approx(2 * one)
    with pytest.raises(ValueError, match="cannot group"):
        queries(priced.ledger).costs("path; DROP TABLE jobs")


def test_a_lost_batch_requeues_what_it_held(work: DispatchLedger) -> None:
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [extracted_files(work, 2)])
    batch_id, ids = submit(work, task)
    work.results.apply_results([result(ids[0], ResultKind.SUCCEEDED)], max_attempts=3)
    assert work.results.batch_lost(batch_id, "HTTP 404: not_found_error") == 1
    assert job_states(work) == {1: "done", 2: "queued"}
    assert work.batches.open_batches() == []
    assert work.batches.find_batch("localbatch_1")["state"] == "lost"  # type: ignore[index]
    assert work.batches.find_batch(str(batch_id))["id"] == batch_id  # type: ignore[index]
    assert work.batches.find_batch("nope") is None


def test_pause_reason_follows_the_latest_event(work: DispatchLedger) -> None:
    assert work.conditions.pause_reason() is None
    work.conditions.submission_paused("daily budget: over")
    assert work.conditions.pause_reason() == "daily budget: over"
    work.conditions.submission_paused(None)
    assert work.conditions.pause_reason() is None


def test_request_sizes_are_exact_for_measured_text_and_bounded_for_cut_text(
    work: DispatchLedger,
) -> None:
    root = files(work.ledger).ensure_root("file:///docs", kind="local", mode="events")
    for i, (chars, json_bytes) in enumerate([(100, 130), (5000, 5000), (100, None)]):
        sha = f"{i:064x}"
        files(work.ledger).record_version(
            root, Path(f"/docs/f{i}.txt"), size=10, mtime_ns=1, sha256=sha
        )
        extractions(work.ledger).record_extraction(Extraction(sha, "native:text", "t" * 64, chars,
                                                 json_bytes=json_bytes))  # fmt: skip
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [root], overhead=1000, max_chars=1000)
    sizes = [job.request_bytes for job in work.jobs.ready_jobs(task)]
    path_bytes = len("/docs/f0.txt")
    assert sizes == [
        1000 + path_bytes + 130,
        1000 + path_bytes + 6000 + 200,
        1000 + path_bytes + 600,
    ]


def test_a_cut_is_recorded_with_the_request(work: DispatchLedger) -> None:
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [extracted_files(work, 2)])
    items = work.jobs.batch_items([1, 2])
    pairs = [(item, f"j{item.job_id}-a1") for item in items]
    work.batches.create_batch("anthropic", pairs, 1000, max_chars=50)
    cuts = sql(work.ledger).execute("SELECT custom_id, text_cut_from FROM requests ORDER BY id")
    assert list(cuts) == [("j1-a1", 100), ("j2-a1", 100)]
    work.batches.create_batch("anthropic", [(items[0], "j1-a9")], 1000, max_chars=1000)
    assert sql(work.ledger).execute(
        "SELECT text_cut_from FROM requests WHERE custom_id = 'j1-a9'"
    ).fetchone() == (None,)


def test_each_batch_has_a_token_unique_to_its_ledger(work: DispatchLedger, tmp_path: Path) -> None:
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [extracted_files(work, 2)])
    batch_id, _ = submit(work, task)
    token = work.batches.find_batch(str(batch_id))["submit_token"]  # type: ignore[index]
    assert token == work.batches.submit_token(batch_id)
    assert re.fullmatch(r"docproc-[0-9a-f]{8}-b1", token)
    other = open_ledger(tmp_path / "other.db")
    try:
        assert DispatchLedger.on(other).batches.submit_token(batch_id) != token
    finally:
        other.close()


def test_live_requests_are_costed_at_list_price_and_shown_apart(
    priced: DispatchLedger, clock: Clock
) -> None:
    task = priced.jobs.register_task(TASK)
    priced.jobs.create_jobs(task, [extracted_files(priced, 2)])
    items = priced.jobs.batch_items([job.job_id for job in priced.jobs.ready_jobs(task)])
    pairs = [(item, f"j{item.job_id}-a{item.attempt}") for item in items]
    batch = priced.batches.create_batch("bedrock", pairs[:1], 100, model="m")
    live = priced.batches.create_batch("bedrock", pairs[1:], 100, model="m", tier="live")
    priced.batches.batch_submitted(batch, "arn:batch")
    priced.batches.batch_submitted(live, "live-x")
    priced.results.apply_results([billed(pairs[0][1]), billed(pairs[1][1])], max_attempts=3)
    rows = {row["tier"]: row for row in queries(priced.ledger).costs("model")}
    assert rows["live"]["cost_usd"] == pytest.approx(2 * rows["batch"]["cost_usd"])
    assert [row["tier"] for row in queries(priced.ledger).costs("tier")] == ["batch", "live"]


def test_progress_and_waiting_are_recorded(work: DispatchLedger) -> None:
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [extracted_files(work, 1)])
    batch_id, _ = submit(work, task)
    work.results.batch_progress(batch_id, "Validating")
    work.results.batch_progress(batch_id, "Validating")
    work.results.batch_progress(batch_id, "InProgress", '{"message": null}')
    work.results.batch_ended(batch_id, "Completed", '{"counts": {"successRecordCount": 1}}')
    row = work.batches.find_batch(str(batch_id))
    assert row is not None and row["provider_status"] == "Completed"
    assert "successRecordCount" in row["provider_detail"]
    kinds = [
        k
        for (k,) in sql(work.ledger).execute(
            "SELECT kind FROM events WHERE kind = 'batch.progress'"
        )
    ]
    assert len(kinds) == 2  # one per change of status
    assert work.conditions.waiting_reason() is None
    work.conditions.submission_waiting("below the minimum")
    assert work.conditions.waiting_reason() == "below the minimum"
    work.conditions.submission_waiting(None)
    assert work.conditions.waiting_reason() is None


def test_a_result_that_cannot_be_recorded_stays_alone_the_chunk_goes_in(
    work: DispatchLedger,
) -> None:
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [extracted_files(work, 3)])
    _, ids = submit(work, task)
    bad = ProviderResult(ids[1], ResultKind.SUCCEEDED, summary="S.",
                         usage=Usage(input_tokens=2**70))  # fmt: skip  # past SQLite's integers
    applied = work.results.apply_results(
        [result(ids[0], ResultKind.SUCCEEDED), (bad, 0), result(ids[2], ResultKind.SUCCEEDED)],
        max_attempts=3,
    )
    assert (applied.done, applied.requeued) == (2, 1)
    assert job_states(work) == {1: "done", 2: "queued", 3: "done"}
    error = sql(work.ledger).execute("SELECT error FROM requests WHERE custom_id = ?", (ids[1],))
    assert "could not be recorded" in error.fetchone()[0]
    assert queries(work.ledger).verify().ok
