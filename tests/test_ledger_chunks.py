"""Chunks written in bulk (a chunk of results, a batch of scanned files), on both engines:
the same rows and events as one item after the other, and one bad item fails only itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from docproc.errors import FailureKind
from docproc.ledger.connection import Ledger, open_ledger
from docproc.ledger.dispatch import DispatchLedger
from docproc.ledger.intake import Seen
from docproc.models import ExtractFailure, Extraction, ProviderResult, ResultKind, TaskSpec, Usage
from tests.parts import extractions, files, queries

TASK = TaskSpec()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    where = tmp_path / "ledger.db"
    if request.param == "postgresql":
        where = request.getfixturevalue("pg_url")
    opened = open_ledger(where)
    yield opened
    opened.close()


def events(ledger: Ledger, after: int = 0) -> list[tuple[str, str]]:
    sql = "SELECT kind, subject FROM events WHERE id > ? ORDER BY id"
    rows = ledger.conn.execute(sql, (after,))
    return [(str(kind), str(subject)) for kind, subject in rows]


def last_event(ledger: Ledger) -> int:
    return int(ledger.conn.execute("SELECT MAX(id) FROM events").fetchone()[0])


def submitted(ledger: Ledger, count: int) -> tuple[DispatchLedger, int, list[str]]:
    """``count`` jobs in one submitted batch; their custom_ids, job i+1 for the i-th."""
    root = files(ledger).ensure_root("file:///docs", kind="local", mode="events")
    for i in range(count):
        sha = f"{i:064x}"
        files(ledger).record_version(root, Path(f"/docs/f{i}.txt"), size=10, mtime_ns=1, sha256=sha)
        extractions(ledger).record_extraction(Extraction(sha, "native:text", "t" * 64, 100))
    work = DispatchLedger.on(ledger)
    task = work.jobs.register_task(TASK)
    work.jobs.create_jobs(task, [root])
    items = work.jobs.batch_items([job.job_id for job in work.jobs.ready_jobs(task)])
    pairs = [(item, f"j{item.job_id}-a{item.attempt}") for item in items]
    batch_id = work.batches.create_batch("local", pairs, 1000)
    assert batch_id is not None
    work.batches.batch_submitted(batch_id, f"localbatch_{batch_id}")
    return work, batch_id, [cid for _, cid in pairs]


def ok(custom_id: str, **usage: int) -> tuple[ProviderResult, int]:
    return ProviderResult(custom_id, ResultKind.SUCCEEDED, summary="S.", model="m",
                          usage=Usage(**usage)), 1  # fmt: skip


def job_states(ledger: Ledger) -> dict[int, str]:
    return {int(i): str(s) for i, s in ledger.conn.execute("SELECT id, state FROM jobs")}


def test_a_mixed_chunk_records_each_result_in_its_order(ledger: Ledger) -> None:
    work, _, ids = submitted(ledger, 5)
    before = last_event(ledger)
    errored = ProviderResult(ids[1], ResultKind.ERRORED, error_type="overloaded_error")
    applied = work.results.apply_results(
        [ok(ids[0]), (errored, 0), ok(ids[2]), ok(ids[0]), ok("j99-a1"), ok(ids[3]), ok(ids[4])],
        max_attempts=3,
    )
    assert applied.done == 4 and applied.requeued == 1 and applied.ignored == 2
    assert job_states(ledger) == {1: "done", 2: "queued", 3: "done", 4: "done", 5: "done"}
    assert events(ledger, before) == [
        ("job.done", "job:1"),
        ("job.requeued", "job:2"),
        ("job.done", "job:3"),
        ("result.ignored", "request:j99-a1"),
        ("job.done", "job:4"),
        ("job.done", "job:5"),
    ]  # fmt: skip: the second result for ids[0] finds its request answered: no event
    (answered,) = ledger.conn.execute(
        "SELECT COUNT(*) FROM requests WHERE state = 'succeeded' AND summary = 'S.'"
        " AND dropped_highlights = 1 AND completed_at IS NOT NULL"
    ).fetchone()
    assert answered == 4
    assert queries(ledger).verify().ok


def test_a_poisoned_result_fails_alone_and_the_chunk_goes_in(ledger: Ledger) -> None:
    work, _, ids = submitted(ledger, 4)
    poisoned = ok(ids[2], input_tokens=2**70)  # past both engines' integers: the write raises
    applied = work.results.apply_results(
        [ok(ids[0]), ok(ids[1]), poisoned, ok(ids[3])], max_attempts=3
    )
    assert (applied.done, applied.requeued, applied.failed) == (3, 1, 0)
    assert job_states(ledger) == {1: "done", 2: "done", 3: "queued", 4: "done"}
    rows = ledger.conn.execute(
        "SELECT custom_id, state, error, input_tokens FROM requests ORDER BY id"
    ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [
        (ids[0], "succeeded"), (ids[1], "succeeded"), (ids[2], "errored"), (ids[3], "succeeded")
    ]  # fmt: skip
    assert "could not be recorded" in rows[2][2] and rows[2][3] is None
    assert queries(ledger).verify().ok


def test_a_batch_of_files_records_versions_and_events_as_one_by_one(ledger: Ledger) -> None:
    intake = files(ledger)
    root = intake.ensure_root("file:///docs", kind="local", mode="events")
    intake.record_version(root, Path("/docs/old.txt"), size=5, mtime_ns=1, sha256="a" * 64)
    intake.record_version(root, Path("/docs/gone.txt"), size=5, mtime_ns=1, sha256="b" * 64)
    extractions(ledger).record_extraction(Extraction("a" * 64, "native:text", "t" * 64, 10))
    intake.record_gone(Path("/docs/gone.txt"))
    before = last_event(ledger)
    needs = intake.record_versions([
        Seen(root, Path("/docs/new1.txt"), 7, 2, "c" * 64),
        Seen(root, Path("/docs/new2.txt"), 7, 2, "c" * 64),  # same bytes: one version
        Seen(root, Path("/docs/copy.txt"), 5, 2, "a" * 64),  # extracted bytes: reused
        Seen(root, Path("/docs/old.txt"), 6, 3, "d" * 64),  # changed
        Seen(root, Path("/docs/gone.txt"), 5, 3, "b" * 64),  # back
        Seen(root, Path("/docs/new1.txt"), 8, 4, "e" * 64),  # seen again in the batch
    ])  # fmt: skip
    assert needs == [True, True, False, True, True, True]
    assert events(ledger, before) == [
        ("version.recorded", "version:3"), ("file.discovered", "file:3"),
        ("file.discovered", "file:4"), ("file.discovered", "file:5"),
        ("version.recorded", "version:4"), ("file.changed", "file:1"),
        ("file.reappeared", "file:2"),
        ("version.recorded", "version:5"), ("file.changed", "file:3"),
    ]  # fmt: skip
    rows = ledger.conn.execute(
        "SELECT f.id, f.path, f.state, f.size, v.sha256 FROM files f"
        " JOIN versions v ON v.id = f.version_id ORDER BY f.id"
    ).fetchall()
    assert [tuple(r) for r in rows] == [
        (1, "/docs/old.txt", "present", 6, "d" * 64),
        (2, "/docs/gone.txt", "present", 5, "b" * 64),
        (3, "/docs/new1.txt", "present", 8, "e" * 64),
        (4, "/docs/new2.txt", "present", 7, "c" * 64),
        (5, "/docs/copy.txt", "present", 5, "a" * 64),
    ]
    assert queries(ledger).verify().ok


def test_a_batch_of_extractions_records_each_outcome_in_its_order(ledger: Ledger) -> None:
    intake = files(ledger)
    root = intake.ensure_root("file:///docs", kind="local", mode="events")
    shas = [f"{i:064x}" for i in range(4)]
    intake.record_versions(
        [Seen(root, Path(f"/docs/{i}.txt"), 5, 1, sha) for i, sha in enumerate(shas)]
    )
    before = last_event(ledger)
    failed = ExtractFailure(shas[1], FailureKind.TRANSIENT, "locked", "native:text")
    extractions(ledger).record_extractions([
        Extraction(shas[0], "native:text", "t" * 64, 10, seconds=0.5, json_bytes=12),
        failed,
        Extraction(shas[2], "ocr", "u" * 64, 20, truncated_from=30, ocr_pages=2),
        Extraction(shas[3], "native:text", "v" * 64, 1),
        Extraction(shas[3], "native:text", "w" * 64, 2),  # twice in the batch: the later wins
    ], max_attempts=3)  # fmt: skip
    assert events(ledger, before) == [
        ("extraction.succeeded", "version:1"), ("extraction.failed", "version:2"),
        ("extraction.succeeded", "version:3"), ("extraction.succeeded", "version:4"),
        ("extraction.succeeded", "version:4"),
    ]  # fmt: skip
    rows = ledger.conn.execute(
        "SELECT state, text_sha256, chars, truncated_from, attempts, extract_seconds, json_bytes,"
        " ocr_pages, extractor FROM versions ORDER BY id"
    ).fetchall()
    assert [tuple(r) for r in rows] == [
        ("extracted", "t" * 64, 10, None, 1, 0.5, 12, 0, "native:text"),
        ("failed", None, None, None, 1, 0.0, None, None, "native:text"),
        ("extracted", "u" * 64, 20, 30, 1, 0.0, None, 2, "ocr"),
        ("extracted", "w" * 64, 2, None, 2, 0.0, None, 0, "native:text"),
    ]
    assert queries(ledger).verify().ok
