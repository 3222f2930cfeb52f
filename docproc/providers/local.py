"""The ``local`` provider: offline, free, no key, deterministic — and a real batch API.

It answers with the extractive summariser in :mod:`docproc.providers.summarize`,
but it behaves like a remote batch service, so the daemon runs the same path
with it as with Anthropic:

* ``submit`` writes the batch to a spool directory it owns, atomically (temp
  file, fsync, rename, fsync of the directory), and returns an id such as
  ``localbatch_<32 hex>``. Batches therefore survive a daemon restart: a new
  instance on the same directory polls and streams them.
* A batch ends on a later ``poll``, once it is ``min_age`` seconds old (0 by
  default): never inside ``submit``.
* ``results`` reads the spool line by line and summarises as it goes, so
  memory stays flat in the number of requests. A request with malformed
  params, or with no text, is ``errored`` with ``invalid_request_error``,
  as Anthropic validates params only after the batch ends.
* ``cancel`` marks a batch canceled; its results are then all ``canceled``.
  (Unlike Anthropic, a cancel here wins even after the batch ended.)

Spool layout: ``<spool>/<batch id>.jsonl`` holds a header line (the id and the
creation time) then one request per line, exactly as submitted;
``<batch id>.canceled`` marks a canceled batch; ``.<batch id>.part`` is a
submit in progress (or interrupted by a crash, removed after an hour).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import structlog

from docproc.errors import ProviderRejected, ProviderRetryable
from docproc.models import BatchStatus, JobRequest, ProviderResult, ResultKind, TaskSpec, Usage
from docproc.providers.base import ProviderLimits, Ticket, encode_request, is_valid_custom_id
from docproc.providers.messages import cut_text
from docproc.providers.summarize import summarize

MODEL = "local-extractive-1"
SPOOL_FORMAT = 1
STALE_TEMP_SECONDS = 3600.0
INVALID = "invalid_request_error"

_BATCH_ID_RE = re.compile(r"localbatch_[0-9a-f]{32}")
_INT_PARAMS = ("max_tokens", "summary_sentences", "max_highlights")

log = structlog.get_logger()


class LocalProvider:
    """Batches summarised on this machine, spooled under ``spool_dir``.

    Args:
        spool_dir: a directory this provider owns; created if missing.
        min_age: seconds after submission before a batch reports ended.
        clock: wall-clock seconds (epoch); replaceable in tests.
    """

    name = "local"
    limits = ProviderLimits()

    def __init__(
        self, spool_dir: Path, *, min_age: float = 0.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.spool_dir = spool_dir
        self.min_age = min_age
        self._clock = clock
        spool_dir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temp_files()

    # -- the Provider protocol ---------------------------------------------------

    def build_request(self, job: JobRequest, task: TaskSpec) -> dict[str, Any]:
        """Return ``{"custom_id", "params": {model, max_tokens, ..., title, text}}``."""
        text, _ = cut_text(job.text, task.max_input_chars)
        params = {
            "model": task.model,
            "max_tokens": job.max_tokens or task.max_tokens,
            "summary_sentences": task.summary_sentences,
            "max_highlights": task.max_highlights,
            "title": job.title,
            "text": text,
        }
        return {"custom_id": job.custom_id, "params": params}

    def submit(self, requests: Iterable[dict[str, Any]], ticket: Ticket | None = None) -> str:
        """Spool the requests as a new batch and return its id.

        Raises:
            ProviderRejected: no requests, a bad or duplicate custom_id, a
                request that is not JSON, or more than :attr:`limits` allow.
                Nothing is left in the spool then.
        """
        batch_id = f"localbatch_{uuid.uuid4().hex}"
        header = {"local_batch": SPOOL_FORMAT, "id": batch_id, "created_at": self._clock()}
        temp = self.spool_dir / f".{batch_id}.part"
        try:
            with open(temp, "wb") as out:
                out.write(encode_request(header) + b"\n")
                count = _write_requests(out, requests, self.limits)
                out.flush()
                os.fsync(out.fileno())
            temp.replace(self._path(batch_id))
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.spool_dir)
        log.info("local.batch_submitted", batch_id=batch_id, requests=count)
        return batch_id

    def poll(self, batch_id: str) -> BatchStatus:
        """Ended once ``min_age`` seconds old, or canceled; else in progress."""
        created_at = self._created_at(batch_id)
        if self._is_canceled(batch_id) or self._clock() - created_at >= self.min_age:
            return BatchStatus(ended=True, state="ended")
        return BatchStatus(ended=False, state="in_progress")

    def results(self, batch_id: str) -> Iterator[ProviderResult]:
        """Stream one result per request, in spool order (callers must not rely on it).

        Raises:
            ProviderRejected: (at call time) the batch is unknown or has not ended.
        """
        if not self.poll(batch_id).ended:
            raise ProviderRejected(f"batch {batch_id} has not ended")
        return self._stream(batch_id, canceled=self._is_canceled(batch_id))

    def cancel(self, batch_id: str) -> None:
        """Mark the batch canceled; idempotent."""
        self._created_at(batch_id)  # unknown -> ProviderRejected
        marker = self._marker(batch_id)
        if not marker.exists():
            marker.touch()
            _fsync_dir(self.spool_dir)
        log.info("local.batch_canceled", batch_id=batch_id)

    def delete(self, batch_id: str) -> None:
        """Remove an ended batch from the spool; a batch already gone is fine.

        Raises:
            ProviderRejected: the batch has not ended (cancel it first).
        """
        if not _BATCH_ID_RE.fullmatch(batch_id) or not self._path(batch_id).exists():
            return
        if not self.poll(batch_id).ended:
            raise ProviderRejected(f"batch {batch_id} has not ended; cancel it first")
        self._path(batch_id).unlink(missing_ok=True)
        self._marker(batch_id).unlink(missing_ok=True)
        _fsync_dir(self.spool_dir)

    def find_batch(
        self,
        custom_ids: Sequence[str],
        created_after: datetime,
        exclude: Set[str] = frozenset(),
        ticket: Ticket | None = None,
    ) -> str | None:
        """Return the newest spooled batch created after ``created_after`` whose
        first request has ``custom_ids[0]``, or None.

        The pipeline submits a batch's requests in the order it recorded them,
        so the first custom_id identifies the batch.

        Raises:
            ValueError: ``created_after`` is naive.
        """
        if created_after.tzinfo is None:
            raise ValueError("created_after must be timezone-aware")
        if not custom_ids:
            return None
        after = created_after.timestamp()
        found: list[tuple[float, str]] = []
        for path in self.spool_dir.glob("localbatch_*.jsonl"):
            head = _read_head(path)
            if path.stem in exclude:
                continue
            if head is not None and head[0] >= after and head[1] == custom_ids[0]:
                found.append((head[0], path.stem))
        return max(found)[1] if found else None

    # -- spool helpers -------------------------------------------------------------

    def _path(self, batch_id: str) -> Path:
        return self.spool_dir / f"{batch_id}.jsonl"

    def _marker(self, batch_id: str) -> Path:
        return self.spool_dir / f"{batch_id}.canceled"

    def _is_canceled(self, batch_id: str) -> bool:
        return self._marker(batch_id).exists()

    def _created_at(self, batch_id: str) -> float:
        """The batch's creation time; ProviderRejected if it is not in the spool."""
        if not _BATCH_ID_RE.fullmatch(batch_id):
            raise ProviderRejected(f"unknown batch {batch_id[:80]!r}")
        try:
            with open(self._path(batch_id), "rb") as spool:
                header = json.loads(spool.readline())
        except FileNotFoundError as exc:
            raise ProviderRejected(f"unknown batch {batch_id}") from exc
        except OSError as exc:
            raise ProviderRetryable(f"batch {batch_id}: spool unreadable: {exc}") from exc
        except ValueError as exc:
            raise ProviderRejected(f"batch {batch_id}: spool header damaged") from exc
        if not isinstance(header, dict) or header.get("id") != batch_id:
            raise ProviderRejected(f"batch {batch_id}: spool header damaged")
        return float(header["created_at"])

    def _stream(self, batch_id: str, *, canceled: bool) -> Iterator[ProviderResult]:
        with open(self._path(batch_id), "rb") as spool:
            spool.readline()  # the header
            for number, line in enumerate(spool, start=2):
                try:
                    request = json.loads(line)
                    custom_id = str(request["custom_id"])
                except (ValueError, TypeError, KeyError) as exc:
                    raise ProviderRejected(f"batch {batch_id}: line {number} damaged") from exc
                if canceled:
                    yield ProviderResult(custom_id=custom_id, kind=ResultKind.CANCELED)
                else:
                    yield answer(custom_id, request.get("params"))

    def _remove_stale_temp_files(self) -> None:
        """Remove submits a crash interrupted; a live one is never an hour old."""
        cutoff = time.time() - STALE_TEMP_SECONDS
        for temp in self.spool_dir.glob(".localbatch_*.part"):
            try:
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()
            except FileNotFoundError:
                continue


def answer(custom_id: str, raw_params: object) -> ProviderResult:
    """Summarise one request's params into a result (``errored`` if malformed)."""
    params = _checked(raw_params)
    if isinstance(params, str):
        return _errored(custom_id, params)
    text: str = params["text"]
    if not text.strip():
        return _errored(custom_id, "no text to summarise")
    try:
        summary = summarize(
            text,
            summary_sentences=params["summary_sentences"],
            max_highlights=params["max_highlights"],
        )
    # A remote service reports its own failure on one request as an errored
    # result, not by failing the batch; so does this one (retryable: api_error).
    except Exception as exc:
        log.exception("local.summarise_failed", custom_id=custom_id)
        return _errored(custom_id, f"internal error: {type(exc).__name__}", kind="api_error")
    out_chars = len(summary.summary) + sum(len(h.quote) + len(h.why) for h in summary.highlights)
    usage = Usage(
        input_tokens=_tokens(len(text) + len(params.get("title", ""))),
        output_tokens=_tokens(out_chars),
    )
    return ProviderResult(
        custom_id=custom_id,
        kind=ResultKind.SUCCEEDED,
        summary=summary.summary,
        highlights=summary.highlights,
        usage=usage,
        model=MODEL,
        stop_reason="end_turn",
    )


def _checked(params: object) -> dict[str, Any] | str:
    """The params if well formed, else what is wrong with them, in Anthropic's words."""
    if not isinstance(params, dict):
        return "params: must be an object"
    if params.get("model") != MODEL:
        return f"model: {str(params.get('model'))[:80]!r} is not served here (use {MODEL!r})"
    for key in _INT_PARAMS:
        value = params.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return f"{key}: must be an integer >= 1"
    if not isinstance(params.get("text"), str):
        return "text: field required, must be a string"
    if not isinstance(params.get("title", ""), str):
        return "title: must be a string"
    return params


def _errored(custom_id: str, message: str, *, kind: str = INVALID) -> ProviderResult:
    return ProviderResult(
        custom_id=custom_id, kind=ResultKind.ERRORED, error_type=kind, error_message=message
    )


def _tokens(chars: int) -> int:
    """A rough token estimate: four characters a token."""
    return math.ceil(chars / 4)


def _write_requests(
    out: IO[bytes], requests: Iterable[Mapping[str, Any]], limits: ProviderLimits
) -> int:
    """Validate the envelope of each request as it is written; return the count."""
    seen: set[str] = set()
    size = 0
    for request in requests:
        custom_id = request.get("custom_id") if isinstance(request, Mapping) else None
        if not is_valid_custom_id(custom_id):
            raise ProviderRejected(f"requests.{len(seen)}.custom_id: invalid {custom_id!r:.80}")
        if custom_id in seen:
            raise ProviderRejected(f"requests.{len(seen)}.custom_id: duplicate {custom_id}")
        seen.add(str(custom_id))
        try:
            line = encode_request(request) + b"\n"
        except (TypeError, ValueError) as exc:
            raise ProviderRejected(f"requests.{len(seen) - 1}: not JSON: {exc}") from exc
        size += len(line)
        if len(seen) > limits.max_requests or size > limits.max_bytes:
            raise ProviderRejected(f"batch over the limit of {limits}")
        out.write(line)
    if not seen:
        raise ProviderRejected("requests: a batch needs at least one request")
    return len(seen)


def _read_head(path: Path) -> tuple[float, str] | None:
    """``(created_at, first custom_id)`` of a spool file, or None if unreadable."""
    try:
        with open(path, "rb") as spool:
            header = json.loads(spool.readline())
            first = json.loads(spool.readline() or b"{}")
        return float(header["created_at"]), str(first.get("custom_id"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
