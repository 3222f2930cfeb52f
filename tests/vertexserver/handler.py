"""The HTTP side of the Vertex AI test server: the batchPredictionJobs routes and a token endpoint.

* ``POST /v1/projects/{p}/locations/{l}/batchPredictionJobs`` (create),
  ``GET`` the same (list: ``filter``, ``pageSize``, ``pageToken``);
* ``GET /v1/projects/{p}/locations/{l}/batchPredictionJobs/{id}``,
  ``POST .../{id}:cancel``;
* ``POST /token``: an OAuth2 token endpoint (``grant_type`` and ``assertion``
  of a service account's signed JWT, as google-auth sends them), so a test can
  run Application Default Credentials against it (a key file whose
  ``token_uri`` is this server).

Every API call needs ``Authorization: Bearer <token>`` with a token this
server issued (and not expired) or one it was told to accept; otherwise 401
``UNAUTHENTICATED``. Errors are ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.batchserver.handler import HttpServer, TrackedHandler
from tests.gcsserver.faults import ANSWERS
from tests.vertexserver.wire import ApiError

if TYPE_CHECKING:
    from tests.vertexserver.server import VertexState

JOBS = "batchPredictionJobs"


class Dropped(Exception):  # noqa: N818 - control flow
    """Close the connection without an answer."""


def route_of(method: str, path: str) -> tuple[str, list[str]] | None:
    """(operation, [project, location, job id]) of a request line, or None."""
    if path == "/token":
        return ("token", []) if method == "POST" else None
    parts = [unquote(p) for p in path.split("/")]
    if len(parts) < 7 or parts[:3] != ["", "v1", "projects"] or parts[4] != "locations":
        return None
    project, location = parts[3], parts[5]
    if len(parts) == 7 and parts[6] == JOBS:
        op = {"POST": "create", "GET": "list"}.get(method)
        return (op, [project, location]) if op else None
    if len(parts) == 8 and parts[6] == JOBS:
        ident, _, verb = parts[7].partition(":")
        if verb == "cancel" and method == "POST":
            return "cancel", [project, location, ident]
        if not verb and method == "GET":
            return "get", [project, location, ident]
    return None


class VertexHandler(TrackedHandler):
    @property
    def _http(self) -> HttpServer:
        return cast("HttpServer", self.server)

    @property
    def _state(self) -> VertexState:
        return cast("VertexState", self._http.store)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        route = route_of(method, url.path)
        op = route[0] if route else "unknown"
        try:
            if route is None:
                _no_route(method, url.path)
            elif op == "token":
                answer = self._state.tokens.grant(dict(parse_qsl(body.decode())))
            else:
                answer = self._serve(op, route[1], body, dict(parse_qsl(url.query)))
        except ApiError as err:
            if err.violation:
                self._state.violation(f"{op}: {err.status} {err.word}: {err.message}")
            self._error(op, err)
        except Dropped:
            self._state.record(op, 0)
            self.close_connection = True
        else:
            self._send(op, 200, json.dumps(answer, separators=(",", ":")).encode())

    def _serve(self, op: str, path: list[str], body: bytes, query: dict[str, str]) -> Any:
        state = self._state
        if not state.tokens.valid(self.headers.get("authorization")):
            raise ApiError(401, "UNAUTHENTICATED", "Request had invalid authentication"
                           " credentials. Expected OAuth 2 access token.")  # fmt: skip
        if path[0] not in state.projects:
            raise ApiError(403, "PERMISSION_DENIED", f"Permission denied on project {path[0]}")
        fault = state.faults.take(op)
        if fault in ANSWERS:
            status, word, message = ANSWERS[fault]
            raise ApiError(status, word, message)
        if fault == "drop":
            raise Dropped
        jobs = state.jobs
        if op == "create":
            answer = jobs.create(path[1], _json(body))
        elif op == "list":
            answer = jobs.list(path[1], query)
        elif op == "get":
            answer = jobs.get(path[1], path[2])
        else:
            answer = jobs.cancel(path[1], path[2])
        if fault == "drop_after":
            raise Dropped  # done; the client never hears of it
        return answer

    def _error(self, op: str, err: ApiError) -> None:
        body = {"error": {"code": err.status, "message": err.message, "status": err.word}}
        self._send(op, err.status, json.dumps(body).encode())

    def _send(self, op: str, status: int, data: bytes) -> None:
        self._state.record(op, status)
        self.send_response(status)
        self.send_header("content-type", "application/json; charset=UTF-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _no_route(method: str, path: str) -> None:
    raise ApiError(404, "NOT_FOUND", f"no route {method} {path}", violation=True)


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "INVALID_ARGUMENT", "the body is not JSON", violation=True) from None
    if not isinstance(value, dict):
        raise ApiError(400, "INVALID_ARGUMENT", "the body is not an object", violation=True)
    return value
