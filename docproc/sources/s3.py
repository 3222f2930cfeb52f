"""The S3 source: a watched prefix as a stream of intake batches.

* **Listing** (the reconcile): paginated ListObjectsV2 every ``interval``
  seconds, at most :data:`PAGES_PER_POLL` pages per poll so one tick never
  blocks long. Each entry is compared with what the ledger knows of the key,
  loaded once per listing into a dict: an entry whose ETag and size are
  unchanged, and whose bytes were extracted, costs no request at all. Known
  keys missing from a complete listing are *gone*.
* **Hints**: keys named by S3 event notifications
  (:mod:`~docproc.sources.notifications`) are checked with a HEAD each and
  go the same way; they only make changes arrive sooner.
* **Fetching**: a changed or new key is streamed to a private file under the
  state directory (its size checked against ``max_bytes`` from the listing,
  then from the response's Content-Length, then while streaming) by a few
  threads, :data:`FETCH_PER_POLL` per poll. The candidate handed to the
  intake points at that copy; its identity is the ``s3://`` URI, and the
  version is the sha256 of the bytes (an ETag is only a hint: multipart
  ETags are not digests of the content).
* **Faults** (access denied, no bucket, throttling after botocore's own
  retries, network errors) never raise out of :meth:`S3Source.poll`: the
  root's :attr:`~S3Source.status` says what is wrong and when the next try
  is, and the root backs off exponentially. Other roots carry on.

The ledger is read through two callables given at construction (all live
objects of the root; one key), so this module never imports the ledger.
An object fetched by this process and not yet settled (extracted or failed
for good) is not fetched again; after a restart it is, once.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import structlog

from docproc.errors import ObjectStoreError
from docproc.models import (
    Candidate,
    IntakeBatch,
    Location,
    Mode,
    ObjectState,
    S3WatchSpec,
    object_key,
    object_uri,
)
from docproc.sources.filters import IgnoreRules
from docproc.sources.notifications import NotificationListener
from docproc.storage import fault_of

if TYPE_CHECKING:
    from docproc.aws import Bucket, Fetched, Listed

log = structlog.get_logger()
PAGES_PER_POLL = 25
PAGE_SIZE = 1000
FETCH_PER_POLL = 64
HINTS_PER_POLL = 500
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,16}")


@dataclass
class _Listing:
    """A listing in progress: the ledger's view when it began, and the keys seen so far."""

    known: dict[str, ObjectState]
    token: str | None = None
    seen: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)


@dataclass
class _Found:
    ready: list[Candidate] = field(default_factory=list)
    gone: list[Location] = field(default_factory=list)
    problems: list[tuple[Location, str]] = field(default_factory=list)
    scanned: bool = False

    def batch(self) -> IntakeBatch:
        return IntakeBatch(tuple(self.ready), tuple(self.gone), tuple(self.problems), self.scanned)


class S3Source:
    """A watched S3 prefix, implementing :class:`~docproc.sources.base.Source`.

    Args:
        spec: what to watch and how.
        bucket: the bucket's client (:class:`docproc.aws.Bucket`).
        fetch_dir: where object bytes are copied for extraction (emptied at start).
        known_all: the ledger's live objects of this root, by key.
        known_one: the ledger's view of one key.
        max_bytes: larger objects are recorded as problems and never downloaded.
        listener: S3 event notifications, when configured.
        fetch_workers: concurrent downloads.
        backoff: first and longest pause, in seconds, after a fault.
    """

    def __init__(
        self,
        spec: S3WatchSpec,
        bucket: Bucket,
        *,
        fetch_dir: Path,
        known_all: Callable[[], Mapping[str, ObjectState]],
        known_one: Callable[[str], ObjectState | None],
        max_bytes: int,
        listener: NotificationListener | None = None,
        fetch_workers: int = 4,
        backoff: tuple[float, float] = (2.0, 300.0),
    ) -> None:
        self.spec, self.bucket = spec, bucket
        self._fetch_dir = fetch_dir
        self._known_all, self._known_one = known_all, known_one
        self._max_bytes = max_bytes
        self._listener = listener
        self._workers = fetch_workers
        self._backoff = backoff
        self._rules = IgnoreRules(include=spec.include, exclude=spec.exclude, hidden=spec.hidden,
                                  ignore_suffixes=spec.ignore_suffixes)  # fmt: skip
        self._own_prefix = _own_output_prefix(spec)
        self._queue: dict[str, Listed] = {}  # keys to fetch, in order
        self._handed: dict[str, str] = {}  # key -> ETag handed to the intake by this process
        self._problems: dict[str, str] = {}  # key -> ETag reported as a problem
        self._listing: _Listing | None = None
        self._rescan = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._next_list_at: float | None = None
        self._retry_at = 0.0
        self._failures = 0
        self._trouble = ""
        self._last_scan_at: float | None = None
        self._closed = False

    # -- status -------------------------------------------------------------

    @property
    def uri(self) -> str:
        return self.spec.uri

    @property
    def mode(self) -> Mode:
        return Mode.POLL

    @property
    def last_scan_at(self) -> float | None:
        return self._last_scan_at

    @property
    def status(self) -> str:
        """``"ok"``, or the fault that stopped the last poll and when the next try is."""
        if self._trouble:
            return self._trouble
        if self._listener is not None and self._listener.trouble:
            return self._listener.trouble
        return "ok"

    @property
    def pending(self) -> int:
        """Keys waiting to be fetched, plus one while a listing is under way."""
        return len(self._queue) + (self._listing is not None)

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Prepare the copy folder (left-overs of an earlier process are removed); no I/O on S3.

        A bucket that cannot be reached shows in :attr:`status` at the first
        poll, not here: one unreachable bucket must not keep the daemon from
        starting.
        """
        try:
            self._fetch_dir.mkdir(parents=True, exist_ok=True)
            for stale in self._fetch_dir.iterdir():
                stale.unlink(missing_ok=True)
        except OSError as exc:  # a full or read-only state directory: each fetch says so
            log.warning("source.fetch_area", root=self.uri, error=str(exc))
        if self._listener is not None:
            self._listener.start()

    def request_rescan(self) -> None:
        self._rescan.set()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.bucket.session.close()

    # -- polling ------------------------------------------------------------

    def poll(self, now: float, known: Mapping[Path, tuple[int, int]]) -> IntakeBatch:
        """Check hints, list some pages, fetch some keys; never raises for S3 trouble.

        Args:
            now: a monotonic clock reading (listing timer and backoff).
            known: unused: objects are compared with the ledger's own view
                (``known_all``), which has their ETags.
        """
        found = _Found()
        if self._closed or now < self._retry_at:
            return found.batch()
        try:
            self._take_hints(found)
            if self._listing is None and self._listing_due(now):
                self._listing = _Listing(dict(self._known_all()))
            if self._listing is not None:
                self._list(now, self._listing, found)
            self._fetch(found)
        except ObjectStoreError as exc:
            self._fault(now, exc)
        else:
            if self._trouble:
                log.info("source.recovered", root=self.uri)
            self._failures, self._trouble = 0, ""
        return found.batch()

    def _listing_due(self, now: float) -> bool:
        due = self._next_list_at is None or now >= self._next_list_at
        if self._rescan.is_set():
            self._rescan.clear()
            due = True
        if self._listener is not None and self._listener.take_overflow():
            due = True
        return due

    def _list(self, now: float, listing: _Listing, found: _Found) -> None:
        for _ in range(PAGES_PER_POLL):
            page, listing.token = self.bucket.list_page(self.spec.prefix, listing.token, PAGE_SIZE)
            for entry in page:
                if self._takes(entry.key):
                    listing.seen.add(entry.key)
                    self._consider(entry, listing.known.get(entry.key), found)
            if listing.token is None:
                self._finish_listing(now, listing, found)
                return

    def _finish_listing(self, now: float, listing: _Listing, found: _Found) -> None:
        for key in listing.known.keys() - listing.seen:
            self._forget(key)
            found.gone.append(object_uri(self.bucket.name, key))
        self._listing = None
        self._next_list_at = now + self.spec.interval
        self._last_scan_at = time.time()
        found.scanned = True
        seconds = round(time.monotonic() - listing.started, 3)
        log.info("source.listed", root=self.uri, keys=len(listing.seen), fetch=len(self._queue),
                 gone=len(found.gone), seconds=seconds)  # fmt: skip

    def _takes(self, key: str) -> bool:
        rel = key[len(self.spec.prefix) :]
        if not rel or key.endswith("/") or "\0" in key:  # folder markers
            return False
        if self._own_prefix is not None and key.startswith(self._own_prefix):
            return False  # docproc's own sidecar objects
        return self._rules.takes_path(rel)

    def _consider(self, entry: Listed, state: ObjectState | None, found: _Found) -> None:
        """Queue ``entry`` for fetching unless the ledger has these bytes settled."""
        key = entry.key
        if state is not None and state.etag == entry.etag and state.size == entry.size:
            if state.settled:
                self._handed.pop(key, None)
                return
            if self._handed.get(key) == entry.etag:
                return  # fetched by this process; its extraction is under way
        if self._problems.get(key) == entry.etag:
            return
        if entry.size > self._max_bytes:
            self._problem(key, entry.etag, f"{entry.size} bytes, over the limit of"
                          f" {self._max_bytes} (max_file_mb); not downloaded", found)  # fmt: skip
            return
        self._queue[key] = entry

    def _problem(self, key: str, etag: str, reason: str, found: _Found) -> None:
        self._problems[key] = etag
        found.problems.append((object_uri(self.bucket.name, key), reason))

    def _forget(self, key: str) -> None:
        self._handed.pop(key, None)
        self._problems.pop(key, None)
        self._queue.pop(key, None)

    # -- hints --------------------------------------------------------------

    def _take_hints(self, found: _Found) -> None:
        if self._listener is None:
            return
        for key in self._listener.drain(HINTS_PER_POLL):
            if not self._takes(key):
                continue
            entry = self.bucket.head(key)
            if entry is not None:
                self._consider(entry, self._known_one(key), found)
            elif self._known_one(key) is not None:
                self._forget(key)
                found.gone.append(object_uri(self.bucket.name, key))

    # -- fetching -----------------------------------------------------------

    def _fetch(self, found: _Found) -> None:
        keys = list(self._queue)[:FETCH_PER_POLL]
        if not keys:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="docproc-s3")
        jobs = [(key, self._pool.submit(self._download, key)) for key in keys]
        retry: ObjectStoreError | None = None
        for key, job in jobs:
            try:
                self._fetched(key, job, found)
            except ObjectStoreError as exc:
                if not exc.retryable:
                    raise
                retry = retry or exc  # left queued; tried again after the backoff
        if retry is not None:
            raise retry

    def _download(self, key: str) -> tuple[Path, Fetched]:
        dest = self._fetch_dir / (secrets.token_hex(8) + _safe_suffix(key))
        try:
            self._fetch_dir.mkdir(parents=True, exist_ok=True)
            return dest, self.bucket.download(key, dest, max_bytes=self._max_bytes)
        except OSError as exc:  # the state directory is full or read-only: back off, retry
            fault = fault_of(exc, self._fetch_dir)
            reason = (
                f"fetch area not writable: {fault.reason}" if fault else f"cannot copy {key}: {exc}"
            )
            raise ObjectStoreError("error", reason, retryable=True) from exc

    def _fetched(self, key: str, job: Future[tuple[Path, Fetched]], found: _Found) -> None:
        try:
            dest, got = job.result()
        except ObjectStoreError as exc:
            if exc.retryable:
                raise
            entry = self._queue.pop(key)
            if exc.code == "not_found":  # deleted since it was listed
                if self._known_one(key) is not None:
                    self._forget(key)
                    found.gone.append(object_uri(self.bucket.name, key))
            else:
                self._problem(key, entry.etag, exc.reason, found)
            return
        del self._queue[key]
        self._handed[key] = got.etag
        uri = object_uri(self.bucket.name, key)
        found.ready.append(Candidate(dest, got.size, got.last_modified_ns, uri=uri, etag=got.etag))

    # -- faults -------------------------------------------------------------

    def _fault(self, now: float, exc: ObjectStoreError) -> None:
        self._failures += 1
        first, longest = self._backoff
        delay = min(longest, first * 2 ** (self._failures - 1))
        self._retry_at = now + delay
        self._listing = None  # a listing cut short starts again
        if not self._trouble.startswith(exc.reason):
            log.warning("source.s3_failed", root=self.uri, code=exc.code, error=exc.reason,
                        retry_in=delay)  # fmt: skip
        self._trouble = f"{exc.reason}; next try in {delay:g} s"


def _own_output_prefix(spec: S3WatchSpec) -> str | None:
    """The key prefix of this root's sidecar objects, when it lies in the watched bucket."""
    if spec.output_prefix is None:
        return None
    bucket, key = object_key(spec.output_prefix)
    return key if bucket == spec.bucket else None


def _safe_suffix(key: str) -> str:
    """The key's file-name suffix, kept on the copy so extraction is routed by it."""
    suffix = PurePosixPath(key.rpartition("/")[2]).suffix
    return suffix if _SUFFIX.fullmatch(suffix) else ""
