"""The dispatch stage's part of the ledger: tasks, jobs, batches, requests and results.

Handed to :class:`docproc.dispatch.Dispatcher` (and the daemon's operations),
and to nothing else that writes. Its rooms: :mod:`~.jobs` (tasks and jobs,
and the two ways a job leaves a batch without a result), :mod:`~.rounds`
(retry and reprocess, asked by an operator), :mod:`~.batches` (batches and
their requests, up to submission), :mod:`~.results` (what comes back), plus
the :mod:`~docproc.ledger.budget` and :mod:`~docproc.ledger.conditions` it
records and reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from docproc.costs import PriceTable
from docproc.ledger.budget import BudgetLedger
from docproc.ledger.conditions import Conditions
from docproc.ledger.connection import Ledger
from docproc.ledger.dispatch.batches import BatchLedger
from docproc.ledger.dispatch.jobs import RETRY_BASE_S, BatchItem, JobLedger
from docproc.ledger.dispatch.results import Applied, ResultLedger
from docproc.ledger.dispatch.rounds import Rounds

__all__ = ["Applied", "BatchItem", "DispatchLedger"]


@dataclass(frozen=True, slots=True)
class DispatchLedger:
    """The rooms of the dispatch stage, sharing one ledger and one clock."""

    jobs: JobLedger
    rounds: Rounds
    batches: BatchLedger
    results: ResultLedger
    budget: BudgetLedger
    conditions: Conditions

    @classmethod
    def on(
        cls,
        ledger: Ledger,
        *,
        clock: Callable[[], float] = time.time,
        prices: PriceTable | None = None,
        retry_base: float = RETRY_BASE_S,
    ) -> DispatchLedger:
        jobs = JobLedger(ledger, clock=clock, retry_base=retry_base)
        return cls(jobs, Rounds(jobs), BatchLedger(jobs), ResultLedger(jobs, prices=prices),
                   BudgetLedger(ledger), Conditions(ledger))  # fmt: skip

    @property
    def ledger(self) -> Ledger:
        """The ledger these rooms share."""
        return self.jobs.ledger

    def clock(self) -> float:
        """Wall-clock seconds, the time base of ``ready_at`` and backoff."""
        return self.jobs.clock()
