"""Batches below a platform's minimum, answered through its live API, crash-safe.

A batch too small for a batch job (Bedrock: fewer records than the minimum
per job) would otherwise wait forever in a small folder. :class:`LiveBatches`
answers it through the live API instead (at the live price; the ledger
records the batch as ``live``) while keeping the batch shape the dispatcher
knows: ``start`` returns an id (``live-<token>``), ``poll`` says when every
request is answered, ``results`` streams the answers.

* The requests are spooled first (``<token>.requests.jsonl``, written to a
  temporary file, fsynced and renamed); each answer is appended to
  ``<token>.answers.jsonl`` and fsynced as it arrives. After a crash, a poll
  resumes the requests that have no answer: only calls in flight at the
  moment of the crash can be made twice (a live call has no idempotency key),
  at most ``concurrency`` of them. A stop waits for calls in flight, so an
  orderly shutdown repeats none.
* At most ``concurrency`` calls run at once, on one pool shared by every live
  batch. Throttling and server errors are retried with backoff up to
  ``attempts`` times, then recorded as that error (the ledger retries the
  document later); a refused request (400) is recorded as
  ``invalid_request_error`` (quarantined); a refused account stops the batch's
  calls and the next poll raises it, so submission pauses.
* ``cancel`` (also from another process: a marker file) stops calls not yet
  made; the batch then ends with those requests unanswered (requeued).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from docproc.errors import ProviderAccountRefused, ProviderRejected, ProviderRetryable
from docproc.models import BatchStatus, ProviderResult, ResultKind
from docproc.providers.base import encode_request

LIVE_PREFIX = "live-"
MAX_BACKOFF_S = 60.0
_TOKEN_RE = re.compile(r"[a-zA-Z0-9-]{1,200}")

log = structlog.get_logger()


class LiveApi(Protocol):
    """A platform's live call for one request body.

    Raises ``ProviderRejected`` when the request itself is refused (400),
    ``ProviderAccountRefused`` when the account is, ``ProviderRetryable`` when
    a later call may work.
    """

    def invoke(self, params: Mapping[str, Any]) -> dict[str, Any]: ...


def is_live(batch_id: str) -> bool:
    return batch_id.startswith(LIVE_PREFIX)


def error_type(code: int) -> str:
    """The error type the ledger acts on for a platform's HTTP-like error code."""
    if code == 400:
        return "invalid_request_error"  # the request itself: quarantined
    return "rate_limit_error" if code == 429 else "api_error"  # retried later


@dataclass
class _Run:
    """One live batch being answered in this process."""

    token: str
    total: int
    answered: set[str]
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: list[Future[None]] = field(default_factory=list)
    refused: ProviderAccountRefused | None = None  # not yet raised by poll
    stopped: bool = False  # refused: its calls not yet made are never made

    def in_flight(self) -> bool:
        return any(not future.done() for future in self.pending)


class LiveBatches:
    """Small batches answered one live call at a time, spooled under ``spool_dir``.

    Args:
        spool_dir: a directory these batches own; created if missing.
        api: the platform's live call.
        answer: what a successful answer says (the platform's codec).
        concurrency: calls at once, across every live batch.
        attempts: tries per request before a throttled or failed call is recorded.
        backoff: seconds before the first retry; doubles each time.
    """

    def __init__(
        self,
        spool_dir: Path,
        api: LiveApi,
        answer: Callable[[str, Mapping[str, Any]], ProviderResult],
        *,
        concurrency: int = 4,
        attempts: int = 4,
        backoff: float = 2.0,
    ) -> None:
        self.spool_dir, self.api, self._answer = spool_dir, api, answer
        self.concurrency, self.attempts, self.backoff = concurrency, attempts, backoff
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        spool_dir.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """Stop making calls; wait for the ones in flight (their answers are recorded)."""
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    # -- the batch shape ---------------------------------------------------------

    def start(self, token: str, requests: Iterable[dict[str, Any]]) -> str:
        """Spool the requests (once per token) and start answering them; the batch id."""
        path = self._path(token, "requests")
        if not path.exists():
            _write_atomic(path, (encode_request(r) + b"\n" for r in requests))
        self._ensure(token)
        log.info("live.batch_started", token=token)
        return LIVE_PREFIX + token

    def find(self, token: str) -> str | None:
        """The id of the live batch spooled for ``token``, if there is one."""
        return LIVE_PREFIX + token if self._path(token, "requests").exists() else None

    def poll(self, batch_id: str) -> BatchStatus:
        """Ended once every request has an answer (or the batch was canceled and no call
        is in flight). Raises the account's refusal once, then resumes on a later poll,
        once the calls the refused run had in flight have ended (never one call twice)."""
        token = self._token(batch_id)
        run = self._ensure(token)
        if run.stopped and not run.in_flight():
            # Every call of the refused run has ended (answered or never made), so
            # the spool is the whole truth: a fresh run makes each missing call once.
            with self._lock:
                self._runs.pop(token, None)
            run = self._ensure(token)
        with run.lock:
            refused, run.refused = run.refused, None
            if refused is not None:
                run.stopped = True
            in_flight = run.in_flight()
            answered = len(run.answered)
        if refused is not None:
            for future in run.pending:
                future.cancel()
            raise refused
        canceled = self._path(run.token, "canceled").exists()
        ended = answered >= run.total or (canceled and not in_flight)
        counts = (("answered", answered), ("requests", run.total))
        return BatchStatus(ended, "ended" if ended else "in_progress", counts=counts)

    def results(self, batch_id: str) -> Iterator[ProviderResult]:
        """One result per answered request, from the spool."""
        token = self._token(batch_id)
        path = self._path(token, "answers")
        if not self._path(token, "requests").exists():
            raise ProviderRejected(f"no live batch {batch_id}")
        if not path.exists():
            return iter(())
        return self._read_answers(path)

    def cancel(self, batch_id: str) -> None:
        token = self._token(batch_id)
        if not self._path(token, "requests").exists():
            raise ProviderRejected(f"no live batch {batch_id}")
        self._path(token, "canceled").touch()
        log.info("live.cancel_requested", token=token)

    def delete(self, batch_id: str) -> None:
        token = self._token(batch_id)
        with self._lock:
            self._runs.pop(token, None)
        for kind in ("requests", "answers", "canceled"):
            self._path(token, kind).unlink(missing_ok=True)

    # -- calls ---------------------------------------------------------------------

    def _ensure(self, token: str) -> _Run:
        """The run of this batch in this process, started (or resumed) if need be."""
        with self._lock:
            run = self._runs.get(token)
            if run is not None:
                return run
            requests = self._path(token, "requests")
            if not requests.exists():
                raise ProviderRejected(f"no live batch {LIVE_PREFIX}{token}")
            _drop_torn_tail(self._path(token, "answers"))
            answered = set(self._answered(token))
            todo = [line for line in _lines(requests) if line["custom_id"] not in answered]
            run = _Run(token, total=len(todo) + len(answered), answered=answered)
            self._runs[token] = run
            if todo and not self._path(token, "canceled").exists():
                pool = self._executor()
                run.pending = [pool.submit(self._call, run, line) for line in todo]
            return run

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="live")
        return self._pool

    def _call(self, run: _Run, line: Mapping[str, Any]) -> None:
        """On a pool thread: one request, with retries; its answer or error is recorded."""
        custom_id, params = str(line["custom_id"]), line["params"]
        error: tuple[int, str] = (500, "not tried")
        for attempt in range(self.attempts):
            if (
                self._stop.is_set()
                or run.refused
                or run.stopped
                or self._path(run.token, "canceled").exists()
            ):
                return  # not called: the request stays unanswered
            try:
                answer = self.api.invoke(params)
            except ProviderAccountRefused as exc:
                run.refused = exc
                return
            except ProviderRejected as exc:
                error = (400, str(exc))
                break
            except ProviderRetryable as exc:
                error = (429 if "throttl" in str(exc).lower() else 500, str(exc))
                delay = exc.retry_after or min(MAX_BACKOFF_S, self.backoff * 2**attempt)
            except Exception as exc:  # noqa: BLE001 - the network and the unknown: try again
                error, delay = (500, f"{type(exc).__name__}: {exc}"), self.backoff * 2**attempt
            else:
                self._record(run, {"custom_id": custom_id, "answer": answer})
                return
            log.warning("live.call_failed", token=run.token, custom_id=custom_id,
                        error=error[1][:300], attempt=attempt + 1)  # fmt: skip
            if attempt + 1 < self.attempts and self._stop.wait(delay):
                return
        code, message = error
        self._record(run, {"custom_id": custom_id, "error": {"code": code, "message": message}})

    def _record(self, run: _Run, entry: dict[str, Any]) -> None:
        """Append one answer to the spool and fsync it before it counts."""
        line = encode_request(entry) + b"\n"
        with run.lock:
            with open(self._path(run.token, "answers"), "ab") as out:
                out.write(line)
                out.flush()
                os.fsync(out.fileno())
            run.answered.add(entry["custom_id"])

    # -- spool -----------------------------------------------------------------------

    def _read_answers(self, path: Path) -> Iterator[ProviderResult]:
        for line in _lines(path):
            custom_id = str(line.get("custom_id", ""))
            error = line.get("error")
            if isinstance(error, Mapping):
                code = int(error.get("code") or 500)
                yield ProviderResult(
                    custom_id, ResultKind.ERRORED, error_type=error_type(code),
                    error_message=str(error.get("message") or "")[:2000],
                )  # fmt: skip
            else:
                yield self._answer(custom_id, line.get("answer") or {})

    def _answered(self, token: str) -> Iterator[str]:
        path = self._path(token, "answers")
        if path.exists():
            yield from (str(line.get("custom_id")) for line in _lines(path))

    def _path(self, token: str, kind: str) -> Path:
        return self.spool_dir / f"{token}.{kind}.jsonl"

    @staticmethod
    def _token(batch_id: str) -> str:
        token = batch_id.removeprefix(LIVE_PREFIX)
        if not is_live(batch_id) or not _TOKEN_RE.fullmatch(token):
            raise ProviderRejected(f"not a live batch id: {batch_id[:80]!r}")
        return token


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON lines of a spool file; a torn last line (a crash mid-write) is skipped."""
    with open(path, "rb") as spool:
        for raw in spool:
            if not raw.endswith(b"\n"):
                return
            try:
                yield json.loads(raw)
            except ValueError:
                continue


def _drop_torn_tail(path: Path) -> None:
    """Cut a line a crash left half-written, so answers appended next start on a line
    of their own (glued to it, the next answer would be lost, and paid again)."""
    if not path.exists():
        return
    with open(path, "r+b") as spool:
        size = spool.seek(0, os.SEEK_END)
        keep = size
        while keep > 0:
            spool.seek(max(0, keep - 4096))
            block = spool.read(keep - max(0, keep - 4096))
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = max(0, keep - len(block)) + newline + 1
                break
            keep = max(0, keep - 4096)
        if keep < size:
            spool.truncate(keep)
            spool.flush()
            os.fsync(spool.fileno())


def _write_atomic(path: Path, lines: Iterable[bytes]) -> None:
    """Write a new file in full, or not at all (temp file, fsync, rename, fsync the folder)."""
    temp = path.with_name(f".{path.name}.part")
    with open(temp, "wb") as out:
        for line in lines:
            out.write(line)
        out.flush()
        os.fsync(out.fileno())
    temp.replace(path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
