"""Sidecar writes against real storage faults: a full tmpfs, a read-only remount, S3 refusing.

The publisher, a real ledger and real folders on a small tmpfs mounted by the
test (skipped with the reason where the test cannot mount). Nothing is mocked:
the kernel says ENOSPC and EROFS, moto (through the fault proxy) says 403.
"""

from __future__ import annotations

# SQLite only: disk faults under the state directory and the ledger's file.
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from docproc import aws
from docproc.ledger.connection import open_ledger
from docproc.ledger.dispatch import DispatchLedger
from docproc.ledger.intake import Seen
from docproc.ledger.publishing import PublishLedger
from docproc.ledger.publishing.retries import (
    FAULT_CAP_S,
    REFUSED_CAP_S,
    retry_delay,
)
from docproc.ledger.uris import file_uri
from docproc.models import (
    Extraction,
    ProviderResult,
    ResultKind,
    SidecarSettings,
    TaskSpec,
    object_uri,
)
from docproc.publish import Publisher
from docproc.sidecar_objects import ObjectSidecars
from docproc.sidecars import commit, stage, sweep_temps
from tests.parts import extractions, files, queries, raw
from tests.s3server import REGION, Fault, FaultProxy, Moto
from tests.test_ledger_work import Clock
from tests.tmpfs import Tmpfs, cannot_mount, mounted

needs_mount = pytest.mark.skipif(cannot_mount() is not None, reason=str(cannot_mount()))
TASK = TaskSpec()
SUFFIXES = (".summary.md", ".docproc.json")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def work(tmp_path: Path, clock: Clock) -> Iterator[DispatchLedger]:
    with open_ledger(tmp_path / "ledger.db") as ledger:
        yield DispatchLedger.on(ledger, clock=clock)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Tmpfs]:
    if cannot_mount():
        pytest.skip(str(cannot_mount()))
    with mounted(tmp_path / "inbox", "1m") as fs:
        yield fs


def answered(work: DispatchLedger, root_uri: str, locations: list[str | Path]) -> str:
    """Files at ``locations`` extracted, batched and answered; returns the task id."""
    task = work.jobs.register_task(TASK)
    kind = "s3" if root_uri.startswith("s3://") else "local"
    root = files(work.ledger).ensure_root(root_uri, kind=kind, mode="events")
    for i, where in enumerate(locations):
        sha = hashlib.sha256(f"document {i}".encode()).hexdigest()
        if isinstance(where, Path):
            where.write_text(f"document {i}")
            files(work.ledger).record_version(root, where, size=10, mtime_ns=1, sha256=sha)
        else:
            files(work.ledger).record_versions(
                [Seen(root, Path("/x"), 10, 1, sha, uri=where, etag="e")]
            )
        extractions(work.ledger).record_extraction(Extraction(sha, "native:text", "t" * 64, 10))
    work.jobs.create_jobs(task, [root])
    items = work.jobs.batch_items([job.job_id for job in work.jobs.ready_jobs(task)])
    pairs = [(item, f"j{item.job_id}-a{item.attempt}") for item in items]
    batch = work.batches.create_batch("local", pairs, 1000)
    work.batches.batch_submitted(batch, f"localbatch_{batch}")
    results = [(ProviderResult(cid, ResultKind.SUCCEEDED, summary=f"S {cid}."), 0)
               for _, cid in pairs]  # fmt: skip
    work.results.apply_results(results, max_attempts=3)
    return task


def states(work: DispatchLedger) -> dict[str, tuple[str, str | None]]:
    rows = raw(work.ledger).execute("SELECT path, state, error FROM file_status")
    return {Path(path).name: (state, error) for path, state, error in rows}


def temp_files(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


def events(work: DispatchLedger, kind: str) -> int:
    return int(raw(work.ledger).execute("SELECT COUNT(*) FROM events WHERE kind = ?", (kind,))
               .fetchone()[0])  # fmt: skip


@needs_mount
def test_a_full_folder_makes_every_file_wait_then_all_are_written_once_space_returns(
    work: DispatchLedger, folder: Tmpfs, clock: Clock
) -> None:
    sources = [folder.path / f"doc{i}.txt" for i in range(6)]
    task = answered(work, file_uri(folder.path), list(sources))
    folder.fill()
    publisher = Publisher(PublishLedger.on(work.ledger, clock=work.clock), task_id=task,
                          settings=SidecarSettings())  # fmt: skip
    with capture_logs() as logs:
        publisher.tick(0.0)

    reason = f"no space left on {folder.path}"
    assert set(states(work).values()) == {("retrying", reason)}
    assert temp_files(folder.path) == []  # the failed write took its temp file with it
    failed = [e for e in logs if e["event"] == "sidecars.write_failed"]
    assert len(failed) == 1  # the folder failed once; its other files waited without a try
    assert failed[0]["reason"] == reason
    waiting = queries(work.ledger).sidecars_waiting()
    assert [(w.kind, w.reason, w.files) for w in waiting] == [("no_space", reason, 6)]

    publisher.tick(1.0)  # nothing is due yet: no new try
    assert raw(work.ledger).execute("SELECT MAX(attempts) FROM sidecar_retries").fetchone()[0] == 1
    raw(work.ledger).execute(
        "UPDATE sidecar_retries SET retry_at = retry_at + 1000 WHERE file_id > 1"
    )
    raw(work.ledger).commit()  # the others are due much later: only doc0 will try
    folder.free()
    clock.now += retry_delay("no_space", 1)
    for step in (1.2, 1.4, 1.6, 1.8):  # no look at the folder yet (every 2 s): only doc0
        publisher.tick(step)  # is due, finds room, and its write releases the others
    assert {state for state, _ in states(work).values()} == {"written"}
    for source in sources:
        for suffix in SUFFIXES:
            assert source.with_name(source.name + suffix).read_text().strip()
    assert temp_files(folder.path) == []
    assert queries(work.ledger).sidecars_waiting() == []
    assert events(work, "sidecars.written") == 6
    assert events(work, "sidecars.retrying") == 6  # once per file, not once per try
    assert queries(work.ledger).verify().ok


@needs_mount
def test_a_read_only_folder_waits_and_is_written_after_remount(
    work: DispatchLedger, folder: Tmpfs, clock: Clock
) -> None:
    sources = [folder.path / f"doc{i}.txt" for i in range(3)]
    task = answered(work, file_uri(folder.path), list(sources))
    folder.read_only()
    publisher = Publisher(PublishLedger.on(work.ledger, clock=work.clock), task_id=task,
                          settings=SidecarSettings())  # fmt: skip
    publisher.tick(0.0)
    assert set(states(work).values()) == {("retrying", f"read-only file system at {folder.path}")}
    for attempt in range(1, 4):  # still read-only: each try backs off further
        clock.now += retry_delay("read_only", attempt)
        publisher.tick(float(3 * attempt))
    assert raw(work.ledger).execute("SELECT MIN(attempts) FROM sidecar_retries").fetchone()[0] >= 3
    folder.read_write()  # no file is due (the clock stands still), but the folder is
    for step in (12.0, 12.1, 12.2):  # looked at every 2 s: mounted read-write again
        publisher.tick(step)
    assert {state for state, _ in states(work).values()} == {"written"}
    assert temp_files(folder.path) == []


@needs_mount
def test_commit_on_a_folder_gone_read_only_reports_it_and_the_sweep_clears_the_temps(
    folder: Tmpfs,
) -> None:
    targets = [folder.path / f"doc{i}.txt.summary.md" for i in range(3)]
    staged = [stage(t, b"summary\n", expected_existing=set(), within=folder.path)
              for t in targets]  # fmt: skip
    folder.read_only()  # between the temp files and their rename
    outcomes = commit([s for s in staged if s is not None])
    assert all(isinstance(o, OSError) for o in outcomes)
    assert not any(t.exists() for t in targets)
    assert len(temp_files(folder.path)) == 3  # a read-only folder keeps them...
    folder.read_write()
    (folder.path / ".keep.txt.tmp").write_text("not docproc's")
    assert sweep_temps(folder.path, SUFFIXES) == 3  # ...until the next write that works
    assert temp_files(folder.path) == [".keep.txt.tmp"]


@needs_mount
def test_stage_on_a_full_folder_leaves_no_temp_file(folder: Tmpfs) -> None:
    folder.fill()
    with pytest.raises(OSError, match="No space left"):
        stage(folder.path / "a.txt.summary.md", b"x" * 10_000, expected_existing=set())
    assert temp_files(folder.path) == []


def test_retries_back_off_doubling_to_a_cap() -> None:
    assert [retry_delay("no_space", n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert retry_delay("permission", 50) == FAULT_CAP_S
    assert retry_delay("refused", 50) == REFUSED_CAP_S


@pytest.mark.usefixtures("aws_env")
def test_sidecar_objects_refused_by_the_bucket_wait_then_are_written(
    work: DispatchLedger, moto: Moto, clock: Clock
) -> None:
    s3 = moto.client()
    bucket = moto.bucket(s3)
    keys = [f"docs/r{i}.txt" for i in range(3)]
    proxy = FaultProxy(moto.url)
    session = aws.Session(aws.Endpoint(proxy.url, REGION))
    try:
        root = object_uri(bucket, "docs/")
        task = answered(work, root, [object_uri(bucket, key) for key in keys])
        sink = ObjectSidecars(aws.Bucket(bucket, session), prefix="docs/",
                              settings=SidecarSettings())  # fmt: skip
        proxy.add(Fault(lambda method, _p, _h: method == "PUT", status=403, code="AccessDenied"))
        publisher = Publisher(PublishLedger.on(work.ledger, clock=work.clock), task_id=task,
                          settings=SidecarSettings())  # fmt: skip
        publisher.add_object_root(root, sink)
        publisher.tick(0.0)
        (_, reason), *_ = states(work).values()
        assert {state for state, _ in states(work).values()} == {"retrying"}
        assert reason is not None
        assert reason.startswith(f"access denied on s3://{bucket}/docs/")
        proxy.clear()
        clock.now += FAULT_CAP_S
        for step in range(1, 5):
            publisher.tick(float(step))
        assert {state for state, _ in states(work).values()} == {"written"}
        listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
        assert {k + s for k in keys for s in SUFFIXES} <= listed
    finally:
        session.close()
        proxy.close()
