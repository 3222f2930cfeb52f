"""Reading a create body as a stream: Content-Length or chunked, request by request."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from email.message import Message
from typing import Any, Protocol

from tests.batchserver.planned import PlannedRequest, plan_request
from tests.batchserver.store import StoreSettings
from tests.batchserver.wire import CUSTOM_ID_RE, READ_BLOCK, WHITESPACE, ApiError, invalid


class _Reader(Protocol):
    """The buffered socket file a handler reads requests from."""

    def read(self, size: int, /) -> bytes: ...

    def readline(self, size: int, /) -> bytes: ...


class BodyStream:
    """One request's body bytes, unframed from Content-Length or chunked encoding.

    ``read`` stops with a 413 once more than ``max_bytes`` arrived; ``drain``
    reads what is left (so the connection stays usable) without that cap.
    """

    def __init__(self, rfile: _Reader, headers: Message, max_bytes: int) -> None:
        self._rfile = rfile
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.declared = 0 if self.chunked else _content_length(headers)
        self._remaining = self.declared
        self._chunk_left = 0
        self._done = not self.chunked and self.declared == 0
        self.received = 0
        self.max_bytes = max_bytes
        self.broken = False

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes (fewer only at the end); ``b""`` at the end."""
        parts: list[bytes] = []
        wanted = size
        while wanted > 0 and not self._done:
            piece = self._read_some(wanted)
            parts.append(piece)
            wanted -= len(piece)
        data = b"".join(parts)
        self.received += len(data)
        if self.received > self.max_bytes:
            raise too_large(self.max_bytes)
        return data

    def drain(self) -> None:
        """Read and discard the rest of the body."""
        while not self._done and not self.broken:
            self._read_some(READ_BLOCK)

    def _read_some(self, size: int) -> bytes:
        if not self.chunked:
            data = self._exact(min(size, self._remaining))
            self._remaining -= len(data)
            self._done = self._remaining == 0
            return data
        if self._chunk_left == 0:
            self._next_chunk()
            if self._done:
                return b""
        data = self._exact(min(size, self._chunk_left))
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._expect(b"\r\n")
        return data

    def _next_chunk(self) -> None:
        line = self._rfile.readline(1024)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise self._framing(f"bad chunk size line {line[:40]!r}") from None
        if size > 0:
            self._chunk_left = size
            return
        while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        self._done = True

    def _exact(self, size: int) -> bytes:
        data = self._rfile.read(size)
        if len(data) < size:
            raise ConnectionError("client closed the connection mid-body")
        return data

    def _expect(self, marker: bytes) -> None:
        if self._rfile.read(len(marker)) != marker:
            raise self._framing("chunk not followed by CRLF")

    def _framing(self, message: str) -> ApiError:
        self.broken = True
        return invalid(f"malformed chunked body: {message}")


def _content_length(headers: Message) -> int:
    raw = headers.get("content-length")
    try:
        return int(raw) if raw else 0
    except ValueError:
        raise invalid(f"bad content-length {raw!r}") from None


def too_large(limit: int) -> ApiError:
    message = f"Request exceeds the maximum size of {limit} bytes"
    return ApiError(413, "request_too_large", message, violation=True)


class JsonScanner:
    """Reads JSON values off a body stream a piece at a time (never the whole body).

    The buffer grows by at least its own size when a value is incomplete, so
    a value larger than a block costs a bounded number of retries.
    """

    def __init__(self, body: BodyStream) -> None:
        self._body = body
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._json = json.JSONDecoder()
        self._buf = ""
        self._pos = 0
        self._eof = False

    def peek(self) -> str:
        """The next non-whitespace character, ``""`` at the end."""
        while True:
            match = WHITESPACE.match(self._buf, self._pos)
            self._pos = match.end() if match else self._pos
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def expect(self, choices: str, what: str) -> str:
        """Consume one of the characters in ``choices``, else a 400 naming ``what``."""
        char = self.peek()
        if not char or char not in choices:
            raise invalid(f"{what}: expected one of {choices!r}, found {char or 'end of body'!r}")
        self._pos += 1
        return char

    def value(self, what: str) -> Any:
        """The next complete JSON value."""
        self.peek()
        while True:
            try:
                value, end = self._json.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._fill():
                    continue
                raise invalid(f"{what}: body is not valid JSON ({exc.msg})") from None
            if end == len(self._buf) and isinstance(value, int | float) and self._fill():
                continue  # a number may go on in the next block
            self._pos = end
            return value

    def at_end(self) -> bool:
        return self.peek() == ""

    def _fill(self) -> bool:
        if self._eof:
            return False
        rest = self._buf[self._pos :]
        data = self._body.read(max(READ_BLOCK, len(rest)))
        self._eof = not data
        try:
            text = self._utf8.decode(data, final=self._eof)
        except UnicodeDecodeError:
            raise invalid("body is not valid UTF-8") from None
        self._buf, self._pos = rest + text, 0
        return True


def read_create_body(
    scanner: JsonScanner, settings: StoreSettings
) -> tuple[list[PlannedRequest], list[str]]:
    """Parse and check a create body; return the planned requests and params problems.

    Envelope errors (bad or duplicate custom_id, too few or too many requests)
    raise a 400 at once, as the real API does synchronously.
    """
    planned: list[PlannedRequest] = []
    problems: list[str] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(_envelope_items(scanner)):
        if index >= settings.max_requests:
            raise invalid(f"requests: List should have at most {settings.max_requests} items")
        custom_id, params = _check_item(index, item, first_index)
        request, found = plan_request(custom_id, params, settings.outcome)
        planned.append(request)
        problems.extend(f"requests.{index} ({custom_id}): {problem}" for problem in found)
    if not planned:
        raise invalid("requests: List should have at least 1 item after validation, not 0")
    return planned, problems


def _envelope_items(scanner: JsonScanner) -> Iterator[Any]:
    """The items of ``{"requests": [...]}``, one at a time."""
    scanner.expect("{", "body")
    seen = False
    if scanner.peek() == "}":
        scanner.expect("}", "body")
    else:
        while True:
            key = scanner.value("body")
            scanner.expect(":", "body")
            if key != "requests" or seen:
                raise invalid(f"{key}: Extra inputs are not permitted")
            seen = True
            yield from _array_items(scanner)
            if scanner.expect(",}", "body") == "}":
                break
    if not scanner.at_end():
        raise invalid("body: unexpected data after the JSON object")
    if not seen:
        raise invalid("requests: Field required")


def _array_items(scanner: JsonScanner) -> Iterator[Any]:
    if scanner.peek() != "[":
        raise invalid("requests: Input should be a valid list")
    scanner.expect("[", "requests")
    if scanner.peek() == "]":
        scanner.expect("]", "requests")
        return
    index = 0
    while True:
        yield scanner.value(f"requests.{index}")
        index += 1
        if scanner.expect(",]", "requests") == "]":
            return


def _check_item(index: int, item: Any, first_index: dict[str, int]) -> tuple[str, dict[str, Any]]:
    """The custom_id and params of one envelope item, or a 400 naming what is wrong."""
    where = f"requests.{index}"
    if not isinstance(item, dict):
        raise invalid(f"{where}: Input should be a valid dictionary")
    extra = sorted(set(item) - {"custom_id", "params"})
    if extra:
        raise invalid(f"{where}.{extra[0]}: Extra inputs are not permitted")
    custom_id, params = _check_custom_id(where, item.get("custom_id")), item.get("params")
    if custom_id in first_index:
        raise invalid(
            f"{where}.custom_id: duplicate of {custom_id!r} at requests.{first_index[custom_id]}"
        )
    first_index[custom_id] = index
    if not isinstance(params, dict):
        raise invalid(f"{where}.params: Input should be a valid dictionary")
    return custom_id, params


def _check_custom_id(where: str, custom_id: Any) -> str:
    if custom_id is None:
        raise invalid(f"{where}.custom_id: Field required")
    if not isinstance(custom_id, str):
        raise invalid(f"{where}.custom_id: Input should be a valid string")
    if len(custom_id) > 64:
        raise invalid(f"{where}.custom_id: String should have at most 64 characters")
    if not CUSTOM_ID_RE.fullmatch(custom_id):
        raise invalid(f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
    return custom_id
