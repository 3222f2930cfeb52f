"""The seam between the pipeline and anything that yields files to process."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from docproc.models import IntakeBatch, Mode


class Source(Protocol):
    """A watched place that reports stable files, vanished paths and problems.

    Lifecycle: ``start()`` once (optional for a one-shot scan), then
    ``poll()`` repeatedly from one thread, then ``close()``. Only
    ``request_rescan()`` may be called from another thread.
    """

    def start(self) -> None:
        """Begin watching; raise :class:`~docproc.errors.SourceError` if the place is unusable."""
        ...

    def poll(self, now: float, known: Mapping[Path, tuple[int, int]]) -> IntakeBatch:
        """Report what changed since the last poll.

        Args:
            now: a monotonic clock reading, in seconds.
            known: path -> (size, mtime_ns) of the files the ledger holds as
                live under this source; unchanged ones are not reported again.
        """
        ...

    def request_rescan(self) -> None:
        """Make the next poll run a full reconcile scan."""
        ...

    def close(self) -> None:
        """Stop watching and release threads; idempotent."""
        ...

    @property
    def mode(self) -> Mode:
        """How changes are noticed (``EVENTS`` or ``POLL`` once started)."""
        ...

    @property
    def last_scan_at(self) -> float | None:
        """Wall-clock time of the last completed reconcile scan, if any."""
        ...

    @property
    def status(self) -> str:
        """A short health text for people: ``"ok"`` or what went wrong."""
        ...

    @property
    def pending(self) -> int:
        """How many files are waiting to settle."""
        ...
