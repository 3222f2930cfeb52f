"""The public face of the Bedrock test server: :class:`FakeBedrock` and its shared state."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from typing import Any

from tests.batchserver.handler import HttpServer, Served
from tests.bedrockserver import model
from tests.bedrockserver.faults import Faults
from tests.bedrockserver.handler import BedrockHandler
from tests.bedrockserver.jobs import Job, JobStore, Limits
from tests.bedrockserver.process import S3Io
from tests.bedrockserver.wire import ApiError

RECORD_FAULTS = {
    "error400": (400, "ValidationException", "Malformed input request, please reformat"),
    "error429": (429, "ThrottlingException", "Too many requests, please wait"),
    "error500": (500, "InternalServerException", "The model errored"),
}


class BedrockState:
    """Everything the handler threads share: jobs, faults, calls and what was billed."""

    def __init__(
        self, s3_url: str, *, region: str, faults: Faults, limits: Limits,
        phase_seconds: float, seed: int,
    ) -> None:  # fmt: skip
        self.faults = faults
        faults.seed(seed)
        self.violations: list[str] = []
        self.errors: list[str] = []
        self.calls: list[tuple[str, int]] = []  # (operation, status; 0: dropped)
        self.live_billed: Counter[str] = Counter()  # sha256 of a live body -> answers
        self._lock = threading.Lock()
        self.jobs = JobStore(
            S3Io(s3_url, region), self._answer, faults=faults, limits=limits, region=region,
            phase_seconds=phase_seconds, seed=seed, violation=self.violation,
        )  # fmt: skip

    def violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

    def record_call(self, op: str, status: int) -> None:
        with self._lock:
            self.calls.append((op, status))

    def live(self, op: str, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """One live call (InvokeModel or Converse); billed when it produces an answer."""
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        fault = self.faults.record(key)
        if fault in RECORD_FAULTS:
            raise ApiError(*RECORD_FAULTS[fault])
        try:
            answer = model.answer(body, key[:11], converse=op == "converse",
                                  style="no_json" if fault == "no_json" else "")  # fmt: skip
        except model.RecordError as err:
            raise ApiError(400, "ValidationException", err.message, violation=True) from None
        with self._lock:
            self.live_billed[key] += 1
        return answer

    def _answer(self, record_id: str, model_input: Any, converse: bool) -> dict[str, Any]:
        fault = self.faults.record(record_id)
        if fault in RECORD_FAULTS:
            code, _, message = RECORD_FAULTS[fault]
            raise model.RecordError(code, message)
        try:
            return model.answer(model_input, record_id, converse=converse,
                                style="no_json" if fault == "no_json" else "")  # fmt: skip
        except model.RecordError as err:
            self.violation(f"record {record_id} refused: {err.message}")
            raise


class FakeBedrock(Served):
    """Bedrock's batch inference and runtime APIs on 127.0.0.1, storing in moto's S3.

    Args:
        s3_url: moto's server, where jobs read their input and write their output.
        faults: what to inject (:class:`Faults`).
        limits: the account's quotas (minimum records per job, ...).
        phase_seconds: how long a job stays in each status before its end.
        seed: makes ids, shuffles and faults repeatable.
    """

    def __init__(
        self, s3_url: str, *, region: str = "us-east-1", faults: Faults | None = None,
        limits: Limits | None = None, phase_seconds: float = 0.1, seed: int = 1, port: int = 0,
    ) -> None:  # fmt: skip
        self.state = BedrockState(
            s3_url, region=region, faults=faults or Faults(), limits=limits or Limits(),
            phase_seconds=phase_seconds, seed=seed,
        )  # fmt: skip
        self._port = port
        self.thread_name = "fake-bedrock"
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
        """Record id -> answers produced for it, across every job."""
        return self.state.jobs.billed

    def calls(self, op: str) -> list[int]:
        """The status of each call of ``op`` (0: dropped)."""
        return [status for name, status in list(self.state.calls) if name == op]

    def _bind(self) -> HttpServer:
        http = HttpServer(("127.0.0.1", self._port), self.state, BedrockHandler)
        self.url = f"http://127.0.0.1:{http.server_address[1]}"
        return http
