"""The publishing stage's part of the ledger: sidecars, and sidecar writes waiting to retry.

Handed to :class:`docproc.publish.Publisher`, and to nothing else that writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from docproc.ledger.connection import Ledger
from docproc.ledger.publishing.retries import Retry, SidecarRetries
from docproc.ledger.publishing.sidecars import SidecarLedger, stored_highlights

__all__ = ["PublishLedger", "Retry", "SidecarLedger", "SidecarRetries", "stored_highlights"]


@dataclass(frozen=True, slots=True)
class PublishLedger:
    """The rooms of the publishing stage, sharing one ledger and one clock."""

    sidecars: SidecarLedger
    retries: SidecarRetries

    @classmethod
    def on(cls, ledger: Ledger, *, clock: Callable[[], float] = time.time) -> PublishLedger:
        return cls(SidecarLedger(ledger, clock=clock), SidecarRetries(ledger, clock=clock))

    def clock(self) -> float:
        """Wall-clock seconds, the time base of ``sidecar_retries``."""
        return self.sidecars.clock()
