"""Live batches below a provider's minimum: spooled, resumed after a crash, never asked twice.

The live API here is a small scripted object speaking the ``LiveApi`` seam
(the network side is covered against the Bedrock test server in
``test_provider_bedrock.py``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from docproc.errors import ProviderAccountRefused, ProviderRejected, ProviderRetryable
from docproc.models import ProviderResult, ResultKind
from docproc.providers.live import LiveBatches


class ScriptedApi:
    """Answers ``{"n": i}`` with ``{"echo": i}``; ``faults`` maps i to exceptions to raise first."""

    def __init__(self, faults: dict[int, list[Exception]] | None = None) -> None:
        self.faults = faults or {}
        self.calls: Counter[int] = Counter()
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()

    def invoke(self, params: Mapping[str, Any]) -> dict[str, Any]:
        n = int(params["n"])
        self.gate.wait(10)
        with self.lock:
            self.calls[n] += 1
            pending = self.faults.get(n)
            if pending:
                raise pending.pop(0)
        return {"echo": n}


def answer(custom_id: str, body: Mapping[str, Any]) -> ProviderResult:
    return ProviderResult(custom_id, ResultKind.SUCCEEDED, summary=str(body["echo"]))


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "live"


def batches(spool: Path, api: ScriptedApi, **kwargs: Any) -> Iterator[LiveBatches]:
    live = LiveBatches(spool, api, answer, backoff=0.01, **kwargs)
    try:
        yield live
    finally:
        live.close()


def requests(count: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"j{n}-a1", "params": {"n": n}} for n in range(count)]


def until_ended(live: LiveBatches, batch_id: str) -> None:
    deadline = time.monotonic() + 20
    while not live.poll(batch_id).ended:
        assert time.monotonic() < deadline, "the live batch did not end"
        time.sleep(0.01)


def test_every_request_is_answered_once_and_errors_are_recorded(spool: Path) -> None:
    api = ScriptedApi({
        1: [ProviderRetryable("ThrottlingException: slow down")],
        2: [ProviderRejected("ValidationException: bad body")],
        3: [ProviderRetryable("InternalServerException")] * 3,
    })  # fmt: skip
    for live in batches(spool, api, attempts=3, concurrency=2):
        batch_id = live.start("docproc-x-b1", requests(6))
        until_ended(live, batch_id)
        results = {r.custom_id: r for r in live.results(batch_id)}
    assert results["j1-a1"].kind is ResultKind.SUCCEEDED  # retried after throttling
    assert results["j2-a1"].error_type == "invalid_request_error"
    assert results["j3-a1"].error_type == "api_error" and api.calls[3] == 3
    assert api.calls[2] == 1 and sum(api.calls.values()) == 6 + 1 + 2


def test_a_restart_resumes_only_the_unanswered_requests(spool: Path) -> None:
    spool.mkdir()
    (spool / "docproc-x-b2.requests.jsonl").write_bytes(
        b"".join(json.dumps(r).encode() + b"\n" for r in requests(5))
    )
    answers = [
        {"custom_id": "j0-a1", "answer": {"echo": 0}},
        {"custom_id": "j1-a1", "answer": {"echo": 1}},
    ]
    torn = b'{"custom_id": "j2-a1", "ans'  # a crash in the middle of a write
    (spool / "docproc-x-b2.answers.jsonl").write_bytes(
        b"".join(json.dumps(a).encode() + b"\n" for a in answers) + torn
    )
    api = ScriptedApi()
    for live in batches(spool, api):
        assert live.find("docproc-x-b2") == "live-docproc-x-b2"
        until_ended(live, "live-docproc-x-b2")
        found = sorted(r.custom_id for r in live.results("live-docproc-x-b2"))
    assert sorted(api.calls) == [2, 3, 4]  # j0 and j1 were answered before the crash
    assert found == [f"j{n}-a1" for n in range(5)]


def test_a_refused_account_stops_the_calls_and_the_next_poll_resumes(spool: Path) -> None:
    api = ScriptedApi({0: [ProviderAccountRefused("AccessDeniedException")]})
    for live in batches(spool, api, concurrency=1):
        batch_id = live.start("docproc-x-b3", requests(3))
        deadline = time.monotonic() + 20
        with pytest.raises(ProviderAccountRefused):
            while time.monotonic() < deadline:
                live.poll(batch_id)
                time.sleep(0.01)
        until_ended(live, batch_id)
        assert len(list(live.results(batch_id))) == 3
    # The refused call is made again; no other call is made twice (each is paid for).
    assert api.calls == {0: 2, 1: 1, 2: 1}


def test_cancel_leaves_the_uncalled_requests_unanswered(spool: Path) -> None:
    api = ScriptedApi()
    api.gate.clear()  # every call waits until the cancel is in
    for live in batches(spool, api, concurrency=1):
        batch_id = live.start("docproc-x-b4", requests(4))
        live.cancel(batch_id)
        api.gate.set()
        until_ended(live, batch_id)
        answered = list(live.results(batch_id))
    assert len(answered) <= 1 and sum(api.calls.values()) <= 1
    with pytest.raises(ProviderRejected):
        LiveBatches(spool, api, answer).cancel("live-docproc-nope-b9")


def test_a_spooled_batch_is_started_once_and_deleted_with_its_files(spool: Path) -> None:
    api = ScriptedApi()
    for live in batches(spool, api):
        first = live.start("docproc-x-b5", requests(2))
        assert live.start("docproc-x-b5", requests(2)) == first
        until_ended(live, first)
        live.delete(first)
        assert live.find("docproc-x-b5") is None and list(spool.iterdir()) == []
    assert sum(api.calls.values()) == 2
    with pytest.raises(ProviderRejected, match="not a live batch id"):
        LiveBatches(spool, api, answer).poll("live-../../etc")
