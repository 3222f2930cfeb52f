"""The public face of the Vertex AI test server: :class:`FakeVertex`, its state and its tokens."""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from typing import Any

from tests.batchserver.handler import HttpServer, Served
from tests.gcsserver.faults import CallFaults
from tests.gcsserver.store import GcsStore
from tests.vertexserver import model
from tests.vertexserver.handler import VertexHandler
from tests.vertexserver.jobs import Job, JobFaults, JobStore
from tests.vertexserver.wire import ApiError

PROJECT, PROJECT_NUMBER, LOCATION = "docproc-test", "123456789012", "us-east5"


class Tokens:
    """Bearer tokens: issued by ``/token`` for ``lifetime`` seconds, or accepted as given.

    ``honoured``: seconds a token is really accepted (less than the lifetime the
    client is told: a client that does not refresh ahead of expiry gets 401s).
    """

    def __init__(
        self, accept: tuple[str, ...] = (), lifetime: float = 3600.0,
        honoured: float | None = None,
    ) -> None:  # fmt: skip
        self.accepted = set(accept)
        self.lifetime = lifetime
        self.honoured = lifetime if honoured is None else honoured
        self.issued: dict[str, float] = {}  # token -> monotonic expiry
        self.grants = 0
        self.refused: list[str] = []  # tokens refused (unknown or expired)
        self._lock = threading.Lock()

    def grant(self, form: dict[str, str]) -> dict[str, Any]:
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or \
                form.get("assertion", "").count(".") != 2:  # fmt: skip
            raise ApiError(400, "INVALID_ARGUMENT", f"unsupported grant {form.get('grant_type')}",
                           violation=True)  # fmt: skip
        token = "ya29.test-" + secrets.token_urlsafe(24)
        with self._lock:
            self.issued[token] = time.monotonic() + self.honoured
            self.grants += 1
        return {"access_token": token, "expires_in": int(self.lifetime), "token_type": "Bearer"}

    def valid(self, header: str | None) -> bool:
        token = (header or "").removeprefix("Bearer ").strip()
        with self._lock:
            expiry = self.issued.get(token)
            ok = token in self.accepted or (expiry is not None and time.monotonic() < expiry)
            if not ok:
                self.refused.append(token)
        return ok


class VertexState:
    """Everything the handler threads share: jobs, faults, calls, tokens, violations."""

    def __init__(
        self, gcs: GcsStore, *, faults: CallFaults, job_faults: JobFaults, tokens: Tokens,
        max_jobs: int, phase_seconds: float, seed: int, lines_per_file: int,
    ) -> None:  # fmt: skip
        self.faults, self.tokens = faults, tokens
        faults.seed(seed)
        job_faults.seed = seed
        self.projects = {PROJECT, PROJECT_NUMBER}
        self.violations: list[str] = []
        self.errors: list[str] = []
        self.calls: list[tuple[str, int]] = []  # (operation, status; 0: dropped)
        self._lock = threading.Lock()
        self.jobs = JobStore(
            gcs, _answer, faults=job_faults, max_jobs=max_jobs, project_number=PROJECT_NUMBER,
            location=LOCATION, phase_seconds=phase_seconds, seed=seed, violation=self.violation,
            lines_per_file=lines_per_file,
        )  # fmt: skip

    def violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

    def record(self, op: str, status: int) -> None:
        with self._lock:
            self.calls.append((op, status))


def _answer(custom_id: str, request: Any, fault: str) -> dict[str, Any]:
    return model.answer(request, custom_id, style="no_json" if fault == "no_json" else "")


class FakeVertex(Served):
    """Vertex AI's batch prediction jobs on 127.0.0.1, reading and writing a test GCS store.

    Args:
        gcs: the objects jobs read their input from and write their output to.
        faults: call faults (operations: create, get, list, cancel).
        job_faults: how jobs end and what happens to records.
        tokens: the bearer tokens it takes (a fixed ``"test-token"`` by default).
        max_jobs: concurrent jobs before a create is RESOURCE_EXHAUSTED (Vertex: 4).
        phase_seconds: how long a job stays in each state before its end.
        seed: makes ids, shuffles and faults repeatable.
    """

    def __init__(
        self, gcs: GcsStore, *, faults: CallFaults | None = None,
        job_faults: JobFaults | None = None, tokens: Tokens | None = None, max_jobs: int = 4,
        phase_seconds: float = 0.1, seed: int = 1, port: int = 0, lines_per_file: int = 10_000,
    ) -> None:  # fmt: skip
        self.tokens = tokens or Tokens(accept=("test-token",))
        self.state = VertexState(
            gcs, faults=faults or CallFaults(), job_faults=job_faults or JobFaults(),
            tokens=self.tokens, max_jobs=max_jobs, phase_seconds=phase_seconds, seed=seed,
            lines_per_file=lines_per_file,
        )  # fmt: skip
        self._port = port
        self.thread_name = "fake-vertex"
        self.url = ""

    @property
    def jobs(self) -> dict[str, Job]:
        return dict(self.state.jobs.jobs)

    @property
    def violations(self) -> list[str]:
        return self.state.violations

    @property
    def errors(self) -> list[str]:
        return self.state.errors

    @property
    def billed(self) -> Counter[str]:
        """custom_id -> answers produced for it, across every job."""
        return self.state.jobs.billed

    def calls(self, op: str) -> list[int]:
        return [status for name, status in list(self.state.calls) if name == op]

    def _bind(self) -> HttpServer:
        http = HttpServer(("127.0.0.1", self._port), self.state, VertexHandler)
        self.url = f"http://127.0.0.1:{http.server_address[1]}"
        return http
