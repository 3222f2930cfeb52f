"""The local-folder source: a watched directory as a stream of intake batches.

:class:`LocalSource` composes the parts, each in its own module:

* :mod:`~docproc.sources.observer` (the only module importing watchdog)
  runs an observer whose handler only queues path hints;
* :mod:`~docproc.sources.walk` stats, walks and classifies entries, on the
  caller's thread, inside :meth:`LocalSource.poll`;
* :mod:`~docproc.sources.stability` decides when a file has settled;
* :mod:`~docproc.sources.mountguard` keeps an unmounted root from being
  reported as a folder whose files were all deleted;
* :mod:`~docproc.sources.mounts` picks ``EVENTS`` or ``POLL`` for ``auto``.

Events are hints: a full reconcile walk runs on the first poll, every
``rescan_interval`` seconds, and at once after :meth:`~LocalSource.request_rescan`,
a queue overflow, an inotify overflow or an observer error.
"""

# ruff: noqa: PTH100

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import structlog

from docproc.models import IntakeBatch, Mode, WatchSpec
from docproc.sources.filters import IgnoreRules
from docproc.sources.mountguard import RootGuard
from docproc.sources.mounts import read_mount_table, resolve_mode
from docproc.sources.observer import Watcher
from docproc.sources.stability import StabilityTracker
from docproc.sources.walk import Intake, RootUnavailableError, Walker, check_root, path_lookup

log = structlog.get_logger()

DRAIN_LIMIT = 10_000  # paths handled per poll; the rest wait for the next one
UNAVAILABLE_RETRY = 10.0  # seconds before a walk of an unavailable root is retried


class LocalSource:
    """A watched local folder, implementing :class:`~docproc.sources.base.Source`.

    Args:
        spec: what to watch and how.
        rescan_interval: seconds between full reconcile walks.
        mount_table: mount table text for the ``auto`` mode decision; read
            from ``/proc/self/mountinfo`` when ``None``.
        only: folders below the root to walk instead of all of it (``docproc
            scan`` of a subfolder of a watched folder: its files belong to the
            watched root, under its rules); only what lies in them can be gone.
    """

    def __init__(
        self,
        spec: WatchSpec,
        *,
        rescan_interval: float = 300.0,
        mount_table: str | None = None,
        only: Sequence[Path] = (),
    ) -> None:
        self._spec = spec
        self._root = os.path.normpath(os.path.abspath(spec.path))
        self._only = _outermost(os.path.normpath(os.path.abspath(p)) for p in only)
        tracker: StabilityTracker[str] = StabilityTracker(spec.settle_seconds)
        rules = IgnoreRules.from_spec(spec)
        self._walker = Walker(self._root, rules, recursive=spec.recursive, tracker=tracker)
        self._watcher = Watcher(
            self._root, recursive=spec.recursive, poll_interval=spec.poll_interval
        )
        self._guard = RootGuard(self._root)
        self._rescan_interval = rescan_interval
        self._mount_table = mount_table
        self._rescan = threading.Event()
        self._started = self._closed = False
        self._mode, self._mode_reason = spec.mode, "not started"
        self._unavailable = ""  # why the root cannot be trusted now; "" when it can
        self._next_scan_at: float | None = None
        self._last_scan_at: float | None = None

    # -- status -------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The watched folder, absolute and normalised (symlinks not resolved)."""
        return Path(self._root)

    @property
    def mode(self) -> Mode:
        """``EVENTS`` or ``POLL`` once started; the configured mode before."""
        return self._watcher.mode if self._started else self._mode

    @property
    def mode_reason(self) -> str:
        """Why :attr:`mode` was chosen, for people."""
        if self._watcher.fallback:
            return f"fell back to polling: {self._watcher.fallback}"
        return self._mode_reason

    @property
    def last_scan_at(self) -> float | None:
        """Wall-clock time at which the last reconcile walk completed."""
        return self._last_scan_at

    @property
    def status(self) -> str:
        """``"ok"``, or the most telling thing that went wrong.

        Most telling first: root unavailable (or looking unmounted), observer
        trouble (cleared after a healthy spell), polling fallback.
        """
        if self._unavailable or self._watcher.trouble:
            return self._unavailable or self._watcher.trouble
        return f"polling: {self._watcher.fallback}" if self._watcher.fallback else "ok"

    @property
    def pending(self) -> int:
        """Files waiting to settle."""
        return self._walker.tracker.pending

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Check the root, choose the mode and start the watchdog observer.

        Raises:
            SourceError: the root is missing, not a directory or unreadable,
                or the observer cannot be started.
        """
        self._guard.remember(check_root(self._root).st_dev)
        table = read_mount_table() if self._mount_table is None else self._mount_table
        decision = resolve_mode(os.path.realpath(self._root), self._spec.mode, table)
        self._mode, self._mode_reason = decision.mode, decision.reason
        log.info("source.mode", root=self._root, mode=self._mode.value, reason=self._mode_reason)
        self._started = True
        self._watcher.start(self._mode)

    def request_rescan(self) -> None:
        """Make the next :meth:`poll` run a full reconcile walk; thread-safe."""
        self._rescan.set()

    def close(self) -> None:
        """Stop and join the observer (bounded by a timeout); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._watcher.close()

    # -- polling ------------------------------------------------------------

    def poll(self, now: float, known: Mapping[Path, tuple[int, int]]) -> IntakeBatch:
        """Report what is ready, gone or impossible since the last poll.

        Args:
            now: a monotonic clock reading (seconds); drives the settle time
                and the rescan timer.
            known: absolute path -> ``(size, mtime_ns)`` of the files the
                ledger holds as live under this root.

        Returns:
            ``ready``: files stable for the settle time, re-stat'ed just
            before returning, each ``(path, size, mtime_ns)`` released once;
            ``gone``: known (or earlier problem) paths that no longer exist as
            taken files; ``problems``: entries that can never be taken, each
            reported once until it changes; ``scanned``: a reconcile walk
            completed. Unchanged known files are skipped without re-reading.
            Filesystem trouble never raises: an unreadable root, or one that
            looks unmounted (:mod:`~docproc.sources.mountguard`), yields no
            *gone* and shows in :attr:`status`.
        """
        intake = Intake(now=now, wall=time.time())
        if self._watcher.check(now):
            self._rescan.set()
        if self._scan_due(now):
            self._watcher.discard()
            self._reconcile(known, intake)
        else:
            self._drain(known, intake)
        ready = self._walker.release(known, intake)
        if intake.gone and not intake.scanned:
            self._hold_gone_if_unmounted(len(known), intake)
        return IntakeBatch(
            ready=tuple(ready),
            gone=tuple(Path(p) for p in intake.gone),
            problems=tuple(intake.problems),
            scanned=intake.scanned,
        )

    def _scan_due(self, now: float) -> bool:
        due = self._next_scan_at is None or now >= self._next_scan_at
        if self._rescan.is_set():
            self._rescan.clear()
            due = True
        for event in self._watcher.take_overflows():
            log.warning(event, root=self._root)
            due = True
        return due

    def _drain(self, known: Mapping[Path, tuple[int, int]], intake: Intake) -> None:
        lookup = path_lookup(known)
        for path, is_dir in self._watcher.drain(DRAIN_LIMIT).items():
            self._walker.visit(path, is_dir, lookup, intake)
        self._walker.sweep_vanished_dirs(known, intake)
        if intake.rescan:
            self._rescan.set()

    def _reconcile(self, known: Mapping[Path, tuple[int, int]], intake: Intake) -> None:
        started = time.monotonic()
        by_str = {os.fspath(p): v for p, v in known.items()}
        if self._only:
            inside = tuple(folder + os.sep for folder in self._only)
            by_str = {p: v for p, v in by_str.items() if p.startswith(inside)}
        reason = self._guard.device_changed()  # never walk what is mounted in its place
        if reason is None:
            try:
                for top in self._only or (self._root,):
                    self._walker.walk(top, by_str.get, intake)
            except RootUnavailableError as exc:
                reason = str(exc)
        reason = reason or self._guard.check(len(by_str))
        if reason:
            self._root_unavailable(reason, intake.now)
            return
        self._unavailable = ""
        self._walker.settle_walk(by_str, intake)
        self._next_scan_at = intake.now + self._rescan_interval
        self._last_scan_at = time.time()
        intake.scanned = True
        seconds = round(time.monotonic() - started, 3)
        log.info("source.rescan", root=self._root, files=intake.files, gone=len(intake.gone),
                 problems=len(intake.problems), seconds=seconds)  # fmt: skip

    def _hold_gone_if_unmounted(self, known: int, intake: Intake) -> None:
        """Drop this poll's *gone* (from events or release) if the root looks unmounted."""
        reason = self._guard.check(known)
        if reason:
            intake.gone.clear()
            self._root_unavailable(reason, intake.now)

    def _root_unavailable(self, reason: str, now: float) -> None:
        if self._unavailable != reason:
            log.warning("source.root_unavailable", root=self._root, error=reason)
        self._unavailable = reason
        self._next_scan_at = now + min(UNAVAILABLE_RETRY, self._rescan_interval)


def _outermost(folders: Iterable[str]) -> tuple[str, ...]:
    """The folders, without those inside another of them (walked once)."""
    kept: list[str] = []
    for folder in sorted(set(folders)):
        if not any(folder.startswith(outer + os.sep) for outer in kept):
            kept.append(folder)
    return tuple(kept)


def reaches(spec: WatchSpec, path: Path) -> bool:
    """Whether the walk of ``spec``'s folder reaches ``path``, a folder (entered) or a
    file (taken) strictly below it, under the watch's rules."""
    root = Path(os.path.normpath(os.path.abspath(spec.path)))
    if path == root or not path.is_relative_to(root):
        return False
    rel = path.relative_to(root).as_posix()
    rules = IgnoreRules.from_spec(spec)
    if path.is_dir():
        return spec.recursive and rules.enters_parents(f"{rel}/entry")  # and itself
    return (spec.recursive or "/" not in rel) and rules.takes_path(rel)
