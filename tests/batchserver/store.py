"""The test server's batches: lifecycle, listing, cancel, delete, and the calls it saw."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.batchserver.faults import Faults
from tests.batchserver.outcomes import RESULT_TYPE, Outcome, OutcomeFn
from tests.batchserver.planned import PlannedRequest
from tests.batchserver.results import result_line
from tests.batchserver.wire import BATCHES_PATH, b62, invalid, not_found, rfc3339


@dataclass(eq=False)
class BatchRecord:
    """One batch as the server keeps it. ``outcomes`` is filled when it ends."""

    id: str
    custom_ids: list[str]
    created_at: float  # epoch seconds
    requests: list[PlannedRequest] = field(repr=False)
    state: str = "in_progress"  # in_progress | canceling | ended
    canceled: bool = False
    cancel_initiated_at: float | None = None
    ended_at: float | None = None
    deleted: bool = False
    outcomes: dict[str, Outcome] = field(default_factory=dict, repr=False)
    created_mono: float = field(default_factory=time.monotonic, repr=False)
    end_at: float | None = field(default=None, repr=False)  # monotonic; None: only end() or cancel
    cancel_end_at: float | None = field(default=None, repr=False)
    final: list[Outcome] = field(default_factory=list, repr=False)
    order: list[int] = field(default_factory=list, repr=False)  # shuffled serving order
    counts: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def params_count(self) -> int:
        """How many requests (each with its params) the batch holds."""
        return len(self.requests)

    def request_counts(self) -> dict[str, int]:
        """All ``processing`` until the batch ends, then split by result type."""
        if self.state == "ended":
            return dict(self.counts)
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        counts["processing"] = len(self.requests)
        return counts

    def as_json(self, results_base: str) -> dict[str, Any]:
        """The MessageBatch object; ``results_base`` prefixes the results path."""
        ended = self.state == "ended"
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.state,
            "request_counts": self.request_counts(),
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.created_at + 24 * 3600),
            "ended_at": rfc3339(self.ended_at) if self.ended_at is not None else None,
            "cancel_initiated_at": _maybe_time(self.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"{results_base}{BATCHES_PATH}/{self.id}/results" if ended else None,
        }


def _maybe_time(epoch: float | None) -> str | None:
    return rfc3339(epoch) if epoch is not None else None


@dataclass(frozen=True)
class ResultsPlan:
    """What a results download streams: the ended batch's lines, in shuffled order."""

    batch_id: str
    requests: list[PlannedRequest]
    outcomes: list[Outcome]
    order: list[int]
    cache_writer: int | None  # the first succeeded request writes the prompt cache

    def __len__(self) -> int:
        return len(self.order)

    def lines(self) -> Iterator[bytes]:
        """The JSONL lines, made one at a time."""
        for index in self.order:
            writes = index == self.cache_writer
            yield result_line(self.batch_id, self.requests[index], self.outcomes[index], writes)


@dataclass
class StoreSettings:
    """How the server behaves (see :class:`FakeBatches` for each)."""

    api_key: str
    end_after: float | None
    outcome: OutcomeFn | None
    faults: Faults
    seed: int
    absolute_results_url: bool
    max_requests: int
    max_body_bytes: int
    cancel_delay: float


class BatchStore:
    """The protocol state: batches, calls, violations. Thread-safe; no HTTP here."""

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self.base_url = ""
        self.batches: dict[str, BatchRecord] = {}
        self.violations: list[str] = []
        self.calls: list[tuple[str, str, int]] = []
        self.errors: list[str] = []
        self.faults_injected: Counter[str] = Counter()
        self.results_served: Counter[str] = Counter()
        self.token_counts: list[int] = []
        self._lock = threading.Lock()
        self._rng = random.Random(settings.seed)
        settings.faults.seed(settings.seed)

    # bookkeeping

    def record_call(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.calls.append((method, path, status))

    def violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

    def fault(self, op: str) -> str | None:
        """Take the next fault for ``op`` and count it."""
        kind = self.settings.faults.take(op)
        if kind is not None:
            with self._lock:
                self.faults_injected[kind] += 1
        return kind

    def counted(self, tokens: int) -> None:
        """A token count was answered (``token_counts`` keeps each answer)."""
        with self._lock:
            self.token_counts.append(tokens)

    def served(self, batch_id: str) -> None:
        with self._lock:
            self.results_served[batch_id] += 1

    def submitted_ids(self) -> Counter[str]:
        """custom_id -> how many created batches it appeared in."""
        with self._lock:
            records = list(self.batches.values())
        counter: Counter[str] = Counter()
        for record in records:
            counter.update(record.custom_ids)
        return counter

    def snapshot(self) -> dict[str, BatchRecord]:
        """The live batches dict, with every batch whose time has come ended first."""
        with self._lock:
            for record in self.batches.values():
                self._advance(record)
        return self.batches

    # operations

    def create(self, planned: list[PlannedRequest]) -> dict[str, Any]:
        with self._lock:
            batch_id = "msgbatch_" + b62(self._rng.randbytes(24))
            record = BatchRecord(batch_id, [p.custom_id for p in planned], time.time(), planned)
            if self.settings.end_after is not None:
                record.end_at = record.created_mono + self.settings.end_after
            self.batches[batch_id] = record
            return record.as_json(self._results_base())

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            return self._get(batch_id, "retrieve").as_json(self._results_base())

    def list_page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        with self._lock:
            page, has_more = self._page(query)
            for record in page:
                self._advance(record)
            base = self._results_base()
            return {
                "data": [record.as_json(base) for record in page],
                "has_more": has_more,
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            }

    def cancel(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._get(batch_id, "cancel")
            if record.state == "ended":
                # Not a violation: the batch may have ended just before the client asked.
                raise invalid(f"message_batch {batch_id} has already ended", violation=False)
            if record.state == "in_progress":
                record.state, record.canceled = "canceling", True
                record.cancel_initiated_at = time.time()
                record.cancel_end_at = time.monotonic() + self.settings.cancel_delay
            return record.as_json(self._results_base())

    def delete(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            record = self._get(batch_id, "delete")
            if record.state != "ended":
                raise invalid(f"message_batch {batch_id} is still processing; cancel it first")
            record.deleted = True
            return {"id": batch_id, "type": "message_batch_deleted"}

    def results(self, batch_id: str) -> ResultsPlan:
        with self._lock:
            record = self._get(batch_id, "results")
            if record.state != "ended":
                raise invalid(f"message_batch {batch_id} is still processing")
            writer = next(
                (i for i, o in enumerate(record.final) if RESULT_TYPE[o] == "succeeded"), None
            )
            return ResultsPlan(batch_id, record.requests, record.final, record.order, writer)

    def end(self, batch_id: str) -> None:
        """End a batch now (canceled requests if it is canceling)."""
        with self._lock:
            record = self.batches[batch_id]
            if record.state != "ended":
                self._finish(record, canceled=record.state == "canceling")

    # internals (called with the lock held)

    def _results_base(self) -> str:
        return self.base_url if self.settings.absolute_results_url else ""

    def _get(self, batch_id: str, op: str) -> BatchRecord:
        record = self.batches.get(batch_id)
        if record is None:
            raise not_found(batch_id, violation=True)  # the client invented an id
        if record.deleted:
            raise not_found(batch_id)
        window = self.settings.faults.not_found_for
        if op in ("retrieve", "results") and time.monotonic() - record.created_mono < window:
            self.faults_injected["404"] += 1
            raise not_found(batch_id)
        self._advance(record)
        return record

    def _advance(self, record: BatchRecord) -> None:
        now = time.monotonic()
        if record.state == "in_progress" and record.end_at is not None and now >= record.end_at:
            self._finish(record, canceled=False)
        elif (
            record.state == "canceling"
            and record.cancel_end_at is not None
            and now >= record.cancel_end_at
        ):
            self._finish(record, canceled=True)

    def _finish(self, record: BatchRecord, *, canceled: bool) -> None:
        count = len(record.requests)
        record.final = (
            [Outcome.CANCELED] * count if canceled else [r.outcome for r in record.requests]
        )
        record.outcomes = dict(zip(record.custom_ids, record.final, strict=True))
        record.counts = dict.fromkeys(
            ("processing", "succeeded", "errored", "canceled", "expired"), 0
        )
        for outcome in record.final:
            record.counts[RESULT_TYPE[outcome]] += 1
        record.order = list(range(count))
        random.Random(f"{self.settings.seed}:{record.id}").shuffle(record.order)
        record.state, record.ended_at = "ended", time.time()

    def _page(self, query: dict[str, list[str]]) -> tuple[list[BatchRecord], bool]:
        """One page of the list, newest first; deleted batches skipped."""
        limit = _limit(query)
        after, before = _one(query, "after_id"), _one(query, "before_id")
        if after and before:
            raise invalid("after_id and before_id are mutually exclusive")
        newest = list(reversed(self.batches.values()))
        if after or before:
            anchor = self._position(newest, after or before or "")
            newest = newest[anchor + 1 :] if after else newest[:anchor]
        visible = [record for record in newest if not record.deleted]
        page = visible[-limit:] if before else visible[:limit]
        return page, len(visible) > limit

    def _position(self, newest: list[BatchRecord], batch_id: str) -> int:
        for index, record in enumerate(newest):
            if record.id == batch_id:
                return index
        raise invalid(f"no message_batch {batch_id} to page from")


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _limit(query: dict[str, list[str]]) -> int:
    raw = _one(query, "limit")
    if raw is None:
        return 20
    try:
        limit = int(raw)
    except ValueError:
        raise invalid(f"limit: Input should be a valid integer, got {raw!r}") from None
    if not 1 <= limit <= 1000:
        raise invalid(f"limit: Input should be between 1 and 1000, got {limit}")
    return limit
