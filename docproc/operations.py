"""Operations: what operators asked through the ledger, carried out by the daemon.

``docproc cancel`` and ``docproc ledger retry`` (and ``reprocess``) record
a request (:mod:`docproc.ledger.requests`); this stage, ticked by the
pipeline, carries each out and records the outcome the command is waiting
for. The commands need no provider key: only the daemon holds it.

* ``retry``: quarantined jobs (all, or the ones named) are queued again.
* ``cancel``: the provider is asked (on the provider thread) to cancel a
  submitted batch; the batch still ends and is applied as usual, its
  canceled requests then retried, or quarantined with ``--no-retry``.
* ``reprocess``: the versions asked for are queued under the current task
  (the one the estimate was made for); the budget caps apply as to any batch;
  their sidecars are replaced only when the new results are written.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

import structlog

from docproc.dispatch import Dispatcher
from docproc.errors import ProviderRetryable
from docproc.ledger.dispatch import DispatchLedger
from docproc.ledger.requests import OperatorRequest, RequestLedger

log = structlog.get_logger()
LOOK_EVERY_S = 0.5
CANCEL_RETRY_S = 10.0  # a cancel call that failed for now is tried again after this


@dataclass
class _Cancel:
    """A cancel call under way at the provider."""

    request: OperatorRequest
    batch_id: int
    call: Future[None]


class Operations:
    """Carries out operator requests; one per daemon, on the main loop."""

    def __init__(
        self, requests: RequestLedger, work: DispatchLedger, dispatcher: Dispatcher
    ) -> None:
        self.requests, self.work, self.dispatcher = requests, work, dispatcher
        self._next_look = 0.0
        self._cancels: dict[int, _Cancel] = {}
        self._not_before: dict[int, float] = {}  # request id -> when to try again

    def tick(self, now: float) -> None:
        """Finish cancel calls that returned; take new requests (every LOOK_EVERY_S)."""
        for cancel in [c for c in self._cancels.values() if c.call.done()]:
            self._cancel_returned(cancel, now)
        if now < self._next_look:
            return
        self._next_look = now + LOOK_EVERY_S
        for request in self.requests.pending():
            if request.id in self._cancels or now < self._not_before.get(request.id, 0.0):
                continue
            self._carry_out(request)

    def _carry_out(self, request: OperatorRequest) -> None:
        log.info("operator.request", request_id=request.id, kind=request.kind,
                 by=request.requested_by)  # fmt: skip
        if request.kind == "retry":
            self._retry(request)
        elif request.kind == "cancel":
            self._cancel(request)
        elif request.kind == "reprocess":
            self._reprocess(request)
        else:
            self._refuse(request, f"unknown request kind {request.kind!r}")

    def _retry(self, request: OperatorRequest) -> None:
        job_ids = request.detail.get("job_ids") or None
        count = self.work.rounds.requeue_failed(job_ids)
        self.dispatcher.wake()
        self.requests.finish(request.id, done=True, outcome=f"requeued {count} job(s)")

    def _reprocess(self, request: OperatorRequest) -> None:
        """Queue the versions asked for under the task the estimate was made for; a
        daemon running another task refuses (the estimate would not hold)."""
        task = request.detail.get("task")
        if task != self.dispatcher.task_id:
            self._refuse(request, f"the daemon runs task {self.dispatcher.task_id}, the request"
                                  f" was estimated for task {task}: estimate again")  # fmt: skip
            return
        versions = [int(v) for v in request.detail.get("version_ids", [])]
        queued, skipped = self.dispatcher.reprocess(versions, by=request.requested_by)
        note = f"; {skipped} already on their way or not readable" if skipped else ""
        self.requests.finish(request.id, done=True,
                             outcome=f"queued {queued} document(s){note}")  # fmt: skip

    def _cancel(self, request: OperatorRequest) -> None:
        batch_id = int(request.detail["batch_id"])
        row = self.work.batches.find_batch(str(batch_id))
        if row is None or row["state"] != "submitted" or not row["provider_batch_id"]:
            state = "unknown" if row is None else row["state"]
            self._refuse(request, f"batch {batch_id} is {state}: only a submitted batch can be"
                                  " canceled")  # fmt: skip
            return
        call = self.dispatcher.cancel(str(row["provider_batch_id"]))
        self._cancels[request.id] = _Cancel(request, batch_id, call)

    def _cancel_returned(self, cancel: _Cancel, now: float) -> None:
        del self._cancels[cancel.request.id]
        request = cancel.request
        try:
            cancel.call.result()
        except ProviderRetryable as exc:  # not now: the next look after a pause asks again
            log.warning("operator.cancel_failed", request_id=request.id, error=str(exc))
            self._not_before[request.id] = now + max(CANCEL_RETRY_S, exc.retry_after or 0.0)
            return
        except Exception as exc:  # noqa: BLE001 - the provider refused: recorded, not retried
            self._refuse(request, f"the provider refused the cancel: {exc}")
            return
        retry = bool(request.detail.get("retry", True))
        self.work.batches.cancel_requested(cancel.batch_id, retry=retry, by=request.requested_by)
        then = "retried" if retry else "quarantined (docproc ledger retry sends them)"
        self.requests.finish(
            request.id, done=True,
            outcome=f"the provider is canceling batch {cancel.batch_id}; what finished is"
            f" applied, the canceled requests are {then}",
        )  # fmt: skip

    def _refuse(self, request: OperatorRequest, why: str) -> None:
        log.warning("operator.refused", request_id=request.id, reason=why)
        self.requests.finish(request.id, done=False, outcome=why)
