"""Faults the test server injects, per operation, repeatable with a seed."""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field

from tests.batchserver.wire import FAULT_KINDS, ONLY_FOR, OPERATIONS


@dataclass
class Faults:
    """Faults to inject, per operation, deterministic with the server's seed.

    Args:
        script: per operation (see ``OPERATIONS``), faults consumed one per
            call of that operation, in order, before normal handling.
        rate: probability of a random fault (one of ``kinds``) on any call.
        kinds: what random faults may be; ``drop_after_create`` and ``cut``
            only apply to create and results.
        not_found_for: retrieve and results answer 404 for this many seconds
            after a batch's creation (GH-1432).
        retry_after: the ``retry-after`` header value sent with a 429.
    """

    script: dict[str, list[str]] = field(default_factory=dict)
    rate: float = 0.0
    kinds: tuple[str, ...] = ("429", "529", "500", "drop")
    not_found_for: float = 0.0
    retry_after: float = 1.0
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    _rng: random.Random = field(init=False, repr=False, default_factory=random.Random)
    _queues: dict[str, deque[str]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        for op, kinds in self.script.items():
            if op not in OPERATIONS:
                raise ValueError(f"unknown operation {op!r} in fault script")
            for kind in kinds:
                _check_fault(kind, op)
        for kind in self.kinds:
            _check_fault(kind, None)
        self._queues = {op: deque(kinds) for op, kinds in self.script.items()}

    def seed(self, seed: int) -> None:
        """Seed the random faults (the server does this with its own seed)."""
        with self._lock:
            self._rng.seed(seed)

    def take(self, op: str) -> str | None:
        """The fault for this call of ``op``, if any: scripted first, then random."""
        with self._lock:
            queue = self._queues.get(op)
            if queue:
                return queue.popleft()
            if self.rate <= 0 or self._rng.random() >= self.rate:
                return None
            usable = [kind for kind in self.kinds if ONLY_FOR.get(kind, op) == op]
            return self._rng.choice(usable) if usable else None

    def pending(self, op: str) -> list[str]:
        """Scripted faults not yet consumed for ``op``."""
        with self._lock:
            return list(self._queues.get(op, ()))


def _check_fault(kind: str, op: str | None) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r}; known: {FAULT_KINDS}")
    if op is not None and ONLY_FOR.get(kind, op) != op:
        raise ValueError(f"fault {kind!r} only applies to {ONLY_FOR[kind]!r}, not {op!r}")
