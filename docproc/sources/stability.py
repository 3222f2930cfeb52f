"""The stability gate: which files have stopped changing long enough to be taken.

Pure decision logic with no I/O and no clock reads: callers pass the times in.
Two clocks are used, each for what it is good at:

* ``now`` is a **monotonic** reading (``time.monotonic()``). It measures how
  long a file's size and mtime have stood still, so wall-clock jumps (NTP,
  suspend) never release a file early or hold it forever.
* ``wall_now`` is a **wall-clock** reading (``time.time()``), used only to
  compare with the file's own mtime on first sight: a file whose mtime is
  already ``settle_seconds`` in the past when first seen has evidently not been
  written for that long, so an existing tree is taken at once instead of
  waiting. (Caveat: on a network share whose server clock runs behind ours, a
  file being written can look older than it is.)

Rules, per path:

* A path is *pending* from its first observation with a given ``(size,
  mtime_ns)``; it is *ready* once it has shown those same values for at least
  ``settle_seconds`` (or at once, under the old-mtime rule above, if it was not
  already pending with other values).
* Any change of size or mtime resets the clock, and while a path is pending
  with other values the old-mtime rule does not apply: a file that changed
  under our eyes is being written, whatever its mtime says.
* Empty files wait longer: :data:`EMPTY_SETTLE_FACTOR` times the settle
  time (for the old-mtime rule too). Scanners and copy tools often create a
  0-byte placeholder and only start writing after a pause (warming up,
  negotiating a share); released early, the placeholder would become one
  version ("empty") and the real content a second one. A file that stays
  empty for the longer wait is released (the pipeline records it as empty);
  a placeholder that grows is released once, stable with its final content.
  The factor is relative so that tests with small settle times stay fast.
* Once released with ``(size, mtime_ns)``, the same path with the same values
  is not released again until it changes or is forgotten (duplicate events and
  metadata touches must not queue a file twice; paperless-ngx #13511).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

NS_PER_SECOND = 1_000_000_000
EMPTY_SETTLE_FACTOR = 4  # an empty file waits this many settle times (5 s -> 20 s)


@dataclass(slots=True)
class _Pending:
    size: int
    mtime_ns: int
    since: float  # monotonic time from which the values count as unchanged


class StabilityTracker(Generic[K]):
    """Decides when observed files are stable; keyed by any hashable path type.

    Args:
        settle_seconds: how long size and mtime must stand still; ``>= 0``.
    """

    def __init__(self, settle_seconds: float) -> None:
        if settle_seconds < 0:
            raise ValueError("settle_seconds must not be negative")
        self.settle_seconds = settle_seconds
        self._pending: dict[K, _Pending] = {}
        self._released: dict[K, tuple[int, int]] = {}

    @property
    def pending(self) -> int:
        """How many paths are waiting to settle."""
        return len(self._pending)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is pending or was released and not forgotten since."""
        return key in self._pending or key in self._released

    def observe(self, key: K, size: int, mtime_ns: int, now: float, wall_now: float) -> None:
        """Record that ``key`` currently has ``size`` bytes and ``mtime_ns``.

        Args:
            key: the path.
            size: its size in bytes.
            mtime_ns: its modification time, nanoseconds since the epoch.
            now: monotonic seconds; starts or keeps the settle clock.
            wall_now: wall-clock seconds since the epoch; only compared with
                ``mtime_ns`` for the old-mtime rule.
        """
        values = (size, mtime_ns)
        if self._released.get(key) == values:
            return
        current = self._pending.get(key)
        if current is not None and (current.size, current.mtime_ns) == values:
            return
        self._released.pop(key, None)
        old = wall_now * NS_PER_SECOND - mtime_ns >= self.settle_for(size) * NS_PER_SECOND
        since = float("-inf") if current is None and old else now
        self._pending[key] = _Pending(size, mtime_ns, since)

    def settle_for(self, size: int) -> float:
        """How long a file of ``size`` bytes must stand still: longer when empty."""
        return self.settle_seconds * (EMPTY_SETTLE_FACTOR if size == 0 else 1)

    def forget(self, key: K) -> None:
        """Drop everything known about ``key`` (it vanished or was handled elsewhere)."""
        self._pending.pop(key, None)
        self._released.pop(key, None)

    def ready(self, now: float) -> list[tuple[K, int, int]]:
        """Release the paths that have been stable long enough at ``now``.

        Long enough is ``settle_seconds``, or :data:`EMPTY_SETTLE_FACTOR` times
        that for an empty file (see :meth:`settle_for`).

        Each released ``(key, size, mtime_ns)`` is returned once, in the order
        the paths were first seen with those values, and remembered so that
        observing the same values again does not make it pending.
        """
        out: list[tuple[K, int, int]] = []
        for key, entry in self._pending.items():
            if now - entry.since >= self.settle_for(entry.size):
                out.append((key, entry.size, entry.mtime_ns))
        for key, size, mtime_ns in out:
            del self._pending[key]
            self._released[key] = (size, mtime_ns)
        return out
