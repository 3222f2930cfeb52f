"""Everything watchdog: the observer that turns file events into queued path hints.

This is the only module that imports watchdog. The observer thread runs one
handler, :class:`_Enqueuer`, which only puts ``(path, is_dir)`` on a bounded
queue; every stat, walk and decision happens on the poller's thread
(:mod:`~docproc.sources.walk`). Events are hints: a queue overflow, an
inotify overflow or an observer error each ask for a full reconcile walk.

inotify overflow (watchdog 7.1): the kernel's ``IN_Q_OVERFLOW`` is handled
inside watchdog (``InotifyFD.handle_event`` -> ``on_queue_overflow``, which
rebuilds the watches) and never reaches event handlers; watchdog only logs it
("Inotify queue overflowed ..."). :class:`_WatchdogAlarm` listens to the
``watchdog`` logger for that record and turns it into a rescan. If the
``watchdog`` logger is silenced below WARNING the record is never made, and
the periodic rescan is the safety net. watchdog also ignores failures to
watch sub-directories (including the watch limit, ``ENOSPC``) and raises only
for the root, so partial coverage on huge trees is likewise caught by the
periodic rescan only.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading

import structlog
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

from docproc.errors import SourceError
from docproc.models import Mode
from docproc.sources.walk import check_root

log = structlog.get_logger()

QUEUE_SIZE = 100_000  # paths; a burst beyond this becomes a rescan
JOIN_TIMEOUT = 5.0
RESTART_BACKOFF_MAX = 300.0
# Opens and read-only closes (our own hashing!) and directory modifications
# (one per file created) are not asked for: they would only cost wake-ups.
EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
_DIR_EVENT_TYPES = frozenset({"created", "deleted", "moved"})


class _Enqueuer(FileSystemEventHandler):
    """Runs on the observer thread; only puts ``(path, is_dir)`` on the queue."""

    def __init__(self, paths: queue.Queue[tuple[str, bool]], overflow: threading.Event) -> None:
        super().__init__()
        self._paths = paths
        self._overflow = overflow

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.is_directory and event.event_type not in _DIR_EVENT_TYPES:
            return
        self._put(event.src_path, event.is_directory)
        if event.dest_path:
            self._put(event.dest_path, event.is_directory)

    def _put(self, path: str | bytes, is_dir: bool) -> None:
        try:
            self._paths.put_nowait((os.fsdecode(path), is_dir))
        except queue.Full:
            self._overflow.set()


class _WatchdogAlarm(logging.Handler):
    """Hears watchdog's own log records: an inotify overflow, or an error.

    Only records logged by one observer's threads count (several roots each
    have their own observer and alarm); :meth:`listen_to` names them.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.overflow = threading.Event()
        self.error: str | None = None
        self._threads: frozenset[int] = frozenset()

    def listen_to(self, observer: BaseObserver | None) -> None:
        """Heed records from ``observer``'s threads only; ``None`` for none."""
        self._threads = frozenset() if observer is None else _thread_ids(observer)

    def emit(self, record: logging.LogRecord) -> None:
        ours = record.thread in self._threads
        if not ours and not self._threads:
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record must not kill the observer
            return
        if "overflow" in message.casefold():
            # watchdog 7.1.1 reports overflows from a dispatcher thread it keeps
            # to itself, so one that cannot be attributed rescans every root.
            self.overflow.set()
        elif ours and record.levelno >= logging.ERROR:
            self.error = message

    def take_error(self) -> str | None:
        error, self.error = self.error, None
        return error


class Watcher:
    """One root's watchdog observer: launched, health-checked, restarted, stopped.

    Args:
        root: the watched folder, absolute and normalised.
        recursive: whether events below sub-directories are wanted.
        poll_interval: seconds between snapshots in ``POLL`` mode.

    Attributes:
        paths: the queue of ``(path, is_dir)`` hints, filled by the observer.
        mode: the mode actually running (``POLL`` after a watch-limit fallback).
        fallback: why ``EVENTS`` fell back to polling; ``""`` if it did not.
        trouble: observer trouble for the status line; cleared after a
            healthy spell.
    """

    def __init__(self, root: str, *, recursive: bool, poll_interval: float) -> None:
        self.paths: queue.Queue[tuple[str, bool]] = queue.Queue(maxsize=QUEUE_SIZE)
        self.mode = Mode.EVENTS
        self.fallback = self.trouble = ""
        self._root = root
        self._recursive = recursive
        self._poll_interval = poll_interval
        self._queue_full = threading.Event()
        self._alarm = _WatchdogAlarm()
        self._observer: BaseObserver | None = None
        self._running = False
        self._restarts, self._restart_at = 0, 0.0

    def start(self, mode: Mode) -> None:
        """Launch an observer in ``mode`` (``EVENTS`` or ``POLL``).

        Raises:
            SourceError: no observer could be started.
        """
        self.mode = mode
        logging.getLogger("watchdog").addHandler(self._alarm)
        self._running = True
        self._start_observer()

    def close(self) -> None:
        """Stop and join the observer (bounded by a timeout)."""
        self._running = False
        self._stop_observer()
        logging.getLogger("watchdog").removeHandler(self._alarm)

    def take_overflows(self) -> list[str]:
        """Log event names of the overflows since the last call; each asks for a rescan."""
        found = []
        for flag, event in (
            (self._queue_full, "source.queue_overflow"),
            (self._alarm.overflow, "source.inotify_overflow"),
        ):
            if flag.is_set():
                flag.clear()
                found.append(event)
        return found

    def discard(self) -> None:
        """Drop queued hints: the walk about to run sees everything they point at."""
        while True:
            try:
                self.paths.get_nowait()
            except queue.Empty:
                return

    def drain(self, limit: int) -> dict[str, bool]:
        """Up to ``limit`` queued hints, merged per path (a directory if any said so)."""
        batch: dict[str, bool] = {}
        for _ in range(limit):
            try:
                path, is_dir = self.paths.get_nowait()
            except queue.Empty:
                break
            batch[path] = batch.get(path, False) or is_dir
        return batch

    # -- health ---------------------------------------------------------------

    def check(self, now: float) -> bool:
        """Restart a dead or erroring observer (with backoff); whether it was restarted."""
        if not self._running:
            return False
        error = self._alarm.take_error()
        if error is None and self._observer is not None and _alive(self._observer):
            if self._restarts and now >= self._restart_at + RESTART_BACKOFF_MAX:
                self._restarts, self.trouble = 0, ""
            return False
        if now < self._restart_at:
            return False
        self._restart(now, error or "observer thread stopped")
        return True

    def _restart(self, now: float, reason: str) -> None:
        self._restarts += 1
        self._restart_at = now + min(RESTART_BACKOFF_MAX, 2.0**self._restarts)
        log.warning("source.observer_error", root=self._root, error=reason, restarts=self._restarts)
        self._stop_observer()
        try:
            check_root(self._root)
            self._start_observer()
        except SourceError as exc:
            self.trouble = f"observer stopped: {exc}"
            return
        self.trouble = f"observer restarted after error: {reason}"

    # -- launching ------------------------------------------------------------

    def _start_observer(self) -> None:
        try:
            self._observer = self._launch(self.mode)
        except OSError as exc:
            if self.mode is not Mode.EVENTS or exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise SourceError(f"cannot watch {self._root}: {exc.strerror or exc}") from exc
            reason = exc.strerror or str(exc)
            log.warning("source.watch_limit", root=self._root, error=reason)
            self.mode, self.fallback = Mode.POLL, reason
            try:
                self._observer = self._launch(Mode.POLL)
            except OSError as again:
                raise SourceError(f"cannot watch {self._root}: {again.strerror}") from again

    def _launch(self, mode: Mode) -> BaseObserver:
        if mode is Mode.EVENTS:
            observer: BaseObserver = Observer()
        else:
            # lstat, not stat: the stock PollingObserver follows directory
            # symlinks (looping until ELOOP) and never sees broken links.
            observer = PollingObserverVFS(
                os.lstat, os.scandir, polling_interval=self._poll_interval
            )
        try:
            handler = _Enqueuer(self.paths, self._queue_full)
            observer.schedule(
                handler, self._root, recursive=self._recursive, event_filter=EVENT_FILTER
            )
            observer.start()
        except BaseException:
            _stop(observer)
            raise
        self._alarm.listen_to(observer)
        return observer

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        self._alarm.listen_to(None)
        if observer is not None:
            _stop(observer)


def _thread_ids(observer: BaseObserver) -> frozenset[int]:
    # InotifyObserver's reader thread is private; without it, an inotify
    # overflow is still caught by the periodic rescan.
    threads = [observer, *observer.emitters, getattr(observer, "_inotify_fd", None)]
    return frozenset(
        t.ident for t in threads if isinstance(t, threading.Thread) and t.ident is not None
    )


def _alive(observer: BaseObserver) -> bool:
    return observer.is_alive() and all(e.is_alive() for e in list(observer.emitters))


def _stop(observer: BaseObserver) -> None:
    """Stop an observer, started or not, and join it with a timeout."""
    try:
        observer.stop()
    except Exception as exc:  # noqa: BLE001 - shutting down: log and carry on
        log.warning("source.observer_stop_failed", error=str(exc))
    if observer.is_alive():
        observer.join(JOIN_TIMEOUT)
        if observer.is_alive():
            log.warning("source.observer_join_timeout", seconds=JOIN_TIMEOUT)
