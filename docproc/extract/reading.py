"""One document being read: its limits, and what reading it took.

Every reader gets the bytes and a :class:`Reading`. Readers that OCR count
the pages here (the ledger records them), and the archive reader reads its
members through :attr:`Reading.member`, the same routes as a top-level file,
one nesting level deeper.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from docproc.models import ExtractLimits

SLOW_WORK_SHARE = 0.75
"""Of the document's timeout, the share OCR may use before it stops with what it has."""

Member = Callable[[str, bytes, "Reading"], str]
"""Read an archive member: its name (routes it), its bytes, the member's Reading."""


@dataclass
class Reading:
    """What one reader call needs and reports, besides the bytes."""

    limits: ExtractLimits
    depth: int = 0  # archives this document sits in
    ocr_pages: int = 0  # pages or pictures read by OCR, archive members included
    member: Member | None = None  # set by the reader table; None in isolated tests
    routes: list[str] = field(default_factory=list)  # extra routes that contributed ("ocr")
    # Monotonic time by which slow work (OCR) must stop, so that what was read
    # is kept instead of the whole document timing out.
    deadline: float = field(default_factory=lambda: float("inf"))

    def __post_init__(self) -> None:
        if self.deadline == float("inf"):
            self.deadline = time.monotonic() + self.limits.timeout_seconds * SLOW_WORK_SHARE

    def time_left(self) -> float:
        """Seconds left for slow work (OCR pages, conversions) in this document."""
        return self.deadline - time.monotonic()

    def nested(self) -> Reading:
        """The Reading of a member one level down, sharing nothing mutable but the deadline."""
        return Reading(self.limits, self.depth + 1, member=self.member, deadline=self.deadline)

    def absorb(self, inner: Reading) -> None:
        """Count what reading a member took (OCR pages) into this document."""
        self.ocr_pages += inner.ocr_pages
        for name in inner.routes:
            self.used(name)

    def used(self, name: str) -> None:
        """Note that ``name`` (e.g. ``"ocr:tesseract"``) contributed text."""
        if name not in self.routes:
            self.routes.append(name)
