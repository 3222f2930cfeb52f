"""A stateful property test: the ledger and the dispatcher through random interleavings.

Hypothesis drives a real ledger (SQLite, and PostgreSQL with fewer examples) and
the real :class:`Dispatcher` against a deterministic in-process provider through
new documents, plans, creates whose outcome is known or unknown (created or not),
results of every type (and missing or duplicate lines), crashes (ledger
reopened, dispatcher rebuilt), ``ledger retry``, cancels, lost batches and budget
pauses. After every step the ledger's invariants hold (the checks ``docproc
ledger verify`` runs); at the end of every run, with the provider healthy and the
budget lifted, the daemon finishes every job.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence, Set
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from docproc.costs import Budget, ModelPrice, PriceTable
from docproc.dispatch import Dispatcher
from docproc.errors import ProviderRejected, ProviderRetryable
from docproc.ledger.connection import LedgerLocation, open_ledger
from docproc.ledger.dispatch import DispatchLedger
from docproc.ledger.invariants import check
from docproc.models import (
    BatchLimits,
    BatchStatus,
    Extraction,
    JobRequest,
    OutputProblem,
    ProviderResult,
    ResultKind,
    TaskSpec,
    Usage,
)
from docproc.providers.base import ProviderLimits, Ticket
from docproc.textstore import TextStore
from tests.parts import extractions, files, sql
from tests.pgserver import PgServer

MODEL = "fake-model-1"
TASK = TaskSpec(provider="fake", model=MODEL, max_tokens=100)
PRICES = PriceTable(prices={MODEL: ModelPrice(input=3.0, output=15.0)})
CREATES = ("ok", "retryable", "rejected", "unknown_created", "unknown_lost")
OUTCOMES = ("succeeded", "api_error", "invalid", "expired", "canceled", "max_tokens",
            "refusal", "invalid_output", "missing", "duplicate")  # fmt: skip
MAX_ATTEMPTS = 3


class Unknown(Exception):  # noqa: N818 - a transport failure: the create's outcome is unknown
    pass


class FakeProvider:
    """A batch API in memory, answering as told; deterministic, thread-safe enough."""

    name = "fake"
    limits = ProviderLimits(max_requests=4)

    def __init__(self) -> None:
        self.batches: dict[str, dict[str, Any]] = {}
        self.create = "ok"
        self.outcome = "succeeded"
        self._ids = itertools.count(1)
        self.paid_twice: list[str] = []  # custom_ids accepted while a batch held them already

    def build_request(self, job: JobRequest, task: TaskSpec) -> dict[str, Any]:
        return {"custom_id": job.custom_id, "params": {"text": job.text, "model": task.model}}

    def submit(self, requests: Iterable[dict[str, Any]], ticket: Ticket | None = None) -> str:
        ids = [r["custom_id"] for r in requests]
        behaviour, self.create = self.create, "ok"
        if behaviour == "retryable":
            raise ProviderRetryable("overloaded", retry_after=1.0)
        if behaviour == "rejected":
            raise ProviderRejected("request_too_large")
        if behaviour == "unknown_lost":
            raise Unknown("connection reset before the server read the body")
        held = {cid for batch in self.batches.values() for cid in batch["ids"]}
        self.paid_twice += [cid for cid in ids if cid in held]
        batch_id = f"fb_{next(self._ids)}"
        self.batches[batch_id] = {"ids": ids, "ended": False, "canceled": False,
                                  "outcome": self.outcome}  # fmt: skip
        if behaviour == "unknown_created":
            raise Unknown("connection reset after the server created the batch")
        return batch_id

    def poll(self, batch_id: str) -> BatchStatus:
        batch = self._get(batch_id)
        return BatchStatus(ended=batch["ended"])

    def results(self, batch_id: str) -> Iterator[ProviderResult]:
        batch = self._get(batch_id)
        for custom_id in batch["ids"]:
            kind = "canceled" if batch["canceled"] else batch["outcome"]
            if kind == "missing":
                continue
            yield answer(custom_id, kind)
            if kind == "duplicate":
                yield answer(custom_id, "succeeded")
        yield answer("j999999-a1", "succeeded")  # a line for no request of ours

    def cancel(self, batch_id: str) -> None:
        self._get(batch_id)["canceled"] = True

    def delete(self, batch_id: str) -> None:
        self.batches.pop(batch_id, None)

    def find_batch(
        self,
        custom_ids: Sequence[str],
        created_after: datetime,
        exclude: Set[str] = frozenset(),
        ticket: Ticket | None = None,
    ) -> str | None:
        for batch_id, batch in self.batches.items():
            if batch_id not in exclude and batch["ids"] == list(custom_ids):
                return batch_id
        return None

    def _get(self, batch_id: str) -> dict[str, Any]:
        if batch_id not in self.batches:
            raise ProviderRejected(f"unknown batch {batch_id}")
        return self.batches[batch_id]


def answer(custom_id: str, kind: str) -> ProviderResult:
    usage = Usage(input_tokens=10, output_tokens=5)
    if kind in ("succeeded", "duplicate"):
        return ProviderResult(custom_id, ResultKind.SUCCEEDED, summary="S.", usage=usage,
                              model=MODEL)  # fmt: skip
    if kind in ("expired", "canceled"):
        return ProviderResult(custom_id, ResultKind(kind))
    error = {"api_error": "api_error", "invalid": "invalid_request_error"}.get(kind, kind)
    if kind in {p.value for p in OutputProblem}:
        return ProviderResult(custom_id, ResultKind.ERRORED, usage=usage, model=MODEL,
                              error_type=error, error_message="no usable summary")  # fmt: skip
    return ProviderResult(custom_id, ResultKind.ERRORED, error_type=error, error_message="x")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class LedgerMachine(RuleBasedStateMachine):
    # A fresh PostgreSQL database per run (None: a SQLite file in the run's directory).
    new_database: ClassVar[Any] = None

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="docproc-machine-"))
        self.location: LedgerLocation = (
            self.new_database() if self.new_database else self.tmp / "ledger.db"
        )
        self.clock = Clock()
        self.provider = FakeProvider()
        self.store = TextStore(self.tmp / "text")
        self.budget = Budget()
        self.docs = 0
        self._open()

    def _open(self) -> None:
        self.ledger = open_ledger(self.location)
        self.work = DispatchLedger.on(self.ledger, clock=self.clock, prices=PRICES, retry_base=1.0)
        self.root = files(self.ledger).ensure_root("file:///docs", kind="local", mode="poll")
        self.dispatcher = Dispatcher(
            self.work, self.provider, self.store, task=TASK,
            limits=BatchLimits(max_requests=4, max_wait=0), poll_interval=0.5,
            max_attempts=MAX_ATTEMPTS, prices=PRICES, budget=self.budget,
        )  # fmt: skip

    def _close(self) -> None:
        self.dispatcher.close()
        _join_streams()
        self.ledger.close()

    def teardown(self) -> None:
        try:
            self._finish_everything()
        finally:
            self._close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers -----------------------------------------------------------

    def settle(self) -> None:
        """Tick until no provider call or results stream is under way (bounded)."""
        for _ in range(200):
            self.dispatcher.tick(self.clock.now, flush_all=True)
            calls = [b.call for b in self.dispatcher._open.values() if b.call is not None]
            if calls:
                concurrent.futures.wait(calls, timeout=10)
                continue
            if any(b.streaming for b in self.dispatcher._open.values()):
                time.sleep(0.002)
                continue
            if self.dispatcher._results.empty():
                # Deletes of applied batches run on the provider thread, untracked: wait
                # for them (one thread, in order), so what the provider holds is settled.
                self.dispatcher._executor.submit(lambda: None).result(timeout=10)
                return
        raise AssertionError("the dispatcher did not settle")

    def _finish_everything(self) -> None:
        """The daemon can make progress: healthy provider, no cap, a retry: all done."""
        self.provider.create, self.provider.outcome = "ok", "succeeded"
        self.dispatcher.configure(BatchLimits(max_requests=4, max_wait=0), 0.5, Budget())
        for _ in range(60):
            self.work.rounds.requeue_failed()
            for batch in self.provider.batches.values():
                batch["ended"] = True
            self.pass_time(3600)
            self.settle()
            assert check(sql(self.work.ledger)) == []
            states = set(dict(sql(self.work.ledger).execute("SELECT id, state FROM jobs")).values())
            if states <= {"done"}:
                return
        raise AssertionError(f"jobs never finished: {states}")

    # -- rules ---------------------------------------------------------------

    @rule(count=st.integers(1, 5))
    def new_documents(self, count: int) -> None:
        for _ in range(count):
            self.docs += 1
            sha = f"{self.docs:064x}"
            path = Path(f"/docs/d{self.docs}.txt")
            files(self.ledger).record_version(self.root, path, size=1, mtime_ns=1, sha256=sha)
            text = f"Document {self.docs} says one thing. Then another."
            extractions(self.ledger).record_extraction(
                Extraction(sha, "native:text", self.store.put(text), len(text))
            )
        self.dispatcher.queue_jobs([self.root])

    @rule(seconds=st.sampled_from([0.0, 0.6, 2.0, 30.0, 400.0]))
    def tick(self, seconds: float) -> None:
        self.pass_time(seconds)
        self.settle()

    def pass_time(self, seconds: float) -> None:
        """The ledger's clock, and the age of open batches (the dispatcher reads the
        real clock for "is this unknown batch too young to be lost")."""
        self.clock.now += seconds
        for batch in self.dispatcher._open.values():
            batch.created_at -= timedelta(seconds=seconds)

    @rule(behaviour=st.sampled_from(CREATES))
    def next_create(self, behaviour: str) -> None:
        self.provider.create = behaviour

    @rule(outcome=st.sampled_from(OUTCOMES))
    def results_will_be(self, outcome: str) -> None:
        self.provider.outcome = outcome

    @rule()
    def provider_ends_batches(self) -> None:
        for batch in self.provider.batches.values():
            batch["ended"] = True

    # Which batch is picked by an index drawn always, whatever exists: what exists
    # depends on timing no more than the rest, but hypothesis must draw the same way.
    @rule(pick=st.integers(0, 50))
    def provider_loses_a_batch(self, pick: int) -> None:
        held = sorted(self.provider.batches)
        if held:
            del self.provider.batches[held[pick % len(held)]]

    @rule()
    def crash(self) -> None:
        """kill -9 at this point: nothing in memory survives; the ledger file does."""
        self._close()
        self._open()

    @rule()
    def ledger_retry(self) -> None:
        self.work.rounds.requeue_failed()

    @rule(pick=st.integers(0, 50))
    def cancel(self, pick: int) -> None:
        held = self.provider.batches
        rows = [r for r in self.work.batches.open_batches()
                if r["state"] == "submitted" and r["provider_batch_id"] in held]  # fmt: skip
        if rows:
            row = rows[pick % len(rows)]
            self.provider.cancel(row["provider_batch_id"])
            self.work.batches.cancel_requested(row["id"])

    @rule(cap=st.sampled_from([0.0, 0.000001, 50.0]))
    def budget(self, cap: float) -> None:
        self.budget = Budget(daily_usd=cap)
        self.dispatcher.configure(BatchLimits(max_requests=4, max_wait=0), 0.5, self.budget)

    # -- after every step ------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        assert check(sql(self.work.ledger)) == []

    @invariant()
    def nothing_paid_twice(self) -> None:
        """A request is sent again only when no batch of the provider holds it (an unknown
        create found nowhere); otherwise the existing batch is adopted."""
        assert self.provider.paid_twice == []


def _join_streams() -> None:
    """Results threads of a closed dispatcher stop within their put timeout."""
    for thread in threading.enumerate():
        if thread.name.startswith("results-"):
            thread.join(timeout=5)


EXAMPLES = {"sqlite": 30, "postgresql": 15}  # up to 1,800 and 900 steps: ~10 s and ~30 s here


def test_ledger_machine(engine: str, request: pytest.FixtureRequest) -> None:
    machine: type[LedgerMachine] = LedgerMachine
    if engine == "postgresql":
        server: PgServer = request.getfixturevalue("pg_server")

        def new_database() -> str:
            return server.url(server.new_database())

        machine = type(
            "PostgresLedgerMachine", (LedgerMachine,), {"new_database": staticmethod(new_database)}
        )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES[engine],
            stateful_step_count=60,
            deadline=None,  # a step ticks threads; the run as a whole is bounded by the counts
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
