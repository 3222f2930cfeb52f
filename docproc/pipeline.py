"""One tick of the whole pipeline; the only module that knows the order of the stages.

intake (sources -> sha256 -> ledger -> extraction workers -> ledger)
  -> dispatch (jobs -> batches -> provider -> results in the ledger)
  -> publish (results -> sidecars next to each source -> ledger)

Each stage reads its input from the ledger and records its output there, so
the tick can stop anywhere and the next process resumes from the ledger.
"""

from __future__ import annotations

from docproc.dispatch import Dispatcher
from docproc.intake import Intake
from docproc.models import Extraction
from docproc.publish import Publisher


class Pipeline:
    """Intake, dispatch and publish, ticked in that order."""

    def __init__(self, intake: Intake, dispatcher: Dispatcher, publisher: Publisher) -> None:
        self.intake, self.dispatcher, self.publisher = intake, dispatcher, publisher
        self._jobs_due = True

    def roots_changed(self) -> None:
        """Watched roots were added or removed: look for work under them again."""
        self._jobs_due = True

    def tick(self, now: float, *, wait: float, flush_all: bool = False) -> None:
        """One pass over the stages.

        ``wait`` is the longest the tick may block waiting for extraction
        results; it is cut short when a later stage has work ready, so a
        document never waits a full tick between stages.
        """
        report = self.intake.tick(now, wait=self._wait(now, wait))
        extracted = sum(isinstance(o, Extraction) for o in report.outcomes)
        if self._jobs_due or extracted or report.taken:
            self.dispatcher.queue_jobs(list(self.intake.sources))
            self._jobs_due = False
        if self.dispatcher.tick(now, flush_all=flush_all) or report.taken:
            self.publisher.wake()
        self.publisher.tick(now)

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
