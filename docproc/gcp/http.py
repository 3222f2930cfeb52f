"""Google's REST APIs over httpx: a bearer token on every call, answers as plain values.

The only module of the :mod:`docproc.gcp` package that imports httpx (the
Anthropic provider has its own client). It knows nothing of jobs or objects:
:mod:`.storage` and :mod:`.vertex` give each answer its meaning.

* Every call is made once, except that a 401 (an access token revoked or
  expired early) makes the token source fetch a new token and the call is
  sent once more, when its body can be sent again.
* An answer of any status comes back as a :class:`Reply`; a call that got no
  answer raises :class:`Unreached`, saying whether the request may have
  reached the server (``sent``): a create that may have been made must be
  reconciled, not repeated.
* Google's error body ``{"error": {"code", "message", "status", "errors"}}``
  is read by :func:`error_of`; ``Retry-After`` by :func:`retry_after`.

The token is never logged: it is masked in log lines (the token sources
remember it in :mod:`docproc.redaction`) and appears in no message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from docproc.errors import DocprocError

READ_CHUNK = 1 << 20
MAX_RETRY_AFTER_S = 3600.0
MAX_LINE_BYTES = 256 << 20  # one JSONL line of a result file; longer is not a result


class TokenSource(Protocol):
    """Bearer tokens (:mod:`docproc.gcp.auth`)."""

    def token(self) -> str:
        """A token valid for a while yet; "" sends the call without one (an emulator)."""
        ...

    def refused(self) -> None:
        """The server refused the last token: fetch a new one for the next call."""
        ...


class Unreached(DocprocError):  # noqa: N818 - named for what happened to the call
    """No answer came: cannot connect, a timeout, a dropped connection.

    ``sent``: the request may have reached the server (a create may have been made).
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer, read whole."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON; None when it is not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


# A body that can be sent again (after a 401): a function making a fresh stream of it.
Body = Callable[[], Iterable[bytes]]


class GoogleHttp:
    """One connection pool for Google's APIs, authenticated by ``tokens`` (None: anonymous).

    Args:
        tokens: where bearer tokens come from.
        timeout: seconds to wait for an answer (connect: 10 s).
        transport: an httpx transport (tests may pass one; the default is the network).
    """

    def __init__(
        self,
        tokens: TokenSource | None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.tokens = tokens
        self._http = httpx.Client(
            headers={"user-agent": "docproc"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            follow_redirects=False,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"GoogleHttp(authenticated={self.tokens is not None})"

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content: Body | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One call; ``body`` is sent as JSON, or ``content`` as bytes. Raises Unreached."""
        for attempt in (1, 2):
            sent = {**(headers or {}), **self._auth()}
            stream = content() if content is not None else None
            try:
                response = self._http.request(
                    method, url, params=params, json=body, content=stream, headers=sent
                )
            except httpx.TransportError as exc:
                raise _unreached(method, url, exc) from exc
            if response.status_code == 401 and attempt == 1 and self.tokens is not None:
                self.tokens.refused()
                continue
            return Reply(response.status_code, dict(response.headers), response.content)
        raise AssertionError("unreachable")  # pragma: no cover

    def lines(
        self, url: str, *, params: Mapping[str, str] | None = None, failed: Callable[[Reply], None]
    ) -> Iterator[bytes]:
        """The lines of a GET's body, streamed (memory flat), without their newlines.

        An answer other than 200 is handed to ``failed`` (which raises); a
        connection lost midway raises Unreached.
        """
        for attempt in (1, 2):
            try:
                with self._http.stream("GET", url, params=params, headers=self._auth()) as response:
                    if response.status_code == 401 and attempt == 1 and self.tokens is not None:
                        self.tokens.refused()
                        continue
                    if response.status_code != 200:
                        response.read()
                        failed(Reply(response.status_code, dict(response.headers),
                                     response.content))  # fmt: skip
                        return
                    yield from _split(response.iter_bytes(READ_CHUNK))
                    return
            except httpx.TransportError as exc:
                raise _unreached("GET", url, exc) from exc

    def _auth(self) -> dict[str, str]:
        token = self.tokens.token() if self.tokens is not None else ""
        return {"authorization": f"Bearer {token}"} if token else {}


def error_of(reply: Reply) -> tuple[str, str]:
    """(status word, message) of an error answer: ``("RESOURCE_EXHAUSTED", "Quota ...")``.

    Google's APIs answer ``{"error": {"code", "message", "status"}}``; Cloud
    Storage's JSON API may give ``errors[].reason`` instead of ``status``.
    """
    data = reply.json()
    error = data.get("error") if isinstance(data, Mapping) else None
    if not isinstance(error, Mapping):
        text = reply.body[:300].decode("utf-8", "replace").strip()
        return "", text or f"HTTP {reply.status}"
    status = str(error.get("status") or "")
    if not status:
        reasons = [e.get("reason") for e in error.get("errors") or () if isinstance(e, Mapping)]
        status = str(reasons[0] or "") if reasons else ""
    message = " ".join(str(error.get("message") or "").split())[:1000]
    return status, message or f"HTTP {reply.status}"


def retry_after(reply: Reply) -> float | None:
    """Seconds the server asks to wait (``Retry-After``: seconds or an HTTP date)."""
    value = reply.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (moment - datetime.now(UTC)).total_seconds()
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


def _unreached(method: str, url: str, exc: httpx.TransportError) -> Unreached:
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    what = "no answer" if sent else "cannot connect"
    detail = str(exc) or type(exc).__name__
    return Unreached(f"{method} {url.split('?')[0]}: {what}: {detail}", sent=sent)


def _split(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines of a stream of chunks, without their newlines (a last line without one too)."""
    tail = b""
    for chunk in chunks:
        if not chunk:
            continue
        parts = (tail + chunk).split(b"\n")
        tail = parts.pop()
        if len(tail) > MAX_LINE_BYTES:
            raise Unreached(f"a line longer than {MAX_LINE_BYTES} bytes", sent=True)
        yield from parts
    if tail:
        yield tail
