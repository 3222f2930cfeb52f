"""The local-folder source: a watched directory as a stream of intake batches.

This is the only module that imports watchdog. Its observer thread runs one
handler, :class:`_Enqueuer`, which only puts paths on a bounded queue; every
stat, walk and decision happens in :meth:`LocalSource.poll`, on the caller's
thread. Events are hints: a full reconcile walk (``os.scandir``, iterative,
never following directory symlinks, pruning ignored directories) runs on the
first poll, every ``rescan_interval`` seconds, and at once after
:meth:`~LocalSource.request_rescan`, a queue overflow, an inotify overflow or
an observer error.

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

# Paths are plain str in this module: os.scandir yields str, a 100,000-file walk
# must not build a Path per entry, and non-UTF-8 names stay surrogate-escaped.
# ruff: noqa: PTH100, PTH116, PTH118

from __future__ import annotations

import errno
import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
from docproc.models import Candidate, IntakeBatch, Mode, WatchSpec
from docproc.sources.filters import IgnoreRules
from docproc.sources.mounts import read_mount_table, resolve_mode
from docproc.sources.stability import StabilityTracker

log = structlog.get_logger()

QUEUE_SIZE = 100_000  # paths; a burst beyond this becomes a rescan
DRAIN_LIMIT = 10_000  # paths handled per poll; the rest wait for the next one
VANISHED_DIR_LIMIT = 64  # vanished directories per poll before a full walk is cheaper
JOIN_TIMEOUT = 5.0
RESTART_BACKOFF_MAX = 300.0
UNAVAILABLE_RETRY = 10.0  # seconds before a walk of an unreadable root is retried
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
_FILE_KINDS = (
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)

Lookup = Callable[[str], tuple[int, int] | None]


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
        if record.thread not in self._threads:
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record must not kill the observer
            return
        if "overflow" in message.casefold():
            self.overflow.set()
        elif record.levelno >= logging.ERROR:
            self.error = message

    def take_error(self) -> str | None:
        error, self.error = self.error, None
        return error


@dataclass
class _Intake:
    """What one poll found, collected before it becomes an :class:`IntakeBatch`."""

    now: float
    wall: float
    gone: dict[str, None] = field(default_factory=dict)  # an ordered set
    problems: list[tuple[Path, str]] = field(default_factory=list)
    vanished_dirs: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # taken or problem paths found by a walk
    unlisted: list[str] = field(default_factory=list)  # directories a walk could not list
    parents: dict[str, bool] = field(default_factory=dict)  # directory -> reached directly
    files: int = 0
    scanned: bool = False


class LocalSource:
    """A watched local folder, implementing :class:`~docproc.sources.base.Source`.

    Args:
        spec: what to watch and how.
        rescan_interval: seconds between full reconcile walks.
        mount_table: mount table text for the ``auto`` mode decision; read
            from ``/proc/self/mountinfo`` when ``None``.
    """

    def __init__(
        self, spec: WatchSpec, *, rescan_interval: float = 300.0, mount_table: str | None = None
    ) -> None:
        self._spec = spec
        self._root = os.path.normpath(os.path.abspath(spec.path))
        self._prefix = self._root.rstrip("/") + "/"
        self._root_real = os.path.realpath(self._root)
        self._rules = IgnoreRules.from_spec(spec)
        self._tracker: StabilityTracker[str] = StabilityTracker(spec.settle_seconds)
        self._rescan_interval = rescan_interval
        self._mount_table = mount_table
        self._queue: queue.Queue[tuple[str, bool]] = queue.Queue(maxsize=QUEUE_SIZE)
        self._rescan = threading.Event()
        self._queue_full = threading.Event()
        self._alarm = _WatchdogAlarm()
        self._observer: BaseObserver | None = None
        self._started = self._closed = False
        self._mode, self._mode_reason = spec.mode, "not started"
        # Status layers, most telling first: root unavailable, observer
        # trouble (cleared after a healthy spell), polling fallback, "ok".
        self._unavailable, self._observer_trouble, self._status = "", "", "ok"
        self._next_scan_at: float | None = None
        self._last_scan_at: float | None = None
        self._problems: dict[str, str] = {}
        self._dir_links: set[str] = set()
        self._restarts, self._restart_at = 0, 0.0

    # -- status -------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The watched folder, absolute and normalised (symlinks not resolved)."""
        return Path(self._root)

    @property
    def mode(self) -> Mode:
        """``EVENTS`` or ``POLL`` once started; the configured mode before."""
        return self._mode

    @property
    def mode_reason(self) -> str:
        """Why :attr:`mode` was chosen, for people."""
        return self._mode_reason

    @property
    def last_scan_at(self) -> float | None:
        """Wall-clock time at which the last reconcile walk completed."""
        return self._last_scan_at

    @property
    def status(self) -> str:
        """``"ok"``, or the most telling thing that went wrong."""
        return self._unavailable or self._observer_trouble or self._status

    @property
    def pending(self) -> int:
        """Files waiting to settle."""
        return self._tracker.pending

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Check the root, choose the mode and start the watchdog observer.

        Raises:
            SourceError: the root is missing, not a directory or unreadable,
                or the observer cannot be started.
        """
        self._check_root()
        table = read_mount_table() if self._mount_table is None else self._mount_table
        decision = resolve_mode(self._root_real, self._spec.mode, table)
        self._mode, self._mode_reason = decision.mode, decision.reason
        log.info("source.mode", root=self._root, mode=self._mode.value, reason=self._mode_reason)
        logging.getLogger("watchdog").addHandler(self._alarm)
        self._started = True
        self._start_observer()

    def request_rescan(self) -> None:
        """Make the next :meth:`poll` run a full reconcile walk; thread-safe."""
        self._rescan.set()

    def close(self) -> None:
        """Stop and join the observer (bounded by a timeout); idempotent."""
        if self._closed:
            return
        self._closed = True
        observer, self._observer = self._observer, None
        self._alarm.listen_to(None)
        if observer is not None:
            _stop(observer)
        logging.getLogger("watchdog").removeHandler(self._alarm)

    def _check_root(self) -> None:
        where = f"watched folder {self._root}"
        try:
            info = os.stat(self._root)
            if not stat.S_ISDIR(info.st_mode):
                raise SourceError(f"{where} is not a directory")
            with os.scandir(self._root) as entries:
                next(entries, None)
        except FileNotFoundError:
            raise SourceError(f"{where} does not exist") from None
        except PermissionError:
            raise SourceError(f"{where} is not readable: permission denied") from None
        except OSError as exc:
            raise SourceError(f"{where} cannot be read: {exc.strerror or exc}") from exc

    def _start_observer(self) -> None:
        try:
            self._observer = self._launch(self._mode)
        except OSError as exc:
            if self._mode is not Mode.EVENTS or exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise SourceError(f"cannot watch {self._root}: {exc.strerror or exc}") from exc
            reason = exc.strerror or str(exc)
            log.warning("source.watch_limit", root=self._root, error=reason)
            self._mode, self._status = Mode.POLL, f"polling: {reason}"
            self._mode_reason = f"fell back to polling: {reason}"
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
                os.lstat, os.scandir, polling_interval=self._spec.poll_interval
            )
        try:
            handler = _Enqueuer(self._queue, self._queue_full)
            observer.schedule(
                handler, self._root, recursive=self._spec.recursive, event_filter=EVENT_FILTER
            )
            observer.start()
        except BaseException:
            _stop(observer)
            raise
        self._alarm.listen_to(observer)
        return observer

    # -- observer health ----------------------------------------------------

    def _check_health(self, now: float) -> None:
        if not self._started or self._closed:
            return
        error = self._alarm.take_error()
        if error is None and self._observer is not None and _alive(self._observer):
            if self._restarts and now >= self._restart_at + RESTART_BACKOFF_MAX:
                self._restarts, self._observer_trouble = 0, ""
            return
        if now < self._restart_at:
            return
        self._restart(now, error or "observer thread stopped")

    def _restart(self, now: float, reason: str) -> None:
        self._restarts += 1
        self._restart_at = now + min(RESTART_BACKOFF_MAX, 2.0**self._restarts)
        log.warning("source.observer_error", root=self._root, error=reason, restarts=self._restarts)
        self._rescan.set()
        observer, self._observer = self._observer, None
        self._alarm.listen_to(None)
        if observer is not None:
            _stop(observer)
        try:
            self._check_root()
            self._start_observer()
        except SourceError as exc:
            self._observer_trouble = f"observer stopped: {exc}"
            return
        self._observer_trouble = f"observer restarted after error: {reason}"

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
            Filesystem trouble never raises: an unreadable root yields an
            empty batch and shows in :attr:`status`.
        """
        intake = _Intake(now=now, wall=time.time())
        self._check_health(now)
        if self._scan_due(now):
            self._discard_queue()
            self._reconcile(known, intake)
        else:
            self._drain(known, intake)
        ready = self._release(known, intake)
        return IntakeBatch(
            ready=tuple(ready),
            gone=tuple(Path(p) for p in intake.gone),
            problems=tuple(intake.problems),
            scanned=intake.scanned,
        )

    def _scan_due(self, now: float) -> bool:
        due = self._next_scan_at is None or now >= self._next_scan_at
        for flag, event in (
            (self._rescan, ""),
            (self._queue_full, "source.queue_overflow"),
            (self._alarm.overflow, "source.inotify_overflow"),
        ):
            if flag.is_set():
                flag.clear()
                due = True
                if event:
                    log.warning(event, root=self._root)
        return due

    def _discard_queue(self) -> None:
        """Drop queued hints: the walk about to run sees everything they point at."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _drain(self, known: Mapping[Path, tuple[int, int]], intake: _Intake) -> None:
        batch: dict[str, bool] = {}
        for _ in range(DRAIN_LIMIT):
            try:
                path, is_dir = self._queue.get_nowait()
            except queue.Empty:
                break
            batch[path] = batch.get(path, False) or is_dir
        lookup = _path_lookup(known)
        for path, is_dir in batch.items():
            self._visit(path, is_dir, lookup, intake)
        self._sweep_vanished_dirs(known, intake)

    def _visit(self, path: str, is_dir: bool, lookup: Lookup, intake: _Intake) -> None:
        """Handle one path from an event: stat it, walk it, or note it gone."""
        rel = self._relative(path)
        if rel is None or not self._rules.enters_parents(rel):
            return
        if not is_dir and not self._rules.takes_file(rel):
            return
        if not self._direct(path, rel, intake):
            return
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            self._vanished(path, is_dir, lookup, intake)
            return
        except OSError as exc:
            self._problem(path, _os_reason(exc), intake)
            return
        if stat.S_ISDIR(info.st_mode):
            if self._spec.recursive and self._rules.enters_dir(rel):
                self._walk(path, lookup, intake)
        elif self._rules.takes_file(rel):
            self._classified(path, info, lookup(path), intake)

    def _relative(self, path: str) -> str | None:
        """``path`` relative to the root, or ``None`` for the root or outside it."""
        if not path.startswith(self._prefix):
            return None
        rel = path[len(self._prefix) :]
        if not rel or (not self._spec.recursive and "/" in rel):
            return None
        return rel

    def _direct(self, path: str, rel: str, intake: _Intake) -> bool:
        """Whether ``path`` is reached without passing through a directory symlink.

        The polling observer follows directory symlinks (even loops, until
        ELOOP); the walk never does, so neither may an event.
        """
        parent, _, _ = path.rpartition("/")
        if "/" not in rel or parent == self._root:
            return True
        direct = intake.parents.get(parent)
        if direct is None:
            expected = os.path.join(self._root_real, rel.rpartition("/")[0])
            direct = intake.parents[parent] = os.path.realpath(parent) == expected
        return direct

    def _vanished(self, path: str, is_dir: bool, lookup: Lookup, intake: _Intake) -> None:
        self._tracker.forget(path)
        if self._problems.pop(path, None) is not None or lookup(path) is not None:
            intake.gone[path] = None
        if is_dir:
            intake.vanished_dirs.append(path)

    def _sweep_vanished_dirs(self, known: Mapping[Path, tuple[int, int]], intake: _Intake) -> None:
        """Known files below directories that vanished (moved away whole) are gone."""
        if len(intake.vanished_dirs) > VANISHED_DIR_LIMIT:
            self._rescan.set()
            return
        if not intake.vanished_dirs:
            return
        prefixes = tuple(d + "/" for d in intake.vanished_dirs)
        for path in [*map(os.fspath, known), *self._problems]:
            if path.startswith(prefixes):
                self._tracker.forget(path)
                self._problems.pop(path, None)
                intake.gone[path] = None

    # -- the reconcile walk -------------------------------------------------

    def _reconcile(self, known: Mapping[Path, tuple[int, int]], intake: _Intake) -> None:
        started = time.monotonic()
        by_str = {os.fspath(p): v for p, v in known.items()}
        try:
            self._walk(self._root, by_str.get, intake)
        except _RootUnavailableError as exc:
            self._root_unavailable(str(exc), intake.now)
            return
        self._unavailable = ""
        self._settle_walk(by_str, intake)
        self._next_scan_at = intake.now + self._rescan_interval
        self._last_scan_at = time.time()
        intake.scanned = True
        seconds = round(time.monotonic() - started, 3)
        log.info("source.rescan", root=self._root, files=intake.files, gone=len(intake.gone),
                 problems=len(intake.problems), seconds=seconds)  # fmt: skip

    def _root_unavailable(self, reason: str, now: float) -> None:
        if self._unavailable != reason:
            log.warning("source.root_unavailable", root=self._root, error=reason)
        self._unavailable = reason
        self._next_scan_at = now + min(UNAVAILABLE_RETRY, self._rescan_interval)

    def _settle_walk(self, by_str: dict[str, tuple[int, int]], intake: _Intake) -> None:
        """After a complete walk: what was known (or a problem) and not found is gone."""
        unlisted = tuple(d + "/" for d in intake.unlisted)
        for path in by_str:
            if path not in intake.seen and not path.startswith(unlisted):
                intake.gone[path] = None
                self._tracker.forget(path)
        for path in list(self._problems):
            if path not in intake.seen and not path.startswith(unlisted):
                del self._problems[path]
                intake.gone[path] = None

    def _walk(self, top: str, lookup: Lookup, intake: _Intake) -> None:
        """Visit every entry below ``top``; only directories are pushed, never followed links."""
        stack = [top]
        while stack:
            directory = stack.pop()
            try:
                entries = os.scandir(directory)
            except OSError as exc:
                if directory == self._root:
                    raise _RootUnavailableError(_root_reason(self._root, exc)) from exc
                if not isinstance(exc, FileNotFoundError):
                    intake.unlisted.append(directory)
                    self._problem(directory, _os_reason(exc), intake)
                continue
            with entries:
                for entry in entries:
                    self._walk_entry(entry, stack, lookup, intake)

    def _walk_entry(
        self, entry: os.DirEntry[str], stack: list[str], lookup: Lookup, intake: _Intake
    ) -> None:
        path = entry.path
        rel = path[len(self._prefix) :]
        try:
            if entry.is_dir(follow_symlinks=False):
                if self._spec.recursive and self._rules.enters_dir(rel):
                    stack.append(path)
                return
            if not self._rules.takes_file(rel):
                return
            intake.files += 1
            intake.seen.add(path)
            if entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                self._consider(path, info.st_size, info.st_mtime_ns, lookup(path), intake)
            else:
                self._classified(path, os.lstat(path), lookup(path), intake)
        except FileNotFoundError:
            intake.seen.discard(path)
        except OSError as exc:
            self._problem(path, _os_reason(exc), intake)

    # -- one entry ----------------------------------------------------------

    def _classified(
        self, path: str, info: os.stat_result, known: tuple[int, int] | None, intake: _Intake
    ) -> None:
        """Route an lstat'ed non-directory: a file, a symlink, or something never taken."""
        if stat.S_ISREG(info.st_mode):
            self._consider(path, info.st_size, info.st_mtime_ns, known, intake)
        elif stat.S_ISLNK(info.st_mode):
            self._symlink(path, known, intake)
        elif not stat.S_ISDIR(info.st_mode):
            self._problem(path, f"not a regular file ({_kind(info.st_mode)})", intake)

    def _symlink(self, path: str, known: tuple[int, int] | None, intake: _Intake) -> None:
        """Follow a file symlink whose target is a regular file inside the root."""
        try:
            target = os.stat(path)
        except OSError as exc:
            self._problem(path, _link_reason(exc), intake)
            return
        if stat.S_ISDIR(target.st_mode):
            intake.seen.discard(path)
            if path not in self._dir_links:
                self._dir_links.add(path)
                log.info("source.symlink_dir_skipped", path=path)
        elif not stat.S_ISREG(target.st_mode):
            self._problem(path, f"not a regular file ({_kind(target.st_mode)})", intake)
        elif not _inside(os.path.realpath(path), self._root_real):
            self._problem(path, "symbolic link points outside the watched folder", intake)
        else:
            self._consider(path, target.st_size, target.st_mtime_ns, known, intake)

    def _consider(
        self, path: str, size: int, mtime_ns: int, known: tuple[int, int] | None, intake: _Intake
    ) -> None:
        """A readable file: skip it if the ledger has it unchanged, else gate it."""
        if self._problems:
            self._problems.pop(path, None)
        if known == (size, mtime_ns):
            self._tracker.forget(path)
            return
        self._tracker.observe(path, size, mtime_ns, intake.now, intake.wall)

    def _problem(self, path: str, reason: str, intake: _Intake) -> None:
        """Report ``reason`` for ``path`` unless it was reported already."""
        intake.seen.add(path)
        self._tracker.forget(path)
        if self._problems.get(path) != reason:
            self._problems[path] = reason
            intake.problems.append((Path(path), reason))

    # -- release ------------------------------------------------------------

    def _release(self, known: Mapping[Path, tuple[int, int]], intake: _Intake) -> list[Candidate]:
        """Stable files, each re-stat'ed: changed ones go back to settle."""
        out: list[Candidate] = []
        lookup = _path_lookup(known)
        for path, size, mtime_ns in self._tracker.ready(intake.now):
            try:
                info = os.stat(path)
            except FileNotFoundError:
                self._vanished(path, False, lookup, intake)
                continue
            except OSError as exc:
                self._problem(path, _os_reason(exc), intake)
                continue
            if not stat.S_ISREG(info.st_mode):
                self._problem(path, f"not a regular file ({_kind(info.st_mode)})", intake)
            elif (info.st_size, info.st_mtime_ns) != (size, mtime_ns):
                self._tracker.observe(path, info.st_size, info.st_mtime_ns, intake.now, intake.wall)
            else:
                out.append(Candidate(Path(path), size, mtime_ns))
        return out


class _RootUnavailableError(Exception):
    """The root itself could not be listed; the walk's findings mean nothing."""


def _path_lookup(known: Mapping[Path, tuple[int, int]]) -> Lookup:
    return lambda path: known.get(Path(path))


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


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _kind(mode: int) -> str:
    for test, name in _FILE_KINDS:
        if test(mode):
            return name
    return "unknown type"


def _os_reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    return f"cannot be read: {exc.strerror or exc}"


def _link_reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "broken symbolic link"
    return _os_reason(exc)


def _root_reason(root: str, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"watched folder {root} does not exist"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"watched folder {root} is not readable: permission denied"
    return f"watched folder {root} cannot be read: {exc.strerror or exc}"
