"""The local provider, its summariser and the custom_id codec, on a real spool directory."""

from __future__ import annotations

import json
import os
import re
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docproc.errors import ProviderError, ProviderRejected, ProviderRetryable
from docproc.models import CUSTOM_ID_PATTERN, JobRequest, ResultKind, TaskSpec
from docproc.providers.base import (
    Provider,
    encode_request,
    make_custom_id,
    parse_custom_id,
    request_size,
)
from docproc.providers.local import MODEL, LocalProvider
from docproc.providers.summarize import sentence_spans, summarize

ARTICLE = """ANNUAL REPORT 2025

Introduction
Acme Corp. reported strong results for the third quarter. Revenue grew 20% to $5.2 million,
driven by new customers in Europe. Dr. Smith, the chief executive, said the U.S. market
remained flat, e.g. in retail, while exports to Asia doubled.

Highlights of the year:
- Revenue grew 20% year over year, the fastest growth since 2019.
- Operating margin improved to 15 percent as costs fell.
- Headcount rose to 120 employees across four offices.

The board approved a dividend of $0.10 per share. Costs rose slightly because of higher wages,
but the margin still improved. J. Doe will join as chief financial officer in January.
The company expects revenue growth to continue next year, led by Europe and Asia.
Risks include currency swings and a slowdown in retail demand.
"""


def job(job_id: int, text: str = ARTICLE, attempt: int = 1) -> JobRequest:
    return JobRequest(make_custom_id(job_id, attempt), job_id, text, f"doc{job_id}.txt")


@pytest.fixture(name="provider")
def _provider(tmp_path: Path) -> LocalProvider:
    return LocalProvider(tmp_path / "spool")


def requests_for(provider: LocalProvider, *texts: str) -> list[dict[str, Any]]:
    return [provider.build_request(job(i, t), TaskSpec()) for i, t in enumerate(texts)]


# -- custom_id codec ----------------------------------------------------------------


@given(st.integers(0, 10**40), st.integers(0, 10**6))
def test_custom_id_round_trips_and_matches_the_api_pattern(job_id: int, attempt: int) -> None:
    custom_id = make_custom_id(job_id, attempt)
    assert re.fullmatch(CUSTOM_ID_PATTERN, custom_id)
    assert parse_custom_id(custom_id) == (job_id, attempt)


@given(st.text(max_size=70))
def test_parse_custom_id_accepts_only_canonical_ids(text: str) -> None:
    try:
        job_id, attempt = parse_custom_id(text)
    except ValueError:
        return
    assert make_custom_id(job_id, attempt) == text


@pytest.mark.parametrize("junk", ["", "j1", "j1-a", "j01-a1", "j1-a1\n", " j1-a1", "J1-A1", "x"])
def test_parse_custom_id_rejects_junk(junk: str) -> None:
    with pytest.raises(ValueError, match="custom_id"):
        parse_custom_id(junk)


def test_make_custom_id_rejects_negative_and_huge_numbers() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        make_custom_id(-1, 1)
    with pytest.raises(ValueError, match="do not fit"):
        make_custom_id(10**70, 1)


def test_error_tree() -> None:
    assert issubclass(ProviderRetryable, ProviderError)
    assert issubclass(ProviderRejected, ProviderError)
    assert ProviderRetryable("slow down", retry_after=3.0).retry_after == 3.0


# -- summariser -----------------------------------------------------------------------


def test_summary_and_highlights_are_verbatim_with_offsets() -> None:
    result = summarize(ARTICLE, summary_sentences=3, max_highlights=10)
    assert 3 <= len(result.highlights) <= 10
    for h in result.highlights:
        assert h.start is not None and h.end is not None
        assert ARTICLE[h.start : h.end] == h.quote
        assert h.quote == h.quote.strip() and len(h.quote.split()) >= 4
        assert h.why.startswith("key terms: ")
    starts = [h.start or 0 for h in result.highlights]
    assert starts == sorted(starts)  # document order
    assert "ANNUAL REPORT" not in result.summary and "Introduction" not in result.summary
    assert result.summary.count(".") >= 3


def test_summary_is_deterministic() -> None:
    assert summarize(ARTICLE) == summarize(ARTICLE)


def test_highlight_bounds_follow_the_task() -> None:
    long_text = " ".join(f"Sentence {i} tells about topic{i % 7} and more." for i in range(200))
    assert len(summarize(long_text, max_highlights=10).highlights) == 10
    assert len(summarize(long_text, max_highlights=5).highlights) == 5
    assert len(summarize(ARTICLE, max_highlights=2).highlights) == 2


def test_short_texts_give_what_they_have() -> None:
    assert summarize("   \n ").highlights == ()
    one = summarize("Only one sentence here.")
    assert one.summary == "Only one sentence here."
    assert [h.quote for h in one.highlights] == ["Only one sentence here."]
    assert len(summarize("First point made. Second point made.").highlights) == 2
    assert len(summarize("Go on. Do it. We win. So it is.").highlights) == 3  # fragments fill in


def test_sentence_splitting() -> None:
    text = "Dr. Who met Mr. Smith. They talked.\n- a bullet line\n\nHeading\nBody text here."
    got = [text[a:b] for a, b in sentence_spans(text)]
    assert got[:3] == ["Dr. Who met Mr. Smith.", "They talked.", "a bullet line"]
    assert got[3:] == ["Heading", "Body text here."]
    wrapped = "This sentence is wrapped\nacross two lines. Next one."
    assert [wrapped[a:b] for a, b in sentence_spans(wrapped)] == [
        "This sentence is wrapped\nacross two lines.",
        "Next one.",
    ]


def test_cjk_stops_split_without_spaces() -> None:
    text = "\u4eca\u65e5\u306f\u6674\u308c\u3002\u660e\u65e5\u306f\u96e8\uff01\u672c\u5f53\uff1f"
    assert len(sentence_spans(text)) == 3


def test_a_lone_surrogate_keeps_offsets_valid(provider: LocalProvider) -> None:
    text = "Revenue grew in Europe \udc80 and revenue grew in Asia, the company said."
    request = provider.build_request(job(1, text), TaskSpec())
    assert b"Europe ? and" in encode_request(request)
    (result,) = provider.results(provider.submit([request]))
    (highlight,) = result.highlights
    assert highlight.start == 0 and highlight.end == len(text)
    assert highlight.quote == text.replace("\udc80", "?")


def test_overlong_runs_are_cut_into_pieces() -> None:
    text = "word " * 2_000
    spans = sentence_spans(text)
    assert len(spans) > 5
    assert all(0 < b - a <= 1_000 for a, b in spans)
    assert all(text[a:b] == text[a:b].strip() for a, b in spans)


def test_huge_text_is_sampled_and_fast() -> None:
    # 2 MB of dull, unrelated sentences, then 2 MB of the article: the best
    # sentences are late in the text, and the sampled windows still find them.
    filler = " ".join(f"Filler line {i} has w{i}x and w{i}y." for i in range(50_000))
    text = filler + "\n\n" + ARTICLE * (len(filler) // len(ARTICLE))
    started = time.perf_counter()
    result = summarize(text)
    assert time.perf_counter() - started < 2.0
    assert len(result.highlights) == 10
    for h in result.highlights:
        assert h.start is not None and text[h.start : h.end] == h.quote
    assert max(h.start or 0 for h in result.highlights) > len(text) // 2


def test_summariser_throughput() -> None:
    docs = [ARTICLE.replace("2025", str(i)) for i in range(300)]
    started = time.process_time()
    for text in docs:
        summarize(text)
    rate = len(docs) / (time.process_time() - started)
    assert rate > 500  # ~3,000 docs/s for this 1.2 kB text on an idle core; slack for CI


# -- the provider --------------------------------------------------------------------


def test_it_is_a_provider(provider: LocalProvider) -> None:
    typed: Provider = provider
    assert typed.name == "local"
    assert typed.limits.max_requests == 100_000


def test_build_request(provider: LocalProvider) -> None:
    request = provider.build_request(job(7), TaskSpec(max_tokens=500))
    assert request == {
        "custom_id": "j7-a1",
        "params": {
            "model": MODEL,
            "max_tokens": 500,
            "summary_sentences": 3,
            "max_highlights": 10,
            "title": "doc7.txt",
            "text": ARTICLE,
        },
    }
    compact = json.dumps(request, ensure_ascii=False, separators=(",", ":"))
    assert request_size(request) == len(compact.encode()) + 1


def test_round_trip_through_the_spool(provider: LocalProvider) -> None:
    batch_id = provider.submit(iter(requests_for(provider, ARTICLE, "Short text about cats.")))
    assert re.fullmatch(r"localbatch_[0-9a-f]{32}", batch_id)
    assert (provider.spool_dir / f"{batch_id}.jsonl").is_file()
    assert not list(provider.spool_dir.glob(".*.part"))
    assert provider.poll(batch_id).ended
    results = {r.custom_id: r for r in provider.results(batch_id)}
    assert set(results) == {"j0-a1", "j1-a1"}
    first = results["j0-a1"]
    assert first.kind is ResultKind.SUCCEEDED and first.model == MODEL
    assert first.summary and 3 <= len(first.highlights) <= 10
    assert first.usage.input_tokens == -(-(len(ARTICLE) + len("doc0.txt")) // 4)
    assert first.usage.output_tokens > 0 and first.stop_reason == "end_turn"
    provider.delete(batch_id)
    provider.delete(batch_id)  # idempotent
    assert not list(provider.spool_dir.iterdir())
    with pytest.raises(ProviderRejected, match="unknown batch"):
        provider.poll(batch_id)


def test_a_batch_ends_on_a_later_poll_after_min_age(tmp_path: Path) -> None:
    clock = FakeClock()
    provider = LocalProvider(tmp_path, min_age=30.0, clock=clock)
    batch_id = provider.submit(requests_for(provider, ARTICLE))
    status = provider.poll(batch_id)
    assert not status.ended and status.state == "in_progress"
    with pytest.raises(ProviderRejected, match="not ended"):
        provider.results(batch_id)
    with pytest.raises(ProviderRejected, match="cancel it first"):
        provider.delete(batch_id)
    clock.now += 30.0
    assert provider.poll(batch_id).ended
    assert [r.kind for r in provider.results(batch_id)] == [ResultKind.SUCCEEDED]


def test_a_restarted_provider_still_polls_and_streams(tmp_path: Path) -> None:
    clock = FakeClock()
    before = LocalProvider(tmp_path / "spool", min_age=5.0, clock=clock)
    batch_id = before.submit(requests_for(before, ARTICLE, ARTICLE[:300]))
    del before
    clock.now += 10.0
    after = LocalProvider(tmp_path / "spool", min_age=5.0, clock=clock)
    assert after.poll(batch_id).ended
    assert sorted(r.custom_id for r in after.results(batch_id)) == ["j0-a1", "j1-a1"]


def test_cancel_makes_every_result_canceled(provider: LocalProvider) -> None:
    batch_id = provider.submit(requests_for(provider, ARTICLE, ARTICLE))
    provider.cancel(batch_id)
    provider.cancel(batch_id)  # idempotent
    assert provider.poll(batch_id).ended
    results = list(provider.results(batch_id))
    assert [r.kind for r in results] == [ResultKind.CANCELED] * 2
    provider.delete(batch_id)
    assert not list(provider.spool_dir.iterdir())
    with pytest.raises(ProviderRejected):
        provider.cancel(batch_id)


def test_find_batch_after_an_unknown_outcome(provider: LocalProvider) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    requests = requests_for(provider, ARTICLE, ARTICLE)
    provider.submit(requests_for(provider, "Another batch entirely here."))
    batch_id = provider.submit(requests)
    ids = [r["custom_id"] for r in requests]
    assert provider.find_batch(ids, started) == batch_id
    assert provider.find_batch(["j99-a1"], started) is None
    assert provider.find_batch(ids, datetime.now(UTC) + timedelta(minutes=1)) is None
    assert provider.find_batch([], started) is None
    with pytest.raises(ValueError, match="timezone"):
        provider.find_batch(ids, datetime.now())


def test_malformed_params_and_empty_text_are_errored(provider: LocalProvider) -> None:
    good = requests_for(provider, ARTICLE)[0]
    cases: list[dict[str, Any]] = [
        {"custom_id": "bad-1", "params": "not an object"},
        {"custom_id": "bad-2", "params": {**good["params"], "model": "claude-x"}},
        {"custom_id": "bad-3", "params": {**good["params"], "max_highlights": 0}},
        {"custom_id": "bad-4", "params": {**good["params"], "text": None}},
        {"custom_id": "bad-5", "params": {**good["params"], "max_tokens": True}},
        {"custom_id": "bad-6"},
        {"custom_id": "empty", "params": {**good["params"], "text": " \n\t "}},
        good,
    ]
    results = {r.custom_id: r for r in provider.results(provider.submit(cases))}
    for custom_id in ("bad-1", "bad-2", "bad-3", "bad-4", "bad-5", "bad-6", "empty"):
        assert results[custom_id].kind is ResultKind.ERRORED
        assert results[custom_id].error_type == "invalid_request_error"
    assert results["empty"].error_message == "no text to summarise"
    assert "model" in results["bad-2"].error_message
    assert results[good["custom_id"]].kind is ResultKind.SUCCEEDED


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([], "at least one"),
        ([{"custom_id": "has space", "params": {}}], "custom_id: invalid"),
        ([{"custom_id": "x" * 65, "params": {}}], "custom_id: invalid"),
        ([{"custom_id": "a", "params": {}}, {"custom_id": "a", "params": {}}], "duplicate"),
        ([{"custom_id": "a", "params": {"x": object()}}], "not JSON"),
        (["not a mapping"], "custom_id: invalid"),
    ],
)
def test_an_invalid_envelope_is_rejected_and_leaves_nothing(
    provider: LocalProvider, requests: list[Any], message: str
) -> None:
    with pytest.raises(ProviderRejected, match=message):
        provider.submit(requests)
    assert not list(provider.spool_dir.iterdir())


def test_unknown_or_hostile_batch_ids_are_rejected(provider: LocalProvider) -> None:
    for batch_id in ("localbatch_" + "0" * 32, "../etc/passwd", "localbatch_x"):
        with pytest.raises(ProviderRejected, match="unknown batch"):
            provider.poll(batch_id)
        provider.delete(batch_id)  # gone already: fine


def test_a_stale_partial_submit_is_cleaned_up(tmp_path: Path) -> None:
    stale = tmp_path / ".localbatch_0123.part"
    stale.write_text("half a batch")
    fresh = tmp_path / ".localbatch_4567.part"
    fresh.write_text("a submit in progress elsewhere")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    LocalProvider(tmp_path)
    assert not stale.exists() and fresh.exists()
    fresh.unlink()


def test_ten_thousand_requests_stream_with_flat_memory(provider: LocalProvider) -> None:
    texts = (f"Report {i}. " + ARTICLE[: 200 + i % 300] for i in range(10_000))
    requests = (provider.build_request(job(i, t), TaskSpec()) for i, t in enumerate(texts))
    batch_id = provider.submit(requests)
    spool_size = (provider.spool_dir / f"{batch_id}.jsonl").stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for r in provider.results(batch_id) if r.kind is ResultKind.SUCCEEDED)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert spool_size > 4_000_000
    assert peak < spool_size / 10, (peak, spool_size)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _no_stray_files(tmp_path: Path) -> Iterator[None]:
    yield
    assert not list(tmp_path.rglob("*.part"))
