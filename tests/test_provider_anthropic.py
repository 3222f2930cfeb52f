"""The anthropic provider against a real HTTP server speaking Message Batches on 127.0.0.1.

The server (``tests/batchserver/``) validates every header, envelope and
request shape, and injects the faults the real API shows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from docproc.errors import ProviderRejected, ProviderRetryable
from docproc.models import JobRequest, ResultKind, TaskSpec
from docproc.providers.anthropic import AnthropicProvider, CreateOutcomeUnknown, NotFound
from docproc.providers.base import ProviderLimits
from tests.batchserver import FakeBatches, Faults, Outcome

KEY = "sk-test-provider-5f1c"
TASK = TaskSpec(provider="anthropic", model="claude-sonnet-4-5", max_tokens=512)
DOC = "Alpha is first. Beta follows alpha. Gamma ends the list. Delta is extra."


def wait_ended(provider: AnthropicProvider, batch_id: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if provider.poll(batch_id).ended:
                return
        except ProviderRetryable:
            pass
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not end in {seconds} s")


def requests(provider: AnthropicProvider, count: int, start: int = 1) -> list[dict[str, Any]]:
    return [
        provider.build_request(JobRequest(f"j{i}-a1", i, f"{DOC} Number {i}.", f"d{i}.txt"), TASK)
        for i in range(start, start + count)
    ]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    servers: list[FakeBatches] = []
    providers: list[AnthropicProvider] = []

    def start(**kwargs: Any) -> tuple[FakeBatches, AnthropicProvider]:
        server = FakeBatches(api_key=KEY, **kwargs)
        server.start()
        provider = AnthropicProvider(KEY, base_url=server.url, spool_dir=tmp_path / "spool",
                                     timeout=10.0, not_found_grace=5.0)  # fmt: skip
        servers.append(server)
        providers.append(provider)
        return server, provider

    yield start
    for provider in providers:
        provider.close()
    violations = [v for server in servers for v in server.violations]
    for server in servers:
        server.stop()
    assert violations == []


def test_round_trip_results_match_by_custom_id(make: Any) -> None:
    outcomes = {"j1-a1": Outcome.SUCCEEDED, "j2-a1": Outcome.INVALID, "j3-a1": Outcome.EXPIRED,
                "j4-a1": Outcome.ERRORED, "j5-a1": Outcome.MAX_TOKENS}  # fmt: skip
    server, provider = make(end_after=0.2, outcome=lambda cid, params: outcomes[cid])
    batch_id = provider.submit(iter(requests(provider, 5)))
    assert batch_id.startswith("msgbatch_") and not provider.poll(batch_id).ended
    with pytest.raises(ProviderRejected, match="has not ended"):
        provider.results(batch_id)
    wait_ended(provider, batch_id)
    results = {r.custom_id: r for r in provider.results(batch_id)}
    assert set(results) == set(outcomes)
    ok = results["j1-a1"]
    assert ok.kind is ResultKind.SUCCEEDED and ok.summary.startswith("Alpha is first.")
    assert ok.highlights and ok.usage.input_tokens > 0 and ok.model == "claude-sonnet-4-5"
    assert (results["j2-a1"].kind, results["j2-a1"].error_type) == (
        ResultKind.ERRORED, "invalid_request_error"
    )  # fmt: skip
    assert results["j3-a1"].kind is ResultKind.EXPIRED
    assert results["j4-a1"].error_type not in ("", "invalid_request_error")
    assert results["j5-a1"].error_type == "max_tokens" and results["j5-a1"].usage.output_tokens
    provider.delete(batch_id)
    provider.delete(batch_id)  # already gone: fine
    assert server.violations == []
    with pytest.raises(NotFound):
        provider.poll("msgbatch_unknown0000000000000")
    server.violations.clear()  # asking for an unknown batch was the point


@pytest.mark.parametrize("absolute", [True, False])
def test_results_url_is_used_as_given(make: Any, absolute: bool) -> None:
    server, provider = make(end_after=0.0, absolute_results_url=absolute)
    batch_id = provider.submit(requests(provider, 3))
    wait_ended(provider, batch_id)
    assert len(list(provider.results(batch_id))) == 3
    assert server.results_served[batch_id] == 1


@pytest.mark.parametrize(("fault", "retry_after"), [("429", 1.0), ("529", None)])
def test_a_refused_create_is_retryable_and_created_nothing(
    make: Any, fault: str, retry_after: float | None
) -> None:
    server, provider = make(faults=Faults(script={"create": [fault]}))
    with pytest.raises(ProviderRetryable) as raised:
        provider.submit(requests(provider, 2))
    assert raised.value.retry_after == retry_after
    assert server.batches == {}
    assert provider.submit(requests(provider, 2))  # the next call goes through


@pytest.mark.parametrize("fault", ["drop_after_create", "500", "drop"])
def test_an_unknown_create_outcome_is_reconciled_through_the_list(make: Any, fault: str) -> None:
    server, provider = make(faults=Faults(script={"create": [fault]}))
    before = datetime.now(UTC) - timedelta(seconds=5)
    with pytest.raises(CreateOutcomeUnknown):
        provider.submit(requests(provider, 2))
    other = provider.submit(requests(provider, 3, start=100))  # same window, other size
    ids = ["j1-a1", "j2-a1"]
    if fault != "drop_after_create":  # not created; but the list may lag a new batch
        with pytest.raises(ProviderRetryable, match="moments ago") as raised:
            provider.find_batch(ids, before, exclude={other})
        assert 0 < (raised.value.retry_after or 0) <= provider.list_settle
    provider.list_settle = 0.0  # as if the settling time had passed
    found = provider.find_batch(ids, before, exclude={other})
    if fault == "drop_after_create":  # created behind the lost response
        assert found is not None and found != other
        assert sorted(server.batches[found].custom_ids) == ids
        assert provider.find_batch(ids, before, exclude={other, found}) is None
    else:
        assert found is None
    assert provider.find_batch(ids, datetime.now(UTC) + timedelta(minutes=1)) is None
    with pytest.raises(ValueError, match="timezone"):
        provider.find_batch(ids, datetime.now())


def test_a_just_created_batch_may_404_for_a_while(make: Any) -> None:
    _, provider = make(end_after=0.0, faults=Faults(not_found_for=0.5))
    batch_id = provider.submit(requests(provider, 2))
    with pytest.raises(ProviderRetryable, match="just created"):
        provider.poll(batch_id)
    wait_ended(provider, batch_id)
    assert len(list(provider.results(batch_id))) == 2


def test_transient_failures_are_retryable_with_the_servers_hint(make: Any) -> None:
    faults = Faults(script={"retrieve": ["429", "500", "drop"], "results": ["cut"]})
    _, provider = make(end_after=0.0, faults=faults)
    batch_id = provider.submit(requests(provider, 40))
    hints = []
    for _ in range(3):
        with pytest.raises(ProviderRetryable) as raised:
            provider.poll(batch_id)
        hints.append(raised.value.retry_after)
    assert hints == [1.0, None, None]
    wait_ended(provider, batch_id)
    with pytest.raises(ProviderRetryable):
        list(provider.results(batch_id))  # the stream was cut mid-way
    assert len({r.custom_id for r in provider.results(batch_id)}) == 40


def test_cancel_ends_the_batch_with_canceled_results(make: Any) -> None:
    server, provider = make(end_after=None)
    batch_id = provider.submit(requests(provider, 3))
    with pytest.raises(ProviderRejected):
        provider.delete(batch_id)  # in progress: must be canceled first
    provider.cancel(batch_id)
    wait_ended(provider, batch_id)
    assert {r.kind for r in provider.results(batch_id)} == {ResultKind.CANCELED}
    with pytest.raises(ProviderRejected):
        provider.cancel(batch_id)  # ended: nothing to cancel
    assert any("still processing" in v for v in server.violations)  # deliberate
    server.violations.clear()


def test_envelope_problems_are_refused_before_any_call(make: Any, tmp_path: Path) -> None:
    server, provider = make()
    good = requests(provider, 2)
    with pytest.raises(ProviderRejected, match="duplicate"):
        provider.submit([good[0], good[0]])
    with pytest.raises(ProviderRejected, match="custom_id"):
        provider.submit([{**good[0], "custom_id": "has.dots"}])
    with pytest.raises(ProviderRejected, match="at least one"):
        provider.submit([])
    provider.limits = ProviderLimits(max_requests=10, max_bytes=len(str(good[0])) + 10)
    with pytest.raises(ProviderRejected, match="over the limit"):
        provider.submit(good)
    assert server.calls == [] and list((tmp_path / "spool").iterdir()) == []


def test_a_wrong_key_is_rejected_and_never_echoed(make: Any, tmp_path: Path) -> None:
    server, _ = make()
    wrong = AnthropicProvider("sk-wrong-9d2e", base_url=server.url, spool_dir=tmp_path / "w")
    with pytest.raises(ProviderRejected) as raised:
        wrong.submit(requests(wrong, 1))
    assert "authentication_error" in str(raised.value) and "sk-wrong" not in str(raised.value)
    assert "sk-wrong" not in repr(wrong)
    wrong.close()
    server.violations.clear()  # the wrong key was the point


def test_a_results_stream_cut_quietly_at_a_line_end_is_read_again(make: Any) -> None:
    """A close-delimited body cut after whole lines looks complete to HTTP: the count of
    requests in the batch tells the client it was cut, so nothing is sent (paid) again."""
    faults = Faults(script={"results": ["cut_quiet", "cut_quiet"]})
    server, provider = make(end_after=0.0, faults=faults)
    batch_id = provider.submit(requests(provider, 30))
    wait_ended(provider, batch_id)
    read: list[str] = []
    with pytest.raises(ProviderRetryable, match="15 of 30"):
        read.extend(r.custom_id for r in provider.results(batch_id))
    assert len(read) == 15  # what was read is handed on before the error
    with pytest.raises(ProviderRetryable, match="15 of 30"):
        list(provider.results(batch_id))
    assert len({r.custom_id for r in provider.results(batch_id)}) == 30
    assert server.results_served[batch_id] == 1  # only the third stream was whole


def test_a_short_stream_repeated_is_taken_as_final_after_three_reads(make: Any) -> None:
    faults = Faults(script={"results": ["cut_quiet"] * 3})
    _, provider = make(end_after=0.0, faults=faults)
    batch_id = provider.submit(requests(provider, 10))
    wait_ended(provider, batch_id)
    for _ in range(2):
        with pytest.raises(ProviderRetryable):
            list(provider.results(batch_id))
    assert len(list(provider.results(batch_id))) == 5  # the third identical read is final


def test_reconciliation_follows_every_page_of_the_list(make: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr("docproc.providers.anthropic.LIST_PAGE", 2)
    server, provider = make(faults=Faults(script={"create": ["drop_after_create"]}))
    before = datetime.now(UTC) - timedelta(seconds=5)
    with pytest.raises(CreateOutcomeUnknown):
        provider.submit(requests(provider, 2))
    later = {provider.submit(requests(provider, 3 + n, start=100 * (n + 1))) for n in range(5)}
    found = provider.find_batch(["j1-a1", "j2-a1"], before, exclude=later)
    assert found is not None and found not in later
    assert sorted(server.batches[found].custom_ids) == ["j1-a1", "j2-a1"]
    lists = [path for method, path, _ in server.calls if method == "GET" and
             path.endswith("/batches")]  # fmt: skip
    assert len(lists) >= 3  # six batches, two a page: it read past the first page
