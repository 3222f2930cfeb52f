"""The HTTP side of the Bedrock test server: REST-JSON routes of the control plane and runtime.

Routes (reference/BATCH_APIS.md §4.1, botocore's service models):

* ``POST /model-invocation-job`` (create), ``GET /model-invocation-job/{id}``,
  ``GET /model-invocation-jobs`` (list), ``POST /model-invocation-job/{id}/stop``;
* ``POST /model/{modelId}/invoke`` and ``POST /model/{modelId}/converse``
  (bedrock-runtime, the live path).

SigV4 signatures are not checked, but every request must carry one
(``Authorization: AWS4-HMAC-SHA256 ...``). Errors are answered the way
botocore reads them: the status, ``x-amzn-ErrorType`` and ``{"message"}``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.batchserver.handler import HttpServer, TrackedHandler
from tests.bedrockserver.faults import STATUS
from tests.bedrockserver.wire import ApiError, check_value, error_payload, validation

if TYPE_CHECKING:
    from tests.bedrockserver.server import BedrockState

JOB = "/model-invocation-job"
JOBS = "/model-invocation-jobs"


class Dropped(Exception):  # noqa: N818 - control flow: the connection is closed unanswered
    """Close the connection without an answer."""


def route_of(method: str, path: str) -> tuple[str, str | None] | None:
    """(operation, path parameter) of a request line, or None."""
    if path == JOB and method == "POST":
        return "create", None
    if path == JOBS and method == "GET":
        return "list", None
    parts = path.split("/")
    if path.startswith(JOB + "/") and len(parts) == 3 and method == "GET":
        return "get", unquote(parts[2])
    if path.startswith(JOB + "/") and len(parts) == 4 and parts[3] == "stop" and method == "POST":
        return "stop", unquote(parts[2])
    if path.startswith("/model/") and len(parts) == 4 and method == "POST":
        op = {"invoke": "invoke", "converse": "converse"}.get(parts[3])
        return (op, unquote(parts[2])) if op else None
    return None


class BedrockHandler(TrackedHandler):
    """One connection to the test server."""

    @property
    def _server(self) -> HttpServer:
        return cast("HttpServer", self.server)

    @property
    def _state(self) -> BedrockState:
        return cast("BedrockState", self._server.store)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        route = route_of(method, url.path)
        op = route[0] if route else "unknown"
        try:
            self._check(route, method, url.path)
            answer = self._serve(op, route[1] if route else None, body, dict(parse_qsl(url.query)))
        except ApiError as err:
            self._fail(op, err)
        except Dropped:
            self._state.record_call(op, 0)
            self.close_connection = True
        else:
            self._send(op, 200, {"content-type": "application/json"}, answer)

    def _check(self, route: tuple[str, str | None] | None, method: str, path: str) -> None:
        if route is None:
            raise ApiError(404, "UnknownOperationException", f"no route {method} {path}",
                           violation=True)  # fmt: skip
        if not self.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 "):
            raise ApiError(403, "MissingAuthenticationTokenException", "no SigV4 signature",
                           violation=True)  # fmt: skip

    def _serve(self, op: str, param: str | None, body: bytes, query: dict[str, str]) -> bytes:
        fault = self._state.faults.take(op)
        if fault in STATUS:
            status, code, message = STATUS[fault]
            raise ApiError(status, code, message)
        if fault == "drop":
            raise Dropped
        state = self._state
        if op == "create":
            answer = state.jobs.create(_json(body))
            if fault == "drop_after_create":
                raise Dropped  # the job exists; the client never hears of it
        elif op == "list":
            _check_query(query)
            answer = state.jobs.list(query)
        elif op in ("invoke", "converse"):
            check_value("bedrock-runtime", "InvokeModelIdentifier", param or "", "modelId")
            answer = state.live(op, param or "", _json(body))
        else:
            check_value("bedrock", "ModelInvocationJobIdentifier", param or "", "jobIdentifier")
            answer = state.jobs.get(param or "") if op == "get" else state.jobs.stop(param or "")
        return json.dumps(answer, separators=(",", ":")).encode()

    def _fail(self, op: str, err: ApiError) -> None:
        if err.violation:
            self._state.violation(f"{op}: {err.status} {err.code}: {err.message}")
        status, headers, data = error_payload(err)
        self._send(op, status, headers, data)

    def _send(self, op: str, status: int, headers: dict[str, str], data: bytes) -> None:
        self._state.record_call(op, status)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
        self.end_headers()
        self.wfile.write(data)


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise validation("the body is not JSON") from None
    if not isinstance(value, dict):
        raise validation("the body is not a JSON object")
    return value


def _check_query(query: dict[str, str]) -> None:
    if "nameContains" in query:
        check_value("bedrock", "ModelInvocationJobName", query["nameContains"], "nameContains")
    if "maxResults" in query and not 1 <= int(query["maxResults"]) <= 1000:
        raise validation("maxResults must be between 1 and 1000")
