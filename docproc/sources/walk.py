"""What a watched tree holds: the reconcile walk, event paths and entry classification.

:class:`Walker` turns directory entries into decisions, on the poller's
thread: a regular file (or a symlink to one inside the root) goes to the
stability gate unless the ledger has it unchanged; anything that can never be
taken (a FIFO, a socket, a device, a broken link, a link loop, a link leading
outside the root, an unreadable entry) becomes a *problem*, reported once
until it changes; a known file or problem that is no longer there is *gone*.

The walk (``os.scandir``, iterative) never follows directory symlinks and
prunes ignored directories. Nothing here knows about watchdog or time; the
only I/O is ``stat`` and ``scandir``.
"""

# Paths are plain str in this module: os.scandir yields str, a 100,000-file walk
# must not build a Path per entry, and non-UTF-8 names stay surrogate-escaped.
# ruff: noqa: PTH116, PTH118

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from docproc.errors import SourceError
from docproc.models import Candidate
from docproc.sources.filters import IgnoreRules
from docproc.sources.stability import StabilityTracker

log = structlog.get_logger()

VANISHED_DIR_LIMIT = 64  # vanished directories per poll before a full walk is cheaper
_FILE_KINDS = (
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)

Lookup = Callable[[str], tuple[int, int] | None]


class RootUnavailableError(Exception):
    """The root itself could not be listed; the walk's findings mean nothing."""


@dataclass
class Intake:
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
    rescan: bool = False  # too much vanished at once: ask for a full walk


class Walker:
    """Classifies the entries below one root and remembers reported problems.

    Args:
        root: the watched folder, absolute and normalised.
        rules: which files are taken and which directories entered.
        recursive: whether sub-directories are entered at all.
        tracker: the stability gate that candidate files are fed to.
    """

    def __init__(
        self, root: str, rules: IgnoreRules, *, recursive: bool, tracker: StabilityTracker[str]
    ) -> None:
        self.root = root
        self.tracker = tracker
        self._prefix = root.rstrip("/") + "/"
        self._root_real = os.path.realpath(root)
        self._rules = rules
        self._recursive = recursive
        self._problems: dict[str, str] = {}
        self._dir_links: set[str] = set()

    # -- event paths ----------------------------------------------------------

    def visit(self, path: str, is_dir: bool, lookup: Lookup, intake: Intake) -> None:
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
            self.vanished(path, is_dir, lookup, intake)
            return
        except OSError as exc:
            self._problem(path, _os_reason(exc), intake)
            return
        if stat.S_ISDIR(info.st_mode):
            if self._recursive and self._rules.enters_dir(rel):
                self.walk(path, lookup, intake)
        elif self._rules.takes_file(rel):
            self._classified(path, info, lookup(path), intake)

    def _relative(self, path: str) -> str | None:
        """``path`` relative to the root, or ``None`` for the root or outside it."""
        if not path.startswith(self._prefix):
            return None
        rel = path[len(self._prefix) :]
        if not rel or (not self._recursive and "/" in rel):
            return None
        return rel

    def _direct(self, path: str, rel: str, intake: Intake) -> bool:
        """Whether ``path`` is reached without passing through a directory symlink.

        The polling observer follows directory symlinks (even loops, until
        ELOOP); the walk never does, so neither may an event.
        """
        parent, _, _ = path.rpartition("/")
        if "/" not in rel or parent == self.root:
            return True
        direct = intake.parents.get(parent)
        if direct is None:
            expected = os.path.join(self._root_real, rel.rpartition("/")[0])
            direct = intake.parents[parent] = os.path.realpath(parent) == expected
        return direct

    def vanished(self, path: str, is_dir: bool, lookup: Lookup, intake: Intake) -> None:
        """``path`` no longer exists: gone if it was known or a problem."""
        self.tracker.forget(path)
        if self._problems.pop(path, None) is not None or lookup(path) is not None:
            intake.gone[path] = None
        if is_dir:
            intake.vanished_dirs.append(path)

    def sweep_vanished_dirs(self, known: Mapping[Path, tuple[int, int]], intake: Intake) -> None:
        """Known files below directories that vanished (moved away whole) are gone."""
        if len(intake.vanished_dirs) > VANISHED_DIR_LIMIT:
            intake.rescan = True
            return
        if not intake.vanished_dirs:
            return
        prefixes = tuple(d + "/" for d in intake.vanished_dirs)
        for path in [*map(os.fspath, known), *self._problems]:
            if path.startswith(prefixes):
                self.tracker.forget(path)
                self._problems.pop(path, None)
                intake.gone[path] = None

    # -- the reconcile walk ---------------------------------------------------

    def settle_walk(self, by_str: Mapping[str, tuple[int, int]], intake: Intake) -> None:
        """After a complete walk: what was known (or a problem) and not found is gone."""
        unlisted = tuple(d + "/" for d in intake.unlisted)
        for path in by_str:
            if path not in intake.seen and not path.startswith(unlisted):
                intake.gone[path] = None
                self.tracker.forget(path)
        for path in list(self._problems):
            if path not in intake.seen and not path.startswith(unlisted):
                del self._problems[path]
                intake.gone[path] = None

    def walk(self, top: str, lookup: Lookup, intake: Intake) -> None:
        """Visit every entry below ``top``; only directories are pushed, never followed links.

        Raises:
            RootUnavailableError: ``top`` is the root and cannot be listed.
        """
        stack = [top]
        while stack:
            directory = stack.pop()
            try:
                entries = os.scandir(directory)
            except OSError as exc:
                if directory == self.root:
                    raise RootUnavailableError(root_reason(self.root, exc)) from exc
                if not isinstance(exc, FileNotFoundError):
                    intake.unlisted.append(directory)
                    self._problem(directory, _os_reason(exc), intake)
                continue
            with entries:
                for entry in entries:
                    self._walk_entry(entry, stack, lookup, intake)

    def _walk_entry(
        self, entry: os.DirEntry[str], stack: list[str], lookup: Lookup, intake: Intake
    ) -> None:
        path = entry.path
        rel = path[len(self._prefix) :]
        try:
            if entry.is_dir(follow_symlinks=False):
                if self._recursive and self._rules.enters_dir(rel):
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

    # -- one entry ------------------------------------------------------------

    def _classified(
        self, path: str, info: os.stat_result, known: tuple[int, int] | None, intake: Intake
    ) -> None:
        """Route an lstat'ed non-directory: a file, a symlink, or something never taken."""
        if stat.S_ISREG(info.st_mode):
            self._consider(path, info.st_size, info.st_mtime_ns, known, intake)
        elif stat.S_ISLNK(info.st_mode):
            self._symlink(path, known, intake)
        elif not stat.S_ISDIR(info.st_mode):
            self._problem(path, f"not a regular file ({_kind(info.st_mode)})", intake)

    def _symlink(self, path: str, known: tuple[int, int] | None, intake: Intake) -> None:
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
        self, path: str, size: int, mtime_ns: int, known: tuple[int, int] | None, intake: Intake
    ) -> None:
        """A readable file: skip it if the ledger has it unchanged, else gate it."""
        if self._problems:
            self._problems.pop(path, None)
        if known == (size, mtime_ns):
            self.tracker.forget(path)
            return
        self.tracker.observe(path, size, mtime_ns, intake.now, intake.wall)

    def _problem(self, path: str, reason: str, intake: Intake) -> None:
        """Report ``reason`` for ``path`` unless it was reported already."""
        intake.seen.add(path)
        self.tracker.forget(path)
        if self._problems.get(path) != reason:
            self._problems[path] = reason
            intake.problems.append((Path(path), reason))

    # -- release --------------------------------------------------------------

    def release(self, known: Mapping[Path, tuple[int, int]], intake: Intake) -> list[Candidate]:
        """Stable files, each re-stat'ed: changed ones go back to settle."""
        out: list[Candidate] = []
        lookup = path_lookup(known)
        for path, size, mtime_ns in self.tracker.ready(intake.now):
            try:
                info = os.stat(path)
            except FileNotFoundError:
                self.vanished(path, False, lookup, intake)
                continue
            except OSError as exc:
                self._problem(path, _os_reason(exc), intake)
                continue
            if not stat.S_ISREG(info.st_mode):
                self._problem(path, f"not a regular file ({_kind(info.st_mode)})", intake)
            elif (info.st_size, info.st_mtime_ns) != (size, mtime_ns):
                self.tracker.observe(path, info.st_size, info.st_mtime_ns, intake.now, intake.wall)
            else:
                out.append(Candidate(Path(path), size, mtime_ns))
        return out


def check_root(root: str) -> os.stat_result:
    """Stat and list ``root`` once; its stat result on success.

    Raises:
        SourceError: the root is missing, not a directory or unreadable.
    """
    try:
        info = os.stat(root)
        if not stat.S_ISDIR(info.st_mode):
            raise SourceError(f"watched folder {root} is not a directory")
        with os.scandir(root) as entries:
            next(entries, None)
    except OSError as exc:
        raise SourceError(root_reason(root, exc)) from exc
    return info


def root_reason(root: str, exc: OSError) -> str:
    """Why the root cannot be used, for people."""
    if isinstance(exc, FileNotFoundError):
        return f"watched folder {root} does not exist"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"watched folder {root} is not readable: permission denied"
    return f"watched folder {root} cannot be read: {exc.strerror or exc}"


def path_lookup(known: Mapping[Path, tuple[int, int]]) -> Lookup:
    """A str-keyed view of the ledger's ``known`` mapping."""
    return lambda path: known.get(Path(path))


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
