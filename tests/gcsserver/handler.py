"""The HTTP side of the Cloud Storage test server: the JSON API routes docproc uses.

* ``POST /upload/storage/v1/b/{bucket}/o?uploadType=media|multipart`` with
  ``name`` and ``ifGenerationMatch`` (``0``: create only; 412 otherwise);
  a multipart body is ``multipart/related``: the object resource as JSON
  (``name``, ``contentType``, ``metadata``), then the bytes;
* ``GET /storage/v1/b/{bucket}/o?prefix=&pageToken=&maxResults=`` (list);
* ``GET /storage/v1/b/{bucket}/o/{object}`` (the resource; ``alt=media``: the
  bytes, streamed), also under ``/download/storage/v1/...``;
* ``DELETE /storage/v1/b/{bucket}/o/{object}`` (204).

Object names are percent-encoded in the path. Bodies come with a
Content-Length or chunked. Errors are ``{"error": {"code", "message",
"errors": [{"reason"}]}}``. A bearer token is required unless the server runs
anonymously (as an emulator behind ``STORAGE_EMULATOR_HOST`` does).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.batchserver.handler import HttpServer, TrackedHandler
from tests.gcsserver.faults import ANSWERS
from tests.gcsserver.store import StoreError

if TYPE_CHECKING:
    from tests.gcsserver.server import GcsState

API = "/storage/v1/b/"
UPLOAD = "/upload/storage/v1/b/"
DOWNLOAD = "/download/storage/v1/b/"
PAGE = 1000


class Dropped(Exception):  # noqa: N818 - control flow
    """Close the connection without an answer."""


def route_of(method: str, path: str) -> tuple[str, str, str] | None:
    """(operation, bucket, object name) of a request; None if there is no such route."""
    for root, kind in ((UPLOAD, "upload"), (DOWNLOAD, "download"), (API, "api")):
        if not path.startswith(root):
            continue
        bucket, _, rest = path[len(root) :].partition("/")
        if not bucket or not rest.startswith("o"):
            return None
        name = unquote(rest[2:]) if rest.startswith("o/") else ""
        if rest not in ("o", "o/") and not name:
            return None
        if kind == "upload":
            return ("upload", unquote(bucket), "") if method == "POST" and not name else None
        if kind == "download":
            return ("download", unquote(bucket), name) if method == "GET" and name else None
        if not name:
            return ("list", unquote(bucket), "") if method == "GET" else None
        op = {"GET": "get", "DELETE": "delete"}.get(method)
        return (op, unquote(bucket), name) if op else None
    return None


class GcsHandler(TrackedHandler):
    @property
    def _http(self) -> HttpServer:
        return cast("HttpServer", self.server)

    @property
    def _state(self) -> GcsState:
        return cast("GcsState", self._http.store)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        route = route_of(method, url.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        op = route[0] if route else "unknown"
        try:
            fault = self._admit(route, op, method, url.path)
            assert route is not None
            self._serve(op, route[1], route[2], query, after=fault == "drop_after")
        except StoreError as err:
            self._error(op, err)
        except Dropped:
            self._state.record(op, 0)
            self.close_connection = True

    def _admit(
        self, route: tuple[str, str, str] | None, op: str, method: str, path: str
    ) -> str | None:
        """Refuse what the server would not serve (no route, no token, a fault); the fault
        that lets the call happen (``drop_after``), if any."""
        if route is None:
            self._drain()
            raise StoreError(404, "notFound", f"no route {method} {path}")
        if not self._state.authorized(self.headers.get("authorization")):
            self._drain()
            raise StoreError(401, "authError", "Invalid Credentials")
        fault = self._state.faults.take(op)
        if fault in ANSWERS:
            self._drain()
            status, _, message = ANSWERS[fault]
            reason = "backendError" if status >= 500 else "rateLimitExceeded"
            raise StoreError(status, reason, message)
        if fault == "drop":
            self._drain()
            raise Dropped
        return fault

    def _serve(
        self, op: str, bucket: str, name: str, query: dict[str, str], *, after: bool
    ) -> None:
        state = self._state
        if op == "upload":
            answer = self._upload(bucket, query)
        elif op == "list":
            self._drain()
            answer = self._list(bucket, query)
        elif op == "delete":
            self._drain()
            state.store.delete(bucket, name)
            if after:
                raise Dropped
            self._send(op, 204, b"", "application/json")
            return
        else:
            self._drain()
            stored = state.store.get(bucket, name)
            if op == "download" or query.get("alt") == "media":
                self._send_file(op, stored.path, stored.size, stored.content_type)
                return
            answer = stored.resource()
        if after:
            raise Dropped  # it happened; the client never hears of it
        self._send(op, 200, json.dumps(answer).encode(), "application/json; charset=UTF-8")

    def _list(self, bucket: str, query: dict[str, str]) -> dict[str, Any]:
        found = self._state.store.listing(bucket, query.get("prefix", ""))
        start = int(query.get("pageToken") or 0)
        size = min(int(query.get("maxResults") or PAGE), PAGE)
        answer: dict[str, Any] = {"kind": "storage#objects"}
        page = found[start : start + size]
        if page:
            answer["items"] = [o.resource() for o in page]
        if start + size < len(found):
            answer["nextPageToken"] = str(start + size)
        return answer

    def _upload(self, bucket: str, query: dict[str, str]) -> dict[str, Any]:
        kind = query.get("uploadType", "")
        match = query.get("ifGenerationMatch")
        if match != "0":
            self._state.unconditional.append(query.get("name", "?"))
        with tempfile.TemporaryFile() as body:
            size = self._body_to(body)
            body.seek(0)
            if kind == "media":
                resource: dict[str, Any] = {"name": query.get("name", "")}
                offset, length = 0, size
                content_type = self.headers.get("content-type") or "application/octet-stream"
            elif kind == "multipart":
                resource, offset, length, content_type = _multipart(
                    body, size, self.headers.get("content-type", "")
                )
            else:
                raise StoreError(400, "invalid", f"uploadType {kind!r} is not supported here")
            name = query.get("name") or str(resource.get("name") or "")
            metadata = resource.get("metadata") or {}
            body.seek(offset)
            stored = self._state.store.put(
                bucket, name, body, size=length, metadata={str(k): str(v) for k, v in
                metadata.items()}, content_type=str(resource.get("contentType") or content_type),
                if_generation_match=int(match) if match is not None else None,
            )  # fmt: skip
        return stored.resource()

    # -- bodies ------------------------------------------------------------------------

    def _body_to(self, out: IO[bytes]) -> int:
        size = 0
        for chunk in self._body_chunks():
            out.write(chunk)
            size += len(chunk)
        return size

    def _drain(self) -> None:
        for _ in self._body_chunks():
            pass

    def _body_chunks(self) -> Iterator[bytes]:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        return
                    left -= len(chunk)
                    yield chunk
                self.rfile.readline()
        left = int(self.headers.get("content-length") or 0)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk

    # -- answers -----------------------------------------------------------------------

    def _error(self, op: str, err: StoreError) -> None:
        body = {"error": {"code": err.status, "message": err.message,
                          "errors": [{"message": err.message, "domain": "global",
                                      "reason": err.reason}]}}  # fmt: skip
        self._send(op, err.status, json.dumps(body).encode(), "application/json; charset=UTF-8")

    def _send(self, op: str, status: int, data: bytes, content_type: str) -> None:
        self._state.record(op, status)
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_file(self, op: str, path: Any, size: int, content_type: str) -> None:
        self._state.record(op, 200)
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(size))
        self.end_headers()
        with open(path, "rb") as held:
            while chunk := held.read(1 << 20):
                self.wfile.write(chunk)


def _multipart(
    body: IO[bytes], size: int, content_type: str
) -> tuple[dict[str, Any], int, int, str]:
    """(resource, offset and length of the media, its content type) of a multipart/related body."""
    if not content_type.startswith("multipart/related") or "boundary=" not in content_type:
        raise StoreError(400, "invalid", "a multipart upload needs multipart/related")
    boundary = content_type.split("boundary=", 1)[1].split(";")[0].strip().strip('"').encode()
    head = body.read(min(size, 1 << 16))
    delimiter = b"--" + boundary
    first = head.find(delimiter)
    meta_start = head.find(b"\r\n\r\n", first) + 4
    meta_end = head.find(b"\r\n" + delimiter, meta_start)
    media_headers = meta_end + len(delimiter) + 4
    media_start = head.find(b"\r\n\r\n", media_headers) + 4
    if first < 0 or meta_start < 4 or meta_end < 0 or media_start < 4:
        raise StoreError(400, "invalid", "malformed multipart body")
    try:
        resource = json.loads(head[meta_start:meta_end])
    except ValueError:
        raise StoreError(400, "invalid", "the metadata part is not JSON") from None
    part_type = b"application/octet-stream"
    for line in head[media_headers:media_start].split(b"\r\n"):
        if line.lower().startswith(b"content-type:"):
            part_type = line.split(b":", 1)[1].strip()
    body.seek(max(0, size - 512))
    tail = body.read()
    closing = tail.rfind(b"\r\n" + delimiter + b"--")
    if closing < 0:
        raise StoreError(400, "invalid", "the multipart body has no closing delimiter")
    media_end = max(0, size - 512) + closing
    return resource, media_start, media_end - media_start, part_type.decode()
