"""A ledger on a real full tmpfs: the stages keep what they hold and record it once space returns.

Nothing here mocks SQLite or the disk: the ledger lives on a small tmpfs the
test mounts and fills. The write-ahead log is checkpointed and truncated
first, so the next commit really needs new blocks (SQLite would otherwise
reuse the slack of an earlier, longer log).
"""

from __future__ import annotations

# SQLite only: these fill or break the disk under the ledger's file (tmpfs); a
# PostgreSQL server's own faults are in test_ledger_postgres*.py.
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from docproc.dispatch import Dispatcher
from docproc.errors import LedgerUnwritable
from docproc.extract import ExtractorPool
from docproc.intake import Intake
from docproc.ledger.connection import Ledger, open_ledger
from docproc.ledger.dispatch import Applied, DispatchLedger
from docproc.ledger.dispatch.jobs import JobLedger
from docproc.ledger.dispatch.results import ResultLedger
from docproc.ledger.intake import IntakeLedger
from docproc.models import (
    BatchLimits,
    Extraction,
    ExtractLimits,
    ProviderResult,
    TaskSpec,
    WatchSpec,
)
from docproc.providers.local import LocalProvider
from docproc.sources.local import LocalSource
from docproc.textstore import TextStore
from tests.parts import extractions, files, queries, raw
from tests.tmpfs import Tmpfs, cannot_mount, mounted

pytestmark = pytest.mark.skipif(cannot_mount() is not None, reason=str(cannot_mount()))
TEXT = "The ledger records every step. Nothing is lost. Batches are reconciled after a crash."


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Tmpfs]:
    with mounted(tmp_path / "state", "4m") as fs:
        yield fs


def fill(fs: Tmpfs, ledger: Ledger) -> None:
    """No room left, and no slack in the write-ahead log either."""
    raw(ledger).execute("PRAGMA wal_checkpoint(TRUNCATE)")
    fs.fill()


def test_intake_holds_what_a_source_handed_over_until_the_ledger_takes_it(
    tmp_path: Path, state: Tmpfs
) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    for i in range(5):
        (folder / f"d{i}.txt").write_text(f"Document {i}. {TEXT}")
    ledger = open_ledger(state.path / "ledger.db")
    pool = ExtractorPool(workers=1, limits=ExtractLimits(), text_dir=tmp_path / "text")
    intake = Intake(IntakeLedger.on(ledger), pool)
    source = LocalSource(WatchSpec(path=folder, settle_seconds=0), rescan_interval=1e9)
    intake.add_source(
        files(ledger).ensure_root(f"file://{folder}", kind="local", mode="scan"), source
    )
    try:
        fill(state, ledger)
        with pytest.raises(LedgerUnwritable, match=f"no space left on {state.path}"):
            intake.tick(time.monotonic())  # the one reconcile walk: its files are handed over
        assert queries(ledger).files() == []
        state.free()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            len(queries(ledger).files()) == 5
            and {f["state"] for f in queries(ledger).files()} == {"extracted"}
        ):
            intake.tick(time.monotonic(), wait=0.1)  # no rescan comes: only what was held
        assert {row["state"] for row in queries(ledger).files()} == {"extracted"}
        assert len(queries(ledger).files()) == 5
        assert queries(ledger).violations() == []
    finally:
        intake.close()
        ledger.close()


class FillingResults(ResultLedger):
    """The ledger's own bookkeeping; the disk fills just before the first results go in."""

    def __init__(self, jobs: JobLedger, fs: Tmpfs) -> None:
        super().__init__(jobs)
        self.fs, self.armed = fs, True

    def apply_results(
        self, results: Sequence[tuple[ProviderResult, int]], *, max_attempts: int
    ) -> Applied:
        if self.armed:
            self.armed = False
            fill(self.fs, self.ledger)
        return super().apply_results(results, max_attempts=max_attempts)


def test_results_the_ledger_refuses_are_held_and_never_sent_again(
    tmp_path: Path, state: Tmpfs
) -> None:
    ledger = open_ledger(state.path / "ledger.db")
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
    work = replace(work, results=FillingResults(work.jobs, state))
    provider = LocalProvider(tmp_path / "spool")
    dispatcher = Dispatcher(work, provider, store, task=TaskSpec(), limits=BatchLimits(max_wait=0),
                            poll_interval=0.05, max_attempts=3)  # fmt: skip
    dispatcher.queue_jobs([root])
    refused = 0
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and refused < 3:  # the results arrive, then...
            try:
                dispatcher.tick(time.monotonic(), flush_all=True)
            except LedgerUnwritable:
                refused += 1  # ...the ledger refuses them, tick after tick
            time.sleep(0.02)
        state.free()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and dispatcher.in_flight:
            dispatcher.tick(time.monotonic(), flush_all=True)
            time.sleep(0.02)
    finally:
        dispatcher.close()
    assert refused == 3
    assert dict(raw(work.ledger).execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")) == {
        "done": 3
    }
    assert raw(work.ledger).execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 3  # sent once
    assert [r[0] for r in raw(work.ledger).execute("SELECT state FROM batches")] == ["applied"]
    assert queries(ledger).violations() == []
    assert queries(ledger).verify().ok
    ledger.close()
