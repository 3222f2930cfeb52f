"""Intake: from watched places to extracted text recorded in the ledger.

source.poll -> fingerprint (sha256) -> ledger.record_version
            -> extractor pool -> ledger.record_extraction

Every arrow is one ledger transaction, so a crash anywhere resumes from the
ledger: versions recorded but not yet extracted are dispatched again at
start-up (:meth:`Intake.recover`). This is also the per-document boundary:
an expected :class:`~docproc.errors.DocprocError` or ``OSError`` becomes a
ledger row, anything else is logged with its traceback, and the other
documents carry on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from docproc.errors import FailureKind, LedgerUnwritable, brief
from docproc.extract import ExtractorPool, route
from docproc.ledger.intake import FileLedger, IntakeLedger, Seen
from docproc.ledger.uris import uri_path
from docproc.models import (
    Candidate,
    ExtractFailure,
    Extraction,
    ExtractOutcome,
    ExtractTask,
    IntakeBatch,
    Location,
)
from docproc.sources.base import Source

log = structlog.get_logger()
HASH_CHUNK = 1024 * 1024
TAKE_CHUNK = 16
RETRY_CHECK_SECONDS = 10.0


class KnownFiles(Mapping[Path, tuple[int, int]]):
    """The ledger's view of a root's live files, loaded only as far as needed.

    A few lookups (events) cost a query each; iteration or many lookups (a
    reconcile walk) load the whole root once, so a rescan of 100,000
    unchanged files is one query plus dictionary hits.
    """

    EAGER_AFTER = 256

    def __init__(self, ledger: FileLedger, root_id: int) -> None:
        self._ledger, self._root_id = ledger, root_id
        self._all: dict[Path, tuple[int, int]] | None = None
        self._lookups = 0

    def _load(self) -> dict[Path, tuple[int, int]]:
        if self._all is None:
            self._all = self._ledger.known_files(self._root_id)
        return self._all

    def __getitem__(self, path: Path) -> tuple[int, int]:
        self._lookups += 1
        if self._all is None and self._lookups <= self.EAGER_AFTER:
            found = self._ledger.known_file(path)
            if found is None:
                raise KeyError(path)
            return found
        return self._load()[path]

    def __iter__(self) -> Iterator[Path]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


@dataclass
class _Rest:
    """The part of one poll's findings not recorded yet."""

    problems: list[tuple[Location, str]]
    gone: list[Location]
    ready: list[Candidate]
    scanned: bool

    def batch(self) -> IntakeBatch:
        return IntakeBatch(tuple(self.ready), tuple(self.gone), tuple(self.problems), self.scanned)


@dataclass
class TickReport:
    """What one tick did, for progress bars and tests."""

    taken: int = 0
    reused: int = 0
    outcomes: list[ExtractOutcome] = field(default_factory=list)


class Intake:
    """Drives sources and the extractor pool, recording every step in the ledger."""

    def __init__(
        self,
        ledger: IntakeLedger,
        pool: ExtractorPool,
        *,
        max_attempts: int = 5,
    ) -> None:
        self.ledger = ledger
        self.pool = pool
        self.max_attempts = max_attempts
        self.sources: dict[int, Source] = {}
        self._in_flight: set[str] = set()
        self._next_retry_check = 0.0
        # Local copies of remote objects' bytes, by sha256, kept until their
        # extraction is final (a transient failure is retried from the copy).
        self._copies: dict[str, Path] = {}
        self._statuses: dict[int, str] = {}
        self._requeued = False
        # Why no new work is taken (the state directory is low on space), or None.
        # Sources are not polled then; what is recorded is still extracted.
        self.new_work_paused: str | None = None
        # What the ledger could not take (it was unwritable), applied first next time.
        self._held: dict[int, IntakeBatch] = {}  # per root: the rest of a source's batch
        self._unrecorded: list[ExtractOutcome] = []  # extraction outcomes

    def add_source(self, root_id: int, source: Source) -> None:
        self.sources[root_id] = source

    def remove_source(self, root_id: int) -> Source | None:
        self._statuses.pop(root_id, None)
        return self.sources.pop(root_id, None)

    @property
    def extracting(self) -> bool:
        return bool(self._in_flight)

    @property
    def in_extraction(self) -> int:
        """Documents queued for or in extraction workers."""
        return len(self._in_flight)

    @property
    def settling(self) -> int:
        """Files waiting to stand still, over every source."""
        return sum(source.pending for source in self.sources.values())

    @property
    def busy(self) -> bool:
        """Work in hand: files settling or documents being extracted."""
        return bool(self._in_flight) or any(s.pending for s in self.sources.values())

    def hold_new_work(self, shortage: str | None) -> bool:
        """Take no new work while ``shortage`` says why (low space), or take it again.

        Returns whether that changed (each change is logged).
        """
        if shortage == self.new_work_paused:
            return False
        if shortage and not self.new_work_paused:
            log.warning("storage.low_space", detail=f"new work paused: {shortage}")
        elif not shortage:
            log.info("storage.space_back", detail="new work resumed")
        self.new_work_paused = shortage
        return True

    def recover(self) -> int:
        """Dispatch every version the ledger holds unextracted (e.g. after a crash).

        A version held only by remote objects is extracted from the local copy
        made of it, if this process has one; otherwise its source fetches it
        again (an unsettled object is downloaded once per process).
        """
        if not self._requeued:
            # Once per process: files that failed only for want of a reader
            # (Tesseract, LibreOffice, or an older docproc) are read again.
            self._requeued = True
            again = self.ledger.extractions.requeue_failed(route.readable_again())
            if again:
                log.info("intake.requeued", versions=again)
        count = 0
        for sha256, uri in self.ledger.extractions.due_versions():
            path = uri_path(uri) if uri.startswith("file://") else self._copies.get(sha256)
            if path is not None:
                self._dispatch(ExtractTask(sha256=sha256, path=path))
                count += 1
        self._drop_settled_copies()
        return count

    def _drop_settled_copies(self) -> None:
        idle = [sha for sha in self._copies if sha not in self._in_flight]
        if idle:
            for sha in self.ledger.extractions.settled_versions(idle):
                self._drop_copy(sha)

    def _drop_copy(self, sha256: str) -> None:
        path = self._copies.pop(sha256, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def tick(self, now: float, wait: float = 0.0) -> TickReport:
        """Poll every source, fingerprint what is ready, collect extractions.

        Args:
            now: a monotonic clock reading (stability gate and retry timing).
            wait: how long to wait for extraction results, in seconds.
        """
        report = TickReport()
        self._record([])  # outcomes the ledger could not take last time, first
        for root_id, source in list(self.sources.items()):
            if self.new_work_paused:
                break
            try:
                batch = self._held.pop(root_id, None)
                batch = batch or source.poll(now, KnownFiles(self.ledger.files, root_id))
                self._apply(root_id, batch, report)
                status = source.status
            except Exception as exc:  # one root's trouble: shown as its status, others go on
                log.exception("source.failed", root_id=root_id)
                status = f"failed, retried next tick: {brief(exc)}"
            if self._statuses.get(root_id) != status:
                self._statuses[root_id] = status
                self.ledger.files.root_status(root_id, status)
        if now >= self._next_retry_check:
            self._next_retry_check = now + RETRY_CHECK_SECONDS
            self.recover()
        self._collect(wait, report)
        return report

    def _apply(self, root_id: int, batch: IntakeBatch, report: TickReport) -> None:
        """Record what one poll of a source found.

        A source hands each file over once. If the ledger refuses a write (the
        disk is full), what is not recorded yet is held and applied first at the
        next tick: nothing handed over is lost.
        """
        rest = _Rest(list(batch.problems), list(batch.gone), list(batch.ready), batch.scanned)
        try:
            self._apply_rest(root_id, rest, report)
        except LedgerUnwritable:
            self._held[root_id] = rest.batch()
            raise

    def _apply_rest(self, root_id: int, rest: _Rest, report: TickReport) -> None:
        while rest.problems:
            where, reason = rest.problems[-1]
            self.ledger.files.record_problem(root_id, where, reason)
            log.warning("intake.problem", path=str(where), reason=reason)
            rest.problems.pop()
        while rest.gone:
            self.ledger.files.record_gone(rest.gone[-1])
            rest.gone.pop()
        while rest.ready:
            # Chunks keep the workers busy during a big first walk: each chunk is
            # dispatched before the next is hashed, and finished results flow in.
            self.take_all(root_id, rest.ready[:TAKE_CHUNK], report)
            del rest.ready[:TAKE_CHUNK]
            self._collect(0.0, report)
        if rest.scanned:
            self.ledger.files.root_scanned(root_id)
            rest.scanned = False

    def take(self, root_id: int, candidate: Candidate, report: TickReport) -> None:
        """Fingerprint one stable file, record its version, dispatch extraction."""
        self.take_all(root_id, [candidate], report)

    def take_all(self, root_id: int, candidates: Sequence[Candidate], report: TickReport) -> None:
        """Fingerprint stable files, record their versions in one transaction, dispatch."""
        seen = [s for c in candidates if (s := self._fingerprint(root_id, c)) is not None]
        needs = self._record_versions(seen)
        empty: list[ExtractOutcome] = []
        for item, need in zip(seen, needs, strict=True):
            report.taken += 1
            dispatched = False
            if not need:
                report.reused += 1
            elif item.size == 0:
                empty.append(
                    ExtractFailure(item.sha256, FailureKind.PERMANENT, "file is empty (0 bytes)")
                )
            else:
                dispatched = self._dispatch(ExtractTask(sha256=item.sha256, path=item.path))
            if item.uri:
                self._keep_copy(item, dispatched)
        self._record(empty)

    def _record_versions(self, seen: list[Seen]) -> list[bool]:
        """Record versions in one transaction; if that fails, one by one, so that a file
        the ledger refuses is recorded as a problem (with why) and the others go in."""
        try:
            return self.ledger.files.record_versions(seen)
        except Exception:  # noqa: BLE001 - some file is at fault: find which, below
            log.warning("intake.record_failed", files=len(seen))
        kept, needs = [], []
        for item in seen:
            try:
                needs += self.ledger.files.record_versions([item])
                kept.append(item)
            except Exception as exc:  # this file alone
                log.exception("intake.file_refused", path=str(item.uri or item.path))
                self.ledger.files.record_problem(item.root_id, item.uri or item.path, brief(exc))
        seen[:] = kept
        return needs

    def _keep_copy(self, item: Seen, dispatched: bool) -> None:
        """Keep a remote object's local copy while its extraction may need it."""
        if dispatched:
            old = self._copies.get(item.sha256)
            self._copies[item.sha256] = item.path
            if old is not None and old != item.path:
                old.unlink(missing_ok=True)
        elif self._copies.get(item.sha256) != item.path:
            item.path.unlink(missing_ok=True)

    def _fingerprint(self, root_id: int, candidate: Candidate) -> Seen | None:
        path = candidate.path
        try:
            sha256 = _sha256_file(path)
        except FileNotFoundError:
            self.ledger.files.record_gone(candidate.location)
            return None
        except OSError as exc:
            reason = _os_reason(exc)
            self.ledger.files.record_problem(root_id, candidate.location, reason)
            log.warning("intake.unreadable", path=str(candidate.location), reason=reason)
            return None
        return Seen(root_id, path, candidate.size, candidate.mtime_ns, sha256,
                    uri=candidate.uri, etag=candidate.etag)  # fmt: skip

    def _dispatch(self, task: ExtractTask) -> bool:
        if task.sha256 in self._in_flight:
            return False
        self._in_flight.add(task.sha256)
        self.pool.submit(task)
        return True

    def _collect(self, wait: float, report: TickReport) -> None:
        outcomes = self.pool.collect(wait) if (wait > 0 or self._in_flight) else []
        self._record(outcomes)
        report.outcomes.extend(outcomes)

    def _record(self, outcomes: Sequence[ExtractOutcome]) -> None:
        """Record extraction outcomes, with any the ledger refused before (held, in flight)."""
        outcomes = [*self._unrecorded, *outcomes]
        if not outcomes:
            return
        self._unrecorded = outcomes  # until the ledger takes them: a full disk loses nothing
        self._record_extractions(outcomes)
        self._unrecorded = []
        for outcome in outcomes:
            self._in_flight.discard(outcome.sha256)
            if isinstance(outcome, Extraction) or outcome.kind is FailureKind.PERMANENT:
                self._drop_copy(outcome.sha256)
        for outcome in outcomes:
            if isinstance(outcome, ExtractFailure):
                log.info("extract.failed", sha256=outcome.sha256, kind=outcome.kind.value,
                         reason=outcome.reason)  # fmt: skip

    def _record_extractions(self, outcomes: Sequence[ExtractOutcome]) -> None:
        """Record outcomes in one transaction; if that fails, one by one: an outcome the
        ledger refuses is logged and its version quarantined with the reason."""
        try:
            self.ledger.extractions.record_extractions(outcomes, max_attempts=self.max_attempts)
        except Exception:  # noqa: BLE001 - some outcome is at fault: find which, below
            log.warning("intake.record_failed", outcomes=len(outcomes))
        else:
            return
        for outcome in outcomes:
            try:
                self.ledger.extractions.record_extractions(
                    [outcome], max_attempts=self.max_attempts
                )
            except Exception as exc:  # this version alone: quarantined with the reason
                log.exception("extract.record_failed", sha256=outcome.sha256)
                reason = f"its extraction could not be recorded: {brief(exc)}"
                self._quarantine(ExtractFailure(outcome.sha256, FailureKind.PERMANENT, reason))

    def _quarantine(self, failure: ExtractFailure) -> None:
        try:
            self.ledger.extractions.record_extractions([failure])
        except Exception:  # not even that: logged; nothing else waits on it
            log.exception("extract.record_failed", sha256=failure.sha256)

    def close(self) -> None:
        for source in self.sources.values():
            source.close()
        self.pool.close()
        for sha256 in list(self._copies):
            self._drop_copy(sha256)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    # O_NONBLOCK: a file that turned into a FIFO since the stat must not hang us.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot be read: {exc.strerror or exc}"
