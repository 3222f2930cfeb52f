"""One tick of the whole pipeline; the only module that knows the order of the stages.

intake (sources -> sha256 -> ledger -> extraction workers -> ledger)
  -> adopt (docproc's own sidecars a new ledger finds: recorded, not sent again)
  -> dispatch (jobs -> batches -> provider -> results in the ledger)
  -> publish (results -> sidecars next to each source -> ledger)

Each stage reads its input from the ledger and records its output there, so
the tick can stop anywhere and the next process resumes from the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime

from docproc.adopt import Adopter
from docproc.costs import period_starts
from docproc.dispatch import Dispatcher
from docproc.health import Snapshot, StageCounters
from docproc.intake import Intake, TickReport
from docproc.ledger.queries import Queries
from docproc.models import Extraction
from docproc.operations import Operations
from docproc.publish import Publisher


class Pipeline:
    """Intake, dispatch and publish, ticked in that order."""

    def __init__(
        self,
        intake: Intake,
        dispatcher: Dispatcher,
        publisher: Publisher,
        adopter: Adopter | None = None,
        operations: Operations | None = None,
        *,
        queries: Queries,
    ) -> None:
        self.intake, self.dispatcher, self.publisher = intake, dispatcher, publisher
        self.queries = queries  # what status lines and /metrics read
        self.adopter = adopter  # docproc's own sidecars found by a ledger without their record
        self.operations = operations  # what operators asked through the ledger
        self._jobs_due = True
        self.counters = StageCounters()
        self._day: date | None = None  # written today: the day counted, its total, the
        self._written, self._event_cursor = 0, 0  # last event id counted

    def roots_changed(self) -> None:
        """Watched roots were added or removed: look for work under them again."""
        self._jobs_due = True

    def tick(self, now: float, *, wait: float, flush_all: bool = False) -> None:
        """One pass over the stages.

        ``wait`` is the longest the tick may block waiting for extraction
        results; it is cut short when a later stage has work ready, so a
        document never waits a full tick between stages. A stage that fails
        does not keep the others from their turn; the first failure is then
        raised for the daemon to count (failures of single items never get
        here: each stage records them on the item).
        """
        failed: list[Exception] = []
        report, answered, published = TickReport(), 0, 0
        with _stage(failed):
            report = self.intake.tick(now, wait=self._wait(now, wait))
        extracted = sum(isinstance(o, Extraction) for o in report.outcomes)
        with _stage(failed):
            if self._jobs_due or extracted or report.taken:
                self._jobs_due = True  # until it succeeds: a failed try is not forgotten
                roots = list(self.intake.sources)
                held = set[int]()  # roots whose sidecars could not be read: no jobs yet
                if self.adopter is not None:  # before jobs are made: adopted versions need none
                    held = self.adopter.tick(roots, now)
                self.dispatcher.queue_jobs([root for root in roots if root not in held])
                self._jobs_due = bool(held)
        if self.operations is not None:
            with _stage(failed):
                self.operations.tick(now)
        with _stage(failed):
            answered = self.dispatcher.tick(now, flush_all=flush_all)
        if answered or report.taken:
            self.publisher.wake()
        with _stage(failed):
            published = self.publisher.tick(now)
        self._count(report, extracted, answered, published)
        if failed:  # the other stages had their turn; the daemon counts the failed tick
            raise failed[0]

    def _count(self, report: TickReport, extracted: int, answered: int, published: int) -> None:
        c = self.counters
        c.taken, c.extracted = c.taken + report.taken, c.extracted + extracted
        c.extract_failed += len(report.outcomes) - extracted
        c.answered, c.published = c.answered + answered, c.published + published

    def snapshot(self) -> Snapshot:
        """What operators see (systemd's STATUS= line, /metrics): a few indexed reads.

        The one place the service's figures are computed; call it from the main loop.
        """
        work, task = self.dispatcher.work, self.dispatcher.task_id
        jobs = self.queries.job_states(task)
        ages = self.dispatcher.batch_ages()
        return Snapshot(
            settling=self.intake.settling,
            extracting=self.intake.in_extraction,
            queued=jobs.get("queued", 0),
            in_flight=jobs.get("submitting", 0) + jobs.get("submitted", 0),
            failed=jobs.get("failed", 0),
            batches_in_flight=len(ages),
            oldest_batch_age=max(ages, default=None),
            written_today=self._written_today(),
            spend_today=work.budget.billed(period_starts(work.clock())[0]),
            paused=self.dispatcher.paused,
            counters=replace(self.counters),
            sidecars_waiting=tuple(
                (w.kind, w.reason, w.files) for w in self.queries.sidecars_waiting()
            ),
            intake_paused=self.intake.new_work_paused,
        )

    def _written_today(self) -> int:
        now = datetime.now(UTC)
        if now.date() != self._day:
            self._day, self._written = now.date(), 0
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
        since = midnight.isoformat(timespec="microseconds")
        count, self._event_cursor = self.queries.written_since(since, self._event_cursor)
        self._written += count
        return self._written

    def _wait(self, now: float, longest: float) -> float:
        if self.publisher.awake:
            return 0.0
        return min(longest, self.dispatcher.idle_for(now))

    def idle(self) -> bool:
        """Nothing settling, extracting, queued, in flight or waiting to be written."""
        return (
            not self.intake.busy
            and self.dispatcher.in_flight == 0
            and self.dispatcher.pending_jobs() == 0
            and not self.publisher.has_work()
        )

    def close(self) -> None:
        self.dispatcher.close()
        self.intake.close()


@contextmanager
def _stage(failed: list[Exception]) -> Iterator[None]:
    """Run one stage; an exception is kept in ``failed`` instead of ending the tick."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - re-raised by tick() once every stage ran
        failed.append(exc)
