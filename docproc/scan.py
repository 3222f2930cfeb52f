"""``docproc scan``: one-shot intake and extraction of folders and files.

The same pipeline the daemon runs, started, driven until the work in hand is
done, and stopped. Folders go through a local source without an observer
(one reconcile walk, then the stability gate); single files are taken as
they are. Files still being written after the settle time (plus a grace
period) are left for the next scan and counted as still changing.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from docproc.compose import make_pool
from docproc.config import Settings, ledger_password
from docproc.errors import ConfigError
from docproc.intake import Intake, TickReport
from docproc.ledger.connection import open_ledger
from docproc.ledger.engine import Row
from docproc.ledger.intake import IntakeLedger
from docproc.ledger.queries import Queries
from docproc.ledger.uris import file_uri
from docproc.models import Candidate, WatchSpec
from docproc.sources.local import LocalSource, reaches
from docproc.writerlock import WriterLock

Progress = Callable[[int, int], None]
GRACE_SECONDS = 10.0
TICK_WAIT = 0.2


@dataclass(frozen=True)
class ScanResult:
    """The ledger rows of every scanned file, and how many never settled."""

    rows: list[Row]
    still_changing: int


def scan(
    settings: Settings,
    paths: list[Path],
    progress: Progress | None = None,
    *,
    settle: float | None = None,
) -> ScanResult:
    """Take every file under ``paths`` into the ledger and extract its text.

    ``settle`` overrides the settle time of every folder (0: take files at once).

    Raises:
        LedgerBusy: another ``run`` or ``scan`` writes this ledger.
    """
    targets = [_absolute(p) for p in paths]
    with WriterLock.acquire(settings.state_dir, "docproc scan"):
        # A scan runs no threads: its workers are forked directly (no forkserver),
        # and its texts are synced to disk a batch at a time (see ExtractorPool).
        pool = make_pool(settings, start_method="fork", batch_sync=True)
        try:
            ledger = open_ledger(settings.ledger_location, actor="scan",
                                 password=ledger_password(), claim="docproc scan")  # fmt: skip
        except BaseException:
            pool.close()
            raise
        intake = Intake(IntakeLedger.on(ledger), pool, max_attempts=settings.extract.max_attempts)
        try:
            roots = _add_targets(intake, settings, targets, settle)
            intake.recover()
            wait = settings.settle_seconds if settle is None else settle
            still_changing = _drive(intake, wait, progress or _quiet)
            files = Queries(ledger).files(roots=roots)
            rows = [row for row in files if _asked(row["path"], targets)]
            return ScanResult(rows, still_changing)
        finally:
            intake.close()
            ledger.close()


def _absolute(path: Path) -> Path:
    path = Path(os.path.normpath(path.absolute()))
    if not path.exists() and not path.is_symlink():
        raise ConfigError("PATH", f"{path} does not exist")
    return path


def _add_targets(
    intake: Intake, settings: Settings, targets: list[Path], settle: float | None
) -> list[str]:
    """Record each target's root and start taking it in; the root URIs.

    A target inside a configured watch (a subfolder, or a file the watch
    takes) belongs to that watch's root, so the daemon makes jobs for what
    the scan read; only the target itself is walked, under the watch's rules.
    """
    roots: list[str] = []
    below: dict[Path, tuple[int, list[Path]]] = {}  # root folder -> its id, folders asked
    for path in targets:
        home = _watch_holding(settings, path)
        folder = home.path if home else path if path.is_dir() else path.parent
        uri = file_uri(folder)
        root_id = intake.ledger.files.ensure_root(uri, kind="local", mode="scan")
        roots.append(uri)
        if path.is_dir():
            below.setdefault(folder, (root_id, []))[1].append(path)
        else:
            _take_file(intake, root_id, path)
    for folder, (root_id, asked) in below.items():
        spec = settings.watch_for(folder)
        if settle is not None:
            spec = dataclasses.replace(spec, settle_seconds=settle)
        only = () if folder in asked else asked  # the root itself: all of it
        intake.add_source(root_id, LocalSource(spec, rescan_interval=1e9, only=only))
    return roots


def _watch_holding(settings: Settings, path: Path) -> WatchSpec | None:
    """The configured watch whose walk reaches ``path`` (strictly below its folder)."""
    return next((spec for spec in settings.watches if reaches(spec, path)), None)


def _asked(path: str, targets: list[Path]) -> bool:
    """Whether the file at ``path`` is one of the targets or lies in a target folder."""
    where = Path(path)
    return any(where == target or where.is_relative_to(target) for target in targets)


def _take_file(intake: Intake, root_id: int, path: Path) -> None:
    try:
        info = path.stat()
    except OSError as exc:
        intake.ledger.files.record_problem(root_id, path, f"cannot be read: {exc.strerror or exc}")
        return
    if not stat.S_ISREG(info.st_mode):
        intake.ledger.files.record_problem(root_id, path, "not a regular file")
        return
    intake.take(root_id, Candidate(path, info.st_size, info.st_mtime_ns), TickReport())


def _drive(intake: Intake, settle: float, progress: Progress) -> int:
    """Tick until nothing is settling or extracting; return files that never settled.

    Progress counts files: the total is fixed once the first tick has walked every
    folder (files found, plus single files already handed to extraction), before
    anything is counted done; the last call reports the total as done.
    """
    done, total = 0, intake.in_extraction
    give_up_at = time.monotonic() + settle * 2 + GRACE_SECONDS
    first = True
    while True:
        now = time.monotonic()
        report = intake.tick(now, wait=TICK_WAIT)
        if first:  # the walk is done: what it found is taken, settling or in extraction
            total, first = total + report.taken + intake.settling, False
        done = min(total, done + report.reused + len(report.outcomes))
        progress(done, total)
        if not intake.busy:
            progress(total, total)
            return 0
        if now > give_up_at and not intake.extracting:
            progress(total, total)
            return sum(source.pending for source in intake.sources.values())


def _quiet(done: int, total: int) -> None:
    """No progress display."""
