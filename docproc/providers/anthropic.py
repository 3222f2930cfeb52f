"""The ``anthropic`` provider: Claude Message Batches spoken directly over httpx.

Endpoints and behaviour: reference/BATCH_APIS.md §1. What this adapter adds:

* **No blind retries.** Each call is made once; the caller (the dispatcher)
  owns backoff. A failure is classified: ``ProviderRetryable`` (429, 529,
  5xx, 408, 409, network errors; ``retry_after`` from ``retry-after-ms`` or
  ``retry-after``), ``ProviderRejected`` (other 4xx: retrying cannot help).
  A create that may have reached the API (a timeout or dropped connection
  after the body was sent, a 5xx) raises :class:`CreateOutcomeUnknown`, so
  the batch is reconciled through the list endpoint before it is sent again.
* **The body is streamed.** ``submit`` writes the requests to a temporary
  file under ``spool_dir`` (one pass over the documents), checks the exact
  size against the 256 MB limit, then sends the file in 1 MiB chunks with a
  Content-Length: memory stays flat whatever the batch size.
* **A just-created batch may 404 for a while** (GH-1432): within
  ``not_found_grace`` seconds of its creation, a 404 is retryable. For the
  same reason the list may not show it at once: within ``list_settle``
  seconds of a create whose outcome is unknown, a reconciliation that finds
  nothing is retryable rather than "not created" (a create sent again then
  would be a second batch, paid twice).
* **Results are streamed** line by line from ``results_url`` exactly as given
  (absolute or relative to the base URL). A stream that ends with fewer
  requests than the batch's ``request_counts`` add up to was cut (a body
  closed early looks complete to HTTP when it is delimited by the close):
  it raises ``ProviderRetryable`` after yielding what it read, so the results
  are read again rather than the missing requests sent (and paid) again. The
  same short count three times running is taken as the API's final word.

The API key is sent in ``x-api-key`` and appears in no log, message or repr.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence, Set
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import structlog

from docproc.errors import (
    ProviderAccountRefused,
    ProviderError,
    ProviderRejected,
    ProviderRetryable,
)
from docproc.models import BatchStatus, JobRequest, ProviderResult, TaskSpec
from docproc.providers.anthropic_body import chunks, request_count, safe, when, write_body
from docproc.providers.base import ProviderLimits, Ticket
from docproc.providers.messages import build_params, parse_result, system_text

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
BATCHES = "/v1/messages/batches"
COUNT_TOKENS = "/v1/messages/count_tokens"
LIST_PAGE = 100
LIST_MAX_PAGES = 50
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_RETRY_AFTER_S = 3600.0
SHORT_READS_ACCEPTED = 3  # the same short results stream this many times: it is all there is

log = structlog.get_logger()


class CreateOutcomeUnknown(ProviderError):  # noqa: N818 - named for what the caller must do
    """The create request may have reached the API: reconcile before sending it again."""


class NotFound(ProviderRejected):
    """The API does not know this batch (404)."""


class AnthropicProvider:
    """Message Batches client.

    Args:
        api_key: sent as ``x-api-key``; never logged.
        base_url: the API root (a gateway, a proxy, or a test server).
        spool_dir: where a create body is staged before it is sent.
        timeout: seconds for reading a response (connect: 10 s).
        not_found_grace: seconds after creation during which a 404 is retryable.
        list_settle: seconds after an unknown create during which finding nothing
            in the list is retryable.
    """

    name = "anthropic"
    limits = ProviderLimits()

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        spool_dir: Path,
        timeout: float = 600.0,
        not_found_grace: float = 120.0,
        list_settle: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.spool_dir = spool_dir
        self.not_found_grace, self.list_settle = not_found_grace, list_settle
        self._unknown_at = float("-inf")  # monotonic time of the last unknown create
        self._created: dict[str, float] = {}  # batch id -> monotonic time this process saw it
        self._short: dict[str, tuple[int, int]] = {}  # batch id -> (results read, times)
        self._system: tuple[str, str] | None = None  # (task fingerprint, system text)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "x-api-key": api_key,
                "anthropic-version": API_VERSION,
                "user-agent": "docproc",
            },
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )
        spool_dir.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"AnthropicProvider(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    # -- requests ------------------------------------------------------------------

    def build_request(self, job: JobRequest, task: TaskSpec) -> dict[str, Any]:
        return {"custom_id": job.custom_id, "params": build_params(job, task, self._text(task))}

    def _text(self, task: TaskSpec) -> str:
        if self._system is None or self._system[0] != task.fingerprint:
            self._system = (task.fingerprint, system_text(task))
        return self._system[1]

    # -- the Provider protocol -----------------------------------------------------

    def submit(self, requests: Iterable[dict[str, Any]], ticket: Ticket | None = None) -> str:
        """Stage the body in a temporary file, then create the batch.

        Raises:
            ProviderRejected: no requests, a bad custom_id, over a limit, or a 4xx.
            ProviderRetryable: certainly not created (429, 529, connection refused).
            CreateOutcomeUnknown: it may have been created.
        """
        with tempfile.TemporaryFile(dir=self.spool_dir, prefix="create-") as body:
            count, size = write_body(body, requests, self.limits)
            body.seek(0)
            headers = {"content-type": "application/json", "content-length": str(size)}
            try:
                response = self._http.post(BATCHES, content=chunks(body), headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise ProviderRetryable(f"create: cannot connect: {_describe(exc)}") from exc
            except httpx.TransportError as exc:
                raise self._unknown(f"create: {_describe(exc)}") from exc
        if response.status_code >= 500 and response.status_code != 529:
            raise self._unknown(f"create: HTTP {response.status_code}: {_message(response)}")
        batch = self._json(response, "create")
        batch_id = str(batch.get("id") or "")
        if not batch_id:
            raise self._unknown("create: the response has no batch id")
        self._created[batch_id] = time.monotonic()
        log.info("anthropic.batch_created", provider_batch_id=batch_id, requests=count, bytes=size)
        return batch_id

    def poll(self, batch_id: str) -> BatchStatus:
        batch = self._retrieve(batch_id)
        state = str(batch.get("processing_status") or "")
        return BatchStatus(ended=state == "ended", state=state or "unknown")

    def results(self, batch_id: str) -> Iterator[ProviderResult]:
        """Stream the results of an ended batch.

        Raises (at call time): ``ProviderRejected`` if the batch is unknown or
        has not ended; ``ProviderRetryable`` on a transient failure.
        """
        batch = self._retrieve(batch_id)
        url = batch.get("results_url")
        if batch.get("processing_status") != "ended" or not isinstance(url, str) or not url:
            raise ProviderRejected(f"batch {batch_id} has not ended")
        return self._stream_results(batch_id, url, request_count(batch.get("request_counts")))

    def cancel(self, batch_id: str) -> None:
        self._call("POST", f"{BATCHES}/{safe(batch_id)}/cancel", "cancel", batch_id)
        log.info("anthropic.batch_cancel_requested", provider_batch_id=batch_id)

    def delete(self, batch_id: str) -> None:
        """Delete an ended batch; one the API no longer knows is already deleted."""
        self._created.pop(batch_id, None)  # a 404 now means "already deleted"
        try:
            self._call("DELETE", f"{BATCHES}/{safe(batch_id)}", "delete", batch_id)
        except NotFound:
            return

    def find_batch(
        self,
        custom_ids: Sequence[str],
        created_after: datetime,
        exclude: Set[str] = frozenset(),
        ticket: Ticket | None = None,
    ) -> str | None:
        """The batch created after ``created_after`` with as many requests as
        ``custom_ids``, not in ``exclude`` (ids the ledger already holds).

        The list endpoint shows counts, not custom_ids (those come only with
        the results), so a match is by creation window and request count; of
        several, the oldest (the first create attempt) is taken.

        Raises:
            ValueError: ``created_after`` is naive.
        """
        if created_after.tzinfo is None:
            raise ValueError("created_after must be timezone-aware")
        matches: list[tuple[datetime, str]] = []
        for batch in self._list_since(created_after):
            total = request_count(batch.get("request_counts"))
            batch_id = str(batch.get("id") or "")
            if total == len(custom_ids) and batch_id and batch_id not in exclude:
                matches.append((when(batch.get("created_at")) or created_after, batch_id))
        if not matches:
            settling = self.list_settle - (time.monotonic() - self._unknown_at)
            if settling > 0:
                raise ProviderRetryable(
                    "reconcile: no batch in the list yet; a batch created moments ago may not"
                    " show in it yet", retry_after=settling,
                )  # fmt: skip
            return None
        found = min(matches)[1]
        self._created.setdefault(found, time.monotonic())
        return found

    def count_tokens(self, request: dict[str, Any]) -> int:
        """Input tokens of one request, by ``POST /v1/messages/count_tokens`` (§1.11): the
        Messages body without ``max_tokens``. Free; its own rate limit; an estimate."""
        body = {k: v for k, v in request["params"].items() if k != "max_tokens"}
        try:
            response = self._http.post(COUNT_TOKENS, json=body)
        except httpx.TransportError as exc:
            raise ProviderRetryable(f"count_tokens: {_describe(exc)}") from exc
        count = self._json(response, "count_tokens").get("input_tokens")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ProviderRetryable("count_tokens: the response has no input_tokens")
        return count

    # -- transport -------------------------------------------------------------------

    def _unknown(self, message: str) -> CreateOutcomeUnknown:
        self._unknown_at = time.monotonic()
        return CreateOutcomeUnknown(message)

    def _retrieve(self, batch_id: str) -> dict[str, Any]:
        return self._call("GET", f"{BATCHES}/{safe(batch_id)}", "retrieve", batch_id)

    def _list_since(self, created_after: datetime) -> Iterator[dict[str, Any]]:
        params: dict[str, str | int] = {"limit": LIST_PAGE}
        for _ in range(LIST_MAX_PAGES):
            page = self._call("GET", BATCHES, "list", None, params=params)
            data = page.get("data")
            for batch in data if isinstance(data, list) else []:
                created = when(batch.get("created_at")) if isinstance(batch, dict) else None
                if created is None:
                    continue
                if created < created_after:
                    return  # newest first: the rest are older
                yield batch
            last = page.get("last_id")
            if not page.get("has_more") or not isinstance(last, str):
                return
            params = {"limit": LIST_PAGE, "after_id": last}

    def _stream_results(self, batch_id: str, url: str, total: int) -> Iterator[ProviderResult]:
        seen: set[str] = set()
        try:
            with self._http.stream("GET", url, headers={"accept": "application/binary"}) as resp:
                if resp.status_code != 200:
                    resp.read()
                    self._check(resp, "results", batch_id)
                for line in resp.iter_lines():
                    if line.strip():
                        yield from self._parsed(batch_id, line, seen)
        except httpx.TransportError as exc:
            raise ProviderRetryable(f"results of {batch_id}: {_describe(exc)}") from exc
        self._check_complete(batch_id, len(seen), total)

    @staticmethod
    def _parsed(batch_id: str, line: str, seen: set[str]) -> Iterator[ProviderResult]:
        """The result of one line; a bad line is logged (its request counts as missing)."""
        try:
            data = json.loads(line)
        except ValueError:  # a line cut short: not counted, so the stream is read again
            log.warning("anthropic.bad_result_line", provider_batch_id=batch_id,
                        error="not JSON", line=line[:80])  # fmt: skip
            return
        custom_id = data.get("custom_id") if isinstance(data, dict) else None
        if isinstance(custom_id, str):
            seen.add(custom_id)
        try:
            yield parse_result(data)
        except ValueError as exc:
            log.warning("anthropic.bad_result_line", provider_batch_id=batch_id,
                        error=str(exc)[:200])  # fmt: skip

    def _check_complete(self, batch_id: str, read: int, total: int) -> None:
        """Raise ProviderRetryable when the stream held fewer requests than the batch."""
        if total <= 0 or read >= total:
            self._short.pop(batch_id, None)
            return
        last, times = self._short.get(batch_id, (-1, 0))
        times = times + 1 if last == read else 1
        self._short[batch_id] = (read, times)
        if times >= SHORT_READS_ACCEPTED:
            log.error("anthropic.results_incomplete", provider_batch_id=batch_id, read=read,
                      total=total, times=times)  # fmt: skip
            self._short.pop(batch_id, None)
            return
        raise ProviderRetryable(
            f"results of {batch_id}: the stream ended after {read} of {total} requests"
            " (cut short); reading it again"
        )

    def _call(
        self,
        method: str,
        path: str,
        op: str,
        batch_id: str | None,
        params: dict[str, str | int] | None = None,
    ) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, params=params)
        except httpx.TransportError as exc:
            raise ProviderRetryable(f"{op}: {_describe(exc)}") from exc
        return self._json(response, op, batch_id)

    def _check(self, response: httpx.Response, op: str, batch_id: str | None) -> None:
        status = response.status_code
        if status < 400:
            return
        detail = f"{op}: HTTP {status}: {_message(response)}"
        if status in RETRYABLE_STATUS or response.headers.get("x-should-retry") == "true":
            raise ProviderRetryable(detail, retry_after=_retry_after(response))
        if status == 404:
            seen = self._created.get(batch_id or "")
            if seen is not None and time.monotonic() - seen < self.not_found_grace:
                raise ProviderRetryable(f"{detail} (just created; retrying)", retry_after=2.0)
            raise NotFound(detail)
        if status in (401, 402, 403):
            raise ProviderAccountRefused(detail)
        raise ProviderRejected(detail)

    def _json(
        self, response: httpx.Response, op: str, batch_id: str | None = None
    ) -> dict[str, Any]:
        """The response's JSON object, once :meth:`_check` has classified any error status."""
        self._check(response, op, batch_id)
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderRetryable(f"{op}: the response is not JSON") from exc
        if not isinstance(data, dict):
            raise ProviderRetryable(f"{op}: the response is not a JSON object")
        return data


def _retry_after(response: httpx.Response) -> float | None:
    """The server's wait hint: ``retry-after-ms``, or ``retry-after`` (seconds or a date)."""
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return min(MAX_RETRY_AFTER_S, max(0.0, float(headers["retry-after-ms"]) / 1000))
        if "retry-after" in headers:
            value = headers["retry-after"]
            try:
                seconds = float(value)
            except ValueError:
                seconds = parsedate_to_datetime(value).timestamp() - time.time()
            return min(MAX_RETRY_AFTER_S, max(0.0, seconds))
    except (ValueError, TypeError):
        return None
    return None


def _message(response: httpx.Response) -> str:
    """The API's error message, or the start of the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {str(error.get('message', ''))[:500]}"
    return str(data)[:200]


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
