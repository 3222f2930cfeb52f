"""What the Bedrock test server gets wrong on purpose: call faults, job endings, record errors."""

from __future__ import annotations

import hashlib
import random
import threading
from collections import deque
from dataclasses import dataclass, field

OPERATIONS = ("create", "get", "list", "stop", "invoke", "converse")
CALL_FAULTS = ("throttle", "quota", "500", "denied", "drop", "drop_after_create")
JOB_ENDINGS = ("completed", "partial", "failed", "failed_input", "expired", "failed_midway")
# HTTP status and error code of each answered call fault.
STATUS = {
    "throttle": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "quota": (400, "ServiceQuotaExceededException", "You have reached the maximum number of"
              " in-progress and submitted batch inference jobs for this model."),
    "500": (500, "InternalServerException", "An internal server error occurred. Retry later."),
    "denied": (403, "AccessDeniedException", "You don't have access to the model with the"
               " specified model ID."),
}  # fmt: skip


@dataclass
class Faults:
    """Faults to inject, repeatable with the server's seed.

    Args:
        script: per operation, faults consumed one per call, in order.
        rate: probability of a random fault (one of ``kinds``) on any call.
        kinds: what random faults may be (``drop_after_create`` only hits creates).
        endings: how successive jobs end (then ``completed``); see ``JOB_ENDINGS``.
        record_errors: share of records answered with an error (400, 429 or 500).
        no_json: share of records answered in prose without the JSON asked for.
    """

    script: dict[str, list[str]] = field(default_factory=dict)
    rate: float = 0.0
    kinds: tuple[str, ...] = ("throttle", "500", "drop")
    endings: list[str] = field(default_factory=list)
    record_errors: float = 0.0
    no_json: float = 0.0
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _rng: random.Random = field(init=False, repr=False, default_factory=random.Random)
    _queues: dict[str, deque[str]] = field(init=False, repr=False, default_factory=dict)
    _endings: deque[str] = field(init=False, repr=False, default_factory=deque)
    _seed: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        for op, kinds in self.script.items():
            if op not in OPERATIONS or any(kind not in CALL_FAULTS for kind in kinds):
                raise ValueError(f"bad fault script for {op!r}: {kinds}")
        if any(ending not in JOB_ENDINGS for ending in self.endings):
            raise ValueError(f"unknown job ending in {self.endings}")
        self._queues = {op: deque(kinds) for op, kinds in self.script.items()}
        self._endings = deque(self.endings)

    def seed(self, seed: int) -> None:
        with self._lock:
            self._rng.seed(seed)
            self._seed = seed

    def take(self, op: str) -> str | None:
        """This call's fault, if any: scripted first, then random."""
        with self._lock:
            queue = self._queues.get(op)
            if queue:
                return queue.popleft()
            if self.rate <= 0 or self._rng.random() >= self.rate:
                return None
            usable = [k for k in self.kinds if k != "drop_after_create" or op == "create"]
            return self._rng.choice(usable) if usable else None

    def ending(self) -> str:
        """How the next job ends."""
        with self._lock:
            return self._endings.popleft() if self._endings else "completed"

    def record(self, record_id: str) -> str:
        """What happens to one record: ok, no_json, or error400 / error429 / error500."""
        digest = hashlib.sha256(f"{self._seed}/{record_id}".encode()).digest()
        roll = int.from_bytes(digest[:4], "big") / 2**32
        if roll < self.record_errors:
            return ("error400", "error429", "error500")[digest[4] % 3]
        if roll < self.record_errors + self.no_json:
            return "no_json"
        return "ok"
