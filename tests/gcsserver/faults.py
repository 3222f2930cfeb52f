"""Call faults for the Google test servers: scripted per operation, or random with a seed."""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field

# HTTP status, google.rpc status word and message of each answered fault.
ANSWERS = {
    "429": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for aiplatform.googleapis.com/"
            "batch_prediction_jobs: too many concurrent jobs. Please retry later."),
    "500": (500, "INTERNAL", "Internal error encountered."),
    "503": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "401": (401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
    "403": (403, "PERMISSION_DENIED", "Permission 'aiplatform.batchPredictionJobs.create'"
            " denied on resource (or it may not exist)."),
}  # fmt: skip
KINDS = (*ANSWERS, "drop", "drop_after")


@dataclass
class CallFaults:
    """Faults to inject into calls.

    Args:
        script: per operation, faults consumed one per call, in order.
        rate: probability of a random fault (one of ``kinds``) on any call.
        kinds: what random faults may be (``drop_after``: the call takes
            effect, then the connection is closed unanswered).
        ops: operations random faults may hit (empty: all).
    """

    script: dict[str, list[str]] = field(default_factory=dict)
    rate: float = 0.0
    kinds: tuple[str, ...] = ("429", "500", "503", "drop")
    ops: tuple[str, ...] = ()
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _rng: random.Random = field(init=False, repr=False, default_factory=random.Random)
    _queues: dict[str, deque[str]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        for op, kinds in self.script.items():
            if any(kind not in KINDS for kind in kinds):
                raise ValueError(f"bad fault script for {op!r}: {kinds}")
        self._queues = {op: deque(kinds) for op, kinds in self.script.items()}

    def seed(self, seed: int) -> None:
        with self._lock:
            self._rng.seed(seed)

    def take(self, op: str) -> str | None:
        """This call's fault, if any: scripted first, then random."""
        with self._lock:
            queue = self._queues.get(op)
            if queue:
                return queue.popleft()
            if self.rate <= 0 or (self.ops and op not in self.ops):
                return None
            if self._rng.random() >= self.rate:
                return None
            return self._rng.choice(self.kinds)
