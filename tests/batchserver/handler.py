"""The HTTP side of the test server: routes, the request handler, the threaded server."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from typing import Any, Self, cast
from urllib.parse import parse_qs, urlsplit

from tests.batchserver.body import BodyStream, JsonScanner, read_create_body, too_large
from tests.batchserver.store import BatchStore, ResultsPlan
from tests.batchserver.tokens import COUNT_PATH, MAX_COUNT_BODY, count_body
from tests.batchserver.wire import (
    API_VERSION,
    BATCHES_PATH,
    STATUS_FAULTS,
    VIOLATIONS_PER_BATCH,
    WRITE_BLOCK,
    ApiError,
    Dropped,
    error_body,
    invalid,
    new_request_id,
)


def route_of(method: str, path: str) -> tuple[str, str | None] | None:
    """(operation, batch id) for a request line, or None if there is no such endpoint."""
    if path == COUNT_PATH:
        return ("count_tokens", None) if method == "POST" else None
    if path == BATCHES_PATH:
        return {"POST": ("create", None), "GET": ("list", None)}.get(method)
    if not path.startswith(BATCHES_PATH + "/"):
        return None
    parts = path[len(BATCHES_PATH) + 1 :].split("/")
    if not parts[0]:
        return None
    ops = {
        (1, "GET", ""): "retrieve",
        (1, "DELETE", ""): "delete",
        (2, "POST", "cancel"): "cancel",
        (2, "GET", "results"): "results",
    }
    op = ops.get((len(parts), method, parts[1] if len(parts) == 2 else ""))
    return (op, parts[0]) if op else None


class _Handler(BaseHTTPRequestHandler):
    """One connection: parses requests, checks them, and answers from the store."""

    protocol_version = "HTTP/1.1"
    timeout = 120

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle and the
        # client's delayed ACK add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._http.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._http.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: ``calls`` records every request."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    @property
    def _http(self) -> HttpServer:
        return cast(HttpServer, self.server)

    @property
    def _store(self) -> BatchStore:
        return self._http.store

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self._method, self._path = method, url.path
        self._request_id = new_request_id()
        self._body: BodyStream | None = None
        try:
            self._body = BodyStream(self.rfile, self.headers, self._store.settings.max_body_bytes)
            self._serve(route_of(method, url.path), parse_qs(url.query))
        except ApiError as err:
            self._fail(err)
        except Dropped:
            self.close_connection = True

    def _serve(self, route: tuple[str, str | None] | None, query: dict[str, list[str]]) -> None:
        if route is None:
            raise ApiError(
                404, "not_found_error", f"no endpoint {self._method} {self._path}", violation=True
            )
        op, batch_id = route
        self._check_headers(op)
        if op == "create":
            self._create()
            return
        fault = self._fault(op)
        if op == "count_tokens":
            self._send_json(200, self._count())
            return
        store = self._store
        if op == "results":
            plan = store.results(batch_id or "")
            if fault == "cut_quiet":
                self._stream_cut_quietly(plan)
            else:
                self._stream_results(plan, cut=fault == "cut")
        elif op == "list":
            self._send_json(200, store.list_page(query))
        else:
            self._send_json(200, self._batch_call(op, batch_id or ""))

    def _batch_call(self, op: str, batch_id: str) -> dict[str, Any]:
        """Retrieve, cancel or delete one batch."""
        store = self._store
        calls = {"retrieve": store.retrieve, "cancel": store.cancel, "delete": store.delete}
        return calls[op](batch_id)

    def _check_headers(self, op: str) -> None:
        key = self._store.settings.api_key
        headers = self.headers
        if headers.get("x-api-key") != key and headers.get("authorization") != f"Bearer {key}":
            raise ApiError(401, "authentication_error", "invalid x-api-key", violation=True)
        version = headers.get("anthropic-version")
        if version != API_VERSION:
            raise invalid(f"anthropic-version: expected {API_VERSION!r}, got {version!r}")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if op in ("create", "count_tokens") and content_type != "application/json":
            raise invalid(f"content-type: expected 'application/json', got {content_type!r}")

    def _fault(self, op: str) -> str | None:
        """Inject this call's fault; return the kinds handled later (cut, drop_after_create)."""
        kind = self._store.fault(op)
        if kind in STATUS_FAULTS:
            status, error_type, message = STATUS_FAULTS[kind]
            retry = self._store.settings.faults.retry_after
            headers = (("retry-after", f"{retry:g}"),) if kind == "429" else ()
            raise ApiError(status, error_type, message, headers=headers)
        if kind == "drop":
            self._drop()
        return kind

    def _drop(self) -> None:
        self._finish_body()
        self._store.record_call(self._method, self._path, 0)
        raise Dropped

    def _count(self) -> dict[str, Any]:
        body = self._body
        assert body is not None
        answer = count_body(body.read(MAX_COUNT_BODY + 1))
        self._store.counted(answer["input_tokens"])
        return answer

    def _create(self) -> None:
        body = self._body
        assert body is not None
        if body.declared > body.max_bytes:
            raise too_large(body.max_bytes)
        fault = self._fault("create")
        planned, problems = read_create_body(JsonScanner(body), self._store.settings)
        answer = self._store.create(planned)
        for problem in problems[:VIOLATIONS_PER_BATCH]:
            self._store.violation(f"create {answer['id']}: {problem}")
        if len(problems) > VIOLATIONS_PER_BATCH:
            more = len(problems) - VIOLATIONS_PER_BATCH
            self._store.violation(f"create {answer['id']}: ... and {more} more params problems")
        if fault == "drop_after_create":
            self._drop()
        self._send_json(200, answer)

    def _fail(self, err: ApiError) -> None:
        if err.violation:
            self._store.violation(
                f"{self._method} {self._path}: {err.status} {err.kind}: {err.message}"
            )
        self._send_json(
            err.status, error_body(err.kind, err.message, self._request_id), err.headers
        )

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self._finish_body()
        self._store.record_call(self._method, self._path, status)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_" + self._request_id)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _finish_body(self) -> None:
        """Read the rest of the body before answering, or close if its framing is broken."""
        body = self._body
        if body is None:
            self.close_connection = True
            return
        with contextlib.suppress(ApiError):
            body.drain()
        if body.broken:
            self.close_connection = True

    def _stream_results(self, plan: ResultsPlan, *, cut: bool) -> None:
        """Stream JSONL with chunked encoding; ``cut`` stops halfway and closes abruptly."""
        self._finish_body()
        self._store.record_call(self._method, self._path, 200)
        self.send_response(200)
        self.send_header("content-type", "application/x-jsonl")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", "req_" + self._request_id)
        self.end_headers()
        if cut:
            self._write_cut(plan)
            return
        for block in _blocks(plan.lines()):
            self._write_chunk(block)
        self._store.served(plan.batch_id)  # before the last chunk: the client sees it counted
        self.wfile.write(b"0\r\n\r\n")

    def _stream_cut_quietly(self, plan: ResultsPlan) -> None:
        """A body delimited by the connection's close (no length, not chunked), closed
        after half the lines, at a line's end: to HTTP it looks complete."""
        self._finish_body()
        self._store.record_call(self._method, self._path, 200)
        self.send_response(200)
        self.send_header("content-type", "application/x-jsonl")
        self.send_header("connection", "close")
        self.send_header("request-id", "req_" + self._request_id)
        self.end_headers()
        for block in _blocks(islice(plan.lines(), len(plan) // 2)):
            self.wfile.write(block)
        self.close_connection = True

    def _write_cut(self, plan: ResultsPlan) -> None:
        kept = len(plan) // 2
        lines = plan.lines()
        for block in _blocks(islice(lines, kept)):
            self._write_chunk(block)
        partial = next(lines, b"")
        if partial:
            self._write_chunk(partial[: len(partial) // 2])
        self.close_connection = True  # no terminating chunk: the client sees a cut stream

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


def _blocks(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Lines joined into blocks of about ``WRITE_BLOCK`` bytes."""
    pending: list[bytes] = []
    size = 0
    for line in lines:
        pending.append(line)
        size += len(line)
        if size >= WRITE_BLOCK:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


class TrackedHandler(BaseHTTPRequestHandler):
    """A connection to a test server: HTTP/1.1 without Nagle, tracked so the server can
    close it at stop, quiet; each method goes to ``_dispatch(method)``."""

    protocol_version = "HTTP/1.1"
    timeout = 120

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cast(HttpServer, self.server).track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            cast(HttpServer, self.server).untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the servers record every call."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        raise NotImplementedError


class HttpServer(ThreadingHTTPServer):
    """Threaded server that tracks its connections so ``stop`` can close them."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        store: Any,
        handler: type[BaseHTTPRequestHandler] = _Handler,
    ) -> None:
        self.store = store  # has error(text), for bugs of the server itself
        self._open: dict[socket.socket, threading.Thread] = {}
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup (getfqdn), which can stall."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def track(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open[sock] = threading.current_thread()

    def untrack(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open.pop(sock, None)

    def close_connections(self, timeout: float) -> None:
        """Shut every open connection down and wait (bounded) for its thread."""
        with self._open_lock:
            open_now = dict(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in open_now.values():
            thread.join(max(0.0, deadline - time.monotonic()))

    def serve_in_thread(self, name: str) -> threading.Thread:
        """Serve on a background (daemon) thread, started."""
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=name, daemon=True)  # fmt: skip
        thread.start()
        return thread

    def stop(self, thread: threading.Thread, timeout: float) -> None:
        """Stop serving, close open connections and the socket; bounded by ``timeout``."""
        self.shutdown()
        self.close_connections(timeout)
        self.server_close()
        thread.join(timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection errors are the client's business; anything else is a server bug."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        text = traceback.format_exc()
        self.store.error(text)
        print(text, file=sys.stderr)


class Served:
    """Start, stop and ``with`` for a test server whose subclass binds an :class:`HttpServer`."""

    thread_name = "test-server"
    _http: HttpServer | None = None
    _thread: threading.Thread | None = None

    def _bind(self) -> HttpServer:
        raise NotImplementedError

    def start(self) -> Self:
        """Bind and serve on a background thread."""
        self._http = self._bind()
        self._thread = self._http.serve_in_thread(self.thread_name)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close open connections and the socket; bounded by ``timeout``."""
        if self._http is None or self._thread is None:
            return
        self._http.stop(self._thread, timeout)
        self._http = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
