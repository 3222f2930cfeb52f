"""Dispatch: extracted versions -> jobs -> batches -> provider -> results in the ledger.

The main loop owns the ledger; every provider call (create, poll, streaming
results) runs on one background thread so the loop never blocks on the
network. Crash safety comes from the order of writes:

1. the batch, its custom_ids and its idempotency token are recorded
   (``planned``) before create;
2. the provider's id is recorded right after (``submitted``);
3. a create whose outcome is unknown (an error, a crash) is reconciled with
   ``provider.find_batch`` before anything is submitted again (a provider with
   an idempotent create sends the same token again);
4. results are applied in chunks, each one transaction; a result for a job
   that is no longer waiting for it is ignored, so nothing is applied twice.

A batch below the provider's minimum size (``ProviderLimits.min_requests``)
is sent through its live API when it is due, recorded as a ``live`` batch
(list price), or its documents wait for more, as the provider is configured.
"""

from __future__ import annotations

import functools
import json
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from docproc.batching import Plan, plan_batches
from docproc.costs import Budget, PriceTable, period_starts
from docproc.errors import (
    LedgerUnwritable,
    ProviderAccountRefused,
    ProviderRejected,
    ProviderRetryable,
    brief,
)
from docproc.highlights import locate
from docproc.ledger.dispatch import BatchItem, DispatchLedger
from docproc.models import BatchLimits, BatchStatus, JobRequest, ProviderResult, TaskSpec
from docproc.providers.base import Provider, ProviderLimits, Ticket, make_custom_id, request_size
from docproc.textstore import TextStore

log = structlog.get_logger()
CHUNK = 500
RECONCILE_SLACK = timedelta(minutes=5)
YOUNG_BATCH = timedelta(minutes=5)  # an unknown id this young is retried, not taken as lost
BUSY_WAIT_S = 0.05
REPLAN_S = 5.0
APPLY_BUDGET_S = 0.5
BACKOFF_CAP_S = 900.0
ACCOUNT_PAUSE_S = 300.0  # after the provider refused the account (key, billing)
CUSTOM_ID_SLACK = 24  # a real custom_id is longer than the one the overhead is measured with
_DONE = object()
_Put = Callable[[object], None]  # hands one item of a results stream to the loop


@dataclass
class _Batch:
    """What the loop knows of one open batch between ticks."""

    batch_id: int
    provider_batch_id: str | None
    state: str  # planned | submitted | ended
    created_at: datetime
    next_poll: float = 0.0
    call: Future[Any] | None = None
    streaming: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    maybe_created: bool = False  # a create was sent and its outcome is unknown
    failures: int = 0  # provider calls failed in a row (backoff)
    stream: int = 0  # which results stream is current; chunks of older ones are dropped
    token: str = ""  # the idempotency token recorded before the create call
    live: bool = False  # below the provider's minimum: answered through its live API
    provider_status: str = ""  # what the provider last said of it
    attempt: int = 1  # the ledger's number of the latest create call

    @property
    def ticket(self) -> Ticket:
        return Ticket(self.batch_id, self.token, self.live, self.attempt)


class Dispatcher:
    """Moves jobs through the provider; one instance per daemon."""

    def __init__(
        self,
        work: DispatchLedger,
        provider: Provider,
        store: TextStore,
        *,
        task: TaskSpec,
        limits: BatchLimits,
        poll_interval: float,
        max_attempts: int,
        prices: PriceTable | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.work, self.provider, self.store = work, provider, store
        self.task, self.limits = task, _within(limits, provider.limits)
        self.task_id = work.jobs.register_task(task)
        self.poll_interval, self.max_attempts = poll_interval, max_attempts
        self.prices, self.budget = prices or PriceTable(), budget or Budget()
        self.paused = (
            work.conditions.pause_reason()
        )  # why submission is paused (the budget), if it is
        self.waiting = (
            work.conditions.waiting_reason()
        )  # why small batches wait for more, if they do
        self._below_minimum = 0  # jobs the last plan left waiting for the provider's minimum
        if self.paused and not self.budget.capped:
            self._affordable(0.0)  # the cap was lifted while stopped: record the resumption
        self._ledger_id = work.batches.instance  # in every custom_id: see m009_ledger_identity
        empty = JobRequest(make_custom_id(0, 0, self._ledger_id), 0, "", "")
        self._overhead = request_size(provider.build_request(empty, task)) + CUSTOM_ID_SLACK
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="provider")
        self._results: queue.Queue[tuple[int, int, object]] = queue.Queue(maxsize=8)
        self._held: tuple[int, int, object] | None = None  # taken, not yet recorded
        self._open: dict[int, _Batch] = {}
        self._plan_at = 0.0  # when planning is next worth a look (monotonic)
        self._paused_until = 0.0  # no planning before this (the account was refused)
        self.recover()

    # -- public ----------------------------------------------------------

    def recover(self) -> None:
        """Pick up every batch the ledger holds open (after a restart)."""
        for row in self.work.batches.open_batches():
            if row["state"] == "planned":
                self.work.batches.create_unknown(
                    row["id"], "the daemon stopped during the create call"
                )
            created = datetime.fromisoformat(row["created_at"])
            self._open[row["id"]] = _Batch(
                row["id"], row["provider_batch_id"], row["state"], created,
                maybe_created=row["state"] == "planned",  # a crash may have hit mid-create
                token=row["submit_token"] or self.work.batches.submit_token(row["id"]),
                live=row["tier"] == "live", provider_status=row["provider_status"] or "",
                attempt=row["create_attempts"],
            )  # fmt: skip

    def configure(
        self, limits: BatchLimits, poll_interval: float, budget: Budget | None = None
    ) -> None:
        """New thresholds (SIGHUP); queued work is kept."""
        self.limits, self.poll_interval = _within(limits, self.provider.limits), poll_interval
        self.budget = budget or self.budget
        self._plan_at = 0.0

    def queue_jobs(self, root_ids: Sequence[int]) -> int:
        queued = self.work.jobs.create_jobs(
            self.task_id, root_ids, overhead=self._overhead, max_chars=self.task.max_input_chars
        )
        if queued:
            self._plan_at = 0.0
        return queued

    @property
    def in_flight(self) -> int:
        return len(self._open)

    def batch_ages(self) -> list[float]:
        """Seconds since each open batch was planned."""
        now = datetime.now(UTC)
        return [(now - batch.created_at).total_seconds() for batch in self._open.values()]

    def idle_for(self, now: float) -> float:
        """How long the loop may wait before this stage has something to do (0: now)."""
        if self._held is not None or not self._results.empty():
            return 0.0
        waits = [max(self._plan_at, self._paused_until) - now]
        for batch in self._open.values():
            if batch.call is not None or batch.streaming:  # a thread is on it: look again soon
                waits.append(0.0 if batch.call is not None and batch.call.done() else BUSY_WAIT_S)
            else:
                waits.append(batch.next_poll - now)
        return max(0.0, min(waits))

    def pending_jobs(self) -> int:
        """Jobs of the current task not yet answered (queued, in backoff or in a batch),
        except those waiting for a batch of the provider's minimum (``--once`` leaves
        them queued for a later run)."""
        return self.work.jobs.pending_jobs(self.task_id) - self._below_minimum

    def tick(self, now: float, *, flush_all: bool = False) -> int:
        """Plan and submit batches, advance open ones, apply results within a time budget.

        Returns how many jobs were answered successfully in this tick.
        """
        self._plan(now, flush_all)
        for batch in list(self._open.values()):
            try:
                self._advance(batch, now)
            except Exception as exc:  # noqa: BLE001 - one batch's trouble stays with that batch
                self._batch_trouble(batch, now, exc)
        return self._apply_results(now)

    def _batch_trouble(self, batch: _Batch, now: float, exc: Exception) -> None:
        """Something failed while advancing one batch: back off that batch, note why.

        A planned batch is reconciled before it is sent again: the create may
        have happened before the failure (its id not yet recorded).
        """
        log.exception("batch.trouble", batch_id=batch.batch_id, state=batch.state)
        batch.stop.set()  # a results stream of it stops; what it already queued is dropped
        batch.streaming, batch.stream = False, batch.stream + 1  # (its end above all)
        if batch.state == "planned":
            batch.maybe_created = True
        self._failed(batch, now, exc, None)
        self.work.batches.batch_note(batch.batch_id, f"retrying after: {brief(exc)}")

    def reprocess(self, version_ids: Sequence[int], *, by: str) -> tuple[int, int]:
        """Queue these versions under the current task again (an operator's request)."""
        counts = self.work.rounds.reprocess(version_ids, self.task_id, by=by,
                                            overhead=self._overhead,
                                            max_chars=self.task.max_input_chars)  # fmt: skip
        self.wake()
        return counts

    def wake(self) -> None:
        """Jobs were requeued or queued from outside (an operator): plan at once."""
        self._plan_at = 0.0

    def cancel(self, provider_batch_id: str) -> Future[None]:
        """Ask the provider to cancel a batch, on the provider thread (never the loop's)."""
        return self._executor.submit(self.provider.cancel, provider_batch_id)

    def close(self) -> None:
        """Stop provider work; batches in flight stay at the provider and in the ledger."""
        for batch in self._open.values():
            batch.stop.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
        close = getattr(self.provider, "close", None)
        if callable(close):
            close()

    # -- planning and submitting -------------------------------------------

    def _plan(self, now: float, flush_all: bool) -> None:
        if now < self._plan_at or now < self._paused_until:
            return
        self._plan_at = now + REPLAN_S  # also catches jobs whose backoff ends
        ready = self.work.jobs.ready_jobs(self.task_id)
        if not ready:
            self._below_minimum = 0
            self._set_waiting(0, self.provider.limits.min_requests)
            return
        wall = self.work.clock()
        caps = self.provider.limits
        plan = plan_batches(ready, self.limits, wall, self.in_flight, flush_all=flush_all,
                            min_requests=caps.min_requests)  # fmt: skip
        held = [] if caps.live_below_minimum else plan.below_minimum
        planned = {job_id for batch in plan.batches + plan.below_minimum for job_id in batch}
        waiting = [job.ready_at for job in ready if job.job_id not in planned | set(plan.oversized)]
        if waiting:  # look again when the oldest of them is due
            due_in = max(0.0, min(waiting) + self.limits.max_wait - wall)
            self._plan_at = min(self._plan_at, now + due_in)
        self._below_minimum = sum(map(len, held))
        self._set_waiting(self._below_minimum, caps.min_requests)
        sizes = {job.job_id: job.request_bytes for job in ready}
        for job_ids, live in _to_send(plan, caps):
            if not self._open_batch(job_ids, sizes, now, live=live):
                break
        for job_id in plan.oversized:
            self.work.jobs.fail_job(job_id, "document is too large for one batch request")

    def _open_batch(
        self, job_ids: list[int], sizes: dict[int, int], now: float, *, live: bool
    ) -> bool:
        """Record one batch and start its create call; False if the budget stops it."""
        nbytes = sum(sizes[job_id] for job_id in job_ids)
        estimate = self.prices.estimate(
            self.task.model, nbytes, len(job_ids), self.task.max_tokens, live=live
        )
        if not self._affordable(estimate):
            return False
        items = self._with_text(self.work.jobs.batch_items(job_ids))
        if not items:
            return True
        pairs = [(item, make_custom_id(item.job_id, item.attempt, self._ledger_id))
                 for item in items]  # fmt: skip
        nbytes = sum(sizes[item.job_id] for item in items)
        batch_id = self.work.batches.create_batch(
            self.provider.name, pairs, nbytes, model=self.task.model,
            estimated_cost=estimate, max_chars=self.task.max_input_chars,
            max_attempts=self.max_attempts, tier="live" if live else "batch",
        )  # fmt: skip
        if batch_id is None:  # no request could be recorded; their jobs were set back
            return True
        recorded = self.work.batches.batch_requests(batch_id)
        batch = _Batch(batch_id, None, "planned", datetime.now(UTC), next_poll=now,
                       token=self.work.batches.submit_token(batch_id), live=live)  # fmt: skip
        self._open[batch_id] = batch
        self._start(batch, self._submit, recorded, batch.ticket)
        return True

    def _set_waiting(self, held: int, minimum: int) -> None:
        """Record when documents start (or stop) waiting for a batch of the provider's minimum."""
        reason = None
        if held:
            reason = (
                f"documents wait for a batch of at least {minimum} requests, the provider's"
                ' minimum (below_minimum = "wait"); they go when enough are ready'
            )
        if reason != self.waiting:
            self.waiting = reason
            self.work.conditions.submission_waiting(reason)
            log.info("dispatch.waiting", reason=reason, documents=held)

    def _affordable(self, estimate: float) -> bool:
        """Whether the budget allows a batch estimated at ``estimate``; records a pause."""
        reason = None
        if self.budget.capped:
            day, month = period_starts(self.work.clock())
            reserved = self.work.budget.reserved()
            today, this_month = (
                self.work.budget.billed(day) + reserved,
                self.work.budget.billed(month) + reserved,
            )
            reason = self.budget.refusal(today, this_month, estimate)
        self._set_paused(reason)
        return reason is None

    def _set_paused(self, reason: str | None) -> None:
        """Record a change of "why submission is paused" (None: it is not)."""
        if reason == self.paused:
            return
        self.work.conditions.submission_paused(reason)
        self.paused = reason
        if reason:
            log.warning("dispatch.paused", reason=reason)
        else:
            log.info("dispatch.resumed")

    def _with_text(self, items: list[BatchItem]) -> list[BatchItem]:
        """Items whose extracted text is still stored; the others go back to extraction."""
        lost = {item.job_id for item in items if not self.store.has(item.text_sha256)}
        if lost:
            log.warning("dispatch.text_lost", jobs=len(lost))
            self.work.jobs.text_lost(sorted(lost))
        return [item for item in items if item.job_id not in lost]

    def _submit(self, pairs: Sequence[tuple[BatchItem, str]], ticket: Ticket) -> str:
        """On the provider thread: build each request from the stored text and create the batch."""
        task = self.task

        def requests() -> Iterator[dict[str, Any]]:
            for item, custom_id in pairs:
                text = self.store.get(item.text_sha256)
                job = JobRequest(custom_id, item.job_id, text, item.title, item.max_tokens)
                yield self.provider.build_request(job, task)

        return self.provider.submit(requests(), ticket)

    def _start(self, batch: _Batch, fn: Callable[..., Any], *args: Any) -> None:
        batch.call = self._executor.submit(fn, *args)

    # -- advancing open batches --------------------------------------------

    def _advance(self, batch: _Batch, now: float) -> None:
        if batch.call is not None:
            if not batch.call.done():
                return
            call, batch.call = batch.call, None
            self._finished(batch, call, now)
            return
        if batch.streaming or now < batch.next_poll:
            return
        if batch.state == "planned":
            pairs = self.work.batches.batch_requests(batch.batch_id)
            if batch.maybe_created:
                if any(other.call is not None and other.maybe_created
                       for other in self._open.values()):  # fmt: skip
                    return  # one reconciliation at a time, oldest batch first
                known = self.work.batches.provider_batch_ids()
                batch.attempt = self.work.batches.create_attempt(batch.batch_id)
                self._start(batch, self._reconcile_or_submit, batch.created_at, pairs, known,
                            batch.ticket)  # fmt: skip
            else:
                batch.attempt = self.work.batches.create_attempt(batch.batch_id)
                self._start(batch, self._submit, pairs, batch.ticket)
        elif batch.state == "submitted":
            self._start(batch, self.provider.poll, batch.provider_batch_id)
        elif batch.state == "ended":
            self._stream(batch)

    def _finished(self, batch: _Batch, call: Future[Any], now: float) -> None:
        batch.next_poll = now + self.poll_interval
        try:
            value = call.result()
        except ProviderRejected as exc:
            self._rejected(batch, exc, now)
            return
        except ProviderRetryable as exc:
            self._failed(batch, now, exc, exc.retry_after)
            return
        except Exception as exc:  # noqa: BLE001 - any other failure: outcome unknown, retry later
            self._failed(batch, now, exc, None)
            if batch.state == "planned" and not batch.maybe_created:
                batch.maybe_created = True
                self.work.batches.create_unknown(batch.batch_id, f"{type(exc).__name__}: {exc}")
            return
        if batch.failures and batch.state != "planned":
            self.work.batches.batch_note(batch.batch_id, None)  # the call works again
        batch.failures = 0
        self._on_value(batch, value)

    def _rejected(self, batch: _Batch, exc: ProviderRejected, now: float) -> None:
        """The provider refused: a create was certainly not made; a known batch is gone."""
        log.warning("batch.rejected", batch_id=batch.batch_id, state=batch.state, reason=str(exc))
        if isinstance(exc, ProviderAccountRefused):
            # Not the documents' fault: nothing is quarantined or lost; pause, look again later.
            at = datetime.now(UTC) + timedelta(seconds=ACCOUNT_PAUSE_S)
            self._set_paused(f"the provider refused the account: {exc};"
                             f" next try at {at:%Y-%m-%d %H:%M:%S} UTC")  # fmt: skip
            self._paused_until = now + ACCOUNT_PAUSE_S
            if batch.state != "planned":
                self._failed(batch, now, exc, ACCOUNT_PAUSE_S)
                return
            self.work.batches.batch_not_created(batch.batch_id, str(exc), max_attempts=10**6)
            del self._open[batch.batch_id]
            return
        if batch.state == "planned":
            self.work.batches.batch_not_created(batch.batch_id, str(exc), self.max_attempts)
        elif datetime.now(UTC) - batch.created_at < YOUNG_BATCH:
            self._failed(batch, now, exc, None)  # a new batch may not be visible yet (GH-1432)
            return
        else:
            self.work.results.batch_lost(batch.batch_id, str(exc))
        del self._open[batch.batch_id]
        self._plan_at = 0.0

    def _failed(self, batch: _Batch, now: float, exc: Exception, retry_after: float | None) -> None:
        """Back off before the next call for this batch: the server's hint, else exponential."""
        batch.failures += 1
        delay = retry_after
        if delay is None:
            delay = min(BACKOFF_CAP_S, self.poll_interval * 2 ** min(batch.failures, 16))
        batch.next_poll = now + max(delay, self.poll_interval)
        error = f"{type(exc).__name__}: {exc}"
        log.warning("batch.call_failed", batch_id=batch.batch_id, state=batch.state,
                    error=error, retry_in_s=round(delay, 1))  # fmt: skip
        at = datetime.now(UTC) + timedelta(seconds=max(delay, self.poll_interval))
        doing = {"planned": "create", "submitted": "poll"}.get(batch.state, "results")
        self.work.batches.batch_note(  # what failed and when the next try is, for `docproc status`
            batch.batch_id, f"{doing} failed: {error}; next try at {at:%Y-%m-%d %H:%M:%S} UTC"
        )

    def _on_value(self, batch: _Batch, value: Any) -> None:
        if batch.state == "planned":
            if (
                str(value) in self.work.batches.provider_batch_ids()
            ):  # adopted twice: cannot be ours
                batch.maybe_created = True
                return
            try:
                self.work.batches.batch_submitted(batch.batch_id, str(value))
            except LedgerUnwritable:  # created, its id not recorded: adopt it, never resend
                batch.maybe_created = True
                raise
            batch.maybe_created = False
            batch.provider_batch_id, batch.state = str(value), "submitted"
            log.info("batch.submitted", batch_id=batch.batch_id, provider_batch_id=str(value))
        elif batch.state == "submitted" and value.ended:
            # the ledger first: a refusal polls again
            self.work.results.batch_ended(batch.batch_id, value.state, _detail(value))
            batch.state = "ended"
            self._stream(batch)
        elif batch.state == "submitted" and value.state != batch.provider_status:
            batch.provider_status = value.state
            self.work.results.batch_progress(batch.batch_id, value.state, _detail(value))

    def _reconcile_or_submit(
        self,
        created_at: datetime,
        pairs: Sequence[tuple[BatchItem, str]],
        known: set[str],
        ticket: Ticket,
    ) -> str:
        """On the provider thread, after a create whose outcome is unknown: adopt the
        batch the provider already holds for these requests, or create it now.

        A failure to look (even a refusal) is retryable: the batch may exist.
        """
        custom_ids = [custom_id for _, custom_id in pairs]
        try:
            found = self.provider.find_batch(
                custom_ids, created_at - RECONCILE_SLACK, known, ticket
            )
        except ProviderRejected as exc:
            raise ProviderRetryable(f"cannot reconcile yet: {exc}") from exc
        if found is not None:
            log.info("batch.reconciled", provider_batch_id=found)
            return found
        return self._submit(pairs, ticket)

    # -- results -----------------------------------------------------------

    def _stream(self, batch: _Batch) -> None:
        texts = {
            cid: item.text_sha256 for item, cid in self.work.batches.batch_requests(batch.batch_id)
        }
        batch.streaming, batch.stream, batch.stop = True, batch.stream + 1, threading.Event()
        put = functools.partial(self._put, (batch.batch_id, batch.stream), batch.stop)
        threading.Thread(
            target=self._pump, args=(str(batch.provider_batch_id), texts, put),
            name=f"results-{batch.batch_id}", daemon=True,
        ).start()  # fmt: skip

    def _pump(self, provider_batch_id: str, texts: dict[str, str], put: _Put) -> None:
        """On a results thread: stream, locate highlights, hand chunks to the loop."""
        chunk: list[tuple[ProviderResult, int]] = []
        try:
            for result in self.provider.results(provider_batch_id):
                chunk.append(self._located(result, texts.get(result.custom_id)))
                if len(chunk) >= CHUNK:
                    put(chunk)
                    chunk = []
            put(chunk)
            put(_DONE)
        except Exception as exc:  # noqa: BLE001 - reported to the loop, retried later
            put(exc)

    def _located(self, result: ProviderResult, text_sha: str | None) -> tuple[ProviderResult, int]:
        if not result.highlights or text_sha is None:
            return result, 0
        located, dropped = locate(self.store.get(text_sha), result.highlights)
        return replace(result, highlights=located), dropped

    def _put(self, key: tuple[int, int], stop: threading.Event, item: object) -> None:
        while not stop.is_set():
            try:
                self._results.put((*key, item), timeout=0.2)
            except queue.Full:
                continue
            return

    def _apply_results(self, now: float) -> int:
        """Apply what the results threads handed over, within a time budget.

        An item the ledger refuses (a full disk: :class:`LedgerUnwritable`) is
        held and applied first next time, before anything after it: a chunk
        of results is never dropped, so the batch's end cannot be recorded
        over it (which would resend its requests).
        """
        done = 0
        deadline = self.work.clock() + APPLY_BUDGET_S
        while self.work.clock() < deadline:
            if self._held is None:
                try:
                    self._held = self._results.get_nowait()
                except queue.Empty:
                    break
            batch_id, stream, item = self._held
            batch = self._open.get(batch_id)
            if batch is not None and stream == batch.stream:  # else a stream given up on
                try:
                    done += self._apply_item(batch, item, now)
                except Exception as exc:  # noqa: BLE001 - read again later; the rest goes on
                    self._batch_trouble(batch, now, exc)
            self._held = None
        return done

    def _apply_item(self, batch: _Batch, item: object, now: float) -> int:
        batch_id = batch.batch_id
        if isinstance(item, list):
            return self.work.results.apply_results(item, max_attempts=self.max_attempts).done
        if item is _DONE:
            self.work.results.batch_applied(batch_id)
            self._open.pop(batch_id, None)
            self._plan_at = 0.0  # a slot is free, and missing results were requeued
            if batch.provider_batch_id:
                self._executor.submit(self.provider.delete, batch.provider_batch_id)
            log.info("batch.applied", batch_id=batch_id)
        elif isinstance(item, ProviderRejected):
            batch.streaming = False
            self._rejected(batch, item, now)
        elif isinstance(item, Exception):
            batch.streaming = False
            retry_after = item.retry_after if isinstance(item, ProviderRetryable) else None
            self._failed(batch, now, item, retry_after)
        return 0


def _within(limits: BatchLimits, caps: ProviderLimits) -> BatchLimits:
    """The configured thresholds, kept within the provider's caps."""
    return replace(
        limits,
        hard_max_requests=min(limits.hard_max_requests, caps.max_requests),
        hard_max_bytes=min(limits.hard_max_bytes, caps.max_bytes),
        max_in_flight=min(limits.max_in_flight, caps.max_in_flight),
    )


def _to_send(plan: Plan, caps: ProviderLimits) -> list[tuple[list[int], bool]]:
    """(job ids, live) of each batch to open now, oldest work first."""
    small = plan.below_minimum if caps.live_below_minimum else []
    return [(job_ids, False) for job_ids in plan.batches] + [(job_ids, True) for job_ids in small]


def _detail(status: BatchStatus) -> str:
    """A provider's message and counts as JSON for the ledger ("" when it gave none)."""
    if not status.message and not status.counts:
        return ""
    return json.dumps({"message": status.message or None, "counts": dict(status.counts)})
